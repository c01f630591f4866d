import { SdmpruneError, ioError } from "../errors";
import { commands, loadCommand } from "./registry";

const HEADER = `sdmprune: structured MLP pruning of LLaMA-family models (SDMPrune self-distillation Taylor importance)`;

function overview(): string {
  const cmds = commands();
  const width = Math.max(0, ...cmds.map((c) => c.name.length));
  const lines = cmds.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return `${HEADER}\n\nUsage: sdmprune COMMAND [options]   (sdmprune COMMAND --help for details)\n\nCommands:\n${lines.join("\n")}\n\nEnvironment:\n  SDMPRUNE_BACKEND=tensorflow|webgpu|wasm|cpu   force a TensorFlow.js backend (default: best that loads)\n`;
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length][b.length];
}

/** "unknown option --x (did you mean --y?)" from node's parseArgs message; the options are those the usage names. */
export function unknownOption(message: string, usage: string): string {
  const name = /'(-{1,2}[^']+)'/.exec(message)?.[1] ?? message;
  const known = [...new Set(usage.match(/--[a-z][a-z0-9-]*/g) ?? [])];
  const bare = name.replace(/^-+/, "").split("=")[0];
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = k.slice(2).startsWith(bare) ? 0 : distance(bare, k.slice(2));
    if (d < bestD) [best, bestD] = [k, d];
  }
  return `unknown option ${name}${best && bestD <= 2 ? ` (did you mean ${best}?)` : ""}`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(overview());
    return name ? 0 : 1;
  }
  const cmd = loadCommand(name);
  if (!cmd) {
    process.stderr.write(`error: unknown command "${name}"\n\n${overview()}`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(cmd.usage.endsWith("\n") ? cmd.usage : cmd.usage + "\n");
    return 0;
  }
  try {
    return await cmd.run(rest);
  } catch (caught) {
    const code = String((caught as { code?: string } | null)?.code ?? "");
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      process.stderr.write(`error: ${unknownOption((caught as Error).message, cmd.usage)}\n\n${cmd.usage.endsWith("\n") ? cmd.usage : cmd.usage + "\n"}`);
      return 2;
    }
    // An operating-system error that escaped a typed wrapper still names its file and cause, and exits 2.
    const p = (caught as { path?: unknown } | null)?.path;
    const err = typeof p === "string" ? ioError(caught, p, "access") : caught;
    if (err instanceof SdmpruneError || (err instanceof Error && String((err as { code?: string }).code ?? "").startsWith("ERR_PARSE_ARGS_"))) {
      process.stderr.write(`error: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
