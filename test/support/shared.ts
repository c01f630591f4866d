import * as fs from "node:fs";
import * as path from "node:path";

/**
 * Locate the read-only `shared/` folder (models and data). `SDMPRUNE_SHARED` overrides `../shared`.
 * Tests that need it call `requireShared(this)`: without it they skip loudly on a developer machine,
 * and fail under CI (where it must be present) so a missing folder cannot pass as green.
 */
export function sharedDir(): string | null {
  const candidates = [process.env.SDMPRUNE_SHARED, path.resolve(__dirname, "../../../shared")].filter(
    (p): p is string => !!p,
  );
  for (const c of candidates) if (fs.existsSync(path.join(c, "models", "stories260K.gguf"))) return c;
  return null;
}

export function sharedPath(...parts: string[]): string {
  const d = sharedDir();
  if (!d) throw new Error("shared/ folder not found (set SDMPRUNE_SHARED)");
  return path.join(d, ...parts);
}

export function requireShared(ctx: Mocha.Context): string {
  const d = sharedDir();
  if (d) return d;
  if (process.env.CI) throw new Error("shared/ is required under CI but was not found next to the checkout (or via SDMPRUNE_SHARED)");
  console.warn("\n  !!! SKIPPING: ../shared not found (set SDMPRUNE_SHARED); this test needs the shared models/data !!!\n");
  ctx.skip();
  throw new Error("unreachable");
}

export const STORIES260K = () => sharedPath("models", "stories260K.gguf");
