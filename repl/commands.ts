/**
 * The REPL's command grammar: one spec per command (usage, help, flags) and a parser that turns a line
 * into a typed command or an ArgError saying what was expected. No work is done here.
 */
import type { Criterion } from "../src/importance";
import type { Allocation } from "../src/prune";
import type { RecoverLoss } from "../src/train/recover";
import { ArgError, distance, parseFlags, readValue, splitWords, type FlagSpec, type Word } from "./args";

export type Command =
  | { kind: "help"; topic?: string }
  | { kind: "load"; path: string }
  | { kind: "info" }
  | { kind: "calibrate"; samples?: number; seqLen?: number; seed?: number; text?: string; stories?: string }
  | { kind: "score"; criterion: string; alpha?: number; temperature?: number; samples?: number }
  | { kind: "layers"; sensitivity: boolean; samples?: number }
  | {
      kind: "prune";
      ratio?: number;
      keep?: number;
      target?: number;
      twoStage: boolean;
      layers?: [number, number];
      allocation?: Allocation;
      alpha?: number;
      temperature?: number;
    }
  | {
      kind: "recover";
      steps: number;
      data?: string;
      stories?: string;
      seqLen?: number;
      lr?: number;
      loss?: RecoverLoss;
      alpha?: number;
      temperature?: number;
      loraR?: number;
      full: boolean;
      seed?: number;
    }
  | { kind: "undo" }
  | { kind: "history" }
  | { kind: "eval"; ppl?: string; seqLen?: number; stories?: string; protocol?: string; batchSize?: number; tasks?: string[]; limit?: number }
  | { kind: "generate"; prompt: string; maxNewTokens?: number; temperature?: number; seed?: number }
  | { kind: "save"; dir: string; gguf: boolean; force: boolean; padMlp: boolean }
  | { kind: "scores"; action: "save" | "load" | "merge"; file: string; files: string[] }
  | { kind: "clear" }
  | { kind: "exit" };

export interface CommandSpec {
  name: Command["kind"];
  aliases?: string[];
  usage: string;
  summary: string;
  /** Longer help: what it does, defaults, an example. */
  details: string[];
  flags: Record<string, FlagSpec>;
  /** Completion hints for positionals: "path", or a fixed list of words. */
  positional?: "path" | string[];
}

/**
 * Criterion names for completion and help (the library validates). A list at run time, since repl/ loads
 * nothing of src/ before the first `load`; the checks below fail the type-check when it drifts from the library's.
 */
export const CRITERIA_HINT = ["sd-taylor", "ce-taylor", "llm-pruner", "llm-pruner-vector", "magnitude", "wanda", "random"] as const satisfies readonly Criterion[];
const _everyCriterion: [Exclude<Criterion, (typeof CRITERIA_HINT)[number]>] extends [never] ? true : never = true;
void _everyCriterion;

