import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as path from "node:path";

/** The backend the default chain picks in a fresh process (no SDMPRUNE_BACKEND), and what that process printed. */
export function defaultChainBackend(): { backend: string; output: string } {
  const code = `require(${JSON.stringify(path.resolve(__dirname, "../../src/engine/index.ts"))}).initEngine().then((b) => console.log("BACKEND=" + b))`;
  const env = { ...process.env };
  delete env.SDMPRUNE_BACKEND;
  const r = spawnSync(process.execPath, ["--import", "tsx", "-e", code], { env, encoding: "utf8" });
  const m = /BACKEND=(\w+)/.exec(r.stdout);
  assert.ok(m, `no backend reported: ${r.stderr}`);
  return { backend: m[1], output: r.stdout + r.stderr };
}
