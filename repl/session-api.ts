/**
 * The part of the library's `Session` (src/session.ts) the REPL calls, written structurally: repl/ is
 * compiled on its own (to dist/repl) and receives the real Session from the CLI, so it cannot import
 * src/ here. test/repl.test.tsx passes the real Session in, which type-checks that it still fits.
 */
import type { CriterionName } from "./commands";
import type { ProgressLike } from "./progress";

export type CellLike = string | number | null;

/** src/table.ts Table, as far as the REPL renders it. */
export interface TableLike {
  readonly columns: string[];
  readonly rows: CellLike[][];
  readonly title?: string;
  readonly notes: string[];
  format(c: CellLike): string;
  toText(): string;
}

export interface RunOptionsLike {
  onProgress?: (e: ProgressLike) => void;
  signal?: AbortSignal;
}

export interface SessionInfoLike {
  path: string;
  format: string;
  backend: string;
  adapter?: { description: string; device: string; software: boolean } | null;
  params: { total: number };
  originalParams: { total: number };
  widths: number[];
  originalWidths: number[];
  calibration: { windows: number; seqLen: number; cursor: number } | null;
  criterion: string | null;
  scoredSamples: number;
  steps: number;
}

export interface PruneStepLike {
  step: number;
  rule: string;
  widthsBefore: number[];
  widthsAfter: number[];
}

export interface ReplSession {
  readonly backend: string;
  info(): TableLike & { raw: SessionInfoLike };
  calibrate(
    opts: RunOptionsLike & { files?: string | string[]; stories?: string; samples?: number; seqLen?: number; seed?: number },
  ): Promise<{ scoresReset: boolean; table(): TableLike }>;
  score(
    opts: RunOptionsLike & { criterion?: CriterionName; alpha?: number; temperature?: number; samples?: number },
  ): Promise<{ message: string; table(): TableLike }>;
  scoreSummary(): TableLike;
  sensitivity(opts: RunOptionsLike & { samples?: number }): Promise<TableLike & { raw: { mlpIncrease: number[]; attentionIncrease: number[] } }>;
  prune(opts: { ratio?: number; keep?: number; target?: number; layers?: [number, number]; allocation?: "uniform" | "global" }): { step: PruneStepLike; table(): TableLike };
  sdmprune(opts: RunOptionsLike & { target?: number; keep?: number; alpha?: number; temperature?: number }): Promise<{ table(): TableLike }>;
  recover(
    opts: RunOptionsLike & {
      steps: number;
      lr: number;
      data?: { file: string; stories?: string; seqLen?: number };
      loss?: "ce" | "kd" | "mix";
      alpha?: number;
      temperature?: number;
      lora?: { r?: number } | null;
      seed?: number;
    },
  ): Promise<{ source: string; table(): TableLike; adapters: { dispose(): void } | null }>;
  undo(): PruneStepLike;
  readonly history: TableLike;
  evaluate(
    opts: RunOptionsLike & { ppl?: { file?: string; seqLen?: number; stories?: string; protocol?: "documents" | "wikitext" | "file" }; tasks?: string[]; limit?: number },
  ): Promise<TableLike>;
  generate(prompt: string, opts?: { maxNewTokens?: number; temperature?: number; seed?: number }): string;
  save(dir: string, opts?: { format?: "hf" | "gguf"; force?: boolean; padMlp?: boolean }): Promise<string[]>;
  saveScores(file: string): Promise<void>;
  loadScores(file: string): Promise<{ readonly criterion: string; readonly samples: number }>;
  mergeScores(files: string | string[]): Promise<{ readonly criterion: string; readonly samples: number }>;
  dispose(): void;
}

/** What the CLI hands the REPL: how to open a session (the library is loaded on first use). */
export interface ReplLibrary {
  openSession(path: string): Promise<ReplSession>;
  /** Shared data folder (models/, data/) for defaults such as the TinyStories calibration text. */
  sharedDir?: string | null;
}
