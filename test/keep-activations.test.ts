import { strict as assert } from "node:assert";
import { WORKLOADS } from "../bench/workloads";
import { layerActivationFloats } from "../src/model/causal-lm";
import { parseConfig, type LlamaConfig } from "../src/model/config";
import {
  KEEP_ACTIVATIONS_MAX_MIB, KEEP_ACTIVATIONS_MIN_MIB, KEEP_ACTIVATIONS_TOTAL_MIB, defaultKeepActivationsMiB, importancePassBytes, weightBytes,
} from "../src/resources";

/**
 * Issue 14: the importance pass's default activation budget follows the model. Small models keep every layer
 * of a batch (no recomputation in the backward sweep); from ~1.9 GiB of float32 weights up it is 128 MiB, so the
 * 1B-shaped scoring run's peak relative to its weights (issue 20) is what it was; on wasm it stays 128 MiB. Only
 * configs: nothing is allocated.
 */

const MiB = 2 ** 20;

const STORIES110M = parseConfig(WORKLOADS.stories110M.config);
const STORIES15M = parseConfig(WORKLOADS.stories15M.config);
const LLAMA_1B = parseConfig(WORKLOADS.llama1b.config);

/** Bytes the layerwise pass saves over all layers for `windows` windows of T tokens. */
function allLayersBytes(c: LlamaConfig, windows: number, T: number): number {
  let f = 0;
  for (let l = 0; l < c.num_hidden_layers; l++) f += layerActivationFloats(c, l, T);
  return 4 * windows * f;
}

describe("importance: default activation budget (keepActivationsMiB) follows the model's size", () => {
  it("stories15M and stories110M keep every layer of an 8-window batch at seq 128", () => {
    for (const c of [STORIES15M, STORIES110M]) {
      const keep = defaultKeepActivationsMiB(c, "tensorflow");
      assert.ok(allLayersBytes(c, 8, 128) <= keep * MiB, `${allLayersBytes(c, 8, 128) / MiB} MiB needed, ${keep} MiB kept`);
    }
    assert.ok(allLayersBytes(STORIES110M, 8, 128) > KEEP_ACTIVATIONS_MIN_MIB * MiB, "stories110M needs more than the big-model budget");
    assert.equal(defaultKeepActivationsMiB(STORIES110M, "tensorflow"), KEEP_ACTIVATIONS_MAX_MIB);
  });

  it("the Llama-3.2-1B shape keeps the big-model budget (its peak relative to the weights is unchanged)", () => {
    assert.ok(weightBytes(LLAMA_1B) > 4 * 2 ** 30);
    assert.equal(defaultKeepActivationsMiB(LLAMA_1B, "tensorflow"), KEEP_ACTIVATIONS_MIN_MIB);
  });

  it("is 2 GiB minus the weights in between, never increasing with the weights and without jumps", () => {
    let prev: { keep: number; w: number } | null = null;
    for (let layers = 1; layers <= 40; layers++) {
      // a stories-style model (MHA, tied head, 32000-token vocabulary) of dim 1024 and hidden 4096
      const c = parseConfig({ ...WORKLOADS.stories15M.config, hidden_size: 1024, intermediate_size: 4096, num_hidden_layers: layers, num_attention_heads: 16, num_key_value_heads: 16, head_dim: 64 });
      const w = weightBytes(c) / MiB;
      const keep = defaultKeepActivationsMiB(c, "tensorflow");
      assert.ok(keep >= KEEP_ACTIVATIONS_MIN_MIB && keep <= KEEP_ACTIVATIONS_MAX_MIB);
      if (keep > KEEP_ACTIVATIONS_MIN_MIB && keep < KEEP_ACTIVATIONS_MAX_MIB) assert.ok(Math.abs(keep + w - KEEP_ACTIVATIONS_TOTAL_MIB) < 1e-6);
      if (prev) {
        assert.ok(keep <= prev.keep, `${layers} layers: ${keep} MiB after ${prev.keep}`);
        assert.ok(prev.keep - keep <= w - prev.w + 1e-6, `${layers} layers: the budget drops by more than the weights grow`);
      }
      prev = { keep, w };
    }
    assert.equal(prev?.keep, KEEP_ACTIVATIONS_MIN_MIB, "the sweep reaches the big-model budget");
  });

  it("on wasm it is the big-model budget (it comes out of the 4 GiB heap), which one stories110M window fits", () => {
    for (const c of [STORIES15M, STORIES110M, LLAMA_1B]) assert.equal(defaultKeepActivationsMiB(c, "wasm"), KEEP_ACTIVATIONS_MIN_MIB);
    assert.ok(allLayersBytes(STORIES110M, 1, 128) <= KEEP_ACTIVATIONS_MIN_MIB * MiB);
  });

  it("the wasm heap estimate counts what a pass keeps, at most the budget", () => {
    // one window of stories110M keeps 92 MiB, less than its 1 GiB budget: the estimate counts the 92
    const one = allLayersBytes(STORIES110M, 1, 128);
    assert.equal(importancePassBytes(STORIES110M, 1, 128), importancePassBytes(STORIES110M, 1, 128, one / MiB));
    assert.ok(importancePassBytes(STORIES110M, 1, 128) < importancePassBytes(STORIES110M, 1, 128, 0) + one + 1);
    // the 1B shape's window needs more than 128 MiB: the budget bounds it
    assert.ok(allLayersBytes(LLAMA_1B, 1, 128) > KEEP_ACTIVATIONS_MIN_MIB * MiB);
    assert.equal(importancePassBytes(LLAMA_1B, 1, 128), importancePassBytes(LLAMA_1B, 1, 128, KEEP_ACTIVATIONS_MIN_MIB));
    assert.equal(importancePassBytes(LLAMA_1B, 1, 128) - importancePassBytes(LLAMA_1B, 1, 128, 0), KEEP_ACTIVATIONS_MIN_MIB * MiB);
  });
});
