import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { initEngine } from "../src/engine";
import { CausalLM } from "../src/model/causal-lm";
import { randomTensors } from "../src/model/random";
import type { TensorMap } from "../src/io/tensors";
import type { LlamaConfig } from "../src/model/config";
import { referenceLoss } from "./reference/llama-ref";
import { TINY_CONFIGS, nextTokenCE, randomIds, relError } from "./reference/configs";

/**
 * Central difference in float64 with the independent reference forward. Step 1e-4: the truncation
 * error is O(h²·|L'''|) ≈ 1e-8 and the float64 rounding error ≈ 1e-16·|L|/h ≈ 1e-11, so the FD value is
 * exact to ~1e-8 — far below float32 gradient noise. (An FD through the float32 model would need
 * h ≈ 1e-2 and lose 3–4 digits, which is why the reference is used.)
 */
function fdGrad(config: LlamaConfig, tensors: TensorMap, ids: number[], name: string, flatHf: number): number {
  const h = 1e-4;
  const base = Float64Array.from(tensors.get(name)!.data);
  const at = (delta: number): number => {
    const w = base.slice();
    w[flatHf] += delta;
    return referenceLoss(config, tensors, ids, { override: new Map([[name, w]]) });
  };
  return (at(h) - at(-h)) / (2 * h);
}

/** Flat index in the internal [in, out] gradient of HF entry (out=o, in=i); 1-D and embedding are unchanged. */
function internalIndex(name: string, shapeHf: number[], flatHf: number): number {
  if (shapeHf.length === 1 || name === "model.embed_tokens.weight") return flatHf;
  const [out, inp] = shapeHf;
  const o = Math.floor(flatHf / inp);
  const i = flatHf % inp;
  return i * out + o;
}

function checkAgainstFd(config: LlamaConfig, tensors: TensorMap, ids: number[], grads: Map<string, tf.Tensor>, picks: [string, number][]): number {
  const got: number[] = [];
  const want: number[] = [];
  for (const [name, flat] of picks) {
    const g = grads.get(name)!.dataSync();
    got.push(g[internalIndex(name, tensors.get(name)!.shape, flat)]);
    want.push(fdGrad(config, tensors, ids, name, flat));
  }
  // float32 forward+backward carries ~1e-6 relative noise against the gradient scale
  const scale = Math.max(...want.map(Math.abs));
  const worst = Math.max(...got.map((g, k) => Math.abs(g - want[k]))) / scale;
  assert.ok(scale > 1e-4, `gradient entries too small to test (${scale})`);
  assert.ok(worst <= 1e-3, `max |grad − FD| / max|FD| = ${worst}`);
  return worst;
}

function picksFor(tensors: TensorMap, names: string[], perTensor: number, seed: number): [string, number][] {
  const picks: [string, number][] = [];
  names.forEach((n, k) => {
    const size = tensors.get(n)!.data.length;
    for (const r of randomIds(perTensor, size, seed + k)) picks.push([n, r]);
  });
  return picks;
}

describe("gradients", function () {
  const config = TINY_CONFIGS["gqa+llama3+tied"];
  const tensors = randomTensors(config, 21, 0.3);
  const ids = randomIds(10, 40, 8); // 40 = smallest vocabulary used below
  const isMlp = (n: string): boolean => /\.mlp\./.test(n);
  const mlpNames = [...tensors.keys()].filter(isMlp);

  const run = async (backend: "cpu" | "wasm", select: (n: string) => boolean, cfg = config, ts = tensors) => {
    await initEngine(backend);
    const model = CausalLM.fromTensors(cfg, ts);
    try {
      return model.gradients([ids], nextTokenCE([ids], cfg.vocab_size), select);
    } finally {
      model.dispose();
    }
  };

  it("MLP weight gradients match float64 central differences (cpu), loss matches the reference", async () => {
    const { loss, grads } = await run("cpu", isMlp);
    try {
      assert.deepEqual([...grads.keys()].sort(), mlpNames.slice().sort());
      const refLoss = referenceLoss(config, tensors, ids);
      assert.ok(Math.abs(loss - refLoss) <= 1e-5 * refLoss, `loss ${loss} vs reference ${refLoss}`);
      const worst = checkAgainstFd(config, tensors, ids, grads, picksFor(tensors, mlpNames, 4, 1));
      console.log(`      cpu: loss ${loss.toFixed(6)} (ref ${refLoss.toFixed(6)}), max |g−FD|/max|FD| = ${worst.toExponential(2)}`);
    } finally {
      for (const g of grads.values()) g.dispose();
    }
  });

  it("wasm gradients equal cpu gradients (BatchMatMul gradient override)", async () => {
    const cpu = await run("cpu", isMlp);
    const cpuHost = new Map([...cpu.grads].map(([k, g]) => [k, g.dataSync().slice()]));
    tf.dispose([...cpu.grads.values()]);
    const wasm = await run("wasm", isMlp);
    try {
      let worst = 0;
      for (const [k, g] of wasm.grads) worst = Math.max(worst, relError(g.dataSync(), cpuHost.get(k)!).rel);
      console.log(`      wasm vs cpu: loss ${wasm.loss} vs ${cpu.loss}, max rel grad diff ${worst.toExponential(2)}`);
      assert.ok(Math.abs(wasm.loss - cpu.loss) <= 1e-5 * cpu.loss);
      assert.ok(worst <= 1e-4, `wasm vs cpu gradient rel diff ${worst}`);
    } finally {
      tf.dispose([...wasm.grads.values()]);
    }
  });

  it("embedding (gather) gradient works on wasm and matches FD, tied and untied", async () => {
    const untied = TINY_CONFIGS["mha+linear-rope+untied"];
    const untiedTensors = randomTensors(untied, 4, 0.3);
    for (const [cfg, ts] of [
      [config, tensors],
      [untied, untiedTensors],
    ] as const) {
      const { grads } = await run("wasm", (n) => n === "model.embed_tokens.weight" || n === "model.norm.weight", cfg, ts);
      try {
        const H = cfg.hidden_size;
        // entries of rows the sequence actually uses (non-zero gather gradient) plus a few arbitrary ones
        const used = [...new Set(ids)].slice(0, 4);
        const picks: [string, number][] = used.map((r, k) => ["model.embed_tokens.weight", r * H + ((k * 7) % H)]);
        picks.push(["model.embed_tokens.weight", 5], ["model.norm.weight", 3]);
        const worst = checkAgainstFd(cfg, ts, ids, grads, picks);
        console.log(`      wasm embedding grad (${cfg.tie_word_embeddings ? "tied" : "untied"}): max |g−FD|/max|FD| = ${worst.toExponential(2)}`);
      } finally {
        tf.dispose([...grads.values()]);
      }
    }
  });

  it("attention and norm gradients through all layers match FD (wasm)", async () => {
    const names = ["model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight", "model.layers.1.self_attn.v_proj.weight", "model.layers.0.input_layernorm.weight"];
    const { grads } = await run("wasm", (n) => names.includes(n));
    try {
      checkAgainstFd(config, tensors, ids, grads, picksFor(tensors, names, 3, 5));
    } finally {
      tf.dispose([...grads.values()]);
    }
  });
});
