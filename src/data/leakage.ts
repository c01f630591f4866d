/**
 * Calibration text that leaks into evaluation text. Perplexity measured on text the importance scores were
 * computed from flatters the pruned model; the overlap is found at two levels:
 *
 * - documents: calibration documents (TinyStories stories, after any story range) that also occur verbatim
 *   (after trimming) among the evaluation documents. When either side is one undivided text (WikiText rows,
 *   a plain file), lines of at least MIN_LINE_CHARS characters shared by both are counted instead.
 * - windows: calibration windows of which a run of `min(MAX_RUN, length − 1)` tokens, starting after the
 *   first token (which may be the BOS of a per-document tokenization), occurs in the evaluation token stream.
 *
 * Both checks are exact (hash candidates are verified token by token), so a warning is never a hash collision;
 * short generic phrases ("Once upon a time") do not trigger it because lines are long and runs are 64 tokens
 * (or the whole window when shorter).
 */

export const MIN_LINE_CHARS = 40;
export const MAX_RUN = 64;

export interface LeakageInput {
  calibration: { windows: number[][]; docs: string[] | null; label: string; firstDoc?: number };
  evaluation: { ids: number[] | null; docs: string[] | null; label: string; firstDoc?: number };
}

export interface LeakageReport {
  /** Calibration windows found verbatim in the evaluation tokens (indices), or null when not checked. */
  windows: number[] | null;
  windowRun: number;
  /** Shared documents as [calibration number, evaluation number], 1-based in their files' numbering. */
  documents: [number, number][];
  /** Shared long lines (when a side is one undivided text). */
  lines: number;
  /** Human warning naming the overlap, or null when there is none. */
  message: string | null;
}

const P = 2147483647; // 2^31 − 1: h·B stays below 2^53
const B = 1000003;

function hashRun(ids: ArrayLike<number>, from: number, n: number): number {
  let h = 0;
  for (let i = from; i < from + n; i++) h = (h * B + ids[i] + 1) % P;
  return h;
}

/** Offsets of every run of `n` tokens in `ids`, by rolling hash. */
function runIndex(ids: number[], n: number): Map<number, number[]> {
  const index = new Map<number, number[]>();
  if (ids.length < n) return index;
  let pow = 1;
  for (let i = 1; i < n; i++) pow = (pow * B) % P;
  let h = hashRun(ids, 0, n);
  for (let off = 0; ; off++) {
    const list = index.get(h);
    if (list) list.push(off);
    else index.set(h, [off]);
    if (off + n >= ids.length) break;
    h = (h - ((((ids[off] + 1) * pow) % P) - P)) % P; // remove the leading token (kept non-negative)
    h = (h * B + ids[off + n] + 1) % P;
  }
  return index;
}

function sameRun(a: ArrayLike<number>, ai: number, b: ArrayLike<number>, bi: number, n: number): boolean {
  for (let k = 0; k < n; k++) if (a[ai + k] !== b[bi + k]) return false;
  return true;
}

/** Indices of calibration windows whose run of `run` tokens from position 1 occurs in `evalIds`. */
export function leakedWindows(windows: number[][], evalIds: number[], run: number): number[] {
  const index = runIndex(evalIds, run);
  const out: number[] = [];
  windows.forEach((w, i) => {
    if (w.length < run + 1) return;
    const cands = index.get(hashRun(w, 1, run));
    if (cands && cands.some((off) => sameRun(w, 1, evalIds, off, run))) out.push(i);
  });
  return out;
}

function longLines(docs: string[]): Set<string> {
  const s = new Set<string>();
  for (const d of docs) for (const line of d.split("\n")) {
    const t = line.trim();
    if (t.length >= MIN_LINE_CHARS) s.add(t);
  }
  return s;
}

/** Compress sorted 1-based numbers into "1-3, 7, 9-10" (at most `max` pieces). */
export function numberRanges(nums: number[], max = 6): string {
  const parts: string[] = [];
  for (let i = 0; i < nums.length; ) {
    let j = i;
    while (j + 1 < nums.length && nums[j + 1] === nums[j] + 1) j++;
    parts.push(i === j ? `${nums[i]}` : `${nums[i]}-${nums[j]}`);
    i = j + 1;
  }
  return parts.length > max ? `${parts.slice(0, max).join(", ")}, … (${parts.length - max} more ranges)` : parts.join(", ");
}

/** Find calibration text in evaluation text (see the module comment). */
export function findLeakage(input: LeakageInput): LeakageReport {
  const { calibration: c, evaluation: e } = input;
  const minLen = c.windows.length ? Math.min(...c.windows.map((w) => w.length)) : 0;
  const run = Math.max(1, Math.min(MAX_RUN, minLen - 1));
  const windows = e.ids && c.windows.length && minLen >= 2 ? leakedWindows(c.windows, e.ids, run) : null;
  const documents: [number, number][] = [];
  let lines = 0;
  if (c.docs && e.docs) {
    if (c.docs.length > 1 && e.docs.length > 1) {
      const where = new Map<string, number>();
      e.docs.forEach((d, j) => {
        const t = d.trim();
        if (t && !where.has(t)) where.set(t, j);
      });
      c.docs.forEach((d, i) => {
        const j = where.get(d.trim());
        if (j !== undefined) documents.push([i + 1 + (c.firstDoc ?? 0), j + 1 + (e.firstDoc ?? 0)]);
      });
    } else {
      const el = longLines(e.docs);
      for (const l of longLines(c.docs)) if (el.has(l)) lines++;
    }
  }
  const parts: string[] = [];
  if (windows && windows.length) {
    parts.push(`${windows.length} of ${c.windows.length} calibration windows occur verbatim in the evaluation text (${run}-token runs; windows ${numberRanges(windows.map((i) => i + 1))})`);
  }
  if (documents.length) {
    parts.push(
      `${documents.length} of ${c.docs!.length} calibration documents are also evaluation documents (calibration ${numberRanges(documents.map((d) => d[0]))}; evaluation ${numberRanges(documents.map((d) => d[1]).sort((a, b) => a - b))})`,
    );
  }
  if (lines) parts.push(`${lines} lines of at least ${MIN_LINE_CHARS} characters occur in both texts`);
  const message = parts.length ? `calibration text overlaps the evaluation text (${c.label} vs ${e.label}): ${parts.join("; ")}. Perplexity on text the scores were computed from is optimistic; evaluate on held-out text.` : null;
  return { windows, windowRun: run, documents, lines, message };
}
