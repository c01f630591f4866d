#!/usr/bin/env node
"use strict";
// Runs the compiled CLI (dist/ is built by `npm install` through the `prepare` script).
require("../dist/cli/main.js").main(process.argv.slice(2)).then(
  (code) => process.exit(code ?? 0),
  (err) => {
    console.error(err && err.message ? `error: ${err.message}` : err);
    process.exit(1);
  },
);
