/**
 * Criteria on stories260K: TinyStories-valid perplexity after removing 20 / 30 / 40 % of each layer's MLP
 * channels, for every importance criterion and for the two-stage recipe, plus how far a top-k teacher cache
 * moves sd-taylor's kept channel sets away from the exact (full) cache.
 *
 *   npx tsx bench/criteria.ts [--quick] [--batch N] [--json FILE]
 *
 * Calibration: stories 1–200 of the shared TinyStories-valid dump, 32 windows × 128 tokens, seed 0.
 * Perplexity: stories 500–999 (--quick: 500–599) joined with "\n\n", tokenized once with one BOS, cut into
 * non-overlapping 128-token windows (docs/method.md, "Perplexity"). Everything printed is computed by this run.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spearman } from "../src/stats";
import { sharedPath } from "../test/support/shared";
import {
  CRITERIA,
  Session,
  Table,
  evalWindows,
  joinDocs,
  planSdmprune,
  selectStories,
  splitTinyStories,
  readText,
  storyRange,
  topKIndices,
  type Criterion,
  type ScoreOptions,
  type TopK,
} from "../src";

const RATIOS = [0.2, 0.3, 0.4] as const;
const SD_ALPHA = 0.4;
const SD_TEMPERATURE = 0.2;
const CALIB = { stories: "1-200", samples: 32, seqLen: 128, seed: 0 };
const TOPKS: TopK[] = [8, 32, "full"];

interface Args {
  quick: boolean;
  batch: number;
  json: string | null;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { quick: false, batch: 16, json: null };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i];
    if (x === "--quick") a.quick = true;
    else if (x === "--batch") a.batch = Number(argv[++i]);
    else if (x === "--json") a.json = argv[++i];
    else throw new Error(`unknown argument ${JSON.stringify(x)} (expected --quick, --batch N, --json FILE)`);
  }
  if (!Number.isInteger(a.batch) || a.batch < 1) throw new Error(`--batch must be a positive integer, got ${a.batch}`);
  return a;
}

function mean(xs: number[]): number {
  return xs.reduce((s, x) => s + x, 0) / xs.length;
}

function secs(t0: number): number {
  return (Date.now() - t0) / 1000;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const tStart = Date.now();
  const shared = sharedPath();
  const modelPath = path.join(shared, "models", "stories260K.gguf");
  const dataFile = path.join(shared, "data", "tinystories", "tinystories_valid_first1000.txt");
  const evalStories = args.quick ? "500-599" : "500-999";
  const parts: [string, number][] = [];

  let t0 = Date.now();
  const s = await Session.load(modelPath);
  const widths = s.info().raw.originalWidths;
  const cpus = os.cpus();
  console.log(`machine: ${cpus.length} cores (${cpus[0]?.model.trim() ?? "unknown"}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, load average ${os.loadavg().map((x) => x.toFixed(2)).join(" / ")}`);
  console.log(`node ${process.version}, backend ${s.backend}; model ${path.basename(modelPath)} (${s.info().raw.originalParams.total.toLocaleString("en-US")} params, MLP widths ${widths.join(", ")})`);

  // Evaluation windows: tokenized once and reused (same windows Session.evaluate({ppl:{file, stories}}) cuts).
  const r = storyRange(evalStories);
  const evalText = joinDocs(selectStories(splitTinyStories(readText(dataFile)), r.from, r.to));
  const evalIds = s.tokenizer!.encode(evalText, { addBos: true });
  const windows = evalWindows(evalIds, 128);
  parts.push(["load + tokenize", secs(t0)]);
  console.log(`eval: stories ${evalStories}, ${evalIds.length} tokens → ${windows.length} windows × 128 (${evalIds.length - windows.length * 128} dropped), batch ${args.batch}`);

  let evalSeconds = 0;
  let evals = 0;
  const ppl = async (): Promise<number> => {
    const te = Date.now();
    const e = await s.evaluate({ ppl: { windows, batchSize: args.batch } });
    evalSeconds += secs(te);
    evals++;
    return e.raw.ppl!.ppl;
  };

  // Cross-check once that the given windows reproduce the file-based protocol of Session.evaluate.
  t0 = Date.now();
  const base = await ppl();
  const viaFile = await s.evaluate({ ppl: { file: dataFile, stories: evalStories, seqLen: 128, batchSize: args.batch } });
  const baseFile = viaFile.raw.ppl!.ppl;
  if (Math.abs(baseFile - base) > 1e-9 * base) throw new Error(`windows ppl ${base} differs from file-protocol ppl ${baseFile}`);
  parts.push(["unpruned ppl (twice: windows + file protocol)", secs(t0)]);
  console.log(`unpruned ppl@128 ${base.toFixed(4)} (file protocol: ${baseFile.toFixed(4)}); ${(secs(t0) / 2).toFixed(1)} s per evaluation`);

  // ---------------------------------------------------------------- table 1: criteria × ratio
  t0 = Date.now();
  const cal = await s.calibrate({ files: dataFile, ...CALIB });
  parts.push([`calibrate (${cal.windows} × ${cal.seqLen}, teacher top-k ${cal.topk})`, secs(t0)]);
  const keepOf = (ratio: number) => widths.map((w) => Math.floor(w * (1 - ratio) + 1e-9));

  const rows: (string | number | null)[][] = [];
  const scoreSecs: Record<string, number> = {};
  /** sd-taylor scores with the exact (full) cache from the first calibration: the reference of table 2. */
  let reference: number[][] | null = null;
  for (const criterion of CRITERIA) {
    t0 = Date.now();
    const opts: ScoreOptions = { criterion };
    if (criterion === "sd-taylor") Object.assign(opts, { alpha: SD_ALPHA, temperature: SD_TEMPERATURE });
    await s.score(opts);
    scoreSecs[criterion] = secs(t0);
    if (criterion === "sd-taylor") reference = s.scores!.scores().map((x) => Array.from(x));
    const label = criterion === "sd-taylor" ? `sd-taylor (α ${SD_ALPHA}, τ ${SD_TEMPERATURE})` : criterion;
    const row: (string | number | null)[] = [label];
    t0 = Date.now();
    for (const ratio of RATIOS) {
      s.prune({ ratio });
      row.push(await ppl());
      s.undo();
    }
    row.push(scoreSecs[criterion], secs(t0));
    rows.push(row);
    parts.push([`${criterion}: score + ${RATIOS.length} prune/eval/undo`, scoreSecs[criterion] + secs(t0)]);
    console.log(`  ${label}: ${row.slice(1, 1 + RATIOS.length).map((x) => (x as number).toFixed(3)).join(" / ")} (score ${scoreSecs[criterion].toFixed(1)} s)`);
  }

  // Two-stage recipe at the same final widths (keep = floor(width·(1−ratio))), α/τ as the sd-taylor row.
  const recipeRow: (string | number | null)[] = [`sdmprune 2-stage (keep; α ${SD_ALPHA}, τ ${SD_TEMPERATURE})`];
  const recipeNotes: string[] = [];
  t0 = Date.now();
  for (const ratio of RATIOS) {
    const keep = keepOf(ratio);
    if (keep.some((k) => k !== keep[0])) throw new Error(`sdmprune keep takes one K for all layers; widths differ (${widths.join(", ")})`);
    const rep = await s.sdmprune({ keep: keep[0], alpha: SD_ALPHA, temperature: SD_TEMPERATURE, samples: CALIB.samples, seqLen: CALIB.seqLen, seed: CALIB.seed });
    recipeRow.push(await ppl());
    recipeNotes.push(
      `ratio ${ratio}: stage 1 keep ${rep.plan.stage1Keep[0]}, stage 2 keep ${rep.plan.finalKeep[0]} (${(100 * rep.stage2.accounting.totalParamsRemovedShare).toFixed(2)} % of params); paper row the defaults would pick: ${
        planDefault(s, keep[0])
      }`,
    );
    s.undo();
    s.undo();
  }
  const recipeSecs = secs(t0);
  recipeRow.push(null, recipeSecs);
  rows.push(recipeRow);
  parts.push([`sdmprune 2-stage × ${RATIOS.length} (teacher + 2 scorings + eval each)`, recipeSecs]);
  console.log(`  ${recipeRow[0]}: ${recipeRow.slice(1, 1 + RATIOS.length).map((x) => (x as number).toFixed(3)).join(" / ")}`);

  const params = RATIOS.map((ratio) => keepOf(ratio)[0]);
  const t1 = new Table(
    ["criterion", ...RATIOS.map((r, i) => `ppl −${Math.round(100 * r)}% (K ${params[i]})`), "score s", "3× prune+eval s"],
    [["unpruned", base, base, base, null, null], ...rows],
    {
      title: `stories260K: TinyStories-valid ppl@128 (stories ${evalStories}, ${windows.length} windows) after removing MLP channels per layer`,
      digits: 3,
      notes: [
        `calibration: stories ${CALIB.stories}, ${CALIB.samples} windows × ${CALIB.seqLen} tokens, seed ${CALIB.seed}; teacher top-k ${cal.topk}; uniform per-layer K = floor(${widths[0]}·(1−ratio))`,
        `sdmprune: Session.sdmprune({keep: K, alpha ${SD_ALPHA}, temperature ${SD_TEMPERATURE}}): stage 1 ce-taylor to floor(0.975·width), stage 2 sd-taylor vs the original teacher, fresh windows per stage (same seed, streams sdmprune/stage1, /stage2)`,
        ...recipeNotes,
      ],
    },
  );

  console.log("");
  console.log(t1.toText());

  // ---------------------------------------------------------------- table 2: top-k teacher cache
  const tk0 = Date.now();
  const byK = new Map<TopK, { scores: number[][]; tail: number; tailMean: number; teacherS: number; scoreS: number; mib: number }>();
  for (const topk of TOPKS) {
    t0 = Date.now();
    const c = await s.calibrate({ files: dataFile, ...CALIB, topk });
    const tCal = secs(t0);
    t0 = Date.now();
    await s.score({ criterion: "sd-taylor", alpha: SD_ALPHA, temperature: SD_TEMPERATURE });
    const tail = s.teacher!.tailStats(SD_TEMPERATURE);
    byK.set(topk, { scores: s.scores!.scores().map((x) => Array.from(x)), tail: tail.maxTailBound, tailMean: tail.meanTailBound, teacherS: tCal, scoreS: secs(t0), mib: c.teacherBytes / 2 ** 20 });
  }
  parts.push([`top-k: ${TOPKS.length} × (calibrate + sd-taylor score)`, secs(tk0)]);
  if (!reference) throw new Error("sd-taylor reference scores missing");
  const exact = reference;
  const f = (x: number, d: number) => x.toFixed(d);
  const rows2: (string | number | null)[][] = [];
  for (const topk of TOPKS) {
    const got = byK.get(topk)!;
    const row: (string | number | null)[] = [String(topk), f(got.mib, 2), got.tailMean.toExponential(2), got.tail.toExponential(2)];
    for (const ratio of RATIOS) {
      const keep = keepOf(ratio);
      let inter = 0;
      let union = 0;
      for (let l = 0; l < widths.length; l++) {
        const a = new Set(topKIndices(exact[l], keep[l]));
        const b = topKIndices(got.scores[l], keep[l]);
        const same = b.filter((i) => a.has(i)).length;
        inter += same;
        union += a.size + b.length - same;
      }
      row.push(f(inter / union, 4), f(inter / keep.reduce((x, y) => x + y, 0), 4));
    }
    const rho = exact.map((e, l) => spearman(e, got.scores[l]));
    row.push(f(mean(rho), 6), f(Math.min(...rho), 6), f(got.teacherS, 1), f(got.scoreS, 1));
    rows2.push(row);
  }
  const t2 = new Table(
    ["teacher top-k", "cache MiB", "tail bound mean", "tail bound max", ...RATIOS.flatMap((r) => [`Jaccard −${Math.round(100 * r)}%`, `overlap −${Math.round(100 * r)}%`]), "Spearman mean", "Spearman min", "teacher s", "score s"],
    rows2,
    {
      title: `sd-taylor (α ${SD_ALPHA}, τ ${SD_TEMPERATURE}) kept channels with a top-k teacher cache vs the exact (full) cache of table 1`,
      digits: 4,
      notes: [
        `same ${CALIB.samples} calibration windows for every k; Jaccard = |A∩B| / |A∪B| and overlap = |A∩B| / K pooled over the ${widths.length} layers; Spearman of the per-layer score vectors (mean / min over layers)`,
        `reference = the sd-taylor scores of table 1 (full cache); the "full" row recomputes them from a fresh calibrate() with the same seed (a determinism check)`,
        `tail bound: upper bound on the teacher probability mass at τ ${SD_TEMPERATURE} that the cache drops, mean and maximum over the ${CALIB.samples}·${CALIB.seqLen} positions (0 for full)`,
      ],
    },
  );

  console.log("");
  console.log(t2.toText());
  console.log("");
  const wall = new Table(["part", "seconds"], [...parts, [`of which ${evals} perplexity evaluations`, evalSeconds], ["total", secs(tStart)]], { title: `wall time (${cpus.length} cores, backend ${s.backend})`, digits: 1 });
  console.log(wall.toText());
  if (args.json) {
    const body = JSON.stringify({ machine: { cores: cpus.length, model: cpus[0]?.model, backend: s.backend, node: process.version }, evalStories, windows: windows.length, table1: { columns: t1.columns, rows: t1.rows }, table2: { columns: t2.columns, rows: t2.rows }, parts }, null, 1);
    const tmp = `${args.json}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, body);
    fs.renameSync(tmp, args.json);
  }
  s.dispose();
}

/** What Session.sdmprune would take from the paper table for this K without explicit α/τ (for the notes). */
function planDefault(s: Session, keep: number): string {
  const p = planSdmprune(s.originalConfig, { keep });
  return `α ${p.alpha}, τ ${p.temperature} (${p.settingsSource})`;
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack ?? e.message : e);
  process.exit(1);
});
