import * as tf from "@tensorflow/tfjs";
import type { LlamaConfig } from "../model/config";
import type { LayerWeights } from "../model/llama";
import { ropeTables } from "../model/rope";

/**
 * One decoder layer with LoRA branches applied explicitly: y = x·W + s·(drop(x)·A)·B per projection.
 *
 * Why a second layer implementation: the model's `layer()` takes weights as arguments, which is enough for
 * LoRA without dropout (pass W + s·A·B, see lora.ts), but PEFT's dropout acts on the LoRA *input* x
 * element-wise, which no choice of weights can express. This path is used only when training with dropout
 * > 0; it mirrors LlamaModel's layer (RMSNorm, rotate-half RoPE, grouped-query attention, SwiGLU) and the
 * tests check it against `model.layer` with merged weights (≤ 1e-5).
 */
export interface LoraBranch {
  A: tf.Tensor2D; // [in, r]
  B: tf.Tensor2D; // [r, out]
}

export type Projection = "q_proj" | "k_proj" | "v_proj" | "o_proj" | "gate_proj" | "up_proj" | "down_proj";

/** Inverted-dropout masks per projection ([N, in], values 0 or 1/(1−p)); absent = no dropout. */
export type DropoutMasks = Partial<Record<Projection, tf.Tensor2D>>;

export class LoraLayerForward {
  private readonly tables = new Map<number, { cos: tf.Tensor4D; sin: tf.Tensor4D }>();

  constructor(private readonly config: LlamaConfig) {}

  private rope(T: number): { cos: tf.Tensor4D; sin: tf.Tensor4D } {
    let t = this.tables.get(T);
    if (!t) {
      const hd = this.config.head_dim;
      const half = hd / 2;
      const { cos, sin } = ropeTables(this.config, T);
      // rotate_half(x) = [−x2, x1]: fold the minus into the first half of sin and use [x2, x1]
      for (let p = 0; p < T; p++) for (let j = 0; j < half; j++) sin[p * hd + j] = -sin[p * hd + j];
      t = {
        cos: tf.keep(tf.tensor4d(cos, [1, T, 1, hd])),
        sin: tf.keep(tf.tensor4d(sin, [1, T, 1, hd])),
      };
      this.tables.set(T, t);
    }
    return t;
  }

  private rmsNorm(x: tf.Tensor2D, w: tf.Tensor1D): tf.Tensor2D {
    const ms = tf.mean(tf.square(x), -1, true);
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, this.config.rms_norm_eps))), w);
  }

  private lin(x: tf.Tensor2D, lw: LayerWeights, p: Projection, lora: Partial<Record<Projection, LoraBranch>>, scale: number, masks: DropoutMasks): tf.Tensor2D {
    const y = tf.matMul(x, lw[p]) as tf.Tensor2D;
    const br = lora[p];
    if (!br) return y;
    const xin = (masks[p] ? tf.mul(x, masks[p]!) : x) as tf.Tensor2D;
    return tf.add(y, tf.mul(tf.matMul(tf.matMul(xin, br.A), br.B), scale)) as tf.Tensor2D;
  }

  private applyRope(x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D): tf.Tensor4D {
    const half = this.config.head_dim / 2;
    const [x1, x2] = tf.split(x, [half, half], 3);
    return tf.add(tf.mul(x, cos), tf.mul(tf.concat([x2, x1], 3), sin));
  }

  /** h [B·T, H] → [B·T, H]. Not wrapped in tidy: meant to run inside a taped function. */
  layer(h: tf.Tensor2D, B: number, T: number, lw: LayerWeights, lora: Partial<Record<Projection, LoraBranch>>, scale: number, masks: DropoutMasks = {}): tf.Tensor2D {
    const c = this.config;
    const nH = c.num_attention_heads;
    const nKV = c.num_key_value_heads;
    const hd = c.head_dim;
    const g = nH / nKV;
    const { cos, sin } = this.rope(T);
    const xn = this.rmsNorm(h, lw.input_layernorm);
    const q = this.applyRope(this.lin(xn, lw, "q_proj", lora, scale, masks).reshape([B, T, nH, hd]), cos, sin);
    const k = this.applyRope(this.lin(xn, lw, "k_proj", lora, scale, masks).reshape([B, T, nKV, hd]), cos, sin);
    const v = this.lin(xn, lw, "v_proj", lora, scale, masks).reshape([B, T, nKV, hd]);
    const qq = tf.mul(tf.transpose(q, [0, 2, 1, 3]).reshape([B * nKV, g * T, hd]), 1 / Math.sqrt(hd));
    const kk = tf.transpose(k, [0, 2, 1, 3]).reshape([B * nKV, T, hd]) as tf.Tensor3D;
    const vv = tf.transpose(v, [0, 2, 1, 3]).reshape([B * nKV, T, hd]) as tf.Tensor3D;
    let scores: tf.Tensor = tf.matMul(qq as tf.Tensor3D, tf.transpose(kk, [0, 2, 1]));
    if (T > 1) scores = tf.add(scores.reshape([B * nKV, g, T, T]), this.mask(T)).reshape([B * nKV, g * T, T]);
    const probs = tf.softmax(scores) as tf.Tensor3D;
    const ctx = tf.matMul(probs, vv).reshape([B, nH, T, hd]);
    const merged = tf.transpose(ctx, [0, 2, 1, 3]).reshape([B * T, nH * hd]) as tf.Tensor2D;
    const x: tf.Tensor2D = tf.add(h, this.lin(merged, lw, "o_proj", lora, scale, masks));
    const xn2 = this.rmsNorm(x, lw.post_attention_layernorm);
    const gate = this.lin(xn2, lw, "gate_proj", lora, scale, masks);
    const act = tf.mul(tf.mul(gate, tf.sigmoid(gate)), this.lin(xn2, lw, "up_proj", lora, scale, masks)) as tf.Tensor2D;
    return tf.add(x, this.lin(act, lw, "down_proj", lora, scale, masks));
  }

  private readonly masks = new Map<number, tf.Tensor2D>();
  private mask(T: number): tf.Tensor2D {
    let m = this.masks.get(T);
    if (!m) {
      const a = new Float32Array(T * T);
      for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) a[i * T + j] = -1e9;
      m = tf.keep(tf.tensor2d(a, [T, T]));
      this.masks.set(T, m);
    }
    return m;
  }

  dispose(): void {
    for (const t of this.tables.values()) tf.dispose([t.cos, t.sin]);
    for (const m of this.masks.values()) m.dispose();
    this.tables.clear();
    this.masks.clear();
  }
}
