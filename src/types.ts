/** Progress of a long operation, as the REPL, notebooks and CLI display it. */
export interface ProgressEvent {
  /** What is running, e.g. "teacher", "score", "eval:ppl", "recover". */
  phase: string;
  done: number;
  total: number;
  /** Tokens processed so far in this operation and the rate; used for tokens/s and ETA displays. */
  tokens?: number;
  tokensPerSecond?: number;
  etaSeconds?: number;
  /** Optional short message (current loss, task name). */
  message?: string;
}

/** Every long operation takes these: progress callbacks and cancellation between samples. */
export interface RunOptions {
  onProgress?: (e: ProgressEvent) => void;
  signal?: AbortSignal;
}

/** The text tokenizer interface the library needs (implemented in src/io/tokenizer.ts). */
export interface TextTokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  /** Encode text; `addBos` prepends BOS (default true, as HF/SentencePiece llama tokenizers do). */
  encode(text: string, options?: { addBos?: boolean }): number[];
  decode(ids: number[], options?: { skipSpecialTokens?: boolean }): string;
  /** The tokenizer as a Hugging Face `tokenizer.json` object, for writing next to saved weights. */
  toJSON(): object;
}
