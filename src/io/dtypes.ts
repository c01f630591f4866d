/**
 * Element conversions between the on-disk float formats (F16, BF16) and the Float32Array every reader returns.
 * F16 → F32 is exact; F32 → F16 rounds to nearest even (as numpy/PyTorch do) so saved files match them bit for bit.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

export function floatToHalf(v: number): number {
  f32[0] = v;
  return floatBitsToHalf(u32[0]);
}

/** floatToHalf on the IEEE bits of a float32 (callers holding a Uint32Array view skip the scratch write). */
export function floatBitsToHalf(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    // Subnormal half: shift the full 24-bit significand, rounding to nearest even.
    const m = mant | 0x800000;
    const shift = 14 - e;
    let r = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (r & 1))) r++;
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1))) r++; // may carry into the exponent, which is correct
  return sign | r;
}

export function decodeF16(bytes: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  decodeF16Into(bytes, n, out, 0);
  return out;
}

/** Decode `n` F16 values from `bytes` into `out` starting at element `at` (lets callers decode chunk by chunk). */
export function decodeF16Into(bytes: Uint8Array, n: number, out: Float32Array, at: number): void {
  // A 64 Ki-entry table turns the per-element branchy decode into one lookup.
  const table = halfTable();
  if (LITTLE_ENDIAN && bytes.byteOffset % 2 === 0) {
    const u16 = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
    for (let i = 0; i < n; i++) out[at + i] = table[u16[i]];
    return;
  }
  const src = halves(bytes, n);
  for (let i = 0; i < n; i++) out[at + i] = table[src(i)];
}

/** Element reader over little-endian u16 data: a typed view when aligned on a little-endian host, else a DataView. */
function halves(bytes: Uint8Array, n: number): (i: number) => number {
  if (LITTLE_ENDIAN && bytes.byteOffset % 2 === 0) {
    const u16 = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
    return (i) => u16[i];
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, n * 2);
  return (i) => dv.getUint16(i * 2, true);
}

let HALF_TABLE: Float32Array | null = null;
/** float16 bits → float32, by table (exact; built once). */
export function halfTable(): Float32Array {
  if (!HALF_TABLE) {
    HALF_TABLE = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) HALF_TABLE[i] = halfToFloat(i);
  }
  return HALF_TABLE;
}

export function decodeBF16(bytes: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  decodeBF16Into(bytes, n, out, 0);
  return out;
}

/** Decode `n` BF16 values (the high half of an f32) from `bytes` into `out` starting at element `at`. */
export function decodeBF16Into(bytes: Uint8Array, n: number, out: Float32Array, at: number): void {
  const o32 = new Uint32Array(out.buffer, out.byteOffset + at * 4, n);
  if (LITTLE_ENDIAN && bytes.byteOffset % 2 === 0) {
    // The common case without a per-element call: a typed view of the aligned little-endian data.
    const u16 = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
    for (let i = 0; i < n; i++) o32[i] = u16[i] << 16;
    return;
  }
  const src = halves(bytes, n);
  for (let i = 0; i < n; i++) o32[i] = src(i) << 16;
}

export function encodeF32(data: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.length * 4);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) dv.setFloat32(i * 4, data[i], true);
  return out;
}

export function encodeF16(data: Float32Array): Uint8Array {
  const out = new Uint8Array(data.length * 2);
  encodeF16Into(data, out);
  return out;
}

/** F32 → little-endian F16 bytes written into `out` (at least 2 × data.length bytes); returns the bytes written. */
export function encodeF16Into(data: Float32Array, out: Uint8Array): Uint8Array {
  const dv = new DataView(out.buffer, out.byteOffset, data.length * 2);
  for (let i = 0; i < data.length; i++) dv.setUint16(i * 2, floatToHalf(data[i]), true);
  return out.subarray(0, data.length * 2);
}

/**
 * F32 → F16 (rounded as floatToHalf), two halves per 32-bit word: element 2i in the low 16 bits, 2i + 1 in the
 * high 16 bits (WGSL's unpack2x16float order); an odd count leaves the last word's high half zero.
 */
export function encodeHalfWords(data: Float32Array): Int32Array {
  const n = data.length;
  const out = new Int32Array(Math.ceil(n / 2));
  const bits = new Uint32Array(data.buffer, data.byteOffset, n);
  const pairs = n >> 1;
  for (let i = 0; i < pairs; i++) out[i] = floatBitsToHalf(bits[2 * i]) | (floatBitsToHalf(bits[2 * i + 1]) << 16);
  if (n & 1) out[pairs] = floatBitsToHalf(bits[n - 1]);
  return out;
}

/** The first `n` halves of words packed as encodeHalfWords packs them, exactly, as float32. */
export function decodeHalfWords(words: Int32Array, n: number): Float32Array {
  if (n > words.length * 2) throw new RangeError(`decodeHalfWords: ${n} halves asked of ${words.length} words (${words.length * 2} halves)`);
  const table = halfTable();
  const out = new Float32Array(n);
  const pairs = n >> 1;
  for (let i = 0; i < pairs; i++) {
    const w = words[i];
    out[2 * i] = table[w & 0xffff];
    out[2 * i + 1] = table[w >>> 16];
  }
  if (n & 1) out[n - 1] = table[words[pairs] & 0xffff];
  return out;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
