/**
 * Executes parsed REPL commands against one library Session and turns the results into text blocks.
 * Only calls the Session (no pruning logic here); it formats, scales charts to the width and keeps the
 * facts the status line shows.
 */
import * as os from "node:os";
import * as path from "node:path";
import { note, text, type Block, type RunContext, type Runner, type StatusInfo } from "./blocks";
import { barChart } from "./chart";
import type { Criterion } from "../src/importance";
import type { PplProtocol } from "../src/session";
import type { Command } from "./commands";
import { findSharedFile, TINYSTORIES_FILE } from "./shared-data";
import type { ReplLibrary, ReplSession, SessionInfo } from "./session-api";
import { tableText } from "./table-text";

/** An error the REPL reports as such (red line), e.g. a command that needs a model when none is loaded. */
export class ReplError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ReplError";
  }
}

function compact(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

/** Per-layer widths as briefly as they can be read: "768×5", the list when short, else the range. */
function widthsText(ws: number[]): string {
  if (ws.length === 0) return "–";
  const min = Math.min(...ws);
  const max = Math.max(...ws);
  if (min === max) return `${min}×${ws.length}`;
  const list = ws.join(",");
  return list.length <= 24 ? list : `${min}–${max}`;
}

/**
 * The library's messages name its own calls ("call calibrate() first"); the REPL says which REPL command
 * to type instead. Order matters: specific phrases first, then any remaining `name()`.
 */
const REPL_WORDS: [RegExp, string][] = [
  [/call score\(\) \(or loadScores\) before prune\(\)/g, 'run "score CRITERION" (or "scores load FILE") before "prune"'],
  [/\(or calibrate\(\) from text first\)/g, '(run "calibrate" first)'],
  [/calibrate\(\) without teacher: false/g, 'run "calibrate" first'],
  [/calibrate\(\) with more samples/g, 'run "calibrate --samples N" with more windows'],
  [/\(call (calibrate|score) first\)/g, '(run "$1" first)'],
  [/call (calibrate|score)\(\) first/g, 'run "$1" first'],
  [/mergeScores\(\)/g, '"scores merge FILE"'],
  [/loadScores\(\)/g, '"scores load FILE"'],
  [/\bsdmprune starts from/g, "prune --two-stage starts from"],
  [/\bsdmprune draws/g, "prune --two-stage draws"],
  [/\bseqLen\b/g, "--seq-len"],
  [/\b(undo|recover|calibrate|score|prune|evaluate)\(\)/g, '"$1"'],
];

export function replWords(message: string): string {
  return REPL_WORDS.reduce((m, [re, by]) => m.replace(re, by), message).replace(/"evaluate"/g, '"eval"');
}

export function statusFrom(info: SessionInfo): StatusInfo {
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const keptPct = (100 * sum(info.widths)) / Math.max(1, sum(info.originalWidths));
  const removed = 1 - info.params.total / Math.max(1, info.originalParams.total);
  const c = info.calibration;
  return {
    model: path.basename(info.path),
    backend: info.adapter ? `${info.backend} ${info.adapter.device || info.adapter.description}${info.adapter.software ? " (software)" : ""}` : info.backend,
    params: `${compact(info.params.total)}${removed > 0 ? ` (−${(100 * removed).toFixed(1)}%)` : ""} params`,
    channels: `MLP ${widthsText(info.widths)}${keptPct < 100 ? ` (${keptPct.toFixed(0)}% kept)` : ""}`,
    samples: c ? `calib ${c.windows}×${c.seqLen}` : "no calib",
    criterion: info.criterion ? `${info.criterion}${info.scoredSamples > 0 ? ` ×${info.scoredSamples}` : ""}` : "no scores",
  };
}

export class SessionRunner implements Runner {
  private session: ReplSession | null = null;
  private statusCache: StatusInfo | null = null;

  constructor(private readonly lib: ReplLibrary, private readonly cwd: string = process.cwd()) {}

  status(): StatusInfo | null {
    return this.statusCache;
  }

  /** The open session (tests inspect it). */
  get current(): ReplSession | null {
    return this.session;
  }

  close(): void {
    this.session?.dispose();
    this.session = null;
  }

  private need(): ReplSession {
    if (!this.session) throw new ReplError('no model loaded; use "load PATH" first');
    return this.session;
  }

  private refresh(): void {
    this.statusCache = this.session ? statusFrom(this.session.info().raw) : null;
  }

  private resolve(p: string): string {
    return path.resolve(this.cwd, p === "~" || p.startsWith("~/") ? path.join(os.homedir(), p.slice(1)) : p);
  }

  async execute(cmd: Command, ctx: RunContext): Promise<Block[]> {
    try {
      return await this.dispatch(cmd, ctx);
    } catch (e) {
      if (e instanceof Error && !(e instanceof ReplError) && e.name !== "CancelledError" && e.name !== "AbortError") e.message = replWords(e.message);
      throw e;
    } finally {
      // Even a failed or cancelled command may have changed the session (e.g. whole samples kept).
      if (this.session) this.refresh();
    }
  }

  private async dispatch(cmd: Command, ctx: RunContext): Promise<Block[]> {
    const run = { onProgress: ctx.onProgress, signal: ctx.signal };
    const table = (t: Parameters<typeof tableText>[0]) => text(tableText(t, ctx.width));
    switch (cmd.kind) {
      case "load": {
        const next = await this.lib.openSession(this.resolve(cmd.path));
        this.session?.dispose();
        this.session = next;
        this.refresh();
        return [table(next.info())];
      }
      case "info":
        return [table(this.need().info())];
      case "calibrate": {
        const s = this.need();
        let file = cmd.text ? this.resolve(cmd.text) : null;
        if (!file) {
          const found = findSharedFile(TINYSTORIES_FILE, process.env, this.cwd);
          if (!found.file)
            throw new ReplError(`calibrate: no --text FILE given and no TinyStories text found (looked for ${found.tried.join(", ")}); give --text FILE or set SDMPRUNE_SHARED`);
          file = found.file;
        }
        const r = await s.calibrate({ files: file, stories: cmd.stories, samples: cmd.samples, seqLen: cmd.seqLen, seed: cmd.seed, ...run });
        const out = [table(r.table()), note(`text: ${file}${cmd.stories ? `, stories ${cmd.stories}` : ""}`)];
        if (r.scoresReset) out.push(note("previous scores were dropped (new windows start a new accumulator)"));
        return out;
      }
      case "score": {
        const r = await this.need().score({ criterion: cmd.criterion as Criterion /* validated by the library */, alpha: cmd.alpha, temperature: cmd.temperature, samples: cmd.samples, ...run });
        return [table(r.table())];
      }
      case "layers":
        return this.layers(cmd.sensitivity, cmd.samples, ctx);
      case "prune": {
        const s = this.need();
        if (cmd.twoStage) {
          const r = await s.sdmprune({ target: cmd.target, keep: cmd.keep, alpha: cmd.alpha, temperature: cmd.temperature, ...run });
          return [table(r.table())];
        }
        const r = s.prune({ ratio: cmd.ratio, keep: cmd.keep, target: cmd.target, layers: cmd.layers, allocation: cmd.allocation });
        return [table(r.table())];
      }
      case "recover": {
        const s = this.need();
        let data: { file: string; stories?: string; seqLen?: number } | undefined;
        if ((cmd.loss ?? "ce") === "ce") {
          let file = cmd.data ? this.resolve(cmd.data) : null;
          if (!file) {
            const found = findSharedFile(TINYSTORIES_FILE, process.env, this.cwd);
            if (!found.file) throw new ReplError(`recover: no --data FILE given and no TinyStories text found (looked for ${found.tried.join(", ")}); give --data FILE`);
            file = found.file;
          }
          data = { file, stories: cmd.stories, seqLen: cmd.seqLen };
        }
        const r = await s.recover({
          steps: cmd.steps,
          lr: cmd.lr,
          data,
          loss: cmd.loss,
          alpha: cmd.alpha,
          temperature: cmd.temperature,
          lora: cmd.full ? null : { r: cmd.loraR },
          seed: cmd.seed,
          ...run,
        });
        r.adapters?.dispose();
        return [table(r.table()), note(`data: ${r.source}; merged into the weights (undo is no longer available)`)];
      }
      case "undo": {
        const step = this.need().undo();
        return [text(`undid step ${step.step}: ${step.rule}`), text(`MLP widths back to ${step.widthsBefore.join(", ")}`)];
      }
      case "history":
        return [table(this.need().history)];
      case "eval": {
        const protocol = cmd.protocol as PplProtocol | undefined; // checked by the library
        const r = await this.need().evaluate({ ppl: cmd.ppl ? { file: this.resolve(cmd.ppl), seqLen: cmd.seqLen, stories: cmd.stories, protocol, batchSize: cmd.batchSize } : undefined, tasks: cmd.tasks, limit: cmd.limit, ...run });
        return [table(r)];
      }
      case "generate": {
        const s = this.need();
        const out = s.generate(cmd.prompt, { maxNewTokens: cmd.maxNewTokens, temperature: cmd.temperature, seed: cmd.seed });
        return [text(`${cmd.prompt}${out}`)];
      }
      case "save": {
        const files = await this.need().save(this.resolve(cmd.dir), { format: cmd.gguf ? "gguf" : "hf", force: cmd.force, padMlp: cmd.padMlp });
        return [text(`saved ${files.length} file(s):`), ...files.map((f) => note(`  ${f}`))];
      }
      case "scores": {
        const s = this.need();
        const file = this.resolve(cmd.file);
        if (cmd.action === "save") {
          await s.saveScores(file);
          return [text(`scores saved to ${file}`)];
        }
        if (cmd.action === "load") {
          const acc = await s.loadScores(file);
          return [text(`loaded ${file}: ${acc.criterion}, ${acc.samples} samples in total`)];
        }
        const files = cmd.files.map((f) => this.resolve(f));
        const acc = await s.mergeScores(files);
        return [text(`merged ${files.join(", ")}: ${acc.criterion}, ${acc.samples} samples in total`)];
      }
      default:
        throw new ReplError(`internal: "${cmd.kind}" is handled by the app`);
    }
  }

  /**
   * Bar charts of channels kept and mean score per layer with the score summary table; with
   * `sensitivity`, the Session's layer sensitivity table and a chart of the loss increase per layer.
   */
  private async layers(sensitivity: boolean, samples: number | undefined, ctx: RunContext): Promise<Block[]> {
    const s = this.need();
    const info = s.info().raw;
    const out: Block[] = [];
    const chartWidth = Math.min(ctx.width, 100);
    out.push(
      text(
        barChart(
          info.widths.map((w, l) => ({ label: `L${l}`, value: w / Math.max(1, info.originalWidths[l]), note: `${w}/${info.originalWidths[l]}` })),
          chartWidth,
          // full scale = the original width, so a pruned layer's bar is visibly shorter
          { title: "MLP channels kept per layer (of the original width)", ascii: ctx.ascii, max: 1 },
        ).join("\n"),
      ),
    );
    if (sensitivity) {
      const r = await s.sensitivity({ samples, onProgress: ctx.onProgress, signal: ctx.signal });
      out.push(text(tableText(r, ctx.width)));
      const bars = r.raw.mlpIncrease.flatMap((m, l) => [
        { label: `L${l} mlp`, value: m },
        { label: `L${l} attn`, value: r.raw.attentionIncrease[l] },
      ]);
      out.push(text(barChart(bars, chartWidth, { title: "loss increase with the block switched off (nats)", ascii: ctx.ascii }).join("\n")));
    }
    if (!info.criterion) {
      out.push(note('no scores yet: "score CRITERION" adds a per-layer score chart'));
      return out;
    }
    const summary = s.scoreSummary();
    out.push(text(tableText(summary, ctx.width)));
    const meanCol = summary.columns.indexOf("mean");
    if (meanCol >= 0)
      out.push(
        text(
          barChart(
            summary.rows.map((r, l) => ({ label: `L${l}`, value: Number(r[meanCol]) })),
            chartWidth,
            { title: `mean ${info.criterion} score per layer`, ascii: ctx.ascii },
          ).join("\n"),
        ),
      );
    return out;
  }
}
