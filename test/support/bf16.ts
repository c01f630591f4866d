import * as fs from "node:fs";
import type { TensorMap } from "../../src/io/tensors";

/**
 * A safetensors file of BF16 tensors (sdmprune's writer emits F32/F16 only; Hugging Face checkpoints are mostly BF16):
 * each value's upper 16 bits, tensors in name order.
 */
export function writeBf16Safetensors(file: string, tensors: TensorMap): void {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  const parts: Buffer[] = [];
  let off = 0;
  for (const n of names) {
    const t = tensors.get(n)!;
    const b = Buffer.alloc(t.data.length * 2);
    const u32 = new Uint32Array(Float32Array.from(t.data).buffer);
    for (let i = 0; i < u32.length; i++) b.writeUInt16LE(u32[i] >>> 16, i * 2);
    header[n] = { dtype: "BF16", shape: t.shape, data_offsets: [off, off + b.length] };
    off += b.length;
    parts.push(b);
  }
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  fs.writeFileSync(file, Buffer.concat([len, h, ...parts]));
}
