#!/usr/bin/env node
// `npm test`: builds the library (the CLI and REPL tests run the compiled binary), then runs mocha over
// test/**/*.test.{ts,tsx}. Arguments are passed to mocha; giving files runs only those
// (e.g. `npm test -- test/gguf.test.ts`). The spec list lives here, not in .mocharc.json, because a
// spec on mocha's command line adds to the .mocharc list instead of replacing it.
//
// The full suite (no files given) then runs WEBGPU_SPECS a second time with SDMPRUNE_BACKEND=webgpu: on a
// machine without a GPU that is Dawn on Mesa's llvmpipe (`.ci/run` installs it), slow, so only the files
// that check numerics run there, on their small shapes. `npm test -- --webgpu test/foo.test.ts` runs given
// files on webgpu alone. The last line is `N passed, N failed` summed over the passes (CI reads it).
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const root = path.resolve(__dirname, "..");
const bin = (name) => path.join(root, "node_modules", ".bin", name);

const WEBGPU_SPECS = ["test/engine.test.ts", "test/half.test.ts", "test/importance.test.ts", "test/perplexity.test.ts", "test/session.test.ts", "test/teacher.test.ts", "test/webgpu.test.ts"];

if (!require("./build").build()) {
  console.log("0 passed, 1 failed");
  process.exit(1);
}
let args = process.argv.slice(2);
const webgpuOnly = args.includes("--webgpu");
args = args.filter((a) => a !== "--webgpu");
const hasSpec = args.some((a) => !a.startsWith("-") && /\.(ts|tsx)$/.test(a));

function webgpuInstalled() {
  try {
    require.resolve("webgpu", { paths: [root] });
    return true;
  } catch {
    return false;
  }
}

const passes = [];
if (webgpuOnly) passes.push({ label: "webgpu", env: { SDMPRUNE_BACKEND: "webgpu" }, argv: hasSpec ? args : [...args, ...WEBGPU_SPECS] });
else passes.push({ label: "default backend", env: {}, argv: hasSpec ? args : [...args, "test/**/*.test.{ts,tsx}"] });
if (!webgpuOnly && !hasSpec) {
  // CI must run it (a missing package is a failure there); elsewhere the optional package may be absent
  if (process.env.CI || webgpuInstalled()) passes.push({ label: "webgpu", env: { SDMPRUNE_BACKEND: "webgpu" }, argv: [...args, ...WEBGPU_SPECS] });
  else console.log("\nrun-tests: package webgpu not installed, skipping the webgpu pass");
}

if (passes.length === 1) {
  // one pass: mocha's reporter prints the closing line itself
  const p = passes[0];
  const r = spawnSync(bin("mocha"), p.argv, { stdio: "inherit", cwd: root, env: { ...process.env, ...p.env } });
  process.exit(r.status === null ? 1 : r.status);
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdmprune-tests-"));
const total = { passes: 0, failures: 0, pending: 0 };
let status = 0;
passes.forEach((p, i) => {
  const statsFile = path.join(dir, `pass${i}.json`);
  console.log(`\nrun-tests: pass ${i + 1} of ${passes.length} (${p.label})`);
  const env = { ...process.env, ...p.env, SDMPRUNE_TEST_STATS: statsFile, SDMPRUNE_TEST_PASS: p.label };
  const r = spawnSync(bin("mocha"), p.argv, { stdio: "inherit", cwd: root, env });
  if (r.status !== 0) status = 1;
  let s;
  try {
    s = JSON.parse(fs.readFileSync(statsFile, "utf8"));
  } catch {
    s = { passes: 0, failures: 1, pending: 0 }; // mocha died before its reporter ran: count it as a failure
  }
  total.passes += s.passes;
  total.failures += s.failures;
  total.pending += s.pending;
});
fs.rmSync(dir, { recursive: true, force: true });
const skipped = total.pending ? `, ${total.pending} skipped` : "";
console.log(`\n${total.passes} passed, ${total.failures} failed${skipped}`);
process.exit(status);
