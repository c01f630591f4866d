import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { readGgufHeader } from "../src/io/gguf";
import { sentencePieceFromGguf } from "../src/io/gguf-llama";
import { HfTokenizer, SentencePieceVocab, TOKEN_TYPE, readTokenizerDir } from "../src/io/tokenizer";
import { requireShared, sharedPath, STORIES260K } from "./support/shared";

/**
 * Independent reference: SentencePiece BPE as llama2.c implements it (dummy prefix, spaces → ▁, code points or
 * byte fallback, then repeatedly merge the adjacent pair whose concatenation is the highest-scoring normal piece).
 */
function referenceEncode(v: SentencePieceVocab, text: string): number[] {
  const normal = new Map<string, number>();
  v.tokens.forEach((t, id) => {
    if (v.types[id] === TOKEN_TYPE.NORMAL && !normal.has(t)) normal.set(t, id);
  });
  const byte = new Map<number, number>();
  v.tokens.forEach((t, id) => {
    const m = /^<0x([0-9A-F]{2})>$/.exec(t);
    if (v.types[id] === TOKEN_TYPE.BYTE && m) byte.set(parseInt(m[1], 16), id);
  });
  const ids: number[] = [];
  if (text.length > 0) {
    for (const ch of "\u2581" + text.replace(/ /g, "\u2581")) {
      const id = normal.get(ch);
      if (id !== undefined) ids.push(id);
      else for (const b of Buffer.from(ch, "utf8")) ids.push(byte.get(b)!);
    }
  }
  // pair[i] = the piece formed by ids[i] + ids[i+1] (or -1); only the neighbours of a merge change.
  const pairId = (i: number) => normal.get(v.tokens[ids[i]] + v.tokens[ids[i + 1]]) ?? -1;
  const pair = ids.slice(0, -1).map((_, i) => pairId(i));
  for (;;) {
    let at = -1;
    for (let i = 0; i < pair.length; i++) if (pair[i] >= 0 && (at < 0 || v.scores[pair[i]] > v.scores[pair[at]])) at = i;
    if (at < 0) break;
    ids.splice(at, 2, pair[at]);
    pair.splice(at, 1);
    if (at < pair.length) pair[at] = pairId(at);
    if (at > 0) pair[at - 1] = pairId(at - 1);
  }
  return [v.bosTokenId!, ...ids];
}

function wikiLines(n: number): string[] {
  const raw = fs.readFileSync(sharedPath("data", "wikitext-2-raw", "wiki.test.raw"), "utf8");
  return raw.split("\n").filter((l) => l.trim().length > 0).slice(0, n);
}

describe("tokenizer", () => {
  it("builds tok512 from the GGUF vocabulary: 165 merges, 'Once upon a time' → [1, 403, 407, 261, 378]", function () {
    requireShared(this);
    const sp = sentencePieceFromGguf(readGgufHeader(STORIES260K()))!;
    const tok = HfTokenizer.fromSentencePiece(sp);
    assert.equal(((tok.toJSON() as { model: { merges: unknown[] } }).model.merges).length, 165);
    assert.deepEqual(tok.encode("Once upon a time"), [1, 403, 407, 261, 378]);
    assert.deepEqual(tok.encode("Once upon a time", { addBos: false }), [403, 407, 261, 378]);
    assert.deepEqual(tok.encode(""), [1]);
    assert.equal(tok.vocabSize, 512);
    assert.equal(tok.bosTokenId, 1);
    assert.equal(tok.eosTokenId, 2);
    assert.equal(tok.decode([1, 403, 407, 261, 378, 2], { skipSpecialTokens: true }), "Once upon a time");
    assert.equal(tok.decode([1, 403]), "<s> Once");
  });

  it("tokenizer.json and GGUF vocabulary give identical ids on 200 WikiText-2 lines (and match a llama2.c-style reference)", function () {
    requireShared(this);
    const sp = sentencePieceFromGguf(readGgufHeader(STORIES260K()))!;
    const fromGguf = HfTokenizer.fromSentencePiece(sp);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdmprune-tok-"));
    fs.writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(fromGguf.toJSON()));
    const fromJson = readTokenizerDir(dir)!;
    fs.rmSync(dir, { recursive: true });
    const lines = wikiLines(200);
    assert.equal(lines.length, 200);
    let tokens = 0;
    let bytes = 0;
    for (const line of lines) {
      const a = fromGguf.encode(line);
      assert.deepEqual(fromJson.encode(line), a, line);
      assert.deepEqual(referenceEncode(sp, line), a, line);
      // Byte fallback makes the encoding lossless (the decoder strips the dummy-prefix space).
      assert.equal(fromJson.decode(a, { skipSpecialTokens: true }), line);
      tokens += a.length;
      bytes += a.filter((id) => sp.types[id] === TOKEN_TYPE.BYTE).length;
    }
    assert.ok(tokens > 10000 && bytes > 0, `${tokens} tokens, ${bytes} byte-fallback tokens`);
  });

  it("encodes long texts line by line with exactly the ids of whole-text BPE", function () {
    requireShared(this);
    const tok = HfTokenizer.fromSentencePiece(sentencePieceFromGguf(readGgufHeader(STORIES260K()))!);
    const text = fs.readFileSync(sharedPath("data", "wikitext-2-raw", "wiki.test.raw"), "utf8").slice(0, 30000);
    const chunked = tok.encode(text);
    const saved = HfTokenizer.chunkChars;
    HfTokenizer.chunkChars = Infinity;
    try {
      assert.deepEqual(tok.encode(text), chunked);
    } finally {
      HfTokenizer.chunkChars = saved;
    }
    assert.ok(chunked.length > 10000);
  });

  it("exports a SentencePiece vocabulary from a tokenizer.json that rebuilds the same merges", function () {
    requireShared(this);
    const sp = sentencePieceFromGguf(readGgufHeader(STORIES260K()))!;
    const json = HfTokenizer.fromSentencePiece(sp).toJSON();
    const plain = new HfTokenizer(JSON.parse(JSON.stringify(json)));
    const back = plain.toSentencePiece();
    assert.deepEqual(back.tokens, sp.tokens);
    assert.deepEqual(back.types, sp.types);
    assert.equal(back.unkTokenId, 0);
    const rebuilt = HfTokenizer.fromSentencePiece(back).toJSON() as { model: { merges: string[] } };
    assert.deepEqual(rebuilt.model.merges, (json as { model: { merges: string[] } }).model.merges);
  });
});
