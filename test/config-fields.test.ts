import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { initEngine } from "../src/engine";
import { ConfigError } from "../src/errors";
import { readGgufHeader } from "../src/io/gguf";
import { patchJsonText } from "../src/io/config-text";
import { readModelFiles, writeModelFiles } from "../src/io/files";
import { CONFIG_FIELDS, MODEL_TYPES, parseConfig, type ModelConfig, type ModelType } from "../src/model/config";
import { randomTensors } from "../src/model/random";

/**
 * config.json files as the families' checkpoints ship them (transformers 4 layout), and the same configs as
 * transformers 5 writes them (`rope_parameters`, `dtype`). The test walks every field: each one must be
 * listed for its family, and is then proved used (changing it changes the parsed config or is refused by
 * name), ignored (changing it changes nothing) or refused (a non-harmless value is a ConfigError naming it).
 */
const LLAMA_3_2_1B = {
  architectures: ["LlamaForCausalLM"], attention_bias: false, attention_dropout: 0.0, bos_token_id: 128000, eos_token_id: 128001,
  head_dim: 64, hidden_act: "silu", hidden_size: 2048, initializer_range: 0.02, intermediate_size: 8192, max_position_embeddings: 131072,
  mlp_bias: false, model_type: "llama", num_attention_heads: 32, num_hidden_layers: 16, num_key_value_heads: 8, pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: "llama3" },
  rope_theta: 500000.0, tie_word_embeddings: true, torch_dtype: "bfloat16", transformers_version: "4.45.0.dev0", use_cache: true, vocab_size: 128256,
};
const MISTRAL_7B_V03 = {
  architectures: ["MistralForCausalLM"], attention_dropout: 0.0, bos_token_id: 1, eos_token_id: 2, hidden_act: "silu", hidden_size: 4096,
  initializer_range: 0.02, intermediate_size: 14336, max_position_embeddings: 32768, model_type: "mistral", num_attention_heads: 32,
  num_hidden_layers: 32, num_key_value_heads: 8, rms_norm_eps: 1e-5, rope_theta: 1000000.0, sliding_window: null, tie_word_embeddings: false,
  torch_dtype: "bfloat16", transformers_version: "4.42.0.dev0", use_cache: true, vocab_size: 32768,
};
const QWEN2_5_0_5B = {
  architectures: ["Qwen2ForCausalLM"], attention_dropout: 0.0, bos_token_id: 151643, eos_token_id: 151643, hidden_act: "silu", hidden_size: 896,
  initializer_range: 0.02, intermediate_size: 4864, max_position_embeddings: 32768, max_window_layers: 24, model_type: "qwen2",
  num_attention_heads: 14, num_hidden_layers: 24, num_key_value_heads: 2, rms_norm_eps: 1e-6, rope_theta: 1000000.0, sliding_window: 32768,
  tie_word_embeddings: true, torch_dtype: "bfloat16", transformers_version: "4.40.1", use_cache: true, use_mrope: false, use_sliding_window: false,
  vocab_size: 151936,
};
const QWEN3_0_6B = {
  architectures: ["Qwen3ForCausalLM"], attention_bias: false, attention_dropout: 0.0, bos_token_id: 151643, eos_token_id: 151645, head_dim: 128,
  hidden_act: "silu", hidden_size: 1024, initializer_range: 0.02, intermediate_size: 3072, max_position_embeddings: 40960, max_window_layers: 28,
  model_type: "qwen3", num_attention_heads: 16, num_hidden_layers: 28, num_key_value_heads: 8, rms_norm_eps: 1e-6, rope_scaling: null,
  rope_theta: 1000000, sliding_window: null, tie_word_embeddings: true, torch_dtype: "bfloat16", transformers_version: "4.51.0", use_cache: true,
  use_sliding_window: false, vocab_size: 151936,
};
const PHI_3_MINI_4K = {
  architectures: ["Phi3ForCausalLM"], attention_bias: false, attention_dropout: 0.0,
  auto_map: { AutoConfig: "configuration_phi3.Phi3Config", AutoModelForCausalLM: "modeling_phi3.Phi3ForCausalLM" }, bos_token_id: 1,
  embd_pdrop: 0.0, eos_token_id: 32000, hidden_act: "silu", hidden_size: 3072, initializer_range: 0.02, intermediate_size: 8192,
  max_position_embeddings: 4096, model_type: "phi3", num_attention_heads: 32, num_hidden_layers: 32, num_key_value_heads: 32,
  original_max_position_embeddings: 4096, pad_token_id: 32000, resid_pdrop: 0.0, rms_norm_eps: 1e-5, rope_scaling: null, rope_theta: 10000.0,
  sliding_window: 2047, tie_word_embeddings: false, torch_dtype: "bfloat16", transformers_version: "4.40.2", use_cache: true, vocab_size: 32064,
};
const GEMMA_3_1B = {
  architectures: ["Gemma3ForCausalLM"], attention_bias: false, attention_dropout: 0.0, attn_logit_softcapping: null, bos_token_id: 2,
  cache_implementation: "hybrid", eos_token_id: [1, 106], final_logit_softcapping: null, head_dim: 256, hidden_activation: "gelu_pytorch_tanh",
  hidden_size: 1152, initializer_range: 0.02, intermediate_size: 6912, max_position_embeddings: 32768, model_type: "gemma3_text",
  num_attention_heads: 4, num_hidden_layers: 26, num_key_value_heads: 1, pad_token_id: 0, query_pre_attn_scalar: 256, rms_norm_eps: 1e-6,
  rope_local_base_freq: 10000, rope_scaling: null, rope_theta: 1000000, sliding_window: 512, sliding_window_pattern: 6, torch_dtype: "bfloat16",
  transformers_version: "4.50.0.dev0", use_cache: true, vocab_size: 262144,
};
const T4: Record<ModelType, Record<string, unknown>> = {
  llama: LLAMA_3_2_1B, mistral: MISTRAL_7B_V03, qwen2: QWEN2_5_0_5B, qwen3: QWEN3_0_6B, phi3: PHI_3_MINI_4K, gemma3_text: GEMMA_3_1B,
};

