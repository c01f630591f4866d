import type { BackendName } from "../engine";
import { UsageError } from "../errors";
import { CRITERIA, type Criterion } from "../importance";
import type { TopK } from "../teacher";

/** Flag values as node:util parseArgs returns them. */
export type FlagValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** Throws UsageError naming the flags of `names` that are missing (absent or empty), followed by the usage text. */
export function requireFlags<V extends FlagValues, K extends keyof V & string>(
  values: V,
  names: K[],
  usage: string,
): asserts values is V & { [P in K]-?: Exclude<V[P], undefined> } {
  const missing = names.filter((n) => values[n] === undefined || values[n] === "");
  if (missing.length === 0) return;
  const list = missing.map((n) => `--${n}`);
  const text = list.length === 1 ? `${list[0]} is required` : `${list.slice(0, -1).join(", ")} and ${list[list.length - 1]} are required`;
  throw new UsageError(`${text}\n\n${usage}`);
}

function bound(integer: boolean, min: number | undefined): string {
  const kind = integer ? "integer" : "number";
  if (min === undefined) return integer ? "an integer" : "a number";
  if (min === 0) return `a non-negative ${kind}`;
  return `${integer ? "an" : "a"} ${kind} >= ${min}`;
}

function parseNumber(name: string, v: string | undefined, integer: boolean, min: number | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || (min !== undefined && n < min)) {
    throw new UsageError(`--${name} must be ${bound(integer, min)}, got ${JSON.stringify(v)}`);
  }
  // Beyond 2^53 a number is rounded: "9007199254740993" would silently become 9007199254740992.
  if (integer && !Number.isSafeInteger(n)) throw new UsageError(`--${name} must be an integer of magnitude at most 2^53 - 1, got ${JSON.stringify(v)}`);
  return n;
}

/** `--name N`: an integer (at least `min` when given); undefined when the flag is absent. */
export function intFlag(name: string, v: string | undefined, min?: number): number | undefined {
  return parseNumber(name, v, true, min);
}

/** `--name X`: a finite number (at least `min` when given); undefined when the flag is absent. */
export function numFlag(name: string, v: string | undefined, min?: number): number | undefined {
  return parseNumber(name, v, false, min);
}

/** `--name V` where V is one of `allowed`; undefined when the flag is absent. */
export function enumFlag<T extends string>(name: string, v: string | undefined, allowed: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(v)) {
    const list = allowed.length > 1 ? `${allowed.slice(0, -1).join(", ")} or ${allowed[allowed.length - 1]}` : allowed.join("");
    throw new UsageError(`--${name} must be ${list}, got "${v}"`);
  }
  return v as T;
}

/** `--topk K|full`. */
export function topkFlag(v: string | undefined): TopK | undefined {
  if (v === undefined) return undefined;
  if (v === "full") return "full";
  return intFlag("topk", v, 1);
}

/** `--criterion NAME`, one of the importance criteria. */
export function criterionFlag(v: string | undefined): Criterion | undefined {
  if (v === undefined) return undefined;
  if (!CRITERIA.includes(v as Criterion)) throw new UsageError(`--criterion must be one of ${CRITERIA.join(", ")}, got "${v}"`);
  return v as Criterion;
}

/** `--backend NAME`; the engine checks the name when it starts (src/engine). */
export function backendFlag(v: string | undefined): BackendName | undefined {
  return v as BackendName | undefined;
}
