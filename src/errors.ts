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
/** The job would need more than the machine has (memory), or more than the model supports (context length). */
export class ResourceError extends SdmpruneError {}

/**
 * The operating system refused a read or write (ENOSPC, EROFS, EACCES, EISDIR, ...). `path` is the file the
 * operation was about and `code` the errno name, so a caller can tell a full disk from a read-only one.
 */
export class IoError extends SdmpruneError {
  constructor(readonly path: string, readonly code: string, message: string) {
    super(message);
  }
}

const ERRNO_TEXT: Record<string, string> = {
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  EROFS: "read-only file system",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EISDIR: "is a directory",
  ENOTDIR: "not a directory",
  ENOTEMPTY: "directory not empty",
  ENOENT: "no such file or directory",
  EEXIST: "already exists",
  EFBIG: "file too large",
  EIO: "input/output error",
  EMFILE: "too many open files",
  ENAMETOOLONG: "file name too long",
  EXDEV: "cross-device rename",
};

/**
 * Turn a Node errno error into an IoError naming `file` and what was being done; anything else (already typed,
 * or a programming error) is returned unchanged so it is not disguised.
 */
export function ioError(err: unknown, file: string, doing: string): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (err instanceof SdmpruneError || typeof code !== "string" || !/^E[A-Z0-9]+$/.test(code)) return err;
  return new IoError(file, code, `${file}: cannot ${doing}: ${code} (${ERRNO_TEXT[code] ?? (err as Error).message})`);
}
