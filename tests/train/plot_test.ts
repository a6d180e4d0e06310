import assert from "node:assert/strict";
import { lineChartSvg, type Series } from "../../train/plot.ts";

interface Element {
  name: string;
  attrs: Record<string, string>;
  text: string;
}

/**
 * A strict little XML reader for the subset the writer emits: checks that
 * tags nest and close, attributes are quoted, and text holds no raw `<` or
 * bare `&`; returns every element with its attributes and direct text.
 */
function parseXml(xml: string): Element[] {
  const elements: Element[] = [];
  const stack: Element[] = [];
  const token = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)/gy;
  const entity = /&(?!(amp|lt|gt|quot|#39);)/;
  let m: RegExpExecArray | null;
  let last = 0;
  while ((m = token.exec(xml)) !== null) {
    last = token.lastIndex;
    const [, close, name, attrText, selfClose, text] = m;
    if (text !== undefined) {
      assert.ok(!entity.test(text), `unescaped & in text ${JSON.stringify(text)}`);
      if (stack.length > 0) stack[stack.length - 1].text += text;
      else assert.equal(text.trim(), "", "text outside the root element");
      continue;
    }
    if (close) {
      const open = stack.pop();
      assert.equal(open?.name, name, `</${name}> closes <${open?.name}>`);
      continue;
    }
    const attrs: Record<string, string> = {};
    for (const a of attrText.matchAll(/([\w:-]+)="([^"]*)"/g)) {
      assert.ok(!entity.test(a[2]), `unescaped & in attribute ${a[1]}="${a[2]}"`);
      assert.ok(!(a[1] in attrs), `duplicate attribute ${a[1]} on <${name}>`);
      attrs[a[1]] = a[2];
    }
    const el = { name, attrs, text: "" };
    if (stack.length === 0) assert.equal(elements.length, 0, "more than one root element");
    elements.push(el);
    if (!selfClose) stack.push(el);
  }
  assert.equal(
    last,
    xml.length,
    `unparseable XML at ${JSON.stringify(xml.slice(last, last + 40))}`,
  );
  assert.equal(stack.length, 0, `unclosed <${stack[stack.length - 1]?.name}>`);
  return elements;
}

function unescape(s: string): string {
  return s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'").replace(/&amp;/g, "&");
}

function seriesPaths(els: Element[]): Element[] {
  return els.filter((e) => e.name === "path" && e.attrs.class === "series");
}

function texts(els: Element[]): string[] {
  return els.filter((e) => e.name === "text").map((e) => unescape(e.text));
}

const loss: Series = {
  name: "train loss",
  points: Array.from({ length: 30 }, (_, i) => [i, 2.3 * Math.exp(-i / 8)] as [number, number]),
};
const acc: Series = {
  name: "test accuracy",
  points: [[0, 0.1], [10, 0.8], [20, 0.9], [29, 0.95]],
  axis: "right",
};

Deno.test("lineChartSvg draws one path per series, both axes and a legend", () => {
  const svg = lineChartSvg({
    title: "MNIST",
    xLabel: "epoch",
    leftLabel: "loss",
    rightLabel: "accuracy",
    series: [loss, acc],
  });
  const els = parseXml(svg);
  assert.equal(els[0].name, "svg");
  assert.equal(els[0].attrs.xmlns, "http://www.w3.org/2000/svg");
  const paths = seriesPaths(els);
  assert.equal(paths.length, 2);
  assert.deepEqual(paths.map((p) => p.attrs["data-name"]), ["train loss", "test accuracy"]);
  // Each series' path has one move and then a line to every further point.
  assert.equal(paths[0].attrs.d.match(/[ML]/g)?.length, 30);
  assert.match(paths[0].attrs.d, /^M[\d.]+ [\d.]+(L[\d.]+ [\d.]+){29}$/);
  assert.equal(paths[1].attrs.d.match(/L/g)?.length, 3);
  assert.notEqual(paths[0].attrs.stroke, paths[1].attrs.stroke);
  const t = texts(els);
  for (const label of ["MNIST", "epoch", "loss", "accuracy", "train loss"]) {
    assert.ok(t.includes(label), `missing text ${label} in ${t}`);
  }
  assert.ok(t.includes("test accuracy (right)"));
  // Left ticks reach past 2.3, right ticks span the accuracies on their own scale.
  assert.ok(t.includes("2.5") || t.includes("2.4"), `left ticks in ${t}`);
  assert.ok(t.includes("0.95") || t.includes("1.0"), `right ticks in ${t}`);
  assert.ok(!svg.includes("NaN") && !svg.includes("Infinity"));
});

