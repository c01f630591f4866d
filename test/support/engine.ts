import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { initEngine } from "../../src/engine";

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

/**
 * Switch to the webgpu backend, or skip loudly where it cannot start. Without a GPU the adapter is Mesa's llvmpipe
 * through Dawn's OpenGL backend; CI installs Mesa, so there a missing adapter fails instead of skipping.
 */
export async function webgpuOrSkip(ctx: Mocha.Context): Promise<void> {
  try {
    await initEngine("webgpu");
  } catch (e) {
    if (process.env.CI) throw e;
    console.warn(`\n  !!! SKIPPING: webgpu backend unavailable (${(e as Error).message}) !!!\n`);
    ctx.skip();
  }
}
