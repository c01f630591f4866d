import { parseArgs } from "node:util";
import type { BackendName } from "../engine";
import { UsageError } from "../errors";
import { CRITERIA, type Criterion } from "../importance";
import type { CalibrateOptions } from "../session";
import type { TopK } from "../teacher";
import { WEIGHTS_IN, type HostFloat, type WeightsIn } from "../model/weight-store";

/**
 * One option: its parseArgs type (and default) and its --help line, so the option table a command parses
 * and the usage it prints come from one definition. node:util parseArgs ignores the extra keys.
 */
export interface Flag {
  readonly type: "string" | "boolean";
  readonly default?: string | boolean;
  /** The value's placeholder in --help ("--model PATH"); none for a boolean. */
  readonly arg?: string;
  /** The --help text; each "\n" starts a line aligned under the first. */
  readonly help: string;
}
export type FlagSet = Readonly<Record<string, Flag>>;

/** `--name ARG`, a string option. */
export function str(arg: string, help: string): { readonly type: "string"; readonly arg: string; readonly help: string };
export function str(arg: string, help: string, defaultValue: string): { readonly type: "string"; readonly default: string; readonly arg: string; readonly help: string };
export function str(arg: string, help: string, defaultValue?: string): Flag {
  return defaultValue === undefined ? { type: "string", arg, help } : { type: "string", default: defaultValue, arg, help };
}

/** `--name`, a switch (false when absent). */
export function bool(help: string): { readonly type: "boolean"; readonly default: false; readonly help: string } {
  return { type: "boolean", default: false, help };
}

/** The values parseArgs returns for a flag set: a string or boolean, undefined when absent and without default. */
export type FlagValuesOf<S extends FlagSet> = {
  -readonly [K in keyof S]: (S[K]["type"] extends "boolean" ? boolean : string) | (S[K] extends { readonly default: string | boolean } ? never : undefined);
};

/** The --help lines of a flag set, in its order; descriptions start at `column` (default: after the longest name). */
export function flagHelp(flags: FlagSet, column?: number): string {
  const labels = Object.entries(flags).map(([name, f]) => `--${name}${f.arg ? ` ${f.arg}` : ""}`);
  const width = column ?? Math.max(0, ...labels.map((l) => l.length)) + 2;
  const pad = " ".repeat(width + 2);
  return Object.values(flags)
    .map((f, i) => {
      const label = labels[i].length + 2 <= width ? labels[i].padEnd(width) : `${labels[i]}  `;
      return `  ${label}${f.help.split("\n").join(`\n${pad}`)}`;
    })
    .join("\n");
}

/**
 * Parses `argv` strictly against `flags`. Every flag must be named in `usage` (the --help text and the
 * source of "did you mean"): an undocumented option is a programming error, caught by any test that runs it.
 */
export function parseFlags<S extends FlagSet>(argv: string[], flags: S, usage: string, opts: { positionals?: boolean } = {}): { values: FlagValuesOf<S>; positionals: string[] } {
  for (const name of Object.keys(flags)) {
    if (!new RegExp(`--${name}(?![a-z0-9-])`).test(usage)) throw new Error(`internal: option --${name} is missing from its command's usage text`);
  }
  const { values, positionals } = parseArgs({ args: argv, options: flags, allowPositionals: opts.positionals ?? false, strict: true });
  return { values: values as unknown as FlagValuesOf<S>, positionals };
}

/** Flag values as node:util parseArgs returns them. */
export type FlagValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** Throws UsageError naming the flags of `names` that are missing (absent or empty), followed by the usage text. */
export function requireFlags<V extends FlagValues, K extends keyof V & string>(
  values: V,
  names: K[],
  usage: string,
): asserts values is V & { [P in K]-?: Exclude<V[P], undefined> } {
  const missing = names.filter((n) => values[n] === undefined || values[n] === "");
  if (missing.length === 0) return;
  const list = missing.map((n) => `--${n}`);
  const text = list.length === 1 ? `${list[0]} is required` : `${list.slice(0, -1).join(", ")} and ${list[list.length - 1]} are required`;
  throw new UsageError(`${text}\n\n${usage}`);
}

function bound(integer: boolean, min: number | undefined): string {
  const kind = integer ? "integer" : "number";
  if (min === undefined) return integer ? "an integer" : "a number";
  if (min === 0) return `a non-negative ${kind}`;
  return `${integer ? "an" : "a"} ${kind} >= ${min}`;
}

function parseNumber(name: string, v: string | undefined, integer: boolean, min: number | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || (min !== undefined && n < min)) {
    throw new UsageError(`--${name} must be ${bound(integer, min)}, got ${JSON.stringify(v)}`);
  }
  // Beyond 2^53 a number is rounded: "9007199254740993" would silently become 9007199254740992.
  if (integer && !Number.isSafeInteger(n)) throw new UsageError(`--${name} must be an integer of magnitude at most 2^53 - 1, got ${JSON.stringify(v)}`);
  return n;
}

/** `--name N`: an integer (at least `min` when given); undefined when the flag is absent. */
export function intFlag(name: string, v: string | undefined, min?: number): number | undefined {
  return parseNumber(name, v, true, min);
}

