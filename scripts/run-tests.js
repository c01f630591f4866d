#!/usr/bin/env node
// `npm test`: builds the library (the CLI and REPL tests run the compiled binary), then runs mocha.
// Extra arguments are passed to mocha, e.g. `npm test -- --grep gguf`.
const { spawnSync } = require("node:child_process");
const path = require("node:path");
const root = path.resolve(__dirname, "..");
const bin = (name) => path.join(root, "node_modules", ".bin", name);
let r = spawnSync(bin("tsc"), ["-p", "tsconfig.build.json"], { stdio: "inherit", cwd: root });
if (r.status !== 0) {
  console.log("0 passed, 1 failed");
  process.exit(1);
}
r = spawnSync(bin("mocha"), process.argv.slice(2), { stdio: "inherit", cwd: root });
process.exit(r.status === null ? 1 : r.status);
