import * as path from "node:path";
import type { WindowIdentity, WindowProvenance, ShardSpec } from "./data/windows";
import type { EvaluationResult } from "./eval/harness";
import type { PruneStep } from "./history";
import type { ImportanceScores } from "./importance";
import type { ModelConfig } from "./model/config";
import { STAGE1_KEEP_FRACTION, type RecipePlan } from "./recipe";
import type { CalibrationInfo, InfoTable, PplRecord, PruneReport, SessionInfo } from "./session";
import { distribution } from "./stats";
import { Table, type Cell } from "./table";
import type { TopK } from "./teacher";

/**
 * The report tables of a Session (info, calibration, scores, pruning steps, the two-stage recipe,
 * evaluation): presentation only, built from what the Session computed.
 */

export function withRaw<R>(t: Table, raw: R): Table & { raw: R } {
  return Object.assign(t, { raw });
}

/** The family features that change the computation (CLI `info`, the Session's info table). */
export function familyNotes(c: ModelConfig): string {
  const n: string[] = [];
  if (c.qkv_bias) n.push(c.o_bias ? "q/k/v/o biases" : "q/k/v biases");
  if (c.qk_norm) n.push("q/k norms");
  if (c.gemma_norms) n.push("(1+w) sandwich norms, scaled embeddings");
  if (c.hidden_act !== "silu") n.push(c.hidden_act);
  if (c.sliding_window !== null) n.push(`sliding window ${c.sliding_window} on ${c.layer_types.filter((t) => t === "sliding_attention").length} of ${c.num_hidden_layers} layers`);
  if (c.query_pre_attn_scalar !== null) n.push(`query_pre_attn_scalar ${c.query_pre_attn_scalar}`);
  if (c.final_logit_softcapping !== null) n.push(`logit softcap ${c.final_logit_softcapping}`);
  return n.join("; ");
}

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;

/** The session overview; `backend` is the line describing the backend, `scoreSettings` those of the running scores. */
export function infoTable(raw: SessionInfo, backend: string, tied: boolean, scoreSettings: Record<string, unknown> | null): InfoTable {
  const p = raw.params;
  const o = raw.originalParams;
  const c = raw.calibration;
  const rows: Cell[][] = [
    ["model", `${raw.path} (${raw.format})`],
    ["model_type", raw.family ? `${raw.modelType} (${raw.family})` : raw.modelType],
    ["backend", backend],
    [
      "weights",
      raw.weightsIn === "heap"
        ? raw.hostFloat === "float16"
          ? "on the GPU as float16 (packed halves, each layer unpacked to float32 for its step); the model computes with, and saves, the float16-rounded weights"
          : "on the backend (resident)"
        : raw.weightsIn === "host"
          ? `host memory as ${raw.hostFloat}, one layer at a time on the backend (streamed)`
          : `decoder layers read from the checkpoint when they run, embedding and head in host memory as ${raw.hostFloat} (streamed)`,
    ],
    ...(raw.gpuMemory
      ? ([["GPU memory", `${mib(raw.gpuMemory.inUse)} in use, peak ${mib(raw.gpuMemory.peak)}, ${mib(raw.gpuMemory.held)} held by the backend (with its pool of freed buffers)`]] as Cell[][])
      : []),
    ["params", `${p.total.toLocaleString("en-US")} of ${o.total.toLocaleString("en-US")} (${((100 * (o.total - p.total)) / o.total).toFixed(2)} % removed)`],
    ["  embeddings / lm_head", `${p.embeddings.toLocaleString("en-US")} / ${p.lm_head.toLocaleString("en-US")}${tied ? " (tied)" : ""}`],
    ["  attention / MLP / norms", `${p.attention.toLocaleString("en-US")} / ${p.mlp.toLocaleString("en-US")} / ${p.norms.toLocaleString("en-US")}`],
    ["MLP widths now", raw.widths.join(", ")],
    ["MLP widths original", raw.originalWidths.join(", ")],
    [
      "calibration",
      c
        ? `${c.windows} windows × ${c.seqLen} tokens (${c.source}${c.provenance ? `, seed ${c.provenance.seed}, ${c.provenance.mode}` : ""}); teacher top-k ${c.topk}, ${(c.teacherBytes / 2 ** 20).toFixed(1)} MiB`
        : "none (call calibrate)",
    ],
    ["scores", raw.criterion !== null ? `${raw.criterion}, ${raw.scoredSamples} samples, settings ${JSON.stringify(scoreSettings)}` : "none"],
    ["pruning steps", raw.steps],
  ];
  return withRaw(new Table(["field", "value"], rows, { title: "Session" }), raw);
}

export function calibrationTable(info: CalibrationInfo, identity: WindowIdentity, shard: ShardSpec | null, provenance: WindowProvenance | null, files: string[]): Table {
  return new Table(
    ["field", "value"],
    [
      ["windows", shard ? `${info.windows} (shard ${shard.index}/${shard.count} of ${identity.draw.total}: ${identity.indices[0]}..${identity.indices[identity.indices.length - 1]})` : info.windows],
      ["draw", identity.draw.id],
      ["seq len", info.seqLen],
      ["source", info.source],
      ["seed", provenance ? provenance.seed : null],
      ["mode", provenance ? provenance.mode : null],
      ["files", files.length ? files.map((f) => path.basename(f)).join(", ") : null],
      ["teacher top-k", info.topk === null ? "none" : String(info.topk)],
      ["teacher cache MiB", info.teacherBytes / 2 ** 20],
      ["teacher seconds", info.teacherSeconds],
    ],
    { title: "Calibration", digits: 2 },
  );
}

