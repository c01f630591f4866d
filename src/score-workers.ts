import * as fs from "node:fs";
import * as path from "node:path";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import type { ShardSpec } from "./data/windows";
import type { BackendName } from "./engine";
import { CancelledError, SdmpruneError, UsageError } from "./errors";
import { ImportanceScores } from "./importance";
import { Session, type CalibrateOptions, type ScoreOptions } from "./session";
import type { ProgressEvent, RunOptions } from "./types";

/**
 * Scoring on several cores without the native backend: N worker threads, each with its own TensorFlow.js
 * backend and copy of the model, score contiguous parts of the calibration windows (calibrate's `shard`
 * list: the part k of N of the shard the caller holds), and the exact per-part sums are merged. Because the
 * sums are exact, the result has the bits of one thread's run.
 *
 * Each worker holds a model and its activations: memory grows N-fold. The native backend (tensorflow)
 * already uses every core in one process and is refused here.
 */
export interface WorkerScoreOptions extends RunOptions {
  model: string;
  backend?: BackendName;
  workers: number;
  /** Calibration as for Session.calibrate; its `shard` (if any) is split further among the workers. */
  calibrate: Omit<CalibrateOptions, keyof RunOptions>;
  score: Omit<ScoreOptions, keyof RunOptions | "checkpoint" | "resume">;
  /** Per-worker checkpoint files are `${file}.worker-k-of-N`. */
  checkpoint?: { file: string; everyWindows?: number; resume: boolean };
}

interface Job {
  model: string;
  backend?: BackendName;
  calibrate: CalibrateOptions;
  score: ScoreOptions;
  checkpoint?: { file: string; everyWindows?: number; resume: boolean };
}

type FromWorker = { kind: "progress"; event: ProgressEvent } | { kind: "done"; scores: unknown } | { kind: "error"; name: string; message: string; stack?: string };

/** The checkpoint file of worker k of n. */
export function workerCheckpoint(file: string, k: number, n: number): string {
  return `${file}.worker-${k}-of-${n}`;
}

