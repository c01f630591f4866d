// ESM-only packages in a tslab cell: tslab compiles cells to CommonJS and runs them in a vm context, where both
// `require(esm-with-top-level-await)` and a dynamic `import()` written in the cell fail. A real CommonJS file
// loaded by Node keeps a working `import()`. Usage in a cell:
//   const ink = await require("./kernel/esm-import.cjs")("ink");
// Specifiers resolve relative to this file, i.e. against the project's node_modules.
"use strict";
module.exports = function esmImport(specifier) {
  return import(specifier);
};
