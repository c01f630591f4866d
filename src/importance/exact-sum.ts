import { FormatError, NumericError } from "../errors";

/**
 * Exact sums of float64 values, one per channel.
 *
 * Float64 addition is not associative, so a sum accumulated window by window depends on the order and the
 * grouping of the windows: two shards summed separately and then added differ in the last bits from one
 * run, and so would a resumed run or a run split over workers. Each channel here keeps its sum exactly, as an
 * integer mantissa M (a BigInt) times 2^E, which makes accumulation associative and commutative; the float64
 * value is the exact sum rounded once (to nearest, ties to even). Any split of the windows, merged in any
 * order, therefore gives the same bits as one run.
 *
 * Cost: a few BigInt operations per channel and window (about a millisecond for 10^4 channels), small next
 * to a window's backward pass.
 *
 * Serialised per channel as a hexadecimal float with an integer mantissa, `0x<hex>p<E>` (C99 / Python
 * `float.fromhex` notation; "-" in front for a negative sum, "0x0p0" for zero), canonical: M is odd or zero.
 */

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
const LITTLE = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const HI = LITTLE ? 1 : 0;
const LO = LITTLE ? 0 : 1;

/** Trailing zero bits of a non-zero 32-bit word. */
function ctz32(x: number): number {
  return 31 - Math.clz32(x & -x);
}

/** x = m · 2^e with m an odd integer (|m| < 2^53), or null for 0. */
function decompose(x: number): { m: number; e: number } | null {
  if (x === 0) return null;
  if (!Number.isFinite(x)) throw new NumericError(`cannot add the non-finite value ${x} to an importance sum`);
  f64[0] = x;
  const hi = u32[HI];
  const lo = u32[LO];
  const bexp = (hi >>> 20) & 0x7ff;
  let m = (hi & 0xfffff) * 4294967296 + lo;
  let e: number;
  if (bexp === 0) e = -1074;
  else {
    m += 4503599627370496; // implicit leading 1 (2^52)
    e = bexp - 1075;
  }
  // strip trailing zeros so mantissas stay short
  const tz = lo !== 0 ? ctz32(lo) : 32 + ctz32((m / 4294967296) >>> 0);
  m = m / 2 ** tz;
  e += tz;
  return { m: x < 0 ? -m : m, e };
}

function bitLength(v: bigint): number {
  if (v === 0n) return 0;
  const h = (v < 0n ? -v : v).toString(16);
  return (h.length - 1) * 4 + (32 - Math.clz32(parseInt(h[0], 16)));
}

/** m · 2^e rounded to the nearest float64 (ties to even), for any size of m. */
function toNumber(m: bigint, e: number): number {
  if (m === 0n) return 0;
  const neg = m < 0n;
  let a = neg ? -m : m;
  const n = bitLength(a);
  if (n > 64) {
    // keep 64 bits plus a sticky bit: Number() of it then rounds exactly as the full value would
    const k = n - 64;
    const sticky = (a & ((1n << BigInt(k)) - 1n)) !== 0n ? 1n : 0n;
    a = (a >> BigInt(k)) | sticky;
    e += k;
  }
  let v = Number(a); // correctly rounded to 53 bits
  // scale by 2^e in steps that stay exact while the result is a normal number
  while (e > 0) {
    const s = Math.min(e, 1000);
    v *= 2 ** s;
    e -= s;
  }
  while (e < 0) {
    const s = Math.max(e, -1000);
    v *= 2 ** s;
    e -= s;
  }
  return neg ? -v : v;
}

export class ExactSums {
  private constructor(
    private readonly m: bigint[],
    private readonly e: Int32Array,
    private cache: Float64Array | null,
  ) {}

  static zeros(n: number): ExactSums {
    return new ExactSums(new Array<bigint>(n).fill(0n), new Int32Array(n), null);
  }

  /** Each channel holds exactly the given float64 value. */
  static fromFloat64(v: ArrayLike<number>): ExactSums {
    const s = ExactSums.zeros(v.length);
    s.add(v);
    return s;
  }

  get length(): number {
    return this.m.length;
  }

  /** Adds v[i] to channel i exactly. */
  add(v: ArrayLike<number>): void {
    if (v.length !== this.m.length) throw new RangeError(`expected ${this.m.length} values, got ${v.length}`);
    for (let i = 0; i < v.length; i++) {
      const d = decompose(v[i]);
      if (d) this.addTerm(i, BigInt(d.m), d.e);
    }
    this.cache = null;
  }

  /** Adds another exact sum channel by channel (exactly). */
  addExact(o: ExactSums): void {
    if (o.m.length !== this.m.length) throw new RangeError(`expected ${this.m.length} channels, got ${o.m.length}`);
    for (let i = 0; i < o.m.length; i++) if (o.m[i] !== 0n) this.addTerm(i, o.m[i], o.e[i]);
    this.cache = null;
  }

  private addTerm(i: number, m: bigint, e: number): void {
    const M = this.m[i];
    if (M === 0n) {
      this.m[i] = m;
      this.e[i] = e;
      return;
    }
    const E = this.e[i];
    if (e >= E) this.m[i] = M + (m << BigInt(e - E));
    else {
      this.m[i] = (M << BigInt(E - e)) + m;
      this.e[i] = e;
    }
  }

  /** The sums rounded once to float64 (cached until the next add). */
  toFloat64(): Float64Array {
    if (!this.cache) this.cache = Float64Array.from(this.m, (m, i) => toNumber(m, this.e[i]));
    return this.cache;
  }

  /** Channels in the order given (reindex after pruning). */
  pick(idx: readonly number[]): ExactSums {
    return new ExactSums(
      idx.map((i) => this.m[i]),
      Int32Array.from(idx, (i) => this.e[i]),
      null,
    );
  }

  clone(): ExactSums {
    return new ExactSums(this.m.slice(), this.e.slice(), this.cache ? this.cache.slice() : null);
  }

  /** Canonical hexadecimal floats, one per channel (see the file comment). */
  toHex(): string[] {
    return this.m.map((M, i) => {
      if (M === 0n) return "0x0p0";
      let m = M < 0n ? -M : M;
      let e = this.e[i];
      while ((m & 0xffffffffn) === 0n) {
        m >>= 32n;
        e += 32;
      }
      while ((m & 1n) === 0n) {
        m >>= 1n;
        e += 1;
      }
      return `${M < 0n ? "-" : ""}0x${m.toString(16)}p${e}`;
    });
  }

  static fromHex(items: readonly unknown[], where: string): ExactSums {
    const s = ExactSums.zeros(items.length);
    items.forEach((t, i) => {
      const r = typeof t === "string" ? /^(-?)0x([0-9a-f]+)p(-?\d+)$/.exec(t) : null;
      if (!r) throw new FormatError(`${where}[${i}] must be a hexadecimal float like "0x1a3p-60", got ${JSON.stringify(t)}`);
      const e = Number(r[3]);
      if (!Number.isSafeInteger(e) || Math.abs(e) > 1 << 30) throw new FormatError(`${where}[${i}]: exponent ${r[3]} is out of range`);
      const m = BigInt(`0x${r[2]}`);
      if (m !== 0n) s.addTerm(i, r[1] === "-" ? -m : m, e);
    });
    return s;
  }
}
