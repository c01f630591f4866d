import { DataError, UsageError } from "../errors";

/**
 * A small byte-level BPE trainer (GPT-2 style) whose output is a Hugging Face `tokenizer.json` that
 * `@huggingface/tokenizers` loads as is. Byte-level means every input is encodable (no <unk> at encode
 * time), and a few hundred merges already give ~3 characters per token on English prose, which makes a
 * tiny model far cheaper to train per character than raw bytes.
 *
 * Id layout mirrors Llama tokenizers so config defaults (bos 1, eos 2) hold: 0 `<unk>`, 1 `<s>`, 2 `</s>`,
 * 3..258 the 256 byte symbols, then one id per merge in merge order.
 */

/** The pre-tokenizer split used by GPT-2 and by `@huggingface/tokenizers`' ByteLevel pre-tokenizer. */
const PRETOKENIZE = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** GPT-2's reversible byte → printable character map. */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const out = new Array<string>(256);
  for (let i = 0; i < bs.length; i++) out[bs[i]] = String.fromCharCode(cs[i]);
  return out;
}

export const SPECIAL_TOKENS = ["<unk>", "<s>", "</s>"] as const;

export interface BpeTrainOptions {
  /** Total vocabulary size including the 3 special tokens and 256 bytes; must exceed 259. */
  vocabSize: number;
  /** Pre-tokenized words seen fewer times are ignored when counting pairs (speeds training; default 1). */
  minWordCount?: number;
}

export interface BpeResult {
  /** The tokenizer as a Hugging Face tokenizer.json object. */
  json: object;
  vocab: Map<string, number>;
  merges: [string, string][];
}

/**
 * Train byte-level BPE merges on `texts`. Ties between equally frequent pairs are broken by the pair's
 * string order, so the result depends only on the input.
 */
export function trainByteLevelBpe(texts: string[], opts: BpeTrainOptions): BpeResult {
  const base = SPECIAL_TOKENS.length + 256;
  if (!Number.isInteger(opts.vocabSize) || opts.vocabSize <= base) {
    throw new UsageError(`BPE vocabSize must be an integer > ${base} (3 special + 256 bytes), got ${opts.vocabSize}`);
  }
  const byteChar = bytesToUnicode();
  const enc = new TextEncoder();
  const counts = new Map<string, number>();
  let any = false;
  for (const t of texts) {
    for (const m of t.match(PRETOKENIZE) ?? []) {
      any = true;
      const w = Array.from(enc.encode(m), (b) => byteChar[b]).join("");
      counts.set(w, (counts.get(w) ?? 0) + 1);
    }
  }
  if (!any) throw new DataError("BPE training text is empty");
  const minCount = opts.minWordCount ?? 1;
  const words: { syms: string[]; n: number }[] = [];
  for (const [w, n] of counts) if (n >= minCount) words.push({ syms: Array.from(w), n });

  const vocab = new Map<string, number>();
  SPECIAL_TOKENS.forEach((s, i) => vocab.set(s, i));
  for (let b = 0; b < 256; b++) vocab.set(byteChar[b], SPECIAL_TOKENS.length + b);
  const merges: [string, string][] = [];
  const SEP = "\u0000";
  while (vocab.size < opts.vocabSize) {
    const pairs = new Map<string, number>();
    for (const { syms, n } of words) {
      for (let i = 0; i + 1 < syms.length; i++) {
        const k = syms[i] + SEP + syms[i + 1];
        pairs.set(k, (pairs.get(k) ?? 0) + n);
      }
    }
    let best: string | null = null;
    let bestN = 0;
    for (const [k, n] of pairs) {
      if (n > bestN || (n === bestN && best !== null && k < best)) {
        best = k;
        bestN = n;
      }
    }
    if (best === null || bestN < 2) break; // nothing left worth merging
    const [a, b] = best.split(SEP) as [string, string];
    const ab = a + b;
    merges.push([a, b]);
    if (!vocab.has(ab)) vocab.set(ab, vocab.size);
    for (const w of words) {
      const s = w.syms;
      if (s.length < 2) continue;
      const out: string[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          out.push(ab);
          i++;
        } else out.push(s[i]);
      }
      w.syms = out;
    }
  }
  return { json: tokenizerJson(vocab, merges), vocab, merges };
}

function tokenizerJson(vocab: Map<string, number>, merges: [string, string][]): object {
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: {
      type: "TemplateProcessing",
      single: [
        { SpecialToken: { id: "<s>", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: "<s>", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
    },
    decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(vocab),
      merges: merges.map(([a, b]) => [a, b]),
    },
  };
}
