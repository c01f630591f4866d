/**
 * One error class per domain, so callers (CLI, REPL, notebooks) can tell a bad file from a bad argument
 * without parsing messages. Messages name the file/field and say what was expected and what was found.
 */
export class SdmpruneError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}
/** A file on disk is malformed: GGUF, safetensors, tokenizer.json, scores/windows JSON. */
export class FormatError extends SdmpruneError {}
/** A model configuration is inconsistent (config.json fields, shapes that disagree with it). */
export class ConfigError extends SdmpruneError {}
/** Calibration/evaluation data is unusable (empty text, ids out of range, too short for a window). */
export class DataError extends SdmpruneError {}
/** A caller passed an invalid argument (ratio out of range, unknown criterion, existing output dir). */
export class UsageError extends SdmpruneError {}
/** A long operation was cancelled through its AbortSignal. */
export class CancelledError extends SdmpruneError {}
/** Numerical failure during a computation (NaN/Inf loss). */
export class NumericError extends SdmpruneError {}
