import { checkProtocol, type PplProtocol } from "./data/documents";
import { UsageError } from "./errors";

/**
 * Checks of user options shared by the Session's entry points (calibrate, perplexity, recovery data), so
 * each rule and its message exist once. They run where options enter, before any work.
 */

/** Exactly one of `keys` is given in `opts`; `what` names the call in the error. */
export function exactlyOne<T extends object>(what: string, opts: T, keys: readonly (keyof T & string)[]): void {
  const given = keys.filter((k) => opts[k] !== undefined);
  if (given.length !== 1) throw new UsageError(`${what}: give exactly one of ${keys.join(", ")} (got ${given.length ? given.join(", ") : "none"})`);
}

/** A window length: an integer of at least 2 tokens (default 128). */
export function seqLenOption(seqLen: number | undefined): number {
  const n = seqLen ?? 128;
  if (!Number.isInteger(n) || n < 2) throw new UsageError(`seqLen must be an integer ≥ 2, got ${n}`);
  return n;
}

/** The fields of a perplexity spec (Session PplSpec) that decide which text or windows are scored. */
interface PplSource {
  text?: string;
  file?: string;
  windows?: number[][] | string;
  protocol?: PplProtocol;
  stories?: string;
}

/**
 * A perplexity spec names one source (text, file or windows) and a known protocol; protocol and story range
 * apply to text only.
 */
export function checkPplSpec(spec: PplSource): void {
  exactlyOne("ppl", spec, ["text", "file", "windows"]);
  checkProtocol(spec.protocol);
  if (spec.windows !== undefined && (spec.protocol !== undefined || spec.stories !== undefined)) throw new UsageError("ppl: protocol and stories apply to text, not to token windows");
}
