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
const tslabDist = path.dirname(tslabMain);
patchModule(path.join(tslabDist, "executor.js"), "folder imports", [
  // tslab 1.0.22 runs project .ts files from its in-memory compilation but maps an extensionless import only to
  // `<id>.js`, so `import "./src"` or `"./plot"` (a folder with index.ts) type-checks and then fails at run time
  // with "Cannot find module". Also try `<id>/index.js`.
  [
    'if (path_1.default.extname(filename) === "") {\n            filename += ".js";\n        }',
    'if (path_1.default.extname(filename) === "") {\n' +
      '            const asIndex = (0, tspath_1.normalizeJoin)(filename, "index.js");\n' +
      '            filename = !sideOutputs.has(filename + ".js") && (sideOutputs.has(asIndex) || sideModules.has(asIndex)) ? asIndex : filename + ".js";\n' +
      "        }",
  ],
]);
patchModule(path.join(tslabDist, "converter.js"), "file-watcher timers", [
  // tslab drives TypeScript's watch program with a single fake timer and throws "Unexpected pending rebuildTimer"
  // when a second one is scheduled. TypeScript schedules one of its own when a watched file or folder changes
  // during a session (a source edited in an editor, a file created next to a failed module lookup), which made
  // the next cell fail at random. Pending timers are chained instead and all run at the next rebuild.
  [
    '    sys.setTimeout = (callback) => {\n' +
      "        // TypeScript compier implements debouncing using a timer.\n" +
      "        // It clears a timer when a new change is notified before the timer\n" +
      "        // is fired and it starts rebuilding sources.\n" +
      "        //\n" +
      "        // In this converter, it often happens when notifyUpdateSrc and\n" +
      "        // notifyUpdateDecls are called in sequence.\n" +
      "        if (rebuildTimer) {\n" +
      '            throw new Error("Unexpected pending rebuildTimer");\n' +
      "        }\n" +
      "        rebuildTimer = {\n" +
      "            callback: () => {\n" +
      "                callback();\n" +
      "                rebuildTimer = null;\n" +
      "            },\n" +
      "        };\n" +
      "        return rebuildTimer;\n" +
      "    };\n" +
      "    sys.clearTimeout = (timeoutId) => {\n" +
      "        if (rebuildTimer === timeoutId) {\n" +
      "            rebuildTimer = null;\n" +
      "            return;\n" +
      "        }\n" +
      '        throw new Error("clearing unexpected tiemr");\n' +
      "    };\n",
    "    sys.setTimeout = (callback) => {\n" +
      "        const pending = rebuildTimer;\n" +
      "        const timer = {\n" +
      "            callback: () => {\n" +
      "                if (rebuildTimer === timer) rebuildTimer = null;\n" +
      "                if (pending) pending.callback();\n" +
      "                callback();\n" +
      "            },\n" +
      "        };\n" +
      "        rebuildTimer = timer;\n" +
      "        return timer;\n" +
      "    };\n" +
      "    sys.clearTimeout = (timeoutId) => {\n" +
      "        if (rebuildTimer === timeoutId) rebuildTimer = null;\n" +
      "    };\n",
  ],
]);
patchModule(path.join(tslabDist, "jupyter.js"), "error replies", [
  // tslab prints a failing cell's error to its stderr stream and replies status "error" with no ename/evalue/
  // traceback, so `jupyter nbconvert --execute` reports "<Error>: " and nothing else. Keep the cell's stderr and
  // put it in the reply, where nbclient (and so nbconvert's failure message) reads it.
  [
    '        process.stderr.write = this.createWriteToIopub("stderr", writeStream);\n',
    '        const toStderr = this.createWriteToIopub("stderr", writeStream);\n' +
      '        this.cellStderr = "";\n' +
      "        process.stderr.write = (buffer, encoding) => {\n" +
      '            this.cellStderr = (this.cellStderr + (typeof buffer === "string" ? buffer : utf8Decoder.decode(buffer))).slice(-20000);\n' +
      "            return toStderr(buffer, encoding);\n" +
      "        };\n",
  ],
  [
    "        return {\n" + "            status: status,\n" + "            execution_count: count ? count.count : undefined,\n" + "        };\n",
    "        const reply = { status: status, execution_count: count ? count.count : undefined };\n" +
      '        if (status === "error") {\n' +
      '            const text = (this.cellStderr || "").trim();\n' +
      '            const lines = text.split("\\n").filter((l) => l.trim() !== "");\n' +
      "            let m = null;\n" +
      "            for (const l of lines) if ((m = /^\\s*(?:Uncaught )?([A-Za-z]*Error):\\s*(.*)$/.exec(l))) break;\n" +
      '            reply.ename = m ? m[1] : "Error";\n' +
      '            reply.evalue = m ? m[2] : lines[0] || "the cell failed (no message)";\n' +
      '            reply.traceback = text ? text.split("\\n") : [];\n' +
      "        }\n" +
      "        return reply;\n",
  ],
]);
keepAliveOnRethrow();
// tslab parses process.argv itself: [node, script, "kernel", "--config-path", <file>].
require(tslabMain).main();

/**
 * Load one of tslab's own modules with small source replacements and put it in the module cache before
 * main.js requires it. The replacements are exact strings from tslab 1.0.22 (pinned in package.json); if one
 * is not found (another version) we warn and load that module unpatched.
 */
function patchModule(file, what, replacements) {
  const Module = require("node:module");
  let source = fs.readFileSync(file, "utf8");
  for (const [needle, fixed] of replacements) {
    if (!source.includes(needle)) {
      console.error(`sdmprune kernel: ${file} is not tslab 1.0.22's; running without the ${what} fix`);
      return;
    }
    source = source.replace(needle, fixed);
  }
  const mod = new Module(file, null);
  mod.filename = file;
  mod.paths = Module._nodeModulePaths(path.dirname(file));
  mod._compile(source, file);
  mod.loaded = true;
  require.cache[file] = mod;
}

/**
 * tslab logs uncaught exceptions and unhandled rejections and keeps the kernel running. Emscripten modules (the
 * tfjs WASM backend) add process listeners that re-throw them, and a throw inside such a listener ends the
 * process: one un-awaited failing promise in a cell killed the kernel and lost the session. Listeners for those
 * two events are wrapped so that re-throwing the error they were given is dropped (tslab has reported it).
 */
function keepAliveOnRethrow() {
  const events = new Set(["uncaughtException", "unhandledRejection"]);
  const wrapped = new WeakMap();
  const wrap = (listener) => {
    if (typeof listener !== "function") return listener;
    if (!wrapped.has(listener)) {
      wrapped.set(listener, function (err, ...rest) {
        try {
          return listener.call(this, err, ...rest);
        } catch (e) {
          if (e !== err) console.error("sdmprune kernel: an error handler failed:", e);
        }
      });
    }
    return wrapped.get(listener);
  };
  for (const method of ["on", "addListener", "prependListener", "once", "prependOnceListener"]) {
    const original = process[method];
    process[method] = function (event, listener) {
      return original.call(this, event, events.has(event) ? wrap(listener) : listener);
    };
  }
  for (const method of ["off", "removeListener"]) {
    const original = process[method];
    process[method] = function (event, listener) {
      return original.call(this, event, events.has(event) && wrapped.has(listener) ? wrapped.get(listener) : listener);
    };
  }
}
