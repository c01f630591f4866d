#!/usr/bin/env node
// `npm run kernel:install`: registers the sdmprune TypeScript kernel for the current user by writing a
// kernelspec into the user's Jupyter data dir. Unlike `tslab install` this needs no IPython: a kernelspec is
// just a folder with kernel.json. The spec points at this checkout's launcher with an absolute path and at the
// node binary running this script, so Jupyter finds both even when its PATH lacks node.
//
//   node kernel/install.cjs                 install for the current user
//   node kernel/install.cjs --dir DIR       install into DIR/kernels/<name> (then JUPYTER_PATH=DIR)
//   node kernel/install.cjs --name NAME     kernel name (default sdmprune)
//   node kernel/install.cjs --uninstall     remove it again
"use strict";
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { spawnSync } = require("node:child_process");

function usage(msg) {
  if (msg) console.error(`kernel:install: ${msg}`);
  console.error("usage: node kernel/install.cjs [--dir DIR] [--name NAME] [--uninstall]");
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { dir: null, name: "sdmprune", uninstall: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--dir" || a === "--name") {
      const v = argv[++i];
      if (!v) usage(`${a} needs a value`);
      opts[a.slice(2)] = v;
    } else if (a === "--uninstall") opts.uninstall = true;
    else if (a === "-h" || a === "--help") usage();
    else usage(`unknown argument ${a}`);
  }
  if (!/^[A-Za-z0-9._-]+$/.test(opts.name)) usage(`kernel name must match [A-Za-z0-9._-]+, got ${JSON.stringify(opts.name)}`);
  return opts;
}

/** Jupyter's per-user data dir: what `jupyter --data-dir` says if Jupyter is installed, else its documented default. */
function userDataDir() {
  if (process.env.JUPYTER_DATA_DIR) return path.resolve(process.env.JUPYTER_DATA_DIR);
  const r = spawnSync("jupyter", ["--data-dir"], { encoding: "utf8" });
  if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  const home = os.homedir();
  if (process.platform === "darwin") return path.join(home, "Library", "Jupyter");
  if (process.platform === "win32") return path.join(process.env.APPDATA || path.join(home, "AppData", "Roaming"), "jupyter");
  return path.join(process.env.XDG_DATA_HOME || path.join(home, ".local", "share"), "jupyter");
}

function kernelSpec(name) {
  return {
    argv: [process.execPath, path.join(__dirname, "launcher.cjs"), "kernel", "--config-path", "{connection_file}"],
    display_name: name === "sdmprune" ? "TypeScript (sdmprune)" : `TypeScript (sdmprune: ${name})`,
    language: "typescript",
    metadata: { debugger: false },
  };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const base = opts.dir ? path.resolve(opts.dir) : userDataDir();
  const target = path.join(base, "kernels", opts.name);
  if (opts.uninstall) {
    fs.rmSync(target, { recursive: true, force: true });
    console.log(`removed kernel ${opts.name} from ${target}`);
    return;
  }
  fs.mkdirSync(path.dirname(target), { recursive: true });
  // Write the whole spec folder next to the target, then swap it in, so Jupyter never sees half a spec.
  const tmp = fs.mkdtempSync(path.join(path.dirname(target), `.${opts.name}-`));
  try {
    fs.writeFileSync(path.join(tmp, "kernel.json"), JSON.stringify(kernelSpec(opts.name), null, 2) + "\n");
    fs.rmSync(target, { recursive: true, force: true });
    fs.renameSync(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  console.log(`installed kernel "${opts.name}" in ${target}`);
  console.log(`  runs: ${process.execPath} ${path.join(__dirname, "launcher.cjs")} kernel`);
  if (opts.dir) console.log(`  use it with: JUPYTER_PATH=${base} jupyter ...`);
  console.log("  check with: jupyter kernelspec list    (how to start Jupyter: npm run kernel:print)");
}

main();
