/**
 * Executes parsed REPL commands against one library Session and turns the results into text blocks.
 * Only calls the Session (no pruning logic here); it formats, scales charts to the width and keeps the
 * facts the status line shows.
 */
import * as os from "node:os";
import * as path from "node:path";
import { note, text, type Block, type RunContext, type Runner, type StatusInfo } from "./blocks";
import { barChart } from "./chart";
import type { Command, CriterionName } from "./commands";
import { findSharedFile, TINYSTORIES_FILE } from "./shared-data";
import type { ReplLibrary, ReplSession, SessionInfoLike } from "./session-api";
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

export function statusFrom(info: SessionInfoLike): StatusInfo {
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
        const r = await s.calibrate({ files: file, samples: cmd.samples, seqLen: cmd.seqLen, seed: cmd.seed, ...run });
        const out = [table(r.table()), note(`text: ${file}`)];
        if (r.scoresReset) out.push(note("previous scores were dropped (new windows start a new accumulator)"));
        return out;
      }
      case "score": {
        const r = await this.need().score({ criterion: cmd.criterion as CriterionName /* validated by the library */, alpha: cmd.alpha, temperature: cmd.temperature, samples: cmd.samples, ...run });
        return [table(r.table())];
      }
      case "layers":
        return this.layers(cmd.sensitivity, cmd.samples, ctx);
      case "prune": {
        const layers: [number, number] | undefined = cmd.layers ? [cmd.layers[0], cmd.layers[1] + 1] : undefined;
        const r = this.need().prune({ ratio: cmd.ratio, keep: cmd.keep, layers });
        return [table(r.table())];
      }
      case "undo": {
        const step = this.need().undo();
        return [text(`undid step ${step.step}: ${step.rule}`), text(`MLP widths back to ${step.widthsBefore.join(", ")}`)];
      }
      case "history":
        return [table(this.need().history)];
      case "eval": {
        const r = await this.need().evaluate({ ppl: cmd.ppl ? { file: this.resolve(cmd.ppl), seqLen: cmd.seqLen } : undefined, tasks: cmd.tasks, limit: cmd.limit, ...run });
        return [table(r)];
      }
      case "generate": {
        const s = this.need();
        const out = s.generate(cmd.prompt, { maxNewTokens: cmd.maxTokens ?? 40, temperature: cmd.temperature, seed: cmd.seed });
        return [text(`${cmd.prompt}${out}`)];
      }
      case "save": {
        const files = await this.need().save(this.resolve(cmd.dir), { format: cmd.gguf ? "gguf" : "hf", force: cmd.force });
        return [text(`saved ${files.length} file(s):`), ...files.map((f) => note(`  ${f}`))];
      }
      case "scores": {
        const s = this.need();
        const file = this.resolve(cmd.file);
        if (cmd.action === "save") {
          await s.saveScores(file);
          return [text(`scores saved to ${file}`)];
        }
        const acc = cmd.action === "load" ? await s.loadScores(file) : await s.mergeScores(file);
        return [text(`${cmd.action === "load" ? "loaded" : "merged"} ${file}: ${acc.criterion}, ${acc.samples} samples in total`)];
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
          { title: "MLP channels kept per layer", ascii: ctx.ascii },
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
