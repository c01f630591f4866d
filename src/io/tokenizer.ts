import * as fs from "node:fs";
import { FormatError, UsageError } from "../errors";
import type { TextTokenizer } from "../types";
import { readJsonFile } from "./json";

/**
 * Text tokenizers backed by `@huggingface/tokenizers` (pure JS). Two sources:
 *  - a Hugging Face `tokenizer.json` (+ optional `tokenizer_config.json`);
 *  - a GGUF SentencePiece vocabulary (`tokenizer.ggml.model` = "llama"), turned into an equivalent
 *    `tokenizer.json` (BPE with byte fallback, merges from every split of a normal token ordered by the token's
 *    score, the same construction as transformers' SentencePieceExtractor) so both paths share one engine and a
 *    GGUF model can be saved as a standard HF directory.
 * BOS is prepended by this class (not the post-processor), so `addBos` means the same for every source. Whether it
 * is added by default follows the tokenizer as transformers runs it: `add_bos_token` in tokenizer_config.json when
 * present, else whether tokenizer.json's post-processor template starts with a special token (Llama 3.x, Gemma,
 * SentencePiece llama add one; Qwen does not).
 */

/** GGUF `tokenizer.ggml.token_type` values (llama.cpp `llama_token_type`). */
export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

export interface SentencePieceVocab {
  tokens: string[];
  scores: number[];
  types: number[];
  bosTokenId: number | null;
  eosTokenId: number | null;
  unkTokenId: number | null;
  /** Whether "▁" is prepended to the text (GGUF `tokenizer.ggml.add_space_prefix`, default true); Gemma's is not. */
  addSpacePrefix?: boolean;
}

/**
 * A GGUF vocabulary must fit the model it ships with, as llama.cpp requires: one token per embedding row
 * (`vocabSize` = rows of token_embd.weight / config vocab_size), scores and types of the same length, and special
 * token ids inside the vocabulary. Otherwise the ids the tokenizer produces would index other rows (or none) of
 * the embedding: a silently different model. Element types are checked with the rest of the metadata.
 */
export function checkGgufVocab(file: string, metadata: Record<string, unknown>, vocabSize: number): void {
  const tokens = metadata["tokenizer.ggml.tokens"];
  if (metadata["tokenizer.ggml.model"] === undefined || !Array.isArray(tokens)) return;
  if (tokens.length !== vocabSize) {
    throw new FormatError(`${file}: tokenizer.ggml.tokens has ${tokens.length} tokens but the model has ${vocabSize} embedding rows (vocab_size); expected equal`);
  }
  for (const k of ["tokenizer.ggml.scores", "tokenizer.ggml.token_type"]) {
    const a = metadata[k];
    if (Array.isArray(a) && a.length !== tokens.length) throw new FormatError(`${file}: ${k} has ${a.length} entries, expected ${tokens.length} (one per token)`);
  }
  // 0xFFFFFFFF is llama.cpp's "no such token" (LLAMA_TOKEN_NULL as u32); padding is never used here.
  for (const k of ["tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id"]) {
    const id = metadata[k];
    if (id !== undefined && id !== 0xffffffff && !(typeof id === "number" && id < tokens.length)) {
      throw new FormatError(`${file}: ${k} is ${String(id)}, outside the vocabulary of ${tokens.length} tokens`);
    }
  }
}

/** The part of @huggingface/tokenizers' Tokenizer used here. */
interface TokenizerType {
  encode(text: string, options?: { add_special_tokens?: boolean }): { ids: number[] };
  decode(ids: number[], options?: { skip_special_tokens?: boolean }): string;
  token_to_id(token: string): number | undefined;
  id_to_token(id: number): string | undefined;
  get_vocab(withAddedTokens?: boolean): Map<string, number>;
}
// The package is typed as ESM (its types cannot be imported from CommonJS) but ships a CommonJS build under the
// "require" condition, which src/ loads.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Tokenizer } = require("@huggingface/tokenizers") as { Tokenizer: new (json: object, config: object) => TokenizerType };

const SPACE = "\u2581";

