import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { recordGpuError, registerWebGPUFixes } from "./webgpu-fixes";

/**
 * The `webgpu` backend: `@tensorflow/tfjs-backend-webgpu` on Dawn, which the optional npm package `webgpu`
 * ships as a native addon (Vulkan on NVIDIA/AMD/Intel, Metal, D3D12; nothing downloaded at install).
 *
 * The adapter is requested here, not by tfjs's own backend factory: tfjs asks for a core-feature-level
 * adapter only, and a machine without a GPU (CI) has just Dawn's OpenGL backend on Mesa's llvmpipe, which
 * Dawn exposes only at feature level "compatibility". A software adapter is a correctness check, never a
 * speed-up, so the default chain refuses it and only a forced `webgpu` (SDMPRUNE_BACKEND / --backend) takes it.
 */

export interface GpuAdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** Dawn's native API behind the adapter: "default" is Dawn's own choice (Vulkan, Metal or D3D12). */
  dawnBackend: "default" | "opengl";
  featureLevel: "core" | "compatibility";
  /** A CPU rasterizer (llvmpipe, lavapipe, SwiftShader) or an adapter Dawn marks as fallback. */
  software: boolean;
  /** Optional WebGPU features the adapter has (e.g. shader-f16, timestamp-query). */
  features: string[];
  limits: {
    maxBufferSize: number;
    maxStorageBufferBindingSize: number;
    maxComputeWorkgroupStorageSize: number;
    maxComputeInvocationsPerWorkgroup: number;
  };
}

// The slice of the WebGPU API this file touches (the package's own .d.ts is ESM-only and needs @webgpu/types).
interface AdapterLike {
  features: Iterable<string> & { has(f: string): boolean };
  limits: Record<string, number>;
  info: { vendor: string; architecture: string; device: string; description: string; isFallbackAdapter?: boolean };
  requestDevice(desc: unknown): Promise<DeviceLike>;
}
interface DeviceLike {
  lost: Promise<{ message: string; reason?: string }>;
  destroy(): void;
  addEventListener(type: "uncapturederror", listener: (e: { error: { message: string } }) => void): void;
}
interface GpuLike {
  requestAdapter(opts?: Record<string, unknown>): Promise<AdapterLike | null>;
}
interface DawnModule {
  create(flags: string[]): GpuLike;
  globals: Record<string, unknown>;
}

const SOFTWARE = /llvmpipe|lavapipe|softpipe|swiftshader|software rasterizer/i;

let dawn: DawnModule | null = null;
let active: { info: GpuAdapterInfo; device: DeviceLike } | null = null;
/** Instances stay referenced for the life of the process: Dawn tears its devices down when an instance is collected. */
const instances: GpuLike[] = [];

