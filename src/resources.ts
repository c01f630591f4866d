import * as fs from "node:fs";
import * as os from "node:os";
import * as tf from "@tensorflow/tfjs";
import { ResourceError, UsageError } from "./errors";
import { type LlamaConfig, intermediateSizes, paramCounts } from "./model/config";
import { headChunkRows, layerActivationFloats } from "./model/causal-lm";
import type { HostFloat, WeightsIn } from "./model/weight-store";

/**
 * Resource checks made before a long job starts, so that a request the model or the machine cannot serve fails
 * in a second with the figure, instead of after minutes (wasm "Aborted()", the OOM killer, a silently
 * meaningless perplexity past the trained context).
 */

export interface ResourceOptions {
  /**
   * Where the model's weights live (src/model/weight-store.ts): "heap" on the tensor backend, "host" or "disk"
   * streamed one layer at a time. Default: "heap" where the model fits, else (wasm) "host".
   */
  weightsIn?: WeightsIn;
  /**
   * Storage of the weights: "float32" (default) or "float16": streamed weights held in host memory as halves
   * (upcast per layer), or with weightsIn "heap" on webgpu, packed halves on the GPU (unpacked per layer).
   */
  hostFloat?: HostFloat;
  /** Run windows longer than the model's context (max_position_embeddings), e.g. for RoPE extrapolation studies. */
  allowLonger?: boolean;
  /** Run even when the memory estimate exceeds the memory available. */
  skipMemoryCheck?: boolean;
  /**
   * Why this work needs every weight on the tensor backend (e.g. recovery, which trains them): the weights then
   * default to "heap", other weightsIn are refused with this reason, and a model beyond the wasm heap is refused
   * without suggesting to stream it.
   */
  residentFor?: string;
}

/** Refuse a window longer than the context the model was trained for, unless explicitly allowed. */
export function checkContext(seqLen: number, context: number, what: string, opts: ResourceOptions = {}): void {
  if (opts.allowLonger || !(seqLen > context)) return;
  throw new ResourceError(
    `${what}: sequence length ${seqLen} exceeds the model's context of ${context} tokens (max_position_embeddings / llama.context_length); ` +
      `use a shorter length, or --allow-longer (allowLonger: true) to run past the context anyway`,
  );
}

/**
 * Host memory for calibration: the windows (JS arrays of numbers, 8 bytes per token), the teacher cache (per
 * position k logits as f32, plus k int32 ids unless "full", plus one f32 log-sum-exp) and its copy of the windows.
 */
export function calibrationBytes(windows: number, seqLen: number, teacherK: number | null, full: boolean): number {
  const perPosition = 8 + (teacherK === null ? 0 : teacherK * (full ? 4 : 8) + 4 + 4);
  return windows * seqLen * perPosition;
}

/** Memory this process can still use: MemAvailable (Linux), else free memory, capped by a cgroup limit. */
export function availableBytes(): number {
  let avail = os.freemem();
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(fs.readFileSync("/proc/meminfo", "utf8"));
    if (m) avail = Number(m[1]) * 1024;
  } catch {
    // not Linux: os.freemem() is the best figure there is
  }
  const limit = (process as { constrainedMemory?: () => number | undefined }).constrainedMemory?.();
  if (limit && limit > 0 && Number.isFinite(limit)) avail = Math.min(avail, Math.max(0, limit - process.memoryUsage().rss));
  return avail;
}

