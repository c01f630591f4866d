import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

const ROOT = path.resolve(__dirname, "..", "..");
const OUTPUTS = ["dist/cli/main.js", "dist/cli/commands/repl.js", "dist/repl/index.js"];

/** Newest modification time of the TypeScript sources under `dir`. */
function newest(dir: string): number {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newest(p));
    else if (/\.tsx?$/.test(e.name)) t = Math.max(t, fs.statSync(p).mtimeMs);
  }
  return t;
}

/**
 * The binary (`bin/sdmprune.js`) runs dist/: build the library and the REPL with the project's own build script
 * (as `npm install` does) unless dist/ is newer than every source (npm test has just built it).
 */
export function ensureBuilt(): void {
  const outputs = OUTPUTS.map((f) => path.join(ROOT, f));
  if (outputs.every((f) => fs.existsSync(f))) {
    const built = Math.min(...outputs.map((f) => fs.statSync(f).mtimeMs));
    if (Math.max(newest(path.join(ROOT, "src")), newest(path.join(ROOT, "repl"))) <= built) return;
  }
  const b = spawnSync(process.execPath, [path.join(ROOT, "scripts", "build.js")], { cwd: ROOT, encoding: "utf8" });
  assert.equal(b.status, 0, `node scripts/build.js failed:\n${b.stdout}\n${b.stderr}`);
}