function loadDawn(): DawnModule {
  if (dawn) return dawn;
  // `webgpu` is an ES module without top-level await; Node ≥ 20.19 requires it synchronously.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const m = require("webgpu") as DawnModule;
  // tfjs-backend-webgpu reads GPUBufferUsage, GPUMapMode, … from the global scope, as in a browser.
  for (const [k, v] of Object.entries(m.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  }
  dawn = m;
  return m;
}

function newInstance(m: DawnModule, flags: string[]): GpuLike {
  const gpu = m.create(flags);
  instances.push(gpu);
  return gpu;
}

function describe(a: AdapterLike, dawnBackend: GpuAdapterInfo["dawnBackend"], featureLevel: GpuAdapterInfo["featureLevel"]): GpuAdapterInfo {
  const i = a.info;
  const text = [i.vendor, i.architecture, i.device, i.description].join(" ");
  return {
    vendor: i.vendor,
    architecture: i.architecture,
    device: i.device,
    description: i.description,
    dawnBackend,
    featureLevel,
    software: i.isFallbackAdapter === true || SOFTWARE.test(text),
    features: [...a.features].sort(),
    limits: {
      maxBufferSize: a.limits.maxBufferSize,
      maxStorageBufferBindingSize: a.limits.maxStorageBufferBindingSize,
      maxComputeWorkgroupStorageSize: a.limits.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: a.limits.maxComputeInvocationsPerWorkgroup,
    },
  };
}

/** One line naming the adapter, e.g. "llvmpipe-llvm-15-0-6-256-bits- [OpenGL version 4.5 (Core Profile) Mesa 22.3.6] via Dawn opengl (compatibility), max buffer 2 GiB (software)". */
export function adapterSummary(a: GpuAdapterInfo): string {
  const dev = a.device || a.architecture || a.vendor || "unknown adapter";
  const name = a.description && a.description !== dev ? `${dev} [${a.description}]` : dev;
  const vendor = a.vendor && !name.toLowerCase().includes(a.vendor.toLowerCase()) ? `${a.vendor} ` : "";
  const gib = (a.limits.maxBufferSize / 2 ** 30).toFixed(a.limits.maxBufferSize >= 2 ** 30 ? 0 : 2);
  return `${vendor}${name} via Dawn ${a.dawnBackend}${a.featureLevel === "compatibility" ? " (compatibility)" : ""}, max buffer ${gib} GiB${a.features.includes("shader-f16") ? ", shader-f16" : ""}${a.software ? " (software)" : ""}`;
}

/**
 * Linux: whether a Vulkan loader (libvulkan.so.1) is on the library path. Without one Dawn prints a warning to
 * stderr on every start and finds nothing, so the default chain skips it quietly on CPU-only machines.
 */
function vulkanLoaderPresent(): boolean {
  if (process.platform !== "linux") return true;
  const dirs = [
    ...(process.env.LD_LIBRARY_PATH ?? "").split(":").filter(Boolean),
    `/usr/lib/${process.arch === "arm64" ? "aarch64" : "x86_64"}-linux-gnu`,
    `/lib/${process.arch === "arm64" ? "aarch64" : "x86_64"}-linux-gnu`,
    "/usr/lib64",
    "/usr/lib",
    "/lib64",
    "/usr/local/lib",
  ];
  return dirs.some((d) => fs.existsSync(path.join(d, "libvulkan.so.1")));
}

type Found = { adapter: AdapterLike; info: GpuAdapterInfo; gpu: GpuLike };

async function requestAdapter(allowSoftware: boolean): Promise<Found | string> {
  const vulkan = vulkanLoaderPresent();
  // the default chain on a CPU-only Linux machine: nothing to find, so Dawn is not even loaded
  if (!vulkan && !allowSoftware) return "no hardware GPU adapter (no Vulkan loader libvulkan.so.1; Debian: apt-get install libvulkan1)";
  const m = loadDawn();
  const tried: string[] = [];
  // Dawn's own choice first (Vulkan/Metal/D3D12): a hardware adapter is what the default chain wants.
  const gpu = vulkan ? newInstance(m, []) : null;
  const a = gpu ? await gpu.requestAdapter({ powerPreference: "high-performance" }) : undefined;
  if (a === undefined) {
    tried.push("no Vulkan loader (Debian: apt-get install libvulkan1)");
  } else if (a) {
    const info = describe(a, "default", "core");
    if (!info.software) return { adapter: a, info, gpu: gpu! };
    if (!allowSoftware) return `only a software adapter was found (${adapterSummary(info)}); set SDMPRUNE_BACKEND=webgpu to use it anyway`;
    tried.push(`default: software adapter ${info.description || info.device}`);
  } else {
    tried.push("Dawn's default backend (Vulkan/Metal/D3D12): no adapter");
  }
  if (!allowSoftware) return `no hardware GPU adapter (${tried.join("; ")})`;
  // No GPU: Dawn's OpenGL backend on Mesa (llvmpipe). EGL needs no display with the surfaceless platform;
  // it is read when Dawn opens EGL, so it must be in the environment before the instance is created.
  process.env.EGL_PLATFORM ??= "surfaceless";
  const gl = newInstance(m, ["backend=opengl"]);
  const b = await gl.requestAdapter({ featureLevel: "compatibility", powerPreference: "high-performance" });
  if (b) return { adapter: b, info: describe(b, "opengl", "compatibility"), gpu: gl };
  tried.push("opengl (compatibility): no adapter (Debian: apt-get install libegl-mesa0 libgles2 libgl1-mesa-dri)");
  return `no WebGPU adapter (${tried.join("; ")})`;
}

/**
 * Registers tfjs backend `webgpu` on the best adapter (null) or says why it cannot (a message). Safe to call
 * again: a registered hardware adapter is reused; a registered software adapter is accepted only when
 * `allowSoftware`.
 */
export async function loadWebGPU(allowSoftware: boolean): Promise<string | null> {
  if (active && tf.findBackendFactory("webgpu")) {
    if (active.info.software && !allowSoftware) return `only a software adapter (${adapterSummary(active.info)}); set SDMPRUNE_BACKEND=webgpu to use it anyway`;
    return null;
  }
  try {
    require.resolve("webgpu");
  } catch {
    return "package webgpu (Dawn) is not installed (optional dependency)";
  }
  let got: Awaited<ReturnType<typeof requestAdapter>>;
  try {
    got = await requestAdapter(allowSoftware);
  } catch (e) {
    return `Dawn failed to start: ${(e as Error).message.split("\n")[0]}`;
  }
  if (typeof got === "string") return got;
  const { adapter, info, gpu } = got;
  const limits = adapter.limits;
  // the same device request as tfjs-backend-webgpu's own factory (it sizes its programs from these limits)
  const device = await adapter.requestDevice({
    requiredFeatures: adapter.features.has("timestamp-query") ? ["timestamp-query"] : [],
    requiredLimits: {
      maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
      maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
      maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
      maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
      // beyond tfjs's own request: kernels with many inputs (AddN, Concat) bind one buffer per input
      maxStorageBuffersPerShaderStage: limits.maxStorageBuffersPerShaderStage,
    },
  });
  device.addEventListener("uncapturederror", (e) => recordGpuError(e.error.message));
  void device.lost.then((l) => l.reason !== "destroyed" && recordGpuError(`device lost: ${l.message}`));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { WebGPUBackend } = require("@tensorflow/tfjs-backend-webgpu") as { WebGPUBackend: new (device: unknown, info?: unknown) => tf.KernelBackend };
  exposeNavigatorGpu(gpu);
  if (tf.findBackendFactory("webgpu")) tf.removeBackend("webgpu");
  // Priority 0: tfjs must never pick it on its own; initEngine chooses.
  tf.registerBackend("webgpu", () => trackPeak(new WebGPUBackend(device, adapter.info)), 0);
  // Small tensors would otherwise be computed on tfjs's CPU backend and shuttled back and forth; on a GPU that
  // costs a read-back per op, and on the CI's software adapter it would leave the GPU kernels untested.
  tf.env().set("WEBGPU_CPU_FORWARD", false);
  registerWebGPUFixes(WebGPUBackend);
  active = { info, device };
  return null;
}

// The slice of tfjs-backend-webgpu's BufferManager read here: bytes of the buffers tensors use now, and of all
// buffers it holds (used ones and its pool of freed ones, which it keeps for reuse and never gives back).
interface BufferManagerLike {
  numBytesUsed: number;
  numBytesAllocated: number;
  acquireBuffer(...args: unknown[]): unknown;
}

let peakBytesUsed = 0;

/** Record the most bytes the backend's buffers held in use at once (tfjs reports only the current figure). */
function trackPeak(backend: tf.KernelBackend): tf.KernelBackend {
  const bm = (backend as unknown as { bufferManager?: BufferManagerLike }).bufferManager;
  if (!bm) return backend;
  const acquire = bm.acquireBuffer.bind(bm);
  bm.acquireBuffer = (...args: unknown[]) => {
    const b = acquire(...args);
    if (bm.numBytesUsed > peakBytesUsed) peakBytesUsed = bm.numBytesUsed;
    return b;
  };
  return backend;
}

/** GPU memory of the webgpu backend in bytes, or null when it is not the active backend. */
export interface GpuMemory {
  /** Buffers in use by tensors now. */
  inUse: number;
  /** The most bytes in use at once since the backend started (or since resetGpuPeak). */
  peak: number;
  /** Everything the backend holds on the GPU: buffers in use and its pool of freed ones kept for reuse. */
  held: number;
}

export function gpuMemory(): GpuMemory | null {
  if (tf.getBackend() !== "webgpu") return null;
  const bm = (tf.backend() as unknown as { bufferManager?: BufferManagerLike }).bufferManager;
  if (!bm) return null;
  return { inUse: bm.numBytesUsed, peak: Math.max(peakBytesUsed, bm.numBytesUsed), held: bm.numBytesAllocated };
}

/** Start a new peak from what is in use now (e.g. before one job, to report that job's peak). */
export function resetGpuPeak(): void {
  const m = gpuMemory();
  peakBytesUsed = m ? m.inUse : 0;
}

/** WebGPUBackend's constructor checks for `navigator.gpu`, as in a browser (Node 20 has no navigator; 21+ has one without gpu). */
function exposeNavigatorGpu(gpu: GpuLike): void {
  const g = globalThis as { navigator?: { gpu?: unknown } };
  if (g.navigator === undefined) Object.defineProperty(globalThis, "navigator", { value: { gpu }, configurable: true, writable: true });
  else Object.defineProperty(g.navigator, "gpu", { value: gpu, configurable: true, writable: true });
}

/** The adapter behind the `webgpu` backend, or null when it was never loaded. */
export function webgpuAdapter(): GpuAdapterInfo | null {
  return active ? active.info : null;
}
