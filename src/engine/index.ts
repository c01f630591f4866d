import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { UsageError } from "../errors";
import { registerWasmFixes } from "./wasm-fixes";
import { adapterSummary, loadWebGPU, webgpuAdapter, type GpuAdapterInfo } from "./webgpu";
export { gpuMemory, resetGpuPeak, type GpuMemory } from "./webgpu";

export type BackendName = "tensorflow" | "webgpu" | "wasm" | "cpu";
export { adapterSummary, type GpuAdapterInfo };

const NAMES: BackendName[] = ["tensorflow", "webgpu", "wasm", "cpu"];
let current: BackendName | null = null;
let nodeLoaded: boolean | null = null;
let nodeError = "";
let wasmLoaded = false;

/**
 * The native bindings are optionalDependencies whose install fails without internet, so they are
 * required lazily inside try/catch. Only one of them may ever be loaded per process: both register the
 * same backend name.
 */
function loadNative(): boolean {
  if (nodeLoaded !== null) return nodeLoaded;
  const errors: string[] = [];
  for (const pkg of ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"]) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      require(pkg);
      nodeLoaded = true;
      return true;
    } catch (e) {
      errors.push(`${pkg}: ${(e as Error).message.split("\n")[0]}`);
    }
  }
  nodeError = errors.join("; ");
  nodeLoaded = false;
  return false;
}

function loadWasm(): void {
  if (wasmLoaded) return;
  // The wasm binaries ship inside the package's dist folder; in Node they are read from the filesystem.
  const wasm = require("@tensorflow/tfjs-backend-wasm") as typeof import("@tensorflow/tfjs-backend-wasm");
  const dist = path.dirname(require.resolve("@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm"));
  wasm.setWasmPaths(dist + path.sep);
  registerWasmFixes();
  wasmLoaded = true;
}

/** `forced`: the caller named this backend, so a software GPU adapter (CI's llvmpipe) is acceptable. */
async function tryBackend(name: BackendName, forced: boolean): Promise<string | null> {
  try {
    if (name === "tensorflow") {
      if (!loadNative()) return `native TensorFlow binding not installed (${nodeError})`;
    } else if (name === "webgpu") {
      const err = await loadWebGPU(forced);
      if (err) return err;
    } else if (name === "wasm") {
      loadWasm();
    } else {
      registerWasmFixes(); // same gradient formulas on every backend, so cpu and wasm results stay comparable
    }
    const ok = await tf.setBackend(name);
    if (!ok) return `tf.setBackend("${name}") failed`;
    await tf.ready();
    if (name === "cpu") {
      // tfjs-cpu prints a banner advising tfjs-node on first write; the chain above already tried it and
      // the CLI/REPL report the backend themselves.
      const be = tf.backend() as unknown as { firstUse?: boolean };
      if (be.firstUse === true) be.firstUse = false;
    }
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

function parseName(v: string, where: string): BackendName {
  if (!(NAMES as string[]).includes(v)) {
    throw new UsageError(`${where}: unknown backend "${v}", expected one of ${NAMES.join(", ")}`);
  }
  return v as BackendName;
}

/**
 * Choose the tensor backend. An explicit `prefer` wins, then env SDMPRUNE_BACKEND; either must load or
 * this throws. Without either, the chain is tfjs-node-gpu → tfjs-node → webgpu (a hardware adapter only) →
 * wasm → cpu. Calling again with
 * the active backend (or no argument once initialised) is a no-op; switching is allowed, but tensors
 * must be created after the switch.
 */
export async function initEngine(prefer?: BackendName): Promise<BackendName> {
  const env = process.env.SDMPRUNE_BACKEND?.trim();
  const forced = prefer ? parseName(prefer, "initEngine") : env ? parseName(env, "SDMPRUNE_BACKEND") : null;
  if (current && (forced === null || forced === current) && tf.getBackend() === current) return current;
  if (forced) {
    const err = await tryBackend(forced, true);
    if (err) throw new UsageError(`backend "${forced}" could not be loaded: ${err}`);
    current = forced;
    return forced;
  }
  const failures: string[] = [];
  for (const name of NAMES) {
    const err = await tryBackend(name, false);
    if (!err) {
      current = name;
      return name;
    }
    failures.push(`${name}: ${err}`);
  }
  throw new UsageError(`no tensor backend could be loaded (${failures.join("; ")})`);
}

/** The active backend; throws if initEngine has not run. */
export function backendName(): BackendName {
  const b = tf.getBackend();
  if (!current || b !== current) {
    if ((NAMES as string[]).includes(b)) return b as BackendName;
    throw new UsageError("tensor engine not initialised: call initEngine() first");
  }
  return current;
}

/** What the active backend runs on, for `info`, the REPL status line and Session.info(). */
export interface BackendInfo {
  name: BackendName;
  /** The GPU adapter behind `webgpu`, else null. */
  adapter: GpuAdapterInfo | null;
  /** One line: the backend, its adapter, and a hint when a faster backend could be installed. */
  summary: string;
}

export function backendInfo(): BackendInfo {
  const name = backendName();
  const adapter = name === "webgpu" ? webgpuAdapter() : null;
  let summary: string = name;
  if (adapter) summary += ` (${adapterSummary(adapter)})`;
  else if (name === "tensorflow") summary += " (native libtensorflow)";
  else if (name === "wasm" || name === "cpu") summary += ` (${FASTER})`;
  return { name, adapter, summary };
}

// package.json allows tfjs-node's install script, so a plain `npm install` with internet fetches libtensorflow
const FASTER = "faster: run npm install with internet access for the native tensorflow backend; GPUs: environment.md";

/**
 * Whether the active backend is bound by per-kernel dispatch rather than arithmetic on small models: the
 * native TensorFlow backend runs each eager op through libtensorflow (~50–100 µs each), so batching
 * several windows per pass pays there (bench/NOTES.md), as it does on a GPU (webgpu: one dispatch and one
 * submit per op, whatever the rows); on wasm and cpu the products dominate and
 * batching only delays cancellation.
 */
export function batchingPays(): boolean {
  const b = tf.getBackend();
  return b === "tensorflow" || b === "webgpu";
}

/** Most windows one pass takes where batching pays. */
export const MAX_WINDOWS_PER_PASS = 8;

/** Default windows per pass: `fits` (what memory allows, ≥ 1) up to MAX_WINDOWS_PER_PASS where batching pays, else 1. */
export function windowsPerPass(fits: number): number {
  return batchingPays() ? Math.max(1, Math.min(MAX_WINDOWS_PER_PASS, Math.floor(fits))) : 1;
}