export async function scoreWithWorkers(opts: WorkerScoreOptions): Promise<ImportanceScores> {
  const n = opts.workers;
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`workers must be a positive integer, got ${n}`);
  if (opts.backend === "tensorflow") throw new UsageError("--workers is for the wasm and cpu backends: tensorflow already uses every core in one process");
  const base = opts.calibrate.shard === undefined ? [] : Array.isArray(opts.calibrate.shard) ? opts.calibrate.shard : [opts.calibrate.shard];
  const ts = __filename.endsWith(".ts");
  const file = path.join(__dirname, `score-workers.${ts ? "ts" : "js"}`);
  const progress = new Map<number, ProgressEvent>();
  const workers: Worker[] = [];
  const onAbort = () => workers.forEach((w) => w.postMessage({ kind: "abort" }));
  opts.signal?.addEventListener("abort", onAbort);
  try {
    const parts = await Promise.allSettled(
      Array.from({ length: n }, (_, k) => {
        const shard: ShardSpec[] = [...base, { index: k, count: n }];
        const job: Job = {
          model: opts.model,
          backend: opts.backend,
          calibrate: { ...opts.calibrate, shard },
          score: { ...opts.score },
          checkpoint: opts.checkpoint ? { ...opts.checkpoint, file: workerCheckpoint(opts.checkpoint.file, k, n) } : undefined,
        };
        // from sources (tests, tsx): register tsx's CommonJS loader in the worker before loading this file
        const w = ts
          ? new Worker(`require("tsx/cjs/api").register(); require(${JSON.stringify(file)});`, { eval: true, workerData: job })
          : new Worker(file, { workerData: job });
        workers.push(w);
        return new Promise<ImportanceScores>((resolve, reject) => {
          let settled = false;
          w.on("message", (m: FromWorker) => {
            if (m.kind === "progress") {
              progress.set(k, m.event);
              if (opts.onProgress && m.event.phase === "score") {
                const evs = [...progress.values()].filter((e) => e.phase === "score");
                const done = evs.reduce((a, e) => a + e.done, 0);
                opts.onProgress({ phase: "score", done, total: Math.max(done, sumTotals(evs, n)), message: `${n} workers` });
              }
            } else if (m.kind === "done") {
              settled = true;
              resolve(ImportanceScores.fromJSON(m.scores, `worker ${k}`));
            } else {
              settled = true;
              reject(rebuildError(m, k));
            }
          });
          w.on("error", (e) => {
            settled = true;
            reject(e);
          });
          w.on("exit", (code) => {
            if (!settled) reject(new Error(`score worker ${k} exited with code ${code} before finishing`));
          });
        });
      }),
    );
    const failed = parts.find((p): p is PromiseRejectedResult => p.status === "rejected");
    if (failed) {
      // a cancellation is reported as such (each worker has written its checkpoint)
      const cancelled = parts.every((p) => p.status === "fulfilled" || p.reason instanceof CancelledError);
      if (cancelled && opts.checkpoint) {
        const files = Array.from({ length: n }, (_, k) => workerCheckpoint(opts.checkpoint!.file, k, n));
        throw new CancelledError(`score cancelled; the windows each worker finished are in ${files.join(", ")} (continue with --resume)`);
      }
      throw failed.reason;
    }
    const scores = parts.map((p) => (p as PromiseFulfilledResult<ImportanceScores>).value);
    return scores.slice(1).reduce((a, s, k) => a.merge(s, { a: "worker 0", b: `worker ${k + 1}` }), scores[0]);
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

function sumTotals(evs: ProgressEvent[], n: number): number {
  // totals of the workers that reported so far, scaled to all n (they hold near-equal parts)
  const t = evs.reduce((a, e) => a + e.total, 0);
  return evs.length === n ? t : Math.round((t * n) / Math.max(1, evs.length));
}

function rebuildError(m: { name: string; message: string; stack?: string }, k: number): Error {
  const msg = `worker ${k}: ${m.message}`;
  if (m.name === "CancelledError") return new CancelledError(msg);
  if (m.name === "UsageError") return new UsageError(msg);
  const e = m.name === "Error" ? new Error(msg) : new SdmpruneError(msg);
  if (m.stack) e.stack = m.stack;
  return e;
}

async function workerMain(job: Job): Promise<void> {
  const port = parentPort!;
  const ac = new AbortController();
  port.on("message", (m: { kind: string }) => {
    if (m.kind === "abort") ac.abort();
  });
  const run: RunOptions = { signal: ac.signal, onProgress: (event) => port.postMessage({ kind: "progress", event }) };
  const session = await Session.load(job.model, { backend: job.backend });
  try {
    await session.calibrate({ ...job.calibrate, ...run });
    const ck = job.checkpoint;
    let resume = false;
    if (ck && ck.resume && fs.existsSync(ck.file)) {
      await session.loadScores(ck.file);
      resume = true;
    } else if (ck && !ck.resume && fs.existsSync(ck.file)) {
      throw new UsageError(`checkpoint ${ck.file} exists: give --resume to continue it, or remove it`);
    }
    const cal = session.info().raw.calibration;
    const pending = !resume || (cal ? cal.cursor < cal.windows : true);
    if (pending) await session.score({ ...job.score, ...run, resume, checkpoint: ck ? { file: ck.file, everyWindows: ck.everyWindows } : undefined });
    port.postMessage({ kind: "done", scores: (session.scores as ImportanceScores).toJSON() });
  } finally {
    session.dispose();
  }
}

if (!isMainThread && parentPort && workerData && (workerData as Job).model !== undefined) {
  workerMain(workerData as Job).catch((e: Error) => {
    parentPort!.postMessage({ kind: "error", name: e.constructor?.name ?? "Error", message: e.message, stack: e.stack });
  });
}