/** The `tokenizer.json` object equivalent to a SentencePiece BPE vocabulary (as in a GGUF). */
export function tokenizerJsonFromSentencePiece(v: SentencePieceVocab): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  v.tokens.forEach((t, id) => {
    if (!(t in vocab)) vocab[t] = id;
  });
  const merges: { a: string; b: string; score: number; id: number; ia: number; ib: number }[] = [];
  v.tokens.forEach((t, id) => {
    if (v.types[id] !== TOKEN_TYPE.NORMAL) return;
    const chars = Array.from(t); // split on code points, never inside a surrogate pair
    for (let k = 1; k < chars.length; k++) {
      const a = chars.slice(0, k).join("");
      const b = chars.slice(k).join("");
      if (a in vocab && b in vocab) merges.push({ a, b, score: v.scores[id], id, ia: vocab[a], ib: vocab[b] });
    }
  });
  merges.sort((x, y) => y.score - x.score || x.id - y.id || x.ia - y.ia || x.ib - y.ib);
  const withSpace = merges.some((m) => m.a.includes(" ") || m.b.includes(" "));
  const unk = v.unkTokenId !== null ? v.tokens[v.unkTokenId] : null;
  const added = v.tokens
    .map((t, id) => ({ t, id, type: v.types[id] }))
    .filter((x) => x.type === TOKEN_TYPE.CONTROL || x.type === TOKEN_TYPE.UNKNOWN || x.type === TOKEN_TYPE.USER_DEFINED)
    .map((x) => ({
      id: x.id, content: x.t, single_word: false, lstrip: false, rstrip: false,
      normalized: x.type === TOKEN_TYPE.USER_DEFINED, special: x.type !== TOKEN_TYPE.USER_DEFINED,
    }));
  const bos = v.bosTokenId !== null ? v.tokens[v.bosTokenId] : null;
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer:
      v.addSpacePrefix === false
        ? { type: "Replace", pattern: { String: " " }, content: SPACE }
        : {
            type: "Sequence",
            normalizers: [
              { type: "Prepend", prepend: SPACE },
              { type: "Replace", pattern: { String: " " }, content: SPACE },
            ],
          },
    pre_tokenizer: null,
    post_processor:
      bos === null
        ? null
        : {
            type: "TemplateProcessing",
            single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
            pair: [
              { SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } },
              { SpecialToken: { id: bos, type_id: 1 } }, { Sequence: { id: "B", type_id: 1 } },
            ],
            special_tokens: { [bos]: { id: bos, ids: [v.bosTokenId], tokens: [bos] } },
          },
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: SPACE }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        ...(v.addSpacePrefix === false ? [] : [{ type: "Strip", content: " ", start: 1, stop: 0 }]),
      ],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: unk,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      // "a b" strings are readable by every tokenizers version; pairs only when a piece contains a space.
      merges: merges.map((m) => (withSpace ? [m.a, m.b] : `${m.a} ${m.b}`)),
    },
  };
}

export interface TokenizerOptions {
  /** tokenizer_config.json content (bos_token/eos_token, clean_up_tokenization_spaces, ...). */
  config?: Record<string, unknown>;
  bosTokenId?: number | null;
  eosTokenId?: number | null;
  /** The original SentencePiece scores/types when the tokenizer came from a GGUF (kept for writing GGUF back). */
  sentencePiece?: SentencePieceVocab;
  source?: string;
}

function tokenContent(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") return (v as { content: string }).content;
  return null;
}

/** Whether a tokenizer.json post-processor prepends a special token (TemplateProcessing, possibly in a Sequence). */
function templateAddsBos(post: unknown): boolean {
  if (!post || typeof post !== "object") return false;
  const p = post as { type?: string; single?: unknown[]; processors?: unknown[] };
  if (p.type === "Sequence" && Array.isArray(p.processors)) return p.processors.some(templateAddsBos);
  if (p.type !== "TemplateProcessing" || !Array.isArray(p.single) || p.single.length === 0) return false;
  const first = p.single[0];
  return typeof first === "object" && first !== null && "SpecialToken" in first;
}