export function scoreTable(r: { criterion: string; settings: Record<string, unknown>; samples: number; added: number; message: string; stability: number[] | null; seconds: number }): Table {
  return new Table(
    ["field", "value"],
    [
      ["criterion", r.criterion],
      ["settings", JSON.stringify(r.settings)],
      ["samples (total)", r.samples],
      ["samples added", r.added],
      ["accumulator", r.message],
      ["kept-set overlap at 20 % removal vs before (mean over layers)", r.stability ? r.stability.reduce((x, y) => x + y, 0) / r.stability.length : null],
      ["seconds", r.seconds],
    ],
    { title: "Importance scores" },
  );
}

/** Per-layer score distribution (min, quartiles, max, mean). */
export function scoreSummaryTable(acc: ImportanceScores): Table {
  const rows = acc.scores().map((v, l) => {
    const d = distribution(v);
    return [l, v.length, d.min, d.q1, d.median, d.q3, d.max, d.mean];
  });
  return new Table(["layer", "channels", "min", "q1", "median", "q3", "max", "mean"], rows, { title: `${acc.criterion} scores (${acc.samples} samples)` });
}

export function pruneReport(step: PruneStep): PruneReport {
  const a = step.accounting;
  return {
    step,
    accounting: a,
    widthsBefore: step.widthsBefore,
    widthsAfter: step.widthsAfter,
    table: () =>
      new Table(
        ["", "before", "after", "removed", "% of MLP", "% of model"],
        [
          ["MLP channels", a.channelsBefore, a.channelsAfter, a.channelsRemoved, 100 * a.stepMlpShare, null],
          ["parameters", a.paramsBefore, a.paramsAfter, a.paramsRemoved, 100 * a.stepMlpShare, 100 * a.stepTotalShare],
        ],
        {
          title: `Pruning step ${step.step}${step.label ? ` (${step.label})` : ""}: ${step.rule}`,
          digits: 2,
          notes: [
            `layers [${step.layers[0]}, ${step.layers[1]}), ${step.allocation}; criterion ${step.criterion ?? "–"} (${step.samples} samples)`,
            `widths after: ${step.widthsAfter.join(", ")}`,
            `cumulative vs original: ${(100 * a.mlpParamsRemovedShare).toFixed(2)} % of MLP params, ${(100 * a.totalParamsRemovedShare).toFixed(2)} % of all params (tied embedding counted once)`,
          ],
        },
      ),
  };
}

export function sdmpruneTable(r: { plan: RecipePlan; stage1: PruneReport; stage2: PruneReport; windows: [number, number]; seed: number; samples: number; seqLen: number; topk: TopK }): Table {
  const { plan, stage1, stage2 } = r;
  const t = stage2.table();
  return new Table(
    ["stage", "criterion", "windows", "K (layer 0)", "params after", "% model removed", "% MLP removed"],
    [
      ["1", "ce-taylor", r.windows[0], plan.stage1Keep[0], stage1.accounting.paramsAfter, 100 * stage1.accounting.totalParamsRemovedShare, 100 * stage1.accounting.mlpParamsRemovedShare],
      ["2", `sd-taylor (α ${plan.alpha}, τ ${plan.temperature})`, r.windows[1], plan.finalKeep[0], stage2.accounting.paramsAfter, 100 * stage2.accounting.totalParamsRemovedShare, 100 * stage2.accounting.mlpParamsRemovedShare],
    ],
    {
      title: "SDMPrune (two stages)",
      digits: 2,
      notes: [
        `target ${plan.target ?? "–"}; α/τ from ${plan.settingsSource}; seed ${r.seed}, ${r.samples} windows × ${r.seqLen} tokens per stage (streams sdmprune/stage1, sdmprune/stage2)`,
        `teacher = original model (top-k ${r.topk}); stage 1 keeps floor(${STAGE1_KEEP_FRACTION}·width) per layer`,
        ...t.notes,
      ],
    },
  );
}

/** The evaluation table: perplexity row, task rows, and notes on protocol, model size, provenance and warnings. */
export function evaluationTable(r: { ppl: PplRecord | null; tasks: EvaluationResult | null; params: number; steps: number; prior: { rule: string; label?: string }[]; warnings: string[] }): Table {
  const { ppl, tasks, params, steps, prior, warnings } = r;
  const rows: Cell[][] = [];
  const notes: string[] = [];
  if (ppl) {
    rows.push([`ppl: ${ppl.source}`, `ppl@${ppl.seqLen}`, ppl.ppl, ppl.tokens, null]);
    notes.push(`perplexity: ${ppl.windows} non-overlapping windows of ${ppl.seqLen} tokens, ${ppl.tokens} predicted tokens (seq len ${ppl.seqLen})`);
    notes.push(`protocol ${ppl.protocol}`);
  }
  if (tasks) {
    rows.push(...tasks.table.rows);
    notes.push(...tasks.table.notes);
  }
  notes.push(`model: ${params.toLocaleString("en-US")} params after ${steps} pruning step(s) in this session`);
  if (prior.length > 0) notes.push(`loaded model was pruned before (provenance): ${prior.map((p, i) => `${i + 1}. ${p.label ? `${p.label}: ` : ""}${p.rule}`).join("; ")}`);
  notes.push(...warnings.map((w) => `WARNING: ${w}`));
  return new Table(["task", "metric", "value", "n", "stderr"], rows, { title: "Evaluation", notes });
}
