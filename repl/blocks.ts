/** What a command prints: blocks of text the App renders (errors in red, notes dimmed). */
export type Block =
  | { kind: "text"; text: string }
  | { kind: "note"; text: string }
  | { kind: "error"; text: string };

export const text = (t: string): Block => ({ kind: "text", text: t });
export const note = (t: string): Block => ({ kind: "note", text: t });
export const error = (t: string): Block => ({ kind: "error", text: t });

/** The facts the status line shows; every field is already formatted. */
export interface StatusInfo {
  model: string;
  backend: string;
  params: string;
  /** Channels kept per layer, e.g. "I 612/768 ×5" or "I 512–768 (83%)". */
  channels: string;
  samples: string;
  criterion: string;
}

export interface RunContext {
  signal: AbortSignal;
  onProgress: (e: import("../src/types").ProgressEvent) => void;
  /** Terminal columns available for tables and charts. */
  width: number;
  /** Draw charts with ASCII only (no colour/unicode-hostile output). */
  ascii: boolean;
}

/** What the App needs from the command executor. */
export interface Runner {
  execute(cmd: import("./commands").Command, ctx: RunContext): Promise<Block[]>;
  status(): StatusInfo | null;
  /** Called once when the REPL exits (frees the session's tensors). */
  close(): void;
}