export class HfTokenizer implements TextTokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  /** Whether `encode` prepends BOS when `addBos` is not given (see the file comment for the rule). */
  readonly addsBos: boolean;
  private readonly tok: TokenizerType;
  private readonly json: Record<string, unknown>;
  private readonly sp: SentencePieceVocab | undefined;
  /** Same tokenizer without the leading-▁ normalizer, for the second and later chunks of a long text. */
  private readonly tokNoPrefix: TokenizerType | null;

  /**
   * SentencePiece-style tokenizer.json files have no pre-tokenizer, so the engine runs BPE over the whole text
   * as one word, which is superlinear (the 1.3 MB WikiText-2 test file: ~57 s). Texts longer than this are
   * encoded line by line instead; that is exact when no vocabulary piece contains "\n" (then no merge can cross
   * a newline). Set to Infinity to disable.
   */
  static chunkChars = 4096;

  constructor(json: unknown, opts: TokenizerOptions = {}) {
    const source = opts.source ?? "tokenizer.json";
    if (typeof json !== "object" || json === null || Array.isArray(json)) throw new FormatError(`${source}: expected a JSON object`);
    const j = json as Record<string, unknown>;
    if (typeof j.model !== "object" || j.model === null) throw new FormatError(`${source}: missing "model"`);
    if (!Array.isArray(j.added_tokens)) j.added_tokens = [];
    const config = { clean_up_tokenization_spaces: false, ...(opts.config ?? {}) };
    // transformers 5 ignores clean_up_tokenization_spaces for BPE (it would turn "x != 0" into "x!= 0"); Llama 3's
    // tokenizer_config.json still says true.
    if ((j.model as { type?: unknown }).type === "BPE") config.clean_up_tokenization_spaces = false;
    try {
      this.tok = new Tokenizer(j, config);
    } catch (err) {
      throw new FormatError(`${source}: cannot build tokenizer: ${(err as Error).message}`);
    }
    this.json = j;
    this.sp = opts.sentencePiece;
    this.tokNoPrefix = null;
    const norm = j.normalizer as { type?: string; normalizers?: { type?: string; prepend?: string }[] } | null;
    const vocabObj = (j.model as { vocab?: unknown }).vocab;
    if (
      j.pre_tokenizer == null &&
      norm?.type === "Sequence" &&
      norm.normalizers?.length === 2 &&
      norm.normalizers[0].type === "Prepend" &&
      norm.normalizers[0].prepend === SPACE &&
      norm.normalizers[1].type === "Replace" &&
      vocabObj && typeof vocabObj === "object" && !Array.isArray(vocabObj) &&
      !Object.keys(vocabObj).some((k) => k.includes("\n"))
    ) {
      this.tokNoPrefix = new Tokenizer({ ...j, normalizer: norm.normalizers[1] }, config);
    }
    const vocab = this.tok.get_vocab(true);
    let maxId = -1;
    for (const id of vocab.values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;
    // The conventional names are looked up among the added (special) tokens only: Qwen's vocabulary has an ordinary
    // BPE token "<s>" that is no BOS. A tokenizer_config that names the token (or says null) is taken at its word.
    const special = new Set((j.added_tokens as { content?: unknown }[]).map((a) => a.content).filter((c): c is string => typeof c === "string"));
    const byName = (field: "bos_token" | "eos_token", fallbacks: string[]): number | null => {
      if (opts.config && field in opts.config) {
        const name = tokenContent(opts.config[field]);
        return name === null ? null : this.tok.token_to_id(name) ?? null;
      }
      for (const n of fallbacks) if (special.has(n)) return this.tok.token_to_id(n) ?? null;
      return null;
    };
    this.bosTokenId = opts.bosTokenId !== undefined ? opts.bosTokenId : byName("bos_token", ["<s>", "<|begin_of_text|>", "<bos>"]);
    this.eosTokenId = opts.eosTokenId !== undefined ? opts.eosTokenId : byName("eos_token", ["</s>", "<|end_of_text|>", "<eos>"]);
    const addBosToken = opts.config?.add_bos_token;
    this.addsBos = typeof addBosToken === "boolean" ? addBosToken : templateAddsBos(j.post_processor);
  }

  /** From a `tokenizer.json` file (and optional `tokenizer_config.json`). */
  static fromFile(file: string, opts: Omit<TokenizerOptions, "source"> = {}): HfTokenizer {
    const json = readJsonFile(file);
    return new HfTokenizer(json, { ...opts, source: file });
  }

  /** From a SentencePiece vocabulary (GGUF `tokenizer.ggml.*`); `addsBos` overrides whether encode adds BOS. */
  static fromSentencePiece(v: SentencePieceVocab, source = "GGUF vocabulary", addsBos?: boolean): HfTokenizer {
    return new HfTokenizer(tokenizerJsonFromSentencePiece(v), {
      bosTokenId: v.bosTokenId,
      eosTokenId: v.eosTokenId,
      sentencePiece: v,
      source,
      // `tokenizer.ggml.add_bos_token` when the GGUF has it; otherwise the vocabulary's own rule.
      ...(addsBos === undefined ? {} : { config: { add_bos_token: addsBos } }),
    });
  }

  /** From a byte-level BPE vocabulary (GGUF `tokenizer.ggml.model = "gpt2"`); `[PADn]` filler tokens are left out. */
  static fromByteLevelBpe(v: ByteLevelBpeVocab, source = "GGUF vocabulary"): HfTokenizer {
    const regex = BYTE_LEVEL_PRE.find(([, n]) => n === v.pre)?.[0];
    if (regex === undefined) {
      throw new FormatError(`${source}: tokenizer.ggml.pre ${JSON.stringify(v.pre)} is not supported (supported: ${BYTE_LEVEL_PRE.map(([, n]) => n).join(", ")})`);
    }
    const vocab: Record<string, number> = {};
    const added: Record<string, unknown>[] = [];
    v.tokens.forEach((t, id) => {
      const type = v.types[id];
      if (type === TOKEN_TYPE.UNUSED) return;
      if (type === TOKEN_TYPE.CONTROL || type === TOKEN_TYPE.USER_DEFINED) {
        added.push({ id, content: t, single_word: false, lstrip: false, rstrip: false, normalized: type !== TOKEN_TYPE.CONTROL, special: type === TOKEN_TYPE.CONTROL });
      }
      vocab[t] = id;
    });
    const json = {
      version: "1.0",
      added_tokens: added,
      normalizer: null,
      pre_tokenizer: {
        type: "Sequence",
        pretokenizers: [
          { type: "Split", pattern: { Regex: regex }, behavior: "Isolated", invert: false },
          { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
        ],
      },
      post_processor: null,
      decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: v.merges },
    };
    return new HfTokenizer(json, { bosTokenId: v.bosTokenId, eosTokenId: v.eosTokenId, config: { add_bos_token: v.addsBos }, source });
  }

  /** `addBos` forces BOS on or off (callers that need a start token, e.g. perplexity windows); by default it is
   * added as the tokenizer's config says (`addsBos`). */
  encode(text: string, options: { addBos?: boolean } = {}): number[] {
    const addBos = options.addBos ?? this.addsBos;
    // SentencePiece encodes "" to nothing; the Prepend normalizer would otherwise produce a lone "▁".
    let ids: number[];
    if (text.length === 0) ids = [];
    else if (this.tokNoPrefix && text.length > HfTokenizer.chunkChars) {
      const lines = text.split(/(?<=\n)/);
      ids = this.tok.encode(lines[0], { add_special_tokens: false }).ids;
      for (let i = 1; i < lines.length; i++) {
        const more = this.tokNoPrefix.encode(lines[i], { add_special_tokens: false }).ids;
        for (const id of more) ids.push(id);
      }
    } else ids = this.tok.encode(text, { add_special_tokens: false }).ids;
    return addBos && this.bosTokenId !== null ? [this.bosTokenId, ...ids] : ids;
  }

  decode(ids: number[], options: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return ""; // the engine throws on an empty list
    return this.tok.decode(ids, { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | null {
    return this.tok.token_to_id(token) ?? null;
  }

  idToToken(id: number): string | null {
    return this.tok.id_to_token(id) ?? null;
  }

  toJSON(): object {
    return this.json;
  }

  /**
   * The vocabulary as GGUF byte-level BPE fields (`tokenizer.ggml.model = "gpt2"`), as llama.cpp's
   * convert_hf_to_gguf.py writes them: tokens padded to `vocabSize` with `[PADn]` (UNUSED), added tokens CONTROL when
   * special and USER_DEFINED otherwise, merges as "a b" strings, and `pre` naming the pre-tokenizer llama.cpp must
   * run. The pre-tokenizer is recognised by its split regex; one llama.cpp has no name for is refused, since
   * llama.cpp would otherwise split text differently and silently give other ids.
   */
  toByteLevelBpe(vocabSize: number): ByteLevelBpeVocab {
    const model = this.json.model as Record<string, unknown>;
    const src = "tokenizer.json";
    if (model.type !== "BPE" || model.byte_fallback === true) {
      throw new UsageError(`${src}: not a byte-level BPE tokenizer (model.type ${String(model.type)}${model.byte_fallback ? ", byte_fallback" : ""})`);
    }
    const pre = byteLevelPreName(this.json.pre_tokenizer);
    if (this.vocabSize > vocabSize) throw new UsageError(`${src}: ${this.vocabSize} tokens exceed the model's vocab_size ${vocabSize}`);
    const tokens = new Array<string>(vocabSize).fill("");
    const types = new Array<number>(vocabSize).fill(TOKEN_TYPE.NORMAL);
    for (const [t, id] of this.tok.get_vocab(true)) tokens[id] = t;
    for (const a of this.json.added_tokens as { id: number; special?: boolean }[]) types[a.id] = a.special ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.USER_DEFINED;
    tokens.forEach((t, id) => {
      if (t === "") {
        tokens[id] = `[PAD${id}]`;
        types[id] = TOKEN_TYPE.UNUSED;
      }
    });
    const merges = (model.merges as (string | string[])[]).map((m) => (Array.isArray(m) ? m.join(" ") : m));
    return { pre, tokens, types, merges, bosTokenId: this.bosTokenId, eosTokenId: this.eosTokenId, addsBos: this.addsBos };
  }

  /**
   * The vocabulary as GGUF `tokenizer.ggml.*` SentencePiece fields. Original scores are kept when the tokenizer
   * came from a GGUF; otherwise a normal token's score is minus the rank of its first merge, which makes
   * llama.cpp's score-driven bigram merging pick merges in the same order as the BPE merges list.
   */
  toSentencePiece(): SentencePieceVocab {
    if (this.sp) return this.sp;
    const model = this.json.model as Record<string, unknown>;
    if (model.type !== "BPE" || model.byte_fallback !== true) {
      throw new UsageError(
        `tokenizer: only SentencePiece-style BPE tokenizers (byte_fallback) can be written to GGUF; this one is ${String(model.type)}${model.byte_fallback ? "" : " without byte_fallback"}`,
      );
    }
    const tokens = new Array<string>(this.vocabSize).fill("");
    for (const [t, id] of this.tok.get_vocab(true)) tokens[id] = t;
    const special = new Set<number>();
    const userDefined = new Set<number>();
    for (const a of this.json.added_tokens as { id: number; special?: boolean }[]) (a.special ? special : userDefined).add(a.id);
    const unkId = typeof model.unk_token === "string" ? this.tok.token_to_id(model.unk_token) ?? null : null;
    const rank = new Map<string, number>();
    (model.merges as (string | string[])[]).forEach((m, r) => {
      const [a, b] = Array.isArray(m) ? m : m.split(" ", 2);
      const t = a + b;
      if (!rank.has(t)) rank.set(t, r);
    });
    const nMerges = rank.size;
    const types: number[] = [];
    const scores: number[] = [];
    tokens.forEach((t, id) => {
      let type: number = TOKEN_TYPE.NORMAL;
      if (id === unkId) type = TOKEN_TYPE.UNKNOWN;
      else if (special.has(id)) type = TOKEN_TYPE.CONTROL;
      else if (userDefined.has(id)) type = TOKEN_TYPE.USER_DEFINED;
      else if (/^<0x[0-9A-Fa-f]{2}>$/.test(t)) type = TOKEN_TYPE.BYTE;
      types.push(type);
      const r = rank.get(t);
      scores.push(type !== TOKEN_TYPE.NORMAL ? 0 : r !== undefined ? -r : -(nMerges + id));
    });
    return { tokens, scores, types, bosTokenId: this.bosTokenId, eosTokenId: this.eosTokenId, unkTokenId: unkId, addSpacePrefix: prependsSpace(this.json) };
  }
}

/** Whether a tokenizer.json prepends "▁" to the text: a Prepend normalizer, or a Metaspace pre-tokenizer that does. */
function prependsSpace(j: Record<string, unknown>): boolean {
  const steps = (x: unknown, key: string): Record<string, unknown>[] => {
    const o = x as Record<string, unknown> | null;
    return !o ? [] : o.type === "Sequence" ? ((o[key] as Record<string, unknown>[]) ?? []) : [o];
  };
  if (steps(j.normalizer, "normalizers").some((n) => n.type === "Prepend" && n.prepend === SPACE)) return true;
  return steps(j.pre_tokenizer, "pretokenizers").some(
    (p) => p.type === "Metaspace" && (p.prepend_scheme !== undefined ? p.prepend_scheme !== "never" : p.add_prefix_space !== false),
  );
}

export interface ByteLevelBpeVocab {
  pre: string;
  tokens: string[];
  types: number[];
  merges: string[];
  bosTokenId: number | null;
  eosTokenId: number | null;
  addsBos: boolean;
}

/**
 * Split regexes of byte-level pre-tokenizers → the `tokenizer.ggml.pre` name llama.cpp gives them
 * (convert_hf_to_gguf.py get_vocab_base_pre; the regexes are those of llama-vocab.cpp for these names).
 */
const BYTE_LEVEL_PRE: [string, string][] = [
  ["(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", "llama-bpe"],
  ["(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", "qwen2"],
];

function byteLevelPreName(pre: unknown): string {
  const p = pre as { type?: string; pretokenizers?: unknown[] } | null;
  const steps = p?.type === "Sequence" ? (p.pretokenizers as Record<string, unknown>[]) : p ? [p as Record<string, unknown>] : [];
  const split = steps.find((s) => s.type === "Split") as { pattern?: { Regex?: string } } | undefined;
  const byteLevel = steps.find((s) => s.type === "ByteLevel") as { use_regex?: boolean } | undefined;
  const regex = split?.pattern?.Regex;
  const hit = regex !== undefined && byteLevel !== undefined && byteLevel.use_regex === false ? BYTE_LEVEL_PRE.find(([r]) => r === regex) : undefined;
  if (!hit) {
    throw new UsageError(
      `tokenizer.json: pre_tokenizer ${JSON.stringify(pre).slice(0, 200)} is not one GGUF export can name for llama.cpp (supported: Split with the regex of ${BYTE_LEVEL_PRE.map(([, n]) => n).join(", ")}, then ByteLevel)`,
    );
  }
  return hit[1];
}

/** Load `tokenizer.json` (+ `tokenizer_config.json` when present) from an HF directory, or null if absent. */
export function readTokenizerDir(dir: string, ids: { bosTokenId?: number | null; eosTokenId?: number | null } = {}): HfTokenizer | null {
  const file = `${dir}/tokenizer.json`;
  if (!fs.existsSync(file)) return null;
  let config: Record<string, unknown> | undefined;
  const cfgFile = `${dir}/tokenizer_config.json`;
  if (fs.existsSync(cfgFile)) {
    config = readJsonFile(cfgFile) as Record<string, unknown>;
  }
  return HfTokenizer.fromFile(file, { config, ...ids });
}
