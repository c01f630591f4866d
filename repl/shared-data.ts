/**
 * Where the default calibration text lives: the project's read-only shared folder (models/, data/),
 * found through SDMPRUNE_SHARED or as a `shared` folder next to the checkout or the working directory.
 */
import * as fs from "node:fs";
import * as path from "node:path";

export const TINYSTORIES_FILE = path.join("data", "tinystories", "tinystories_valid_first1000.txt");

/** Folders that may hold the shared data, best first. */
export function sharedCandidates(env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): string[] {
  // repl/ (sources) or dist/repl (build): the checkout root is one or two levels up.
  const roots = [path.resolve(__dirname, ".."), path.resolve(__dirname, "..", "..")];
  return [env.SDMPRUNE_SHARED, ...roots.map((r) => path.join(r, "..", "shared")), path.join(cwd, "..", "shared"), path.join(cwd, "shared")].filter(
    (p): p is string => !!p,
  );
}

export function findSharedFile(rel: string, env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): { file: string | null; tried: string[] } {
  const tried = [...new Set(sharedCandidates(env, cwd).map((d) => path.resolve(d, rel)))];
  return { file: tried.find((f) => fs.existsSync(f)) ?? null, tried };
}
