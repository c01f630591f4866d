import { UsageError } from "./errors";

/**
 * Seeded pseudo-random numbers. Every random choice in sdmprune (calibration windows, data order,
 * dropout masks, the `random` criterion, sampling) draws from an Rng built from an explicit seed, so a
 * seed fully determines the result. Independent streams (stage 1 vs stage 2 windows, data order vs
 * dropout) are derived by name, so adding draws to one stream never shifts another.
 */
/**
 * A seed as 32 bits. Seeds are integers of magnitude below 2^53: beyond that a JavaScript number cannot tell two
 * seeds apart (2^53 + 1 reads as 2^53), so they are refused rather than silently merged. Seeds in [0, 2^32) map to
 * themselves (streams unchanged from earlier versions); for the others the high part is hashed in, so seed,
 * seed + 2^32 and -seed no longer share a stream.
 */
function seed32(seed: number): number {
  if (!Number.isSafeInteger(seed)) {
    throw new UsageError(`seed must be an integer in [-(2^53 - 1), 2^53 - 1], got ${seed}${Number.isInteger(seed) ? " (beyond 2^53 distinct seeds cannot be represented)" : ""}`);
  }
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 4294967296);
  return hi === 0 ? lo : (lo ^ hash32((hi | 0) ^ 0x632be5ab)) >>> 0;
}

export class Rng {
  private state: number;

  constructor(seed: number) {
    // splitmix32-style scrambling so nearby seeds (0, 1, 2) give unrelated streams.
    this.state = hash32(seed32(seed) ^ 0x9e3779b9);
  }

  /** A child stream whose sequence depends only on this stream's seed and `name`. */
  static derive(seed: number, name: string): Rng {
    let h = hash32(seed32(seed) ^ 0x85ebca6b);
    for (let i = 0; i < name.length; i++) h = hash32(h ^ name.charCodeAt(i));
    return new Rng(h);
  }

  /** Uniform float in [0, 1) (mulberry32). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform integer in [lo, hi] inclusive. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** Standard normal (Box–Muller). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Fisher–Yates shuffle in place; returns the array. */
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }
}

function hash32(x: number): number {
  x = x >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b) >>> 0;
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}
