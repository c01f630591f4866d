import * as fs from "node:fs";
import * as path from "node:path";
import { readSafetensors, writeSafetensors } from "../../src/io/safetensors";

const FIXTURE = path.join(__dirname, "..", "fixtures", "families", "gemma3");

/**
 * A Gemma 3 in the shape llama.cpp's gemma3 architecture computes (query_pre_attn_scalar = head_dim, every 6th
 * layer global), written as an HF directory from the trained fixture's weights: 6 layers (the five sliding ones from
 * the fixture's sliding layers 0, 1, 3, 0, 1; the 6th, global, from its global layer 2), query_pre_attn_scalar 16
 * (the fixture's is 24). Not a transformers-checked model (a new config); tests compare it with sdmprune itself.
 */
export function writeLlamaCppGemma3(dir: string): void {
  const config = JSON.parse(fs.readFileSync(path.join(FIXTURE, "config.json"), "utf8")) as Record<string, unknown>;
  const from = [0, 1, 3, 0, 1, 2];
  const t = readSafetensors(path.join(FIXTURE, "model.safetensors"));
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  const layer = (k: string) => /^model\.layers\.(\d+)\.(.+)$/.exec(k);
  for (const [k, v] of t) if (!layer(k)) out.set(k, { shape: v.shape.slice(), data: Float32Array.from(v.data) });
  from.forEach((old, l) => {
    for (const [k, v] of t) {
      const m = layer(k);
      if (m && Number(m[1]) === old) out.set(`model.layers.${l}.${m[2]}`, { shape: v.shape.slice(), data: Float32Array.from(v.data) });
    }
  });
  fs.mkdirSync(dir, { recursive: true });
  Object.assign(config, { num_hidden_layers: 6, query_pre_attn_scalar: 16, layer_types: from.map((_, i) => (i === 5 ? "full_attention" : "sliding_attention")) });
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config, null, 2));
  writeSafetensors(path.join(dir, "model.safetensors"), out);
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) fs.copyFileSync(path.join(FIXTURE, f), path.join(dir, f));
}