/** The transformers 5 layout of a transformers 4 config: RoPE nested in rope_parameters, dtype for torch_dtype. */
function asTransformers5(c: Record<string, unknown>): Record<string, unknown> {
  if (c.model_type === "gemma3_text") {
    // one RoPE block per layer type, layer_types spelled out, the pattern kept under a private name
    const { rope_theta, rope_scaling, rope_local_base_freq, sliding_window_pattern, torch_dtype, ...rest } = c;
    void rope_scaling;
    const n = c.num_hidden_layers as number;
    const p = sliding_window_pattern as number;
    return {
      ...rest, dtype: torch_dtype, transformers_version: "5.18.0", _sliding_window_pattern: p, use_bidirectional_attention: false,
      layer_types: Array.from({ length: n }, (_, i) => ((i + 1) % p === 0 ? "full_attention" : "sliding_attention")),
      rope_parameters: { full_attention: { rope_type: "default", rope_theta }, sliding_attention: { rope_type: "default", rope_theta: rope_local_base_freq } },
    };
  }
  const { rope_theta, rope_scaling, torch_dtype, ...rest } = c;
  const rs = (rope_scaling ?? { rope_type: "default" }) as Record<string, unknown>;
  const out: Record<string, unknown> = { ...rest, dtype: torch_dtype, rope_parameters: { ...rs, rope_theta }, transformers_version: "5.18.0" };
  if (Array.isArray(rest.layer_types) || c.model_type === "qwen2" || c.model_type === "qwen3") {
    out.layer_types = new Array(c.num_hidden_layers as number).fill("full_attention");
  }
  return out;
}

const strip = (c: ModelConfig): Omit<ModelConfig, "original"> => {
  const { original: _o, ...rest } = c;
  void _o;
  return rest;
};

/** A value that differs from v in the way a real config could differ. */
function perturb(field: string, v: unknown, c: Record<string, unknown>): unknown {
  switch (field) {
    case "model_type": return v === "llama" ? "mistral" : v === "gemma3_text" ? "gemma3" : "llama";
    case "architectures": return ["LlamaForSequenceClassification"];
    case "tie_word_embeddings": return !v;
    case "attention_bias": return !v;
    case "eos_token_id": return [Number(Array.isArray(v) ? v[0] : v), 7];
    case "rope_scaling": return { rope_type: "linear", factor: 2 };
    case "rope_parameters": return { rope_type: "linear", factor: 2, rope_theta: (v as Record<string, unknown> | undefined)?.rope_theta ?? 10000 };
    case "layer_types": return c.model_type === "gemma3_text" ? new Array(c.num_hidden_layers as number).fill("full_attention") : new Array(c.num_hidden_layers as number).fill("sliding_attention");
    case "sliding_window": return v === null ? 16 : Number(v) + 1;
    case "num_key_value_heads": return v === 1 ? 2 : 1;
    case "architectures_ok": return v;
    default:
      if (typeof v === "number") return v === 0 ? 0.1 : v * 2;
      if (typeof v === "boolean") return !v;
      if (v === null) return 1;
      if (typeof v === "string") return v + "-other";
      return { other: true };
  }
}