export function formatBytes(b: number): string {
  return b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(1)} GiB` : `${(b / 2 ** 20).toFixed(1)} MiB`;
}

/** Refuse a job whose estimated memory exceeds what is available, with both figures, unless explicitly allowed. */
export function checkMemory(
  bytes: number,
  what: string,
  opts: ResourceOptions = {},
  available = availableBytes(),
  remedy = "use fewer windows (--samples), a shorter --seq-len or a smaller --topk",
): void {
  if (opts.skipMemoryCheck || bytes <= available) return;
  throw new ResourceError(
    `${what} would need about ${formatBytes(bytes)} of memory but about ${formatBytes(available)} is available; ` +
      `${remedy}, or --skip-memory-check (skipMemoryCheck: true) to try anyway`,
  );
}

/**
 * The checks before calibration: window length against the context, and the memory of `samples` windows with a
 * teacher cache of `topk` entries per position (null: no teacher) plus `extraWindows` windows without one.
 */
export function checkCalibration(
  config: { max_position_embeddings: number; vocab_size: number } | LlamaConfig,
  samples: number,
  seqLen: number,
  topk: number | "full" | null,
  opts: ResourceOptions,
  what = "calibration",
  extraWindows = 0,
  weightsIn: WeightsIn = "heap",
): void {
  checkContext(seqLen, config.max_position_embeddings, what, opts);
  const V = config.vocab_size;
  const k = topk === null ? null : topk === "full" ? V : Math.min(topk, V);
  const bytes = calibrationBytes(samples, seqLen, k, topk === "full") + calibrationBytes(extraWindows, seqLen, null, false);
  checkMemory(bytes, `${what} (${samples + extraWindows} windows × ${seqLen} tokens${k === null ? "" : `, teacher top-k ${k}`})`, opts);
  // On wasm the passes run one window at a time (windowsPerPass); the teacher's forward is the smaller pass.
  if ("hidden_size" in config) checkPassMemory(config as LlamaConfig, "importance", 1, seqLen, what, opts, undefined, undefined, weightsIn);
}

// ---------------------------------------------------------------------------------------------------------------
// Weights and per-pass working memory on the tensor backend (issue 20)

/**
 * The wasm backend keeps every tensor in one WebAssembly heap, which wasm32 caps at 4 GiB (tfjs-backend-wasm
 * 4.22 declares exactly that maximum). Past it an allocation fails inside a kernel as "memory access out of
 * bounds", so work that cannot fit is refused before it starts.
 */
export const WASM_HEAP_BYTES = 4 * 2 ** 30;

/**
 * Part of the heap not planned for: the runtime's own allocations, allocator fragmentation (freed blocks of one
 * size reused for another) and the heap's growth steps. The estimates below came within 330 MiB of the heap the
 * backend actually grew to on the cases of bench/heap-estimate.ts (docs/memory.md).
 */
export const WASM_HEAP_RESERVE = 512 * 2 ** 20;

/** Float32 bytes of a model's weights (what the loaded model holds on any backend). */
export function weightBytes(config: LlamaConfig): number {
  return 4 * paramCounts(config).total;
}

/** The largest single tensor of the model (f32 bytes): the one in flight while loading (read, then transposed). */
export function largestTensorBytes(config: LlamaConfig): number {
  const H = config.hidden_size;
  const I = Math.max(...intermediateSizes(config));
  return 4 * Math.max(config.vocab_size * H, I * H, config.num_attention_heads * config.head_dim * H);
}

/** Logit rows × vocabulary of one head chunk in the model's forward (about 4 M floats whatever the vocabulary). */
const HEAD_CHUNK_FLOATS = 1 << 22;

/**
 * Heap bytes of one forward pass over `windows` windows of `seqLen` tokens (perplexity, the teacher cache,
 * evaluation): the hidden states, every temporary of the layer in flight (each layer runs in its own tidy, so
 * temporaries die with their layer: norms, q/k/v before and after RoPE, K/V repeated for grouped heads, the
 * attention scores and their softmax, the MLP's gate/up/activation/product), and one head chunk of logits with
 * its log-sum-exp temporaries.
 */
export function forwardPassBytes(config: LlamaConfig, windows: number, seqLen: number): number {
  const N = windows * seqLen;
  const H = config.hidden_size;
  const I = Math.max(...intermediateSizes(config));
  const qkv = (config.num_attention_heads + 2 * config.num_key_value_heads) * config.head_dim;
  const heads = config.num_attention_heads * config.head_dim;
  const layer = N * (10 * H + 2 * qkv + 2 * heads + 5 * I) + 3 * windows * config.num_attention_heads * seqLen * seqLen;
  const hidden = 2 * N * H;
  const head = 4 * Math.min(HEAD_CHUNK_FLOATS, N * config.vocab_size);
  return 4 * (layer + hidden + head);
}

/** Least default activation budget of the importance pass (MiB): models of ≥ ~1.9 GiB of float32 weights, and wasm. */
export const KEEP_ACTIVATIONS_MIN_MIB = 128;
/** Most default activation budget (MiB): every layer of an 8-window stories110M batch at seq 128 needs 0.69 GiB. */
export const KEEP_ACTIVATIONS_MAX_MIB = 1024;
/** Float32 weights plus the default activation budget, for models small enough (MiB). */
export const KEEP_ACTIVATIONS_TOTAL_MIB = 2048;

/**
 * Default of AccumulateOptions.keepActivationsMiB: 2 GiB minus the model's float32 weights, within [128 MiB,
 * 1 GiB]. Layers past the budget are recomputed in the backward sweep (one more forward of each), which at
 * 128 MiB is 10 of stories110M's 12 layers in an 8-window batch: 171 tok/s instead of 206 on the native backend
 * (bench/NOTES.md). A small model's run then keeps what it needs within about 2 GiB in all; from ~1.9 GiB of
 * weights up (the Llama-3.2-1B shape has 4.6 GiB) the budget is 128 MiB, so a scoring run's peak stays near its
 * weights (1.2× there, docs/memory.md); continuous in between, so no model size jumps from one to the other.
 * On wasm it is 128 MiB whatever the model: there the budget comes out of the 4 GiB heap that holds the model
 * twice (packed copies), and a pass runs one window, which for models up to ~110M parameters at seq 128 fits anyway.
 */
export function defaultKeepActivationsMiB(config: LlamaConfig, backend = activeBackend()): number {
  if (backend === "wasm") return KEEP_ACTIVATIONS_MIN_MIB;
  const weightsMiB = weightBytes(config) / 2 ** 20;
  return Math.min(KEEP_ACTIVATIONS_MAX_MIB, Math.max(KEEP_ACTIVATIONS_MIN_MIB, KEEP_ACTIVATIONS_TOTAL_MIB - weightsMiB));
}

/**
 * Heap bytes of one importance pass (the layerwise Taylor path) over `windows` windows: the activations it keeps
 * for the backward sweep (at most `keepMiB`, beyond that each layer's input only), the layer being differentiated
 * (its forward temporaries twice: values and their gradients), one window's MLP weight gradients (gate, up and down,
 * reduced to channel scores before the next window's), and the head's loss and gradient over one chunk.
 */
export function importancePassBytes(config: LlamaConfig, windows: number, seqLen: number, keepMiB = defaultKeepActivationsMiB(config, "wasm")): number {
  const N = windows * seqLen;
  const H = config.hidden_size;
  const I = Math.max(...intermediateSizes(config));
  const L = config.num_hidden_layers;
  let all = 0;
  for (let l = 0; l < L; l++) all += 4 * windows * layerActivationFloats(config, l, seqLen);
  const saved = Math.min(keepMiB * 2 ** 20, all) + 4 * L * N * H;
  const layer = 2 * (forwardPassBytes(config, windows, seqLen) - 4 * (2 * N * H + Math.min(HEAD_CHUNK_FLOATS, N * config.vocab_size) * 4));
  const mlpGrads = 4 * 3 * H * I;
  const head = 2 * 4 * 4 * Math.min(HEAD_CHUNK_FLOATS, N * config.vocab_size);
  return saved + layer + mlpGrads + head;
}

export interface HeapPlan {
  /** What the heap would hold at the peak, in bytes. */
  need: number;
  /** What the model needs in the heap (see wasmModelHeapBytes), and any other tensors alive. */
  resident: number;
  /** Working memory of one pass. */
  pass: number;
  /** The heap's capacity for planned use (the cap less WASM_HEAP_RESERVE). */
  capacity: number;
}

/**
 * Heap bytes a model needs on the wasm backend to run: its float32 weights; a packed copy of every linear weight
 * (tfjs-backend-wasm runs each product with a weight matrix as an XNNPACK fully-connected operator, which packs
 * the matrix into a private copy kept as long as the tensor); and for a tied head the embedding transposed
 * ([H, V]), which the model caches for the head's product on its first pass. About 2× the weights without the
 * embedding, plus 2× the embedding when tied. A pass beyond that fails inside a kernel: measured on a 0.5 B
 * tied model (1.9 GiB of weights), one window of 512 tokens ended in "memory access out of bounds".
 */
export function wasmModelHeapBytes(config: LlamaConfig, weightsIn: WeightsIn = "heap"): number {
  if (weightsIn !== "heap") return streamedHeapBytes(config);
  const p = paramCounts(config);
  return weightBytes(config) + 4 * (p.attention + p.mlp) + (config.tie_word_embeddings ? 4 * p.embeddings : 0);
}

/** Float32 bytes of the largest decoder layer's weights. */
export function layerWeightBytes(config: LlamaConfig): number {
  const p = paramCounts(config);
  const attn = p.attention / config.num_hidden_layers;
  return 4 * (attn + Math.max(...p.mlpPerLayer) + (config.gemma_norms ? 4 : 2) * config.hidden_size);
}

/**
 * Heap bytes a streamed model (weightsIn "host" or "disk") needs besides a pass: the layer on the backend with
 * its packed copies, twice over in the backward step, whose products with transposed weights (matMulBT on wasm)
 * make and pack a transposed copy of each (4 × the layer); a head chunk, its transposed copy and their packed
 * copies (4 × the chunk); and the final norm.
 */
export function streamedHeapBytes(config: LlamaConfig): number {
  return 4 * layerWeightBytes(config) + 4 * 4 * headChunkRows(config) * config.hidden_size + 4 * config.hidden_size;
}

/**
 * Host bytes of the weights as held: everything for "heap" and "host" (half of it as float16), only the embedding
 * and head for "disk" (the layers are read from the file when used).
 */
export function hostWeightBytes(config: LlamaConfig, weightsIn: WeightsIn, hostFloat: HostFloat = "float32"): number {
  const p = paramCounts(config);
  const per = hostFloat === "float16" ? 2 : 4;
  if (weightsIn === "disk") return per * (p.embeddings + p.lm_head) + 4 * p.norms;
  return per * p.total;
}

/**
 * Heap bytes of the head's packed copy (the same packing for the head's product). It is made last in a pass and,
 * where the heap has no room left, skipped (the product runs unpacked, slower; the backend prints "XNN status ...
 * 6"), so it is what the heap grows to when it can, not a requirement: the checks leave it out and
 * bench/heap-estimate.ts counts it.
 */
export function wasmHeadPackBytes(config: LlamaConfig): number {
  const p = paramCounts(config);
  return 4 * (config.tie_word_embeddings ? p.embeddings : p.lm_head);
}

/** Bytes of tensors alive on the active backend now (0 when the engine is not initialised). */
export function residentTensorBytes(): number {
  try {
    return tf.memory().numBytes;
  } catch {
    return 0;
  }
}

/** The registered tfjs backend's name, "" before one is initialised. */
export function activeBackend(): string {
  try {
    return tf.getBackend() ?? "";
  } catch {
    return "";
  }
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

const NATIVE_HINT =
  "the native backend holds models up to host memory (npm install @tensorflow/tfjs-node, then --backend tensorflow or SDMPRUNE_BACKEND=tensorflow)";

/**
 * Before loading a model: on wasm the model's heap need (wasmModelHeapBytes) must fit the heap, and on every backend its float32 weights plus the largest tensor twice (read, then converted to the
 * model's layout) must fit host memory. Refused with the figures and what would fit; nothing has been read yet.
 */
/** Where a model's weights live on `backend` unless weightsIn is given: on wasm, streamed when they do not fit the heap. */
export function defaultWeightsIn(config: LlamaConfig, backend: string): WeightsIn {
  return backend !== "wasm" || wasmModelHeapBytes(config) <= WASM_HEAP_BYTES - WASM_HEAP_RESERVE ? "heap" : "host";
}

/** defaultWeightsIn in words, with the heap figures (the `info` line). */
export function describeWeightsIn(config: LlamaConfig, backend: string): string {
  if (backend !== "wasm") return "held on the backend (resident)";
  const resident = wasmModelHeapBytes(config);
  if (defaultWeightsIn(config, backend) === "heap") return `held in the wasm heap (about ${formatBytes(resident)} of it)`;
  const streamed = streamedHeapBytes(config);
  if (streamed <= WASM_HEAP_BYTES - WASM_HEAP_RESERVE) {
    return `more than the wasm heap holds (${formatBytes(resident)}): streamed from host memory one layer at a time (about ${formatBytes(streamed)} of heap; --offload)`;
  }
  return `one layer with its copies needs ${formatBytes(streamed)} of the wasm heap, more than it holds: refused on wasm, use the native backend`;
}

export function checkModelLoad(config: LlamaConfig, backend: string, what: string, opts: ResourceOptions = {}, available?: number): WeightsIn {
  const w = weightBytes(config);
  const params = paramCounts(config).total;
  const capacity = WASM_HEAP_BYTES - WASM_HEAP_RESERVE;
  // skipMemoryCheck skips the refusals below, not this choice: a model beyond the heap would fail resident anyway
  const weightsIn: WeightsIn = opts.weightsIn ?? (opts.residentFor ? "heap" : defaultWeightsIn(config, backend));
  if (opts.residentFor && weightsIn !== "heap") {
    throw new UsageError(
      `${what}: ${opts.residentFor}, so the weights must be held there (weightsIn "heap", --offload heap); weightsIn "${weightsIn}" (--offload ${weightsIn}) ` +
        `is not supported for it. For a model beyond the wasm heap: ${NATIVE_HINT}`,
    );
  }
  if (opts.skipMemoryCheck) return weightsIn;
  const hostFloat = opts.hostFloat ?? "float32";
  if (backend === "wasm") {
    const heap = wasmModelHeapBytes(config, weightsIn);
    if (heap > capacity) {
      const streamedFits = wasmModelHeapBytes(config, "host") <= capacity;
      throw new ResourceError(
        `${what}: its ${(params / 1e9).toFixed(2)} B parameters are ${formatBytes(w)} as float32, and on the wasm backend ` +
          (weightsIn === "heap"
            ? `a model held in the heap needs about ${formatBytes(heap)} of it to run (the weights, the packed copies of its matrices that the wasm products keep` +
              `${config.tie_word_embeddings ? ", the tied head's transposed embedding" : ""})`
            : `streaming one layer at a time needs about ${formatBytes(heap)} of heap (the largest layer, ${formatBytes(layerWeightBytes(config))}, with its transposed and packed copies, and a head chunk)`) +
          `, more than the ${formatBytes(WASM_HEAP_BYTES)} heap holds with room to work (${formatBytes(capacity)}). ` +
          (opts.residentFor ? `${capitalise(opts.residentFor)}, so it cannot stream them; ` : "") +
          (weightsIn === "heap" && streamedFits && !opts.residentFor ? `Stream the weights from host memory instead (--offload host, weightsIn "host"; the default when weightsIn is not given), or: ` : "") +
          `${NATIVE_HINT}. --skip-memory-check (skipMemoryCheck: true) tries anyway`,
      );
    }
  }
  const held = hostWeightBytes(config, weightsIn, hostFloat);
  // In flight while loading: a linear read and its transposed copy; the embedding read (not transposed) and, for
  // float16 storage, its half-size copy.
  const H = config.hidden_size;
  const embed = 4 * config.vocab_size * H;
  const linears = 2 * 4 * Math.max(Math.max(...intermediateSizes(config)) * H, config.num_attention_heads * config.head_dim * H);
  const inFlight = weightsIn === "heap" ? 2 * largestTensorBytes(config) : Math.max(linears, embed * (hostFloat === "float16" ? 1.5 : 1));
  checkMemory(
    held + inFlight,
    `${what}: loading ${(params / 1e9).toFixed(2)} B parameters (${formatBytes(held)} held ${weightsIn === "disk" ? "in host memory, the layers read from disk" : weightsIn === "heap" ? `as ${hostFloat}` : `in host memory as ${hostFloat}`})`,
    opts,
    available,
    weightsIn === "disk"
      ? "use a machine with more memory or a smaller model"
      : `use a machine with more memory or a smaller model${weightsIn === "host" && hostFloat === "float32" ? ", float16 host storage (--offload-dtype f16, hostFloat: \"float16\")" : ""}, or read the layers from disk when used (--offload disk)`,
  );
  return weightsIn;
}

/**
 * A streamed model's head (weightsIn "host" or "disk") computes its logits a chunk of the vocabulary at a time for
 * every row of the pass: [N, Vc] and its temporaries (exp, the running sums) instead of the resident path's row chunks.
 */
function streamedHeadBytes(config: LlamaConfig, windows: number, seqLen: number, weightsIn: WeightsIn): number {
  return weightsIn === "heap" ? 0 : 4 * 4 * windows * seqLen * headChunkRows(config);
}

/** forwardPassBytes with the streamed head's logit blocks where the model is streamed. */
export function forwardHeapBytes(config: LlamaConfig, windows: number, seqLen: number, weightsIn: WeightsIn = "heap"): number {
  return streamedHeadBytes(config, windows, seqLen, weightsIn) + forwardPassBytes(config, windows, seqLen);
}

/**
 * Before a run of passes on the active backend (on wasm only: the other backends grow into host memory, which
 * the calibration check covers): the model's heap need (wasmModelHeapBytes), any other tensors alive (e.g. the
 * original model beside a pruned one), plus one pass must fit. `tensorBytes` is what is alive now (the model's
 * weights when nothing is loaded yet). Refused with the figures, the most windows per pass and the longest windows
 * that would fit, and the native backend.
 */
export function checkPassMemory(
  config: LlamaConfig,
  kind: "forward" | "importance",
  windows: number,
  seqLen: number,
  what: string,
  opts: ResourceOptions = {},
  backend = activeBackend(),
  tensorBytes = residentTensorBytes(),
  weightsIn: WeightsIn = "heap",
): HeapPlan | null {
  if (backend !== "wasm") return null;
  const streamed = weightsIn !== "heap";
  const cachedHead = config.tie_word_embeddings && !streamed ? 4 * config.vocab_size * config.hidden_size : 0;
  // Tensors beyond this model's (e.g. the original model beside a pruned one) are counted with packed copies too.
  const others = Math.max(0, tensorBytes - (streamed ? 4 * config.hidden_size : weightBytes(config)) - cachedHead);
  const resident = wasmModelHeapBytes(config, weightsIn) + 2 * others;
  const passBytes = (b: number, t: number) => (kind === "forward" ? forwardHeapBytes(config, b, t, weightsIn) : streamedHeadBytes(config, b, t, weightsIn) + importancePassBytes(config, b, t));
  const capacity = WASM_HEAP_BYTES - WASM_HEAP_RESERVE;
  const pass = passBytes(windows, seqLen);
  const plan = { need: resident + pass, resident, pass, capacity };
  if (opts.skipMemoryCheck || plan.need <= capacity) return plan;
  const fits = (b: number, t: number) => resident + passBytes(b, t) <= capacity;
  let b = windows;
  while (b > 1 && !fits(b, seqLen)) b--;
  let t = seqLen;
  while (t > 2 && !fits(1, t)) t = Math.floor(t / 2);
  const options: string[] = [];
  if (b < windows && fits(b, seqLen)) options.push(`${b} window${b === 1 ? "" : "s"} per pass (--batch-size / batchWindows)`);
  if (!fits(1, seqLen) && fits(1, t)) options.push(`windows of at most ${t} tokens with 1 per pass`);
  options.push(NATIVE_HINT);
  throw new ResourceError(
    `${what} on the wasm backend would need about ${formatBytes(plan.need)} of its ${formatBytes(WASM_HEAP_BYTES)} heap: ` +
      (streamed
        ? `${formatBytes(resident)} for the model streamed from ${weightsIn} memory (one layer of ${formatBytes(layerWeightBytes(config))} with its copies, a head chunk` +
          `${others ? `, ${formatBytes(2 * others)} for other tensors alive` : ""}) `
        : `${formatBytes(resident)} for the model (${formatBytes(weightBytes(config))} of float32 weights, the packed copies of its matrices` +
          `${config.tie_word_embeddings ? ", the tied head's transposed embedding" : ""}${others ? `, ${formatBytes(2 * others)} for other tensors alive` : ""}) `) +
      `+ ${formatBytes(pass)} for one pass of ${windows} window${windows === 1 ? "" : "s"} × ${seqLen} tokens; ` +
      `what would fit: ${options.join("; or ")}. --skip-memory-check (skipMemoryCheck: true) tries anyway`,
  );
}

// ---------------------------------------------------------------------------------------------------------------
// The estimate printed before a long job (issue 15)

/** Floating-point operations per token of one forward pass and of one importance pass (forward + layer backward). */
export function flopsPerToken(config: LlamaConfig, seqLen: number): { forward: number; importance: number } {
  const H = config.hidden_size;
  const q = config.num_attention_heads * config.head_dim;
  const kv = config.num_key_value_heads * config.head_dim;
  const attnLin = 2 * (H * q + 2 * H * kv + q * H);
  const attnScores = 4 * seqLen * q;
  const head = 2 * H * config.vocab_size;
  let forward = head;
  let importance = 2 * head;
  for (const I of intermediateSizes(config)) {
    const mlp = 2 * 3 * H * I;
    forward += attnLin + mlp + attnScores;
    // backward: the input gradients of every product, the attention scores twice, and the MLP weight gradients
    importance += attnLin + mlp + attnScores + (attnLin + mlp + 2 * attnScores) + mlp;
  }
  return { forward, importance };
}

/**
 * Sustained GFLOP/s of an importance pass per backend, as bench/NOTES.md measured them on a 2-core x86 machine
 * (stories15M, seq 128: native 108, wasm 25, cpu 0.65). A rough guide, printed as such: other machines differ,
 * and the progress line's ETA, from the measured rate, replaces it after the first window.
 */
const GFLOPS_GUIDE: Record<string, number> = { tensorflow: 108, wasm: 25, cpu: 0.65 };

export interface JobEstimate {
  /** Host memory of the windows and the teacher cache. */
  calibrationBytes: number;
  /** Peak working memory of one pass on the tensor backend. */
  passBytes: number;
  weightBytes: number;
  /** Seconds at the bench rate of this backend, null where none was measured (webgpu). */
  seconds: number | null;
  flops: number;
}

/** Memory and time of calibrating `samples` windows (teacher cache) and, when `score`, scoring them by Taylor importance. */
export function estimateCalibration(
  config: LlamaConfig,
  samples: number,
  seqLen: number,
  topk: number | "full" | null,
  backend: string,
  score: boolean,
): JobEstimate {
  const V = config.vocab_size;
  const k = topk === null ? null : topk === "full" ? V : Math.min(topk, V);
  const f = flopsPerToken(config, seqLen);
  const tokens = samples * seqLen;
  const flops = tokens * ((k === null ? 0 : f.forward) + (score ? f.importance : 0));
  const rate = GFLOPS_GUIDE[backend];
  return {
    calibrationBytes: calibrationBytes(samples, seqLen, k, topk === "full"),
    passBytes: score ? importancePassBytes(config, 1, seqLen, defaultKeepActivationsMiB(config, backend)) : forwardPassBytes(config, 1, seqLen),
    weightBytes: weightBytes(config),
    seconds: rate ? flops / (rate * 1e9) : null,
    flops,
  };
}

/** One line for stderr before the job starts. */
export function describeEstimate(e: JobEstimate, backend: string): string {
  const t = e.seconds === null ? "no time guide for this backend" : `about ${e.seconds < 90 ? `${Math.max(1, Math.round(e.seconds))} s` : e.seconds < 5400 ? `${Math.round(e.seconds / 60)} min` : `${(e.seconds / 3600).toFixed(1)} h`} at the ${backend} rate bench/NOTES.md measured on 2 cores`;
  return `estimate: weights ${formatBytes(e.weightBytes)}, windows and teacher cache ${formatBytes(e.calibrationBytes)}, one pass ${formatBytes(e.passBytes)}; ${e.flops >= 1e12 ? `${(e.flops / 1e12).toFixed(2)} TFLOP` : `${(e.flops / 1e9).toFixed(2)} GFLOP`}, ${t} (the progress ETA takes over once it runs)`;
}
