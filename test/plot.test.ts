import { strict as assert } from "node:assert";
import {
  Figure,
  PLOTLY_MIME,
  boxStats,
  convergenceFigure,
  figureBundle,
  figureHtml,
  inlineScript,
  keptChannelFigure,
  keptFractions,
  keptSetAgreement,
  ratioFigure,
  scoreDistributionFigure,
  scriptJson,
  sensitivityFigure,
  spearman,
  tableBundle,
} from "../src/plot";
import { topKIndices } from "../src/prune";
import { Displayer, display, progress, textOf, type DisplayMessage } from "../src/display";
import { UsageError } from "../src/errors";
import { Table } from "../src/table";

/** A display channel that records what a notebook front-end would receive. */
function recorder(): { channel: (m: DisplayMessage, update: boolean) => void; sent: { msg: DisplayMessage; update: boolean }[] } {
  const sent: { msg: DisplayMessage; update: boolean }[] = [];
  return { channel: (msg, update) => sent.push({ msg, update }), sent };
}

describe("plot: figures from plain data", () => {
  it("sensitivityFigure: grouped MLP/attention bars from rows or from the session's increases", () => {
    const a = sensitivityFigure([
      { layer: 0, mlp: 0.5, attention: 0.25 },
      { layer: 1, mlp: 0.125, attention: 1 },
    ]);
    const b = sensitivityFigure({ mlpIncrease: [0.5, 0.125], attentionIncrease: [0.25, 1] });
    assert.deepEqual(a.toJSON(), b.toJSON());
    assert.equal(a.layout.barmode, "group");
    assert.deepEqual(a.data.map((t) => [t.name, t.x, t.y]), [
      ["MLP off", [0, 1], [0.5, 0.125]],
      ["attention off", [0, 1], [0.25, 1]],
    ]);
    assert.throws(() => sensitivityFigure({ mlpIncrease: [1, 2], attentionIncrease: [1] }), /equal length.*2 values and 1 values/);
    assert.throws(() => sensitivityFigure([]), UsageError);
  });

  it("boxStats: numpy-style quartiles and Tukey fences", () => {
    // 1..9 plus an outlier 100: q1 = 3.25, median 5.5, q3 = 7.75 (linear interpolation), IQR 4.5
    const s = boxStats([100, 1, 2, 3, 4, 5, 6, 7, 8, 9, NaN]);
    assert.equal(s.n, 10);
    assert.equal(s.q1, 3.25);
    assert.equal(s.median, 5.5);
    assert.equal(s.q3, 7.75);
    assert.equal(s.lowerfence, 1); // smallest value ≥ 3.25 − 6.75
    assert.equal(s.upperfence, 9); // largest value ≤ 7.75 + 6.75, so 100 is an outlier
    assert.equal(s.max, 100);
    assert.equal(s.mean, 14.5);
    assert.throws(() => boxStats([NaN], "layer 3"), /layer 3 has no finite values/);
  });

  it("scoreDistributionFigure: one precomputed box per layer, log axis only for positive wide-range scores", () => {
    const wide = [Float32Array.from([1e-6, 1e-3, 1e-2]), [2e-5, 3e-5, 0.5]];
    const f = scoreDistributionFigure(wide, { criterion: "sd-taylor" });
    const box = f.data[0];
    assert.equal(box.type, "box");
    assert.deepEqual(box.x, [0, 1]);
    assert.deepEqual(box.median, [Math.fround(1e-3), 3e-5]);
    assert.equal((f.layout.yaxis as { type?: string }).type, "log");
    const narrow = scoreDistributionFigure([[1, 2, 3]]);
    assert.equal((narrow.layout.yaxis as { type?: string }).type, undefined);
    assert.throws(() => scoreDistributionFigure([[0, 1]], { logY: true }), /positive scores/);
    // the figure carries statistics, not the raw scores
    assert.ok(!JSON.stringify(f.toJSON()).includes("0.01,"));
  });

  it("keptChannelFigure: kept/removed per original channel, binned fractions for wide layers", () => {
    const f = keptChannelFigure([[0, 2], [1, 2, 3]], 4);
    assert.deepEqual(f.data[0].z, [
      [1, 0, 1, 0],
      [0, 1, 1, 1],
    ]);
    assert.match(f.title, /62\.5% kept/);
    assert.deepEqual(keptFractions([0, 1, 2, 5], 8, 4), [1, 0.5, 0.5, 0]);
    const binned = keptChannelFigure([[0, 1, 2, 5]], 8, { maxColumns: 4 });
    assert.deepEqual(binned.data[0].z, [[1, 0.5, 0.5, 0]]);
    assert.deepEqual(binned.data[0].x, [0, 2, 4, 6]);
    assert.throws(() => keptChannelFigure([[4]], 4), /integer in \[0, 4\), got 4/);
    assert.throws(() => keptChannelFigure([[1, 1]], 4), /channel 1 twice/);
    assert.throws(() => keptChannelFigure([[1]], [4, 4]), /1 layers of kept channels but 2 original sizes/);
  });

  it("ratioFigure: one line per criterion sorted by ratio, percent axis, dense baseline", () => {
    const f = ratioFigure(
      [
        { criterion: "wanda", ratio: 0.3, value: 30 },
        { criterion: "sd-taylor", ratio: 0.1, value: 10 },
        { criterion: "wanda", ratio: 0.1, value: 12 },
      ],
      { baseline: 8 },
    );
    assert.deepEqual(f.data.map((t) => [t.name, t.x, t.y]), [
      ["wanda", [10, 30], [12, 30]],
      ["sd-taylor", [10], [10]],
    ]);
    assert.equal((f.layout.yaxis as { type?: string }).type, "log");
    assert.equal((f.layout.shapes as { y0: number }[])[0].y0, 8);
    assert.throws(() => ratioFigure([{ criterion: "x", ratio: 1, value: 1 }]), /ratio of "x" must be in \[0, 1\)/);
  });

  it("topKIndices / keptSetAgreement / spearman compute what they claim", () => {
    assert.deepEqual(topKIndices([0.1, 0.9, 0.5, 0.9], 2), [1, 3]); // tie → lower index first
    assert.equal(keptSetAgreement([[1, 2, 3, 4]], [[1, 2, 3, 4]], 0.5), 1);
    // keep 2 of 4: {2,3} vs {0,3} share one channel
    assert.equal(keptSetAgreement([[1, 2, 3, 4]], [[4, 2, 1, 5]], 0.5), 0.5);
    assert.equal(spearman([1, 2, 3, 4], [10, 20, 30, 40]), 1);
    assert.equal(spearman([1, 2, 3, 4], [4, 3, 2, 1]), -1);
    // ranks [0,1,2,3] vs [1,0,3,2]: d² = 4 → 1 − 6·4/(4·15) = 0.6
    assert.ok(Math.abs(spearman([1, 2, 3, 4], [2, 1, 4, 3]) - 0.6) < 1e-12);
    assert.ok(Number.isNaN(spearman([1, 1, 1], [1, 2, 3])));
    assert.throws(() => keptSetAgreement([[1]], [[1], [2]], 0.5), /1 layers vs 2 layers/);
  });

  it("convergenceFigure: a line per series, log x when samples span ≥ 8×", () => {
    const f = convergenceFigure([
      { samples: 32, agreement: 1, series: "a" },
      { samples: 1, agreement: 0.5, series: "a" },
      { samples: 4, agreement: 0.8, series: "a" },
    ]);
    assert.deepEqual(f.data[0].x, [1, 4, 32]);
    assert.deepEqual(f.data[0].y, [0.5, 0.8, 1]);
    assert.equal((f.layout.xaxis as { type?: string }).type, "log");
    assert.throws(() => convergenceFigure([{ samples: 0, agreement: 1 }]), /positive integer/);
  });

  it("Figure: NaN becomes a gap, text summary names traces and ranges", () => {
    const f = sensitivityFigure([{ layer: 0, mlp: NaN, attention: 2 }]);
    assert.deepEqual(f.data[0].y, [null]);
    assert.equal(f.toText(), 'Figure: Per-layer sensitivity: MLP vs attention switched off\n  bar "MLP off"\n  bar "attention off", 1 values in [2, 2]');
  });
});