export const SPECS: CommandSpec[] = [
  {
    name: "help",
    usage: "help [COMMAND]",
    summary: "list commands, or show one command's usage",
    details: ["Without an argument lists every command; `help prune` shows the usage of prune."],
    flags: {},
  },
  {
    name: "load",
    usage: "load PATH",
    summary: "load a model (.gguf file or Hugging Face directory)",
    details: ["Replaces the current session (its history and scores are dropped).", "Example: load ../shared/models/stories260K.gguf"],
    flags: {},
    positional: "path",
  },
  {
    name: "info",
    usage: "info",
    summary: "describe the loaded model and session",
    details: [],
    flags: {},
  },
  {
    name: "calibrate",
    usage: "calibrate [--text FILE] [--stories A-B] [--samples N] [options]",
    summary: "draw calibration windows from a text (default TinyStories)",
    details: [
      "Without --text uses TinyStories from the shared data folder if present.",
      "--stories A-B takes stories A..B (1-based, inclusive, as in the CLI);",
      "keep them apart from the stories you evaluate on.",
      "Example: calibrate --stories 1-200 --samples 8 --seq-len 64 --seed 0",
    ],
    flags: {
      text: { type: "string", value: "FILE", help: "plain-text calibration file", path: true },
      stories: { type: "stories", value: "A-B", help: "TinyStories range, 1-based inclusive" },
      samples: { type: "posint", value: "N", help: "number of calibration windows" },
      "seq-len": { type: "posint", value: "L", help: "tokens per window" },
      seed: { type: "int", value: "S", help: "seed of the window draw" },
    },
  },
  {
    name: "score",
    usage: "score CRITERION [--alpha A] [--temperature T] [--samples N]",
    summary: "accumulate channel importance scores",
    details: [
      `CRITERION: ${CRITERIA_HINT.slice(0, 4).join(", ")},`,
      `  ${CRITERIA_HINT.slice(4).join(", ")}.`,
      "--alpha is the distillation weight and --temperature the teacher temperature (sd-taylor).",
      "--samples scores only the next N calibration windows (more can be added by a later score).",
      "Ctrl-C stops after the current sample and keeps the finished ones.",
      "Example: score sd-taylor --alpha 0.5 --temperature 1",
    ],
    flags: {
      alpha: { type: "number", value: "A", help: "KD weight in [0, 1]" },
      temperature: { type: "number", value: "T", help: "teacher temperature > 0" },
      samples: { type: "posint", value: "N", help: "calibration windows to use" },
    },
    positional: [...CRITERIA_HINT],
  },
  {
    name: "layers",
    usage: "layers [--sensitivity [--samples N]]",
    summary: "per-layer table and bar charts of channels and scores",
    details: [
      "Charts the MLP channels kept and the mean importance score per layer.",
      "--sensitivity also measures the loss increase with each layer's MLP / attention switched off",
      "on the first N calibration windows (a forward pass per layer; Ctrl-C stops).",
    ],
    flags: {
      sensitivity: { type: "bool", help: "measure per-layer sensitivity" },
      samples: { type: "posint", value: "N", help: "calibration windows for --sensitivity" },
    },
  },
  {
    name: "prune",
    usage: "prune RATIO | --keep K | --target R  [--layers S:E] [options]",
    summary: "remove the least important MLP channels",
    details: [
      "RATIO (0 < r < 1): fraction of each selected layer's original channels",
      "removed; --keep K: channels kept per layer; --target R: share of ALL",
      "parameters removed. --layers S:E: layers S..E-1 (0-based, end exclusive,",
      "as in the CLI). --allocation global: one ranking across layers (uneven",
      "widths). --two-stage: the SDMPrune recipe from the original model",
      "(ce-taylor, then sd-taylor against the original on fresh windows from the",
      "calibration text) to --target R or --keep K. undo reverts a step.",
      "Examples: prune 0.2 --layers 1:4    prune --two-stage --target 0.2",
    ],
    flags: {
      keep: { type: "posint", value: "K", help: "channels kept per layer" },
      target: { type: "number", value: "R", help: "share of all parameters removed" },
      layers: { type: "range", value: "S:E", help: "layers S..E-1 (end exclusive)" },
      allocation: { type: "string", value: "A", help: "uniform (default) or global" },
      "two-stage": { type: "bool", help: "the SDMPrune two-stage recipe" },
      alpha: { type: "number", value: "A", help: "two-stage KD weight (default: paper)" },
      temperature: { type: "number", value: "T", help: "two-stage teacher temperature" },
    },
  },
  {
    name: "recover",
    usage: "recover --steps N [--data FILE] [--stories A-B] [options]",
    summary: "recovery fine-tuning (LoRA by default) of the current model",
    details: [
      "Trains LoRA adapters (r 8, alpha 16) with AdamW and merges them; the",
      "pruning steps can then no longer be undone. --loss ce (default) trains",
      "on --data (default TinyStories, with --stories); kd and mix distil from",
      "the original model on the calibration windows.",
      "Example: recover --steps 50 --stories 200-499 --seq-len 64",
    ],
    flags: {
      steps: { type: "posint", value: "N", help: "optimizer steps" },
      data: { type: "string", value: "FILE", help: "training text (default TinyStories)", path: true },
      stories: { type: "stories", value: "A-B", help: "TinyStories range, 1-based inclusive" },
      "seq-len": { type: "posint", value: "L", help: "tokens per training window" },
      lr: { type: "number", value: "X", help: "peak learning rate (default 1e-4)" },
      loss: { type: "string", value: "L", help: "ce, kd or mix" },
      alpha: { type: "number", value: "A", help: "KD weight for mix" },
      temperature: { type: "number", value: "T", help: "teacher temperature for kd/mix" },
      "lora-r": { type: "posint", value: "N", help: "LoRA rank (default 8)" },
      full: { type: "bool", help: "full fine-tuning instead of LoRA" },
      seed: { type: "int", value: "S", help: "data order and LoRA init seed" },
    },
  },
  { name: "undo", usage: "undo", summary: "revert the last pruning step", details: [], flags: {} },
  { name: "history", usage: "history", summary: "show the pruning history", details: [], flags: {} },
  {
    name: "eval",
    usage: "eval [ppl FILE [--stories A-B] [--seq-len L]] [tasks a,b [--limit N]]",
    summary: "perplexity on a text file and/or zero-shot tasks",
    details: [
      "Perplexity as `sdmprune ppl` and `eval --ppl` compute it: the documents protocol by default",
      "(a .raw file by the WikiText row protocol, a TinyStories dump split into stories joined with",
      "blank lines); --protocol file scores the file exactly as read.",
      "Examples: eval ppl tinystories.txt --stories 500-999   eval tasks arc_easy,piqa --limit 50",
    ],
    flags: {
      stories: { type: "stories", value: "A-B", help: "TinyStories range, 1-based inclusive" },
      "seq-len": { type: "posint", value: "L", help: "perplexity window length (default 128)" },
      protocol: { type: "string", value: "P", help: "documents (default), wikitext or file" },
      // the library's defaultPplBatch (src/eval/ppl-batch.ts; the REPL imports only types from src/, so
      // test/repl.test.tsx checks these figures against its constants)
      "batch-size": { type: "posint", value: "N", help: "perplexity windows per batch (default 16 on the native backend, 4 on the others; fewer where a batch would need over 512 MiB)" },
      limit: { type: "posint", value: "N", help: "examples per task" },
    },
    positional: ["ppl", "tasks"],
  },
  {
    name: "generate",
    aliases: ["gen"],
    usage: "generate PROMPT [--max-new-tokens N] [--temperature T] [--seed S]",
    summary: "continue a prompt with the current model",
    details: ['Example: generate "Once upon a time" --max-new-tokens 40'],
    flags: {
      "max-new-tokens": { type: "posint", value: "N", help: "new tokens (default 64)" },
      temperature: { type: "number", value: "T", help: "0 = greedy" },
      seed: { type: "int", value: "S", help: "sampling seed" },
    },
  },
  {
    name: "save",
    usage: "save DIR [--gguf] [--pad-mlp] [--force]",
    summary: "write the model (HF safetensors, or GGUF with --gguf)",
    details: [
      "Refuses an existing non-empty DIR unless --force, which replaces only an earlier",
      "sdmprune output (the files listed in its .sdmprune-manifest.json). --pad-mlp pads layers of",
      "different widths with zero channels so stock transformers and llama.cpp load it.",
    ],
    flags: {
      gguf: { type: "bool", help: "write DIR/model.gguf" },
      "pad-mlp": { type: "bool", help: "one MLP width (zero channels, same outputs)" },
      force: { type: "bool", help: "replace an earlier sdmprune output in DIR" },
    },
    positional: "path",
  },
  {
    name: "scores",
    usage: "scores save|load FILE | scores merge FILE...",
    summary: "save, load or merge importance scores (JSON, the CLI's format)",
    details: [
      "save writes the running scores (a checkpoint of the CLI's --checkpoint is the same file).",
      "load replaces them; a following score adds only the calibration windows the file does not hold, so a checkpoint continues where it stopped.",
      "merge adds other runs' sums exactly (same criterion and settings, disjoint windows: e.g. shards); a file given twice or a window counted twice is refused.",
    ],
    flags: {},
    positional: ["save", "load", "merge"],
  },
  { name: "clear", usage: "clear", summary: "clear the screen", details: [], flags: {} },
  { name: "exit", aliases: ["quit"], usage: "exit", summary: "leave the REPL (also Ctrl-D, or Ctrl-C twice)", details: [], flags: {} },
];