/** `--name X`: a finite number (at least `min` when given); undefined when the flag is absent. */
export function numFlag(name: string, v: string | undefined, min?: number): number | undefined {
  return parseNumber(name, v, false, min);
}

/** `--name V` where V is one of `allowed`; undefined when the flag is absent. */
export function enumFlag<T extends string>(name: string, v: string | undefined, allowed: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(v)) {
    const list = allowed.length > 1 ? `${allowed.slice(0, -1).join(", ")} or ${allowed[allowed.length - 1]}` : allowed.join("");
    throw new UsageError(`--${name} must be ${list}, got "${v}"`);
  }
  return v as T;
}

/** `--topk K|full`. */
export function topkFlag(v: string | undefined): TopK | undefined {
  if (v === undefined) return undefined;
  if (v === "full") return "full";
  return intFlag("topk", v, 1);
}

/** `--criterion NAME`, one of the importance criteria. */
export function criterionFlag(v: string | undefined): Criterion | undefined {
  if (v === undefined) return undefined;
  if (!CRITERIA.includes(v as Criterion)) throw new UsageError(`--criterion must be one of ${CRITERIA.join(", ")}, got "${v}"`);
  return v as Criterion;
}

/** `--backend NAME`; the engine checks the name when it starts (src/engine). */
export function backendFlag(v: string | undefined): BackendName | undefined {
  return v as BackendName | undefined;
}

// Flag sets shared by several commands: each flag is spelled and documented here once. A command that means
// something narrower overrides only the text, e.g. `{ ...MODEL_FLAG.model, help: "the pruned model" }`.

export const MODEL_FLAG = { model: str("PATH", ".gguf file or Hugging Face model directory") } as const;

export const BACKEND_FLAG = { backend: str("NAME", "tensorflow | webgpu | wasm | cpu (default: best that loads, or SDMPRUNE_BACKEND)") } as const;

export const JSON_FLAG = { json: bool("print one JSON object instead of text") } as const;

/** Accepting a window longer than the model was trained for is a choice, never a default. */
export const ALLOW_LONGER_FLAG = { "allow-longer": bool("accept windows longer than the model's context (max_position_embeddings); refused otherwise") } as const;

/** Where the weights live (src/model/weight-store.ts, docs/memory.md "Layer streaming"). */
export const OFFLOAD_FLAGS = {
  offload: str(
    "heap|host|disk",
    "where the weights live: heap = on the tensor backend; host = in host memory, one layer at a\ntime on the backend; disk = decoder layers read from the checkpoint each time they run\n(default: heap where the model fits; on wasm a model beyond its 4 GiB heap streams from host)",
  ),
  "offload-dtype": str(
    "f32|f16",
    "storage of the weights where --offload puts them: f32 (default) or f16: with host or disk,\nhalf the host memory, upcast per layer; with heap (webgpu backend only), packed halves on the\nGPU, unpacked per layer (half the GPU memory). The model then computes with the rounded\nweights: scores change within float16 rounding, a saved model holds them",
  ),
} as const;

/** `--offload` and `--offload-dtype` as Session.load options (absent = the defaults). */
export function offloadFromFlags(values: Record<string, string | boolean | undefined>): { weightsIn?: WeightsIn; hostFloat?: HostFloat; onNote: (m: string) => void } {
  const weightsIn = enumFlag("offload", values.offload as string | undefined, WEIGHTS_IN);
  const d = enumFlag("offload-dtype", values["offload-dtype"] as string | undefined, ["f32", "f16"] as const);
  if (d !== undefined && weightsIn === undefined) {
    throw new UsageError("--offload-dtype applies to offloaded weights: give --offload host or --offload disk (or --offload heap on the webgpu backend: packed halves on the GPU)");
  }
  return { weightsIn, hostFloat: d === undefined ? undefined : d === "f16" ? "float16" : "float32", onNote: (m) => process.stderr.write(`note: ${m}\n`) };
}

/** Memory checks before the work (src/resources.ts): host memory, and on the wasm backend its 4 GiB heap. */
export const SKIP_MEMORY_FLAG = {
  "skip-memory-check": bool("run even when the model or one batch is estimated not to fit (host memory; on the wasm\nbackend its 4 GiB heap); refused otherwise, with the figures and what would fit"),
} as const;

/** Writing a model directory (convert, prune). */
export const OUTPUT_FLAGS = {
  out: str("DIR", "output directory (hf: config.json, model.safetensors, tokenizer files; gguf: DIR/model.gguf);\nwritten beside DIR, then renamed into place; an occupied DIR is refused before any work"),
  format: str("F", "hf or gguf"),
  dtype: str("D", "f32 (default) or f16", "f32"),
  "pad-mlp": bool("pad per-layer MLP widths to the widest with zero channels (same outputs), for both formats, so\nllama.cpp and stock transformers, which need one width for all layers, load a non-uniformly\npruned model"),
  force: bool("replace DIR if it holds only an earlier sdmprune output (listed in its .sdmprune-manifest.json);\na folder with any other file is refused"),
} as const;

