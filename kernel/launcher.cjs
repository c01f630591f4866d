#!/usr/bin/env node
// Starts tslab as a Jupyter kernel rooted at this checkout, whatever folder Jupyter starts it in.
// Why: tslab uses its cwd both as the TypeScript rootDir and as the base for `require`, so a notebook in
// notebooks/ could not `import { Session } from "./src"` (or "../src": "not under rootDir"). We remember the
// notebook's folder in NOTEBOOK_DIR, move to the project root, and hand over to the project's own tslab.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { createRequire } = require("node:module");

const root = path.resolve(process.env.SDMPRUNE_ROOT || path.join(__dirname, ".."));
if (!fs.existsSync(path.join(root, "package.json"))) {
  console.error(`sdmprune kernel: project root ${root} has no package.json (set SDMPRUNE_ROOT to the checkout)`);
  process.exit(2);
}
if (!process.env.NOTEBOOK_DIR) process.env.NOTEBOOK_DIR = process.cwd();
process.env.SDMPRUNE_ROOT = root;
process.chdir(root);

let tslabMain;
try {
  tslabMain = createRequire(path.join(root, "package.json")).resolve("tslab/dist/main.js");
} catch {
  console.error(
    `sdmprune kernel: tslab is not installed in ${root}.\n` +
      "Run `npm install` there (tslab is a devDependency), or `npm install tslab@1.0.22`."
  );
  process.exit(2);
}
patchDirectoryImports(path.join(path.dirname(tslabMain), "executor.js"));
// tslab parses process.argv itself: [node, script, "kernel", "--config-path", <file>].
require(tslabMain).main();

/**
 * tslab 1.0.22 runs project .ts files from its in-memory compilation, but maps an extensionless import only to
 * `<id>.js`, so `import "./src"` or `"./plot"` (a folder with index.ts) type-checks and then fails at run time
 * with "Cannot find module". We load tslab's executor with that one lookup extended to `<id>/index.js`, before
 * main.js requires it. If the source ever differs (another tslab version) we warn and run it unpatched.
 */
function patchDirectoryImports(executorPath) {
  const Module = require("node:module");
  const needle = 'if (path_1.default.extname(filename) === "") {\n            filename += ".js";\n        }';
  const fixed =
    'if (path_1.default.extname(filename) === "") {\n' +
    '            const asIndex = (0, tspath_1.normalizeJoin)(filename, "index.js");\n' +
    '            filename = !sideOutputs.has(filename + ".js") && (sideOutputs.has(asIndex) || sideModules.has(asIndex)) ? asIndex : filename + ".js";\n' +
    "        }";
  const source = fs.readFileSync(executorPath, "utf8");
  if (!source.includes(needle)) {
    console.error(`sdmprune kernel: ${executorPath} is not tslab 1.0.22's; folder imports like "./src" may fail`);
    return;
  }
  const mod = new Module(executorPath, null);
  mod.filename = executorPath;
  mod.paths = Module._nodeModulePaths(path.dirname(executorPath));
  mod._compile(source.replace(needle, fixed), executorPath);
  mod.loaded = true;
  require.cache[executorPath] = mod;
}
