import { Rng } from "../rng";
import { numel, type TensorMap } from "../io/tensors";
import { expectedShapes, type LlamaConfig } from "./config";

/**
 * Random weights in Hugging Face layout for tests and demos. Each tensor draws from its own stream
 * derived from (seed, name), so a seed fixes every value regardless of iteration order. Linear and
 * embedding weights ~ N(0, scale²); norm weights = 1 + scale·N(0, 1) so that RMSNorm scaling is exercised.
 */
export function randomTensors(config: LlamaConfig, seed: number, scale = 0.02): TensorMap {
  const map: TensorMap = new Map();
  for (const [name, shape] of expectedShapes(config)) {
    const norm = name.endsWith("norm.weight");
    const rng = Rng.derive(seed, name);
    const data = new Float32Array(numel(shape));
    for (let i = 0; i < data.length; i++) data[i] = norm ? 1 + scale * rng.normal() : scale * rng.normal();
    map.set(name, { shape, data });
  }
  return map;
}
