import { accumulate, type AccumulateOptions } from "../../src/importance";
import type { CausalLM } from "../../src/model/causal-lm";
import { TeacherCache } from "../../src/teacher";

/** `model`'s importance scores on `windows`, flattened over layers, with a top-`topk` teacher cache of itself. */
export async function scoresOf(model: CausalLM, windows: number[][], opts: AccumulateOptions, topk = 8): Promise<number[]> {
  const teacher = await TeacherCache.build(model, windows, { topk });
  return (await accumulate(model, windows, teacher, null, opts)).scores().flatMap((r) => Array.from(r));
}
