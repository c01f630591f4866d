/**
 * Ink is ESM-only with a top-level await, so this CommonJS package cannot `require` it: it is loaded
 * once with a real dynamic import() (TypeScript keeps import() in node16 CommonJS output) and the
 * components read it from here at render time. Types come from the import expression itself, because
 * a CommonJS file may not name an ES module in a type import.
 */
const importInk = () => import("ink");

export type InkModule = Awaited<ReturnType<typeof importInk>>;
export type InkKey = Parameters<Parameters<InkModule["useInput"]>[0]>[1];
export type InkInstance = ReturnType<InkModule["render"]>;

let loaded: InkModule | null = null;

/**
 * Loads Ink (idempotent). Ink reads CI/CONTINUOUS_INTEGRATION once, at import, and then only prints the
 * last frame on exit; a person at a terminal is interactive whatever CI says, so with a TTY the variables
 * are hidden for the duration of the import and restored afterwards.
 */
export async function loadInk(interactive: boolean): Promise<InkModule> {
  if (loaded) return loaded;
  const saved: Record<string, string | undefined> = {};
  if (interactive)
    for (const k of ["CI", "CONTINUOUS_INTEGRATION"]) {
      saved[k] = process.env[k];
      delete process.env[k];
    }
  try {
    loaded = await importInk();
  } finally {
    for (const [k, v] of Object.entries(saved)) if (v !== undefined) process.env[k] = v;
  }
  return loaded;
}

export function ink(): InkModule {
  if (!loaded) throw new Error("internal: Ink used before loadInk()");
  return loaded;
}
