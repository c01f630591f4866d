/**
 * Which benchmark-only build of the native backend a bench child loads (docs/engines.md, "Offline native backend
 * for benchmarks"). Each build is a node_modules folder with tfjs-node 4.22 in it, handed to the child as
 * NODE_PATH; src/engine then `require`s it like an installed one.
 *
 *   tensorflow       bench/.tfjs-node       libtensorflow 1.15 (bash bench/setup-tensorflow.sh)
 *   tensorflow@tf2   bench/.tfjs-node-tf2   libtensorflow from a tensorflow-cpu 2.x wheel (bash bench/setup-tensorflow-wheel.sh WHEEL)
 *
 * SDMPRUNE_BENCH_TFJS_NODE=tf2 makes plain `tensorflow` mean `tensorflow@tf2`. A backend spec `NAME@BUILD` is
 * what bench/run.ts and bench/ab.ts accept in --backend, so two builds can be measured interleaved in one run.
 */
import { existsSync } from "node:fs";
import * as path from "node:path";

export interface BackendSpec {
  /** What the report calls it: `tensorflow`, `tensorflow@tf2`, `wasm`. */
  label: string;
  /** The backend the worker initialises. */
  backend: "cpu" | "wasm" | "tensorflow" | "webgpu";
  /** tensorflow only: the build's node_modules, and the script that makes it. */
  nodePath?: string;
  setup?: string;
}

/** Every backend a bench spec may name. */
export const BENCH_BACKENDS: readonly BackendSpec["backend"][] = ["tensorflow", "webgpu", "wasm", "cpu"];

const BUILD = /^[a-z0-9][a-z0-9._-]*$/i;

export function tfjsNodeDir(build: string): string {
  return path.join(__dirname, build ? `.tfjs-node-${build}` : ".tfjs-node", "node_modules");
}

export function parseBackendSpec(spec: string, known: readonly string[]): BackendSpec {
  const at = spec.indexOf("@");
  const backend = (at >= 0 ? spec.slice(0, at) : spec).trim();
  if (!known.includes(backend)) throw new Error(`unknown backend "${spec}", expected ${known.join(", ")} (tensorflow@BUILD for bench/.tfjs-node-BUILD)`);
  if (backend !== "tensorflow") {
    if (at >= 0) throw new Error(`backend "${spec}": only tensorflow has builds (tensorflow@BUILD)`);
    return { label: backend, backend: backend as BackendSpec["backend"] };
  }
  const build = at >= 0 ? spec.slice(at + 1).trim() : (process.env.SDMPRUNE_BENCH_TFJS_NODE ?? "").trim();
  if (build && !BUILD.test(build)) throw new Error(`backend "${spec}": build name "${build}" must be letters, digits, ".", "_" or "-"`);
  return {
    label: at >= 0 ? spec.trim() : build ? `tensorflow@${build}` : "tensorflow",
    backend: "tensorflow",
    nodePath: tfjsNodeDir(build),
    setup: !build ? "bash bench/setup-tensorflow.sh" : build === "tf2" ? "bash bench/setup-tensorflow-wheel.sh WHEEL" : `a tfjs-node build in bench/.tfjs-node-${build}`,
  };
}

/** The child's environment for a spec: NODE_PATH to the build, where it exists. */
export function envFor(spec: BackendSpec, base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  if (spec.nodePath && existsSync(spec.nodePath)) env.NODE_PATH = spec.nodePath + (env.NODE_PATH ? path.delimiter + env.NODE_PATH : "");
  return env;
}

export function buildReady(spec: BackendSpec): boolean {
  return !spec.nodePath || existsSync(path.join(spec.nodePath, "@tensorflow", "tfjs-node"));
}
