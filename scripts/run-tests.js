#!/usr/bin/env node
// `npm test`: builds the library (the CLI and REPL tests run the compiled binary), then runs mocha over
// test/**/*.test.{ts,tsx}. Arguments are passed to mocha; giving files runs only those
// (e.g. `npm test -- test/gguf.test.ts`). The spec list lives here, not in .mocharc.json, because a
// spec on mocha's command line adds to the .mocharc list instead of replacing it.
const { spawnSync } = require("node:child_process");
const path = require("node:path");
const root = path.resolve(__dirname, "..");
const bin = (name) => path.join(root, "node_modules", ".bin", name);
if (!require("./build").build()) {
  console.log("0 passed, 1 failed");
  process.exit(1);
}
const args = process.argv.slice(2);
const hasSpec = args.some((a) => !a.startsWith("-") && /\.(ts|tsx)$/.test(a));
const spec = hasSpec ? [] : ["test/**/*.test.{ts,tsx}"];
const r = spawnSync(bin("mocha"), [...args, ...spec], { stdio: "inherit", cwd: root });
process.exit(r.status === null ? 1 : r.status);