export function findSpec(name: string): CommandSpec | undefined {
  return SPECS.find((s) => s.name === name || (s.aliases ?? []).includes(name));
}

export function suggest(name: string): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const s of SPECS)
    for (const n of [s.name, ...(s.aliases ?? [])]) {
      const dd = n.startsWith(name) ? 0 : distance(name, n);
      if (dd < bestD) {
        bestD = dd;
        best = n;
      }
    }
  return bestD <= 2 ? best : undefined;
}

function noMore(spec: CommandSpec, extra: Word[], expected: string): void {
  if (extra.length) throw new ArgError(`${spec.name}: unexpected argument "${extra[0].text}"; expected ${expected} (usage: ${spec.usage})`);
}

function one(spec: CommandSpec, pos: Word[], what: string): string {
  if (pos.length === 0) throw new ArgError(`${spec.name}: expected ${what}, got nothing (usage: ${spec.usage})`);
  noMore(spec, pos.slice(1), "nothing more");
  return pos[0].text;
}

/** Parses one line; null for a blank line. Throws ArgError on anything malformed. */
export function parseCommand(line: string): Command | null {
  const words = splitWords(line);
  if (words.length === 0) return null;
  const [head, ...rest] = words;
  const spec = findSpec(head.text);
  if (!spec) {
    const s = suggest(head.text);
    throw new ArgError(`unknown command "${head.text}"${s ? ` (did you mean "${s}"?)` : ""}; type "help" for the list of commands`);
  }
  const { positionals: pos, flags } = parseFlags(spec.name, rest, spec.flags);
  const f = flags as Record<string, never>;
  switch (spec.name) {
    case "help": {
      const topic = pos[0]?.text;
      noMore(spec, pos.slice(1), "at most one command name");
      if (topic !== undefined && !findSpec(topic)) throw new ArgError(`help: no command "${topic}"; type "help" for the list`);
      return { kind: "help", topic };
    }
    case "load":
      return { kind: "load", path: one(spec, pos, "a model PATH (.gguf file or HF directory)") };
    case "calibrate":
      noMore(spec, pos, "only options");
      return { kind: "calibrate", samples: f.samples, seqLen: f["seq-len"], seed: f.seed, text: f.text, stories: f.stories };
    case "score": {
      const criterion = one(spec, pos, `a CRITERION (${CRITERIA_HINT.join(", ")})`);
      if (f.alpha !== undefined && ((f.alpha as number) < 0 || (f.alpha as number) > 1))
        throw new ArgError(`score: --alpha expects a number in [0, 1], got ${f.alpha}`);
      if (f.temperature !== undefined && !((f.temperature as number) > 0)) throw new ArgError(`score: --temperature expects a number > 0, got ${f.temperature}`);
      return { kind: "score", criterion, alpha: f.alpha, temperature: f.temperature, samples: f.samples };
    }
    case "prune": {
      const keep = f.keep as number | undefined;
      const target = f.target as number | undefined;
      const twoStage = f["two-stage"] === true;
      const allocation = f.allocation as string | undefined;
      if (allocation !== undefined && allocation !== "uniform" && allocation !== "global") throw new ArgError(`prune: --allocation expects uniform or global, got "${allocation}"`);
      if (target !== undefined && !(target > 0 && target < 1)) throw new ArgError(`prune: --target expects a share with 0 < R < 1, got ${target}`);
      let ratio: number | undefined;
      if (pos.length > 0) {
        noMore(spec, pos.slice(1), "nothing after RATIO");
        const raw = pos[0].text;
        ratio = readValue("prune", "RATIO", raw, { type: "number", help: "" }) as number;
        if (!(ratio > 0 && ratio < 1)) throw new ArgError(`prune: RATIO expects a number with 0 < r < 1, got "${raw}"`);
      }
      const amounts = [ratio !== undefined && "RATIO", keep !== undefined && "--keep K", target !== undefined && "--target R"].filter((x): x is string => !!x);
      if (amounts.length === 0) throw new ArgError(`prune: expected RATIO (a number with 0 < r < 1), --keep K or --target R, got nothing (usage: ${spec.usage})`);
      if (amounts.length > 1) throw new ArgError(`prune: give either RATIO, --keep K or --target R, not both (got ${amounts.join(" and ")})`);
      if (twoStage && (ratio !== undefined || f.layers !== undefined || allocation !== undefined))
        throw new ArgError("prune: --two-stage prunes all layers uniformly to --target R or --keep K; drop RATIO, --layers and --allocation");
      if (!twoStage && (f.alpha !== undefined || f.temperature !== undefined)) throw new ArgError('prune: --alpha and --temperature belong to --two-stage (one-shot pruning uses the scores of "score")');
      return {
        kind: "prune",
        ratio,
        keep,
        target,
        twoStage,
        layers: f.layers,
        allocation: allocation as Allocation | undefined,
        alpha: f.alpha,
        temperature: f.temperature,
      };
    }
    case "recover": {
      noMore(spec, pos, "only options");
      if (f.steps === undefined) throw new ArgError(`recover: --steps N is required (usage: ${spec.usage})`);
      const loss = f.loss as string | undefined;
      if (loss !== undefined && loss !== "ce" && loss !== "kd" && loss !== "mix") throw new ArgError(`recover: --loss expects ce, kd or mix, got "${loss}"`);
      if (f.full && f["lora-r"] !== undefined) throw new ArgError("recover: --full and --lora-r exclude each other");
      if ((loss ?? "ce") !== "ce" && (f.data !== undefined || f.stories !== undefined))
        throw new ArgError(`recover: --loss ${loss} trains on the calibration windows (the teacher's); drop --data/--stories, or use --loss ce`);
      return {
        kind: "recover",
        steps: f.steps,
        data: f.data,
        stories: f.stories,
        seqLen: f["seq-len"],
        lr: f.lr,
        loss: loss as RecoverLoss | undefined,
        alpha: f.alpha,
        temperature: f.temperature,
        loraR: f["lora-r"],
        full: f.full === true,
        seed: f.seed,
      };
    }
    case "eval": {
      const out: Extract<Command, { kind: "eval" }> = { kind: "eval", limit: f.limit, seqLen: f["seq-len"], stories: f.stories, protocol: f.protocol, batchSize: f["batch-size"] };
      for (let i = 0; i < pos.length; i++) {
        const w = pos[i].text;
        const next = pos[i + 1];
        if (w === "ppl" || w === "tasks") {
          if (!next) throw new ArgError(`eval: "${w}" expects ${w === "ppl" ? "a text FILE" : "a comma-separated task list"}, got nothing (usage: ${spec.usage})`);
          if (w === "ppl") out.ppl = next.text;
          else out.tasks = readValue("eval", "tasks", next.text, { type: "list", help: "" }) as string[];
          i++;
        } else throw new ArgError(`eval: unexpected "${w}"; expected "ppl FILE" or "tasks a,b" (usage: ${spec.usage})`);
      }
      if (out.limit !== undefined && !out.tasks) throw new ArgError(`eval: --limit applies to tasks; expected "tasks a,b --limit N"`);
      for (const k of ["seq-len", "stories", "protocol", "batch-size"] as const)
        if (f[k] !== undefined && !out.ppl) throw new ArgError(`eval: --${k} applies to ppl; expected "ppl FILE --${k} ${spec.flags[k].value}"`);
      if (!out.ppl && !out.tasks) throw new ArgError(`eval: expected "ppl FILE" and/or "tasks a,b", got nothing (usage: ${spec.usage})`);
      return out;
    }
    case "layers":
      noMore(spec, pos, "only options");
      if (f.samples !== undefined && !f.sensitivity) throw new ArgError("layers: --samples applies to --sensitivity; expected \"layers --sensitivity --samples N\"");
      return { kind: "layers", sensitivity: f.sensitivity === true, samples: f.samples };
    case "generate": {
      if (pos.length === 0) throw new ArgError(`generate: expected a PROMPT, got nothing (usage: ${spec.usage})`);
      return { kind: "generate", prompt: pos.map((w) => w.text).join(" "), maxNewTokens: f["max-new-tokens"], temperature: f.temperature, seed: f.seed };
    }
    case "save":
      return { kind: "save", dir: one(spec, pos, "an output DIR"), gguf: f.gguf === true, force: f.force === true, padMlp: f["pad-mlp"] === true };
    case "scores": {
      const action = pos[0]?.text;
      if (action !== "save" && action !== "load" && action !== "merge")
        throw new ArgError(`scores: expected save, load or merge, got ${action === undefined ? "nothing" : `"${action}"`} (usage: ${spec.usage})`);
      if (action === "merge") {
        if (pos.length < 2) throw new ArgError(`scores merge: expected one or more scores FILEs, got nothing (usage: ${spec.usage})`);
        const files = pos.slice(1).map((w) => w.text);
        return { kind: "scores", action, file: files[0], files };
      }
      const file = one(spec, pos.slice(1), "a scores FILE");
      return { kind: "scores", action, file, files: [file] };
    }
    default:
      noMore(spec, pos, "no arguments");
      return { kind: spec.name } as Command;
  }
}