describe("plot: rich-display bundles", () => {
  const fig = new Figure([{ type: "bar", name: "</script><b>", x: [0], y: [1] }], { title: { text: "t" } });

  it("figureBundle has the Plotly mime, an HTML fallback that waits for Plotly, and text", () => {
    const b = figureBundle(fig, { id: "p1" });
    assert.deepEqual(Object.keys(b).sort(), [PLOTLY_MIME, "text/html", "text/plain"].sort());
    assert.deepEqual(b[PLOTLY_MIME], fig.toJSON());
    const html = b["text/html"] as string;
    assert.match(html, /<div id="p1" class="sdmprune-plot"/);
    assert.match(html, /window\.Plotly\.newPlot\(el, fig\.data, fig\.layout/);
    // the trace name cannot close the script element
    assert.equal(html.split("</script>").length - 1, 1);
    assert.ok(!html.includes("<script>", html.indexOf("<script>") + 1));
    assert.match(b["text/plain"] as string, /^Figure: t/);
    assert.throws(() => figureHtml(fig.toJSON(), "1 bad"), /HTML id/);
  });

  it("scriptJson and inlineScript keep embedded text from ending the <script> element", () => {
    const js = scriptJson({ s: "</script><!--" });
    assert.ok(!js.includes("<"));
    assert.deepEqual(JSON.parse(js), { s: "</script><!--" });
    assert.equal(inlineScript('a="</script>";b="<!--"'), '<script>a="<\\/script>";b="<\\!--"</script>');
  });

  it("Displayer ships plotly.js with the first figure only; tables become HTML + text", () => {
    let loads = 0;
    const d = new Displayer(() => {
      loads++;
      return "window.Plotly={newPlot(){}}";
    });
    const first = d.bundle(fig)["text/html"] as string;
    const second = d.bundle(fig)["text/html"] as string;
    assert.ok(first.startsWith("<script>window.Plotly={newPlot(){}}</script>"));
    assert.ok(!second.includes("window.Plotly={"));
    assert.equal(loads, 1);
    const ids = [first, second].map((h) => /<div id="([^"]+)"/.exec(h)![1]);
    assert.notEqual(ids[0], ids[1]);
    d.resetPlotly();
    assert.ok((d.bundle(fig)["text/html"] as string).includes("window.Plotly={"));

    const t = new Table(["a", "b"], [[1, 2.5]], { title: "T" });
    assert.deepEqual(d.bundle(t), { "text/html": t.toHTML(), "text/plain": t.toText() });
    const report = { table: () => t, other: 1 };
    assert.deepEqual(d.bundle(report), { "text/html": t.toHTML(), "text/plain": t.toText() });
    assert.deepEqual(tableBundle(t), d.bundle(t));
    assert.deepEqual(d.bundle({ x: 1 }), { "text/plain": "{ x: 1 }" });
  });

  it("display sends one bundle through a notebook channel, else prints text", () => {
    const r = recorder();
    const t = new Table(["a"], [[1]]);
    display(t, r.channel);
    assert.equal(r.sent.length, 1);
    assert.deepEqual(r.sent[0].msg.data, { "text/html": t.toHTML(), "text/plain": t.toText() });
    assert.equal(r.sent[0].update, false);

    const logged: unknown[] = [];
    const orig = console.log;
    console.log = (...a: unknown[]) => void logged.push(...a);
    try {
      display(t, null);
    } finally {
      console.log = orig;
    }
    assert.deepEqual(logged, [t.toText()]);
    assert.equal(textOf("plain"), "plain");
  });

  it("progress updates one display in place and always delivers the final event", () => {
    const r = recorder();
    const on = progress("score", r.channel);
    on({ phase: "score", done: 1, total: 4 });
    on({ phase: "score", done: 2, total: 4 }); // within 250 ms: throttled
    on({ phase: "score", done: 4, total: 4, tokensPerSecond: 1234.4 });
    assert.equal(r.sent.length, 2);
    assert.deepEqual(r.sent.map((s) => s.update), [false, true]);
    assert.equal(r.sent[0].msg.transient.display_id, r.sent[1].msg.transient.display_id);
    assert.equal(r.sent[1].msg.data["text/plain"], "score: score 4/4 100%  1234 tok/s");
  });
});