Deno.test("lineChartSvg places points inside the plot, higher values higher up", () => {
  const svg = lineChartSvg({ title: "t", xLabel: "x", series: [loss], width: 600, height: 400 });
  const els = parseXml(svg);
  assert.equal(els[0].attrs.width, "600");
  const coords = [...seriesPaths(els)[0].attrs.d.matchAll(/[ML]([\d.]+) ([\d.]+)/g)]
    .map((m) => [Number(m[1]), Number(m[2])]);
  for (const [x, y] of coords) assert.ok(x > 0 && x < 600 && y > 0 && y < 400, `${x},${y}`);
  for (let i = 1; i < coords.length; i++) {
    assert.ok(coords[i][0] > coords[i - 1][0], "x increases left to right");
    assert.ok(coords[i][1] > coords[i - 1][1], "a falling loss goes down the picture");
  }
});

Deno.test("lineChartSvg escapes title, labels and series names", () => {
  const svg = lineChartSvg({
    title: `loss <b>&</b> "quotes" 'single'`,
    xLabel: "x<y",
    leftLabel: "a&b",
    series: [{ name: `"><script>`, points: [[0, 1], [1, 2]] }],
  });
  assert.ok(!svg.includes("<b>") && !svg.includes("<script>"));
  assert.ok(svg.includes("loss &lt;b&gt;&amp;&lt;/b&gt; &quot;quotes&quot; &#39;single&#39;"));
  const els = parseXml(svg);
  const t = texts(els);
  assert.ok(t.includes(`loss <b>&</b> "quotes" 'single'`));
  assert.ok(t.includes("x<y") && t.includes("a&b") && t.includes(`"><script>`));
  assert.equal(seriesPaths(els)[0].attrs["data-name"], "&quot;&gt;&lt;script&gt;");
  assert.equal(
    unescape(els.find((e) => e.name === "title")!.text),
    `loss <b>&</b> "quotes" 'single'`,
  );
});

Deno.test("lineChartSvg copes with empty, single-point and NaN series", () => {
  const svg = lineChartSvg({
    title: "edge cases",
    xLabel: "step",
    series: [
      { name: "empty", points: [] },
      { name: "one", points: [[5, 3]] },
      { name: "gappy", points: [[0, 1], [1, NaN], [2, 3], [3, 4], [Infinity, 2], [5, 1]] },
    ],
  });
  assert.ok(!svg.includes("NaN") && !svg.includes("Infinity"));
  const els = parseXml(svg);
  const paths = seriesPaths(els);
  assert.equal(paths.length, 3);
  assert.equal(paths[0].attrs.d, "");
  assert.equal(paths[1].attrs.d.match(/M/g)?.length, 1);
  // The NaN and the infinity split the line into three runs: [0], [2, 3], [5].
  assert.equal(paths[2].attrs.d.match(/M/g)?.length, 3);
  assert.equal(paths[2].attrs.d.match(/L/g)?.length, 1);
  // Isolated points (the single point and the two lone runs) are drawn as dots.
  assert.equal(els.filter((e) => e.name === "circle").length, 3);
  assert.ok(texts(els).includes("empty"));
});

Deno.test("lineChartSvg renders with no series, a flat series, or only a right axis", () => {
  for (
    const series of [
      [],
      [{ name: "flat", points: [[0, 2], [1, 2]] }],
      [{ name: "zero", points: [[3, 0], [3, 0]] }],
      [{ name: "r", points: [[0, 5], [1, 6]], axis: "right" }],
      [{ name: "wide", points: [[0, -1e308], [1, 1e308]] }],
    ] as Series[][]
  ) {
    const svg = lineChartSvg({ title: "t", xLabel: "x", series });
    assert.ok(!svg.includes("NaN") && !svg.includes("Infinity"), JSON.stringify(series));
    const els = parseXml(svg);
    assert.equal(seriesPaths(els).length, series.length);
  }
  assert.throws(
    () => lineChartSvg({ title: "tiny", xLabel: "x", series: [], width: 50 }),
    /lineChartSvg "tiny": width and height must be at least 200×150, got 50×480/,
  );
});
