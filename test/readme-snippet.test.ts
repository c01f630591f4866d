import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { requireShared } from "./support/shared";

// The README's library example is examples/session.mjs; it must run in plain Node (ESM, through the
// package's "exports"), and the package must load from CommonJS and from ./dist/index.js as well.
const ROOT = path.resolve(__dirname, "..");

function node(file: string): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [file], { cwd: ROOT, encoding: "utf8", timeout: 170_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

describe("README snippet and package exports", function () {
  this.timeout(180000);
  let work: string;
  before(() => {
    if (!fs.existsSync(path.join(ROOT, "dist", "api.js"))) throw new Error("dist/ is not built: run `node scripts/build.js` first");
    // Inside the checkout, so that "sdmprune" resolves to this package by its own "exports" (self-reference).
    fs.mkdirSync(path.join(ROOT, ".tmp"), { recursive: true });
    work = fs.mkdtempSync(path.join(ROOT, ".tmp", "readme-"));
  });
  after(() => work && fs.rmSync(work, { recursive: true, force: true }));

  it("the README shows examples/session.mjs verbatim", () => {
    const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
    const file = fs.readFileSync(path.join(ROOT, "examples", "session.mjs"), "utf8");
    assert.ok(readme.includes("```js\n" + file + "```\n"), "README.md's library block differs from examples/session.mjs");
  });

  it("import from \"sdmprune\" and \"sdmprune/all\" (ESM), require (CJS) and ./dist/index.js give one Session", () => {
    fs.writeFileSync(
      path.join(work, "esm.mjs"),
      `import { Session, Table, UsageError, CRITERIA } from "sdmprune";\nimport * as all from "sdmprune/all";\nimport { Session as FromDist } from ${JSON.stringify(path.join(ROOT, "dist", "index.js"))};\n` +
        `console.log(JSON.stringify({ load: typeof Session.load, table: typeof Table, error: typeof UsageError, criteria: CRITERIA.length, same: FromDist === Session && all.Session === Session, model: typeof all.CausalLM }));\n`,
    );
    const e = node(path.join(work, "esm.mjs"));
    assert.equal(e.code, 0, e.err);
    assert.deepEqual(JSON.parse(e.out), { load: "function", table: "function", error: "function", criteria: 7, same: true, model: "function" });
    fs.writeFileSync(path.join(work, "cjs.cjs"), `const { Session } = require("sdmprune");\nconst all = require("sdmprune/all");\nconsole.log(typeof Session.load, all.Session === Session);\n`);
    const c = node(path.join(work, "cjs.cjs"));
    assert.equal(c.code, 0, c.err);
    assert.equal(c.out.trim(), "function true");
  });

  it("examples/session.mjs runs on stories260K (fewer windows and stories)", function () {
    const shared = requireShared(this);
    const out = path.join(work, "pruned");
    const src = fs
      .readFileSync(path.join(ROOT, "examples", "session.mjs"), "utf8")
      .replaceAll("../shared/", shared.replace(/\/?$/, "/"))
      .replace('"out/stories260K-pruned"', JSON.stringify(out))
      .replace("samples: 32", "samples: 4")
      .replace('"500-999"', '"500-520"');
    assert.notEqual(src, fs.readFileSync(path.join(ROOT, "examples", "session.mjs"), "utf8"));
    fs.writeFileSync(path.join(work, "session.mjs"), src);
    const r = node(path.join(work, "session.mjs"));
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /Importance scores/);
    assert.match(r.out, /Evaluation/);
    assert.match(r.out, /protocol documents: stories 500-520 of 1000/);
    const rec = JSON.parse(fs.readFileSync(path.join(out, "pruning.json"), "utf8"));
    assert.equal(rec.calibration.stories, "1-200");
    assert.deepEqual(rec.current.intermediate_sizes, rec.original.intermediate_sizes.map((w: number) => Math.floor(w * 0.8 + 1e-9)));
    assert.ok(fs.existsSync(path.join(out, "provenance.json")));
  });
});
