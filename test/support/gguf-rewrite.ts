import { GgufHeader, GgufType, GgufValue, GgufWriteTensor, readGgufHeader, readGgufTensors } from "../../src/io/gguf";

/** A GGUF file as the writer's inputs (typed metadata and tensors), so a test can change one thing and rewrite it. */
export interface GgufParts {
  kvs: [string, GgufValue][];
  tensors: GgufWriteTensor[];
}

export function kvsFromHeader(h: GgufHeader): [string, GgufValue][] {
  return Object.keys(h.metadata).map((k) => {
    const t = h.metadataTypes[k];
    const v = h.metadata[k];
    if (t === GgufType.ARRAY) {
      return [k, { type: GgufType.ARRAY, elementType: h.metadataArrayTypes[k] as Exclude<GgufType, GgufType.ARRAY>, value: v as (number | string | boolean)[] }];
    }
    return [k, { type: t as Exclude<GgufType, GgufType.ARRAY>, value: v as number | string | boolean }];
  });
}

export function ggufParts(file: string): GgufParts {
  const h = readGgufHeader(file);
  const raw = readGgufTensors(h);
  return {
    kvs: kvsFromHeader(h),
    tensors: h.tensors.map((t) => ({ name: t.name, shape: raw.get(t.name)!.shape, data: raw.get(t.name)!.data, type: "f32" as const })),
  };
}

/** Byte position of the u64 data offset of tensor `name` in a GGUF file's tensor infos. */
export function tensorOffsetPos(buf: Buffer, name: string): number {
  const key = Buffer.alloc(8 + Buffer.byteLength(name));
  key.writeBigUInt64LE(BigInt(Buffer.byteLength(name)));
  key.write(name, 8);
  const at = buf.lastIndexOf(key);
  if (at < 0) throw new Error(`tensor ${name} not found`);
  const nd = buf.readUInt32LE(at + key.length);
  return at + key.length + 4 + 8 * nd + 4;
}