/** Breaks a help line at spaces so it fits `width`, continuing with the line's own indentation. */
function fit(line: string, width = 80): string[] {
  const indent = /^\s*/.exec(line)![0];
  const out: string[] = [];
  let rest = line;
  while (rest.length > width) {
    const cut = rest.lastIndexOf(" ", width);
    if (cut <= indent.length) break;
    out.push(rest.slice(0, cut));
    rest = indent + rest.slice(cut + 1);
  }
  out.push(rest);
  return out;
}

/** Text of `help` or `help NAME`. */
export function helpText(topic?: string): string {
  if (topic) {
    const s = findSpec(topic);
    if (!s) return `no command "${topic}"`;
    const lines = [`usage: ${s.usage}`, `  ${s.summary}`];
    if (s.aliases?.length) lines.push(`  aliases: ${s.aliases.join(", ")}`);
    for (const d of s.details) lines.push(`  ${d}`);
    const flags = Object.entries(s.flags);
    if (flags.length) {
      lines.push("  options:");
      const w = Math.max(...flags.map(([n, f]) => `--${n}${f.value ? " " + f.value : ""}`.length));
      for (const [n, f] of flags) lines.push(`    ${`--${n}${f.value ? " " + f.value : ""}`.padEnd(w)}  ${f.help}`);
    }
    return lines.flatMap((l) => fit(l)).join("\n");
  }
  const w = Math.max(...SPECS.map((s) => s.name.length));
  return [
    "commands (help COMMAND for details):",
    ...SPECS.map((s) => `  ${s.name.padEnd(w)}  ${s.summary}`),
    "keys: ↑/↓ history · Tab completes · Ctrl-C cancels a job (twice: quit)",
  ].join("\n");
}