/** How a text file becomes the token stream perplexity is measured on (ppl, eval). */
export const PPL_TEXT_FLAGS = {
  stories: str("A-B", "with a TinyStories text: 1-based inclusive story range (e.g. 500-999)"),
  protocol: str(
    "P",
    'documents (default): WikiText .raw files by the row protocol (lines are rows,\nblank lines become "", rows joined with "\\n\\n"), TinyStories dumps split into\nstories joined with "\\n\\n", other files as they are;\nwikitext: the row protocol for any file;\nfile: the file exactly as read, as one document (separators included)',
  ),
  "seq-len": str("N", "window length in tokens (default 128; always reported)"),
  ...ALLOW_LONGER_FLAG,
} as const;

/** Held-out perplexity beside another job (prune before/after, compare). */
export const HELDOUT_FLAGS = {
  "eval-text": str("FILE", "held-out text for perplexity (WikiText .raw files use the row protocol)"),
  "eval-seq-len": str("N", "window length for --eval-text (default 128)"),
  "eval-stories": str("A-B", "with a TinyStories --eval-text: 1-based inclusive story range (e.g. 500-999)"),
} as const;

/** Zero-shot tasks as lm-evaluation-harness scores them (eval, compare). */
export const TASK_FLAGS = {
  tasks: str("LIST", "comma-separated lm-eval names: arc_challenge, arc_easy, boolq, hellaswag,\nlambada_openai (alias lambada), openbookqa, piqa, winogrande"),
  "data-dir": str("DIR", "task data folder (default SDMPRUNE_DATA or ../shared/data)"),
  limit: str("N", "first N items per task (lm-eval --limit; not comparable with full-set numbers)"),
} as const;

export const CRITERION_FLAG = { criterion: str("NAME", `${CRITERIA.join(" | ")} (default sd-taylor)`) } as const;

/** The sd-taylor loss settings (scores, prune, compare). */
export const SD_TAYLOR_FLAGS = {
  alpha: str("A", "sd-taylor KD weight (default 0.4)"),
  temperature: str("T", "sd-taylor teacher temperature (default 0.2)"),
} as const;

export const ROUND_TO_FLAG = {
  "round-to": str(
    "N",
    "keep a multiple of N channels per layer (e.g. 8, 64, 128 for tensor cores and GGML\nblocks): K is rounded to the nearest multiple of N (halves up), at least N and at most\nthe layer's width; the achieved share of parameters is printed and recorded",
  ),
} as const;

/** Drawing calibration windows (scores, prune, compare). */
export const CALIBRATION_FLAGS = {
  windows: str("FILE.json", 'token windows {"windows": [[ids]...]} (e.g. written by a previous run)'),
  text: str("FILE", "text file; TinyStories dumps are split into stories, one window per story"),
  stories: str("A-B", "with --text: 1-based inclusive story range, e.g. 1-200"),
  samples: str("N", "windows to draw (default 32)"),
  "seq-len": str("L", "tokens per window (default 128)"),
  seed: str("S", "seed of the window draw (default 0)"),
  topk: str("K|full", "teacher cache entries per position (default: full for vocab <= 4096, else 64; clamped\nto the vocabulary)"),
  ...ALLOW_LONGER_FLAG,
  "skip-memory-check": bool("run even when the estimated memory exceeds what is available: host memory for the\nwindows and teacher cache (windows × seq len × teacher top-k) and the model, and on\nthe wasm backend its 4 GiB heap (weights + one pass); refused otherwise, with the\nfigures and what would fit"),
} as const;

/** The calibration section of a command's --help, for `flags` (CALIBRATION_FLAGS or a part of them). */
export function calibrationUsage(flags: FlagSet = CALIBRATION_FLAGS): string {
  return `Calibration (give --windows or --text):\n${flagHelp(flags, 21)}`;
}

/** Calibration options from flags; null when neither --windows nor --text is given. */
export function calibrationFromFlags(values: Record<string, string | boolean | undefined>): CalibrateOptions | null {
  const windows = values.windows as string | undefined;
  const text = values.text as string | undefined;
  if (windows !== undefined && text !== undefined) throw new UsageError("give --windows or --text, not both");
  if (windows === undefined && text === undefined) {
    for (const f of ["stories", "samples", "seq-len", "seed"]) if (values[f] !== undefined) throw new UsageError(`--${f} needs --text FILE`);
    return null;
  }
  const common = {
    topk: topkFlag(values.topk as string | undefined),
    allowLonger: values["allow-longer"] === true,
    skipMemoryCheck: values["skip-memory-check"] === true,
  };
  if (windows !== undefined) {
    for (const f of ["stories", "seq-len", "seed"]) if (values[f] !== undefined) throw new UsageError(`--${f} applies to --text, not --windows`);
    return { windows, samples: intFlag("samples", values.samples as string | undefined, 1), ...common };
  }
  return {
    files: text as string,
    stories: values.stories as string | undefined,
    samples: intFlag("samples", values.samples as string | undefined, 1),
    seqLen: intFlag("seq-len", values["seq-len"] as string | undefined, 2),
    seed: intFlag("seed", values.seed as string | undefined, 0),
    ...common,
  };
}