function outcome(raw: Record<string, unknown>): { config?: ModelConfig; error?: string } {
  try {
    return { config: parseConfig(raw, "config.json", { requireModelType: true }) };
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return { error: e.message };
  }
}

describe("config.json fields: every field used, ignored or refused", () => {
  for (const family of MODEL_TYPES) {
    for (const layout of ["transformers 4", "transformers 5"] as const) {
      it(`${family} (${layout} layout): each field is listed and behaves as its role says`, () => {
        const raw = layout === "transformers 4" ? T4[family] : asTransformers5(T4[family]);
        const base = outcome(raw);
        assert.ok(base.config, `the ${family} config parses: ${base.error}`);
        const table = CONFIG_FIELDS[family];
        for (const [field, v] of Object.entries(raw)) {
          const role = table[field];
          assert.ok(role, `${family}: field ${field} is not listed in CONFIG_FIELDS.${family}`);
          const changed = { ...raw, [field]: perturb(field, v, raw) };
          const got = outcome(changed);
          if (role.role === "ignored") {
            assert.ok(got.config, `${field} is ignored but changing it fails: ${got.error}`);
            assert.deepEqual(strip(got.config!), strip(base.config!), `${field} is listed as ignored but changes the config`);
          } else if (role.role === "used") {
            if (got.error) assert.match(got.error, new RegExp(field.split("_")[0]), `${field}: the refusal names the field`);
            else assert.notDeepEqual(strip(got.config!), strip(base.config!), `${field} is listed as used but changing it changes nothing`);
          } else {
            assert.ok(got.error, `${field} = ${JSON.stringify(changed[field])} must be refused`);
            assert.ok(got.error!.includes(field), `the refusal names ${field}: ${got.error}`);
          }
        }
        // every refused-unless field, also those absent from this config, is refused with a harmful value
        for (const [field, role] of Object.entries(table)) {
          if (role.role !== "refused-unless") continue;
          const bad = field === "hidden_act" ? "gelu" : field === "attention_dropout" ? 0.1 : field.startsWith("is_") || field.startsWith("use_") || field.startsWith("add_") || field === "mlp_bias" ? true : { bits: 4 };
          const got = outcome({ ...raw, [field]: bad });
          assert.ok(got.error?.includes(field), `${field} = ${JSON.stringify(bad)} must be refused naming the field, got ${got.error ?? "a config"}`);
        }
      });
    }
    it(`${family}: transformers 4 and 5 layouts give the same model`, () => {
      assert.deepEqual(strip(parseConfig(T4[family])), strip(parseConfig(asTransformers5(T4[family]))));
    });
  }

  it("reads rope_parameters (transformers 5): theta 500000 and llama3 scaling, not the defaults", () => {
    const c = parseConfig(asTransformers5(LLAMA_3_2_1B));
    assert.equal(c.rope_theta, 500000);
    assert.deepEqual(c.rope_scaling, { rope_type: "llama3", factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 });
  });

  it("refuses rope types it does not compute, naming the field, the value and what is supported", () => {
    for (const type of ["yarn", "longrope", "dynamic", "su", "mrope"]) {
      for (const key of ["rope_scaling", "rope_parameters"] as const) {
        const raw = { ...LLAMA_3_2_1B, [key]: { rope_type: type, factor: 4, rope_theta: 500000 } };
        if (key === "rope_parameters") delete (raw as Record<string, unknown>).rope_scaling;
        assert.throws(() => parseConfig(raw), (e: Error) => e instanceof ConfigError && e.message.includes(`${key}.rope_type`) && e.message.includes(type) && e.message.includes("llama3"));
      }
    }
    // a key another rope type would read is refused too (it would be honoured by transformers for some type)
    assert.throws(() => parseConfig({ ...LLAMA_3_2_1B, rope_scaling: { ...LLAMA_3_2_1B.rope_scaling, attention_factor: 0.5 } }), /rope_scaling\.attention_factor/);
    assert.throws(() => parseConfig({ ...LLAMA_3_2_1B, rope_theta: 10000, rope_parameters: { rope_type: "default", rope_theta: 500000 } }), /disagree/);
    assert.throws(() => parseConfig({ ...LLAMA_3_2_1B, partial_rotary_factor: 0.5 }), /partial_rotary_factor/);
    assert.doesNotThrow(() => parseConfig({ ...LLAMA_3_2_1B, partial_rotary_factor: 1 }));
  });

  it("refuses unknown and not-yet-implemented model types, MoE fields and other activations", () => {
    for (const t of ["gemma3", "gpt2", "mixtral"]) {
      assert.throws(() => parseConfig({ ...LLAMA_3_2_1B, model_type: t }), (e: Error) => e instanceof ConfigError && e.message.includes(`"model_type" = "${t}"`) && e.message.includes("supported: llama, mistral, qwen2, qwen3, phi3, gemma3_text"));
    }
    assert.throws(() => parseConfig({ ...QWEN3_0_6B, num_experts: 8 }), /"num_experts" = 8/);
    assert.throws(() => parseConfig({ ...QWEN2_5_0_5B, hidden_act: "gelu" }), /"hidden_act" = "gelu".*silu/);
    assert.throws(() => parseConfig({ ...QWEN2_5_0_5B, use_sliding_window: true }), /use_sliding_window/);
    assert.throws(() => parseConfig({ ...PHI_3_MINI_4K, rope_scaling: { type: "longrope", short_factor: [1], long_factor: [2] } }), /rope_scaling\.rope_type.*longrope/);
    assert.throws(() => parseConfig({ ...PHI_3_MINI_4K, partial_rotary_factor: 0.5 }), /partial_rotary_factor/);
    const noType: Record<string, unknown> = { ...LLAMA_3_2_1B };
    delete noType.model_type;
    assert.throws(() => parseConfig(noType, "x/config.json", { requireModelType: true }), /model_type" is missing/);
  });

  it("derives the family differences: Qwen2 q/k/v biases, Qwen3 q/k norms and attention_bias, Mistral's window", () => {
    const q2 = parseConfig(QWEN2_5_0_5B);
    assert.deepEqual([q2.qkv_bias, q2.o_bias, q2.qk_norm, q2.sliding_window, q2.head_dim], [true, false, false, null, 64]);
    const q3 = parseConfig(QWEN3_0_6B);
    assert.deepEqual([q3.qkv_bias, q3.o_bias, q3.qk_norm, q3.head_dim], [false, false, true, 128]);
    const q3b = parseConfig({ ...QWEN3_0_6B, attention_bias: true });
    assert.deepEqual([q3b.qkv_bias, q3b.o_bias], [true, true]);
    assert.equal(parseConfig({ ...MISTRAL_7B_V03, sliding_window: 4096 }).sliding_window, 4096);
    const g = parseConfig(GEMMA_3_1B);
    assert.deepEqual([g.gemma_norms, g.hidden_act, g.qk_norm, g.rope_local_theta, g.rope_theta, g.query_pre_attn_scalar, g.tie_word_embeddings], [true, "gelu_pytorch_tanh", true, 10000, 1e6, 256, true]);
    assert.deepEqual(g.layer_types.slice(0, 7), ["sliding_attention", "sliding_attention", "sliding_attention", "sliding_attention", "sliding_attention", "full_attention", "sliding_attention"]);
    assert.equal(parseConfig({ ...GEMMA_3_1B, final_logit_softcapping: 30 }).final_logit_softcapping, 30);
    const l = parseConfig({ ...LLAMA_3_2_1B, attention_bias: true });
    assert.deepEqual([l.qkv_bias, l.o_bias, l.qk_norm], [true, true, false]);
  });
});

describe("config.json written back in the layout it was read in", () => {
  let tmp: string;
  before(async () => {
    await initEngine();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sdmprune-cfg-"));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  const small = (c: Record<string, unknown>): Record<string, unknown> => ({
    ...c, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 64,
    ...(c.head_dim !== undefined ? { head_dim: 8 } : {}), max_position_embeddings: 128,
    ...(Array.isArray(c.layer_types) ? { layer_types: ["full_attention", "full_attention"] } : {}),
    ...(c.rope_parameters && (c.rope_parameters as Record<string, unknown>).original_max_position_embeddings ? { rope_parameters: { ...(c.rope_parameters as object), original_max_position_embeddings: 16 } } : {}),
  });

  for (const family of MODEL_TYPES) {
    it(`${family}, transformers 5 layout: save keeps every field, changes only intermediate_size`, async () => {
      const raw = small(asTransformers5(T4[family]));
      const src = path.join(tmp, `${family}-src`);
      fs.mkdirSync(src);
      fs.writeFileSync(path.join(src, "config.json"), JSON.stringify(raw));
      const cfg = parseConfig(raw);
      await writeModelFiles(path.join(tmp, `${family}-w`), { config: cfg, tensors: randomTensors(cfg, 1), tokenizer: null }, { format: "hf" });
      // the fixture directory needs weights: copy the ones just written
      fs.copyFileSync(path.join(tmp, `${family}-w`, "model.safetensors"), path.join(src, "model.safetensors"));
      const read = await readModelFiles(src);
      const pruned = { ...read.config, intermediate_size: [40, 24] };
      const out = path.join(tmp, `${family}-out`);
      const t = randomTensors(pruned, 2);
      await writeModelFiles(out, { config: pruned, tensors: t, tokenizer: null }, { format: "hf" });
      const written = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8"));
      assert.deepEqual(written, { ...raw, intermediate_size: [40, 24], dtype: "float32" });
      assert.ok(!("rope_theta" in written) && !("torch_dtype" in written), "no transformers 4 keys added");
      const again = await readModelFiles(out);
      assert.deepEqual(strip(again.config), strip(pruned));
    });
  }

  it("patches the config text in place: numbers keep their spelling (10.0 stays 10.0), absent keys are added", () => {
    const text = '{\n  "a": 10.0,\n  "intermediate_size": 64,\n  "nested": {"intermediate_size": 3, "s": "}\\"{"},\n  "dtype": "float32"\n}\n';
    const out = patchJsonText(text, { intermediate_size: [40, 24], dtype: "float16" }, "t");
    assert.equal(out, '{\n  "a": 10.0,\n  "intermediate_size": [40,24],\n  "nested": {"intermediate_size": 3, "s": "}\\"{"},\n  "dtype": "float16"\n}\n');
    assert.deepEqual(JSON.parse(patchJsonText('{"a": 1}', { torch_dtype: "float32" }, "t")), { a: 1, torch_dtype: "float32" });
  });

  it("GGUF export of a transformers 5 Llama 3 config writes llama.cpp's keys: freq_base = rope_theta, rope_freqs for llama3", async () => {
    const raw = asTransformers5({ ...LLAMA_3_2_1B, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 8, vocab_size: 64 });
    const cfg = parseConfig(raw);
    const dir = path.join(tmp, "l3-gguf");
    await writeModelFiles(dir, { config: cfg, tensors: randomTensors(cfg, 3), tokenizer: null }, { format: "gguf" });
    const h = readGgufHeader(path.join(dir, "model.gguf"));
    assert.equal(h.metadata["llama.rope.freq_base"], 500000);
    assert.equal(h.metadata["llama.rope.scaling.type"], undefined, "llama.cpp writes no scaling type for llama3 (the factors are a tensor)");
    assert.ok(h.tensors.some((t) => t.name === "rope_freqs.weight" && Number(t.dims[0]) === 4));
    const back = await readModelFiles(path.join(dir, "model.gguf"));
    assert.deepEqual(strip(back.config), strip(cfg));
  });

  it("GGUF export of Qwen2.5 and Qwen3 configs writes llama.cpp's qwen2/qwen3 architectures and reads back to the same config", async () => {
    for (const raw of [QWEN2_5_0_5B, QWEN3_0_6B]) {
      const cfg = parseConfig({ ...raw, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 64, ...("head_dim" in raw ? { head_dim: 8 } : {}) });
      const dir = path.join(tmp, `ok-${raw.model_type}`);
      await writeModelFiles(dir, { config: cfg, tensors: randomTensors(cfg, 3), tokenizer: null }, { format: "gguf" });
      const h = readGgufHeader(path.join(dir, "model.gguf"));
      assert.equal(h.metadata["general.architecture"], raw.model_type);
      assert.equal(h.metadata[`${raw.model_type}.rope.freq_base`], cfg.rope_theta);
      const back = await readModelFiles(path.join(dir, "model.gguf"));
      assert.deepEqual(strip(back.config), strip(cfg));
    }
  });

  it("GGUF export refuses what llama.cpp's architectures would compute differently", async () => {
    for (const raw of [{ ...MISTRAL_7B_V03, sliding_window: 4096 }, PHI_3_MINI_4K, { ...GEMMA_3_1B, head_dim: 8 }]) {
      const cfg = parseConfig({ ...raw, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 64, ...("head_dim" in raw ? { head_dim: 8 } : {}) });
      await assert.rejects(writeModelFiles(path.join(tmp, `x-${raw.model_type}`), { config: cfg, tensors: randomTensors(cfg, 3), tokenizer: null }, { format: "gguf" }), /GGUF export/);
    }
  });
});
