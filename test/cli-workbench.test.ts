import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { cli } from "./support/cli";
import { requireShared, sharedPath, STORIES260K } from "./support/shared";

// One vocabulary across the CLI: the same perplexity protocol in `ppl` and `eval`, --backend everywhere,
// contradictions refused, provenance carried through every output directory.
describe("CLI: one workbench, one vocabulary", function () {
  this.timeout(120000);
  let dir: string;
  let model: string;
  let text: string;

  before(function () {
    requireShared(this);
    model = STORIES260K();
    text = sharedPath("data", "tinystories", "tinystories_valid_first1000.txt");
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-wb-"));
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  it("ppl and eval --ppl give the same perplexity under one named default protocol; --protocol file is the other", async () => {
    const p = await cli(["ppl", "--model", model, "--text", text, "--stories", "1-20", "--seq-len", "64", "--json"]);
    assert.equal(p.code, 0, p.err);
    const pj = JSON.parse(p.out);
    const e = await cli(["eval", "--model", model, "--ppl", text, "--stories", "1-20", "--seq-len", "64", "--json"]);
    assert.equal(e.code, 0, e.err);
    const ej = JSON.parse(e.out);
    assert.equal(pj.ppl, ej.ppl.ppl);
    assert.equal(pj.windows, ej.ppl.windows);
    assert.match(pj.protocol, /^documents: stories 1-20 of 1000 joined/);
    const t = await cli(["ppl", "--model", model, "--text", text, "--stories", "1-20", "--seq-len", "64"]);
    assert.match(t.out, /protocol: documents: stories 1-20 of 1000 joined with "\\n\\n"; one BOS/);
    const e2 = await cli(["eval", "--model", model, "--ppl", text, "--stories", "1-20", "--seq-len", "64"]);
    assert.match(e2.out, /protocol documents: stories 1-20 of 1000/);

    // The file as one document (separators scored too) is a different, explicitly named number.
    const small = path.join(dir, "five.txt");
    fs.writeFileSync(small, fs.readFileSync(text, "utf8").split("\n<|endoftext|>\n").slice(0, 5).join("\n<|endoftext|>\n") + "\n<|endoftext|>\n");
    const docs = JSON.parse((await cli(["ppl", "--model", model, "--text", small, "--seq-len", "64", "--json"])).out);
    const file = JSON.parse((await cli(["ppl", "--model", model, "--text", small, "--seq-len", "64", "--protocol", "file", "--json"])).out);
    assert.match(file.protocol, /^file: the text as read/);
    assert.ok(file.textTokens > docs.textTokens, "the separators are tokens under the file protocol");
    assert.notEqual(file.ppl, docs.ppl);
    const evalFile = JSON.parse((await cli(["eval", "--model", model, "--ppl", small, "--seq-len", "64", "--protocol", "file", "--json"])).out);
    assert.equal(evalFile.ppl.ppl, file.ppl);
    assert.equal(evalFile.ppl.protocol, file.protocol);
    const bad = await cli(["ppl", "--model", model, "--text", small, "--stories", "1-2", "--protocol", "file"]);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /story range applies to a TinyStories text under the "documents" protocol/);
  });

  it("info, generate and convert accept --backend", async () => {
    const info = await cli(["info", "--model", model, "--backend", "cpu"]);
    assert.equal(info.code, 0, info.err);
    assert.match(info.out, /backend:\s+cpu/);
    const gen = await cli(["generate", "--model", model, "--prompt", "Once upon a time", "--max-new-tokens", "8", "--backend", "cpu"]);
    assert.equal(gen.code, 0, gen.err);
    assert.match(gen.err, /backend: cpu/);
    assert.ok(gen.out.startsWith("Once upon a time"), gen.out);
    const conv = await cli(["convert", "--model", model, "--out", path.join(dir, "conv"), "--format", "hf", "--backend", "cpu"]);
    assert.equal(conv.code, 0, conv.err);
  });

  it("prune --scores FILE refuses a --criterion that contradicts the file", async () => {
    const scores = path.join(dir, "scores.json");
    const s = await cli(["scores", "--model", model, "--text", text, "--stories", "1-50", "--samples", "2", "--seq-len", "32", "--criterion", "ce-taylor", "--out", scores]);
    assert.equal(s.code, 0, s.err);
    const r = await cli(["prune", "--model", model, "--keep", "100", "--scores", scores, "--criterion", "magnitude", "--out", path.join(dir, "never")]);
    assert.equal(r.code, 2);
    assert.match(r.err, /--criterion magnitude contradicts --scores .*ce-taylor/);
    assert.ok(!fs.existsSync(path.join(dir, "never")));
    const ok = await cli(["prune", "--model", model, "--keep", "100", "--scores", scores, "--criterion", "ce-taylor", "--out", path.join(dir, "ok")]);
    assert.equal(ok.code, 0, ok.err);
  });

  it("every output carries the chain back to the original: pruning.json has the story range; convert and recover keep it; eval reports earlier steps", async () => {
    const pruned = path.join(dir, "chain-pruned");
    const r = await cli(["prune", "--model", model, "--ratio", "0.25", "--criterion", "ce-taylor", "--text", text, "--stories", "1-50", "--samples", "2", "--seq-len", "32", "--out", pruned]);
    assert.equal(r.code, 0, r.err);
    const rec = JSON.parse(fs.readFileSync(path.join(pruned, "pruning.json"), "utf8"));
    assert.equal(rec.calibration.stories, "1-50");
    assert.equal(rec.history[0].settings.calibration.stories, "1-50");
    const p0 = JSON.parse(fs.readFileSync(path.join(pruned, "provenance.json"), "utf8"));
    assert.deepEqual(p0.chain.map((l: { kind: string }) => l.kind), ["prune", "original"]);
    assert.equal(p0.chain[1].path, path.resolve(model));

    const conv = path.join(dir, "chain-gguf");
    assert.equal((await cli(["convert", "--model", pruned, "--out", conv, "--format", "gguf"])).code, 0);
    const p1 = JSON.parse(fs.readFileSync(path.join(conv, "provenance.json"), "utf8"));
    assert.deepEqual(p1.chain.map((l: { kind: string }) => l.kind), ["convert", "prune", "original"]);
    assert.equal(p1.chain[1].record.calibration.stories, "1-50");

    const recovered = path.join(dir, "chain-recovered");
    const rr = await cli(["recover", "--model", pruned, "--data", text, "--stories", "200-220", "--steps", "2", "--seq-len", "32", "--out", recovered]);
    assert.equal(rr.code, 0, rr.err);
    const p2 = JSON.parse(fs.readFileSync(path.join(recovered, "provenance.json"), "utf8"));
    assert.deepEqual(p2.chain.map((l: { kind: string }) => l.kind), ["recover", "prune", "original"]);
    assert.equal(p2.chain[0].record.steps, 2);
    assert.equal(p2.chain[1].record.calibration.stories, "1-50");

    const e = await cli(["eval", "--model", conv, "--ppl", text, "--stories", "500-510", "--seq-len", "32"]);
    assert.equal(e.code, 0, e.err);
    assert.match(e.out, /after 0 pruning step\(s\) in this session/);
    assert.match(e.out, /loaded model was pruned before \(provenance\): 1\. ratio 0\.25/);
  });

  it("an unknown option gets a did-you-mean and the command's usage", async () => {
    const r = await cli(["ppl", "--model", model, "--stoires", "1-2"]);
    assert.equal(r.code, 2);
    assert.match(r.err, /^error: unknown option --stoires \(did you mean --stories\?\)\n\nUsage: sdmprune ppl /);
    const i = await cli(["info", "--modle", model]);
    assert.match(i.err, /unknown option --modle \(did you mean --model\?\)/);
    const far = await cli(["info", "--zzzzzz"]);
    assert.match(far.err, /^error: unknown option --zzzzzz\n\nUsage: sdmprune info/);
  });

  it("prune --allocation global names its rule truthfully and warns that other tools need one width", async () => {
    const scores = path.join(dir, "scores-global.json");
    assert.equal((await cli(["scores", "--model", model, "--text", text, "--stories", "1-50", "--samples", "2", "--seq-len", "32", "--criterion", "ce-taylor", "--out", scores])).code, 0);
    const r = await cli(["prune", "--model", model, "--ratio", "0.3", "--allocation", "global", "--scores", scores, "--out", path.join(dir, "global")]);
    assert.equal(r.code, 0, r.err);
    const rec = JSON.parse(fs.readFileSync(path.join(dir, "global", "pruning.json"), "utf8"));
    const widths: number[] = rec.current.intermediate_sizes;
    assert.equal(widths.reduce((a, b) => a + b, 0), 5 * Math.floor(172 * 0.7 + 1e-9));
    assert.match(rec.history[0].rule, new RegExp(`^global: ${5 * 120} channels kept across layers \\[0, 5\\) by one ranking`));
    assert.doesNotMatch(r.out, /Pruning step 1[^\n]*: ratio/);
    assert.ok(widths.some((w) => w !== widths[0]), `global allocation gave uniform widths ${widths}`);
    assert.match(r.err, /warning: the MLP widths now differ per layer .*stock transformers and llama\.cpp do not/);
    const hfConfig = (d: string) => JSON.parse(fs.readFileSync(path.join(d, "config.json"), "utf8"));
    assert.ok(Array.isArray(hfConfig(path.join(dir, "global")).intermediate_size));

    // --pad-mlp on prune (hf) and on convert (hf and gguf): one width, the same outputs
    const padded = path.join(dir, "global-padded");
    const p = await cli(["prune", "--model", model, "--ratio", "0.3", "--allocation", "global", "--scores", scores, "--out", padded, "--pad-mlp"]);
    assert.equal(p.code, 0, p.err);
    assert.doesNotMatch(p.err, /warning/);
    assert.equal(hfConfig(padded).intermediate_size, Math.max(...widths));
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(padded, "pruning.json"), "utf8")).current.intermediate_sizes, widths);
    const convHf = path.join(dir, "global-conv-hf");
    assert.equal((await cli(["convert", "--model", path.join(dir, "global"), "--out", convHf, "--format", "hf", "--pad-mlp"])).code, 0);
    assert.equal(hfConfig(convHf).intermediate_size, Math.max(...widths));
    const convGguf = path.join(dir, "global-conv-gguf");
    assert.equal((await cli(["convert", "--model", path.join(dir, "global"), "--out", convGguf, "--format", "gguf", "--pad-mlp"])).code, 0);
    const ppl = async (m: string) => JSON.parse((await cli(["ppl", "--model", m, "--text", text, "--stories", "600-610", "--seq-len", "32", "--json"])).out).ppl as number;
    const ref = await ppl(path.join(dir, "global"));
    for (const m of [padded, convHf, convGguf]) {
      const v = await ppl(m);
      assert.ok(Math.abs(v - ref) <= 1e-5 * ref, `${m}: ppl ${v} vs unpadded ${ref}`);
    }
  });
});
