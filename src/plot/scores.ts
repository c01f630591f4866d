/**
 * Per-layer distributions of channel importance scores as box plots. Boxes are summarised here (quartiles,
 * Tukey fences) rather than shipping every score: a 7B model has 32 × 11008 channels, which would make each
 * notebook output megabytes of JSON.
 */
import { UsageError } from "../errors";
import { quantileSorted, type Distribution } from "../stats";
import { Figure, axis } from "./figure";

export interface BoxStats extends Distribution {
  n: number;
  /** Smallest value ≥ q1 − 1.5·IQR and largest value ≤ q3 + 1.5·IQR (Tukey whiskers). */
  lowerfence: number;
  upperfence: number;
}

/** Box statistics of the finite values (NaN/±Inf ignored). Throws when none are finite. */
export function boxStats(values: ArrayLike<number>, what = "values"): BoxStats {
  const finite: number[] = [];
  for (let i = 0; i < values.length; i++) if (Number.isFinite(values[i])) finite.push(values[i]);
  if (finite.length === 0) throw new UsageError(`boxStats: ${what} has no finite values (length ${values.length})`);
  const s = Float64Array.from(finite).sort();
  const q1 = quantileSorted(s, 0.25);
  const q3 = quantileSorted(s, 0.75);
  const iqr = q3 - q1;
  let lowerfence = s[0];
  let upperfence = s[s.length - 1];
  for (let i = 0; i < s.length; i++) if (s[i] >= q1 - 1.5 * iqr) { lowerfence = s[i]; break; }
  for (let i = s.length - 1; i >= 0; i--) if (s[i] <= q3 + 1.5 * iqr) { upperfence = s[i]; break; }
  let sum = 0;
  for (const v of s) sum += v;
  return { n: s.length, min: s[0], q1, median: quantileSorted(s, 0.5), q3, max: s[s.length - 1], mean: sum / s.length, lowerfence, upperfence };
}

export interface ScoreDistributionOptions {
  /** Criterion name for the title/axis, e.g. "sd-taylor". */
  criterion?: string;
  /** Log y-axis. Default: on when all scores are > 0 and span more than three decades. */
  logY?: boolean;
  title?: string;
}

/** One box per layer; `scores[l]` holds layer l's per-channel scores (current channel order). */
export function scoreDistributionFigure(scores: readonly ArrayLike<number>[], opts: ScoreDistributionOptions = {}): Figure {
  if (scores.length === 0) throw new UsageError("scoreDistributionFigure: expected scores for at least one layer, got none");
  const stats = scores.map((s, l) => boxStats(s, `scores of layer ${l}`));
  const min = Math.min(...stats.map((s) => s.min));
  const max = Math.max(...stats.map((s) => s.max));
  const logY = opts.logY ?? (min > 0 && max / min > 1e3);
  if (logY && min <= 0) throw new UsageError(`scoreDistributionFigure: logY needs positive scores, smallest is ${min}`);
  const layers = stats.map((_, l) => l);
  const label = opts.criterion ? `${opts.criterion} score` : "score";
  return new Figure(
    [
      {
        type: "box",
        name: label,
        x: layers,
        q1: stats.map((s) => s.q1),
        median: stats.map((s) => s.median),
        q3: stats.map((s) => s.q3),
        lowerfence: stats.map((s) => s.lowerfence),
        upperfence: stats.map((s) => s.upperfence),
        mean: stats.map((s) => s.mean),
        boxpoints: false,
        marker: { color: "#1f77b4" },
        hovertext: stats.map((s) => `${s.n} channels, min ${s.min.toPrecision(3)}, max ${s.max.toPrecision(3)}`),
      },
    ],
    {
      title: { text: opts.title ?? `Per-layer distribution of ${label}s` },
      xaxis: axis("layer", { tickmode: "array", tickvals: layers }),
      yaxis: axis(label, logY ? { type: "log" } : {}),
      showlegend: false,
    },
  );
}
