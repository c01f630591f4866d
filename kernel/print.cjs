#!/usr/bin/env node
// `npm run kernel:print`: how to start Jupyter, JupyterLab or VS Code with the sdmprune kernel from this
// checkout, and whether the pieces it needs are present.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { spawnSync } = require("node:child_process");

const root = path.resolve(__dirname, "..");
const committed = path.join(__dirname, "jupyter");
const have = (cmd, args) => {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
};
const jupyterData = have("jupyter", ["--data-dir"]);
const userSpec = jupyterData ? path.join(jupyterData, "kernels", "sdmprune", "kernel.json") : null;
let tslab = null;
try {
  tslab = require(require.resolve("tslab/package.json", { paths: [root] })).version;
} catch {
  /* reported below */
}

const lines = [
  `sdmprune TypeScript kernel (tslab ${tslab ?? "NOT INSTALLED: run npm install"}), project root ${root}`,
  "",
  "Cells run with the project root as working directory, whatever folder the notebook is in:",
  '  import { Session, display, progress, sensitivityFigure } from "./src";  // typed, compiled in memory by tslab',
  "  display(x)                  // tables and Plotly figures as rich output; text outside notebooks",
  "  process.env.NOTEBOOK_DIR    // the notebook's own folder",
  "",
  "Jupyter itself (Python side):",
  "  Debian/Ubuntu, headless (execute/convert): apt-get install jupyter-nbconvert jupyter-client",
  "  Debian, classic UI:                        apt-get install jupyter-notebook",
  "  pip (any OS), JupyterLab:                  pip install jupyterlab   (+ `pip install plotly` for native Plotly rendering)",
  `  jupyter on PATH: ${jupyterData ? "yes" : "NO"}`,
  "",
  "1. Without registering anything (uses the committed kernelspec kernel/jupyter/kernels/sdmprune):",
  `     export JUPYTER_PATH=${committed}`,
  "     jupyter lab notebooks/            # or: jupyter notebook notebooks/",
  "     npm run notebooks                 # execute all notebooks into artifacts/notebooks/ and check them",
  "",
  "2. Registered for your user (absolute paths to this checkout and to this node):",
  "     npm run kernel:install",
  '     jupyter lab                       # choose the kernel "TypeScript (sdmprune)"',
  `   registered now: ${userSpec && fs.existsSync(userSpec) ? userSpec : "no"}`,
  "",
  "3. VS Code: install the Jupyter extension, run `npm run kernel:install`, open a notebook, then",
  '   "Select Kernel" -> "Jupyter Kernel..." -> "TypeScript (sdmprune)". VS Code starts the kernel itself and',
  "   renders application/vnd.plotly.v1+json natively.",
  "",
  "Execute a notebook headlessly:",
  `   JUPYTER_PATH=${committed} jupyter nbconvert --to notebook --execute notebooks/01-quickstart.ipynb --output-dir artifacts/notebooks`,
];
console.log(lines.join("\n"));
