#!/usr/bin/env node
// Compiles the library (src → dist) and the REPL with the project's own TypeScript. `tsc` on PATH is not
// used: tslab ships TypeScript 5.0 and npm may link its `tsc` into node_modules/.bin instead of ours.
const { spawnSync } = require("node:child_process");
const path = require("node:path");
const root = path.resolve(__dirname, "..");
const tsc = require.resolve("typescript/bin/tsc", { paths: [root] });

function build() {
  for (const project of ["tsconfig.build.json", "repl/tsconfig.json"]) {
    const r = spawnSync(process.execPath, [tsc, "-p", project], { stdio: "inherit", cwd: root });
    if (r.status !== 0) return false;
  }
  return true;
}
module.exports = { build };
if (require.main === module) process.exit(build() ? 0 : 1);
