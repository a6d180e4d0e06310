// every op registers itself on import; grad finds fill, add, sum, reshape by name
import "../../ops/mod.ts";
import assert from "node:assert/strict";
import { toDot } from "../../graph/dot.ts";
import { Graph } from "../../graph/graph.ts";
import { grad } from "../../graph/grad.ts";
import { vjp } from "../../graph/vjp.ts";
import { tensor } from "../../graph/tensor.ts";
import { mean } from "../../ops/mean.ts";
import { mul } from "../../ops/mul.ts";
import { relu } from "../../ops/relu.ts";
import { lectureCnn } from "../../train/models.ts";

function hasProgram(cmd: string): boolean {
  if (Deno.permissions.querySync({ name: "run", command: cmd }).state !== "granted") return false;
  try {
    return new Deno.Command(cmd, { args: ["-V"], stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
}

const hasDot = hasProgram("dot");

/** Runs `dot -Tsvg` on `src`; returns the SVG or throws with dot's complaint. */
async function renderSvg(src: string): Promise<string> {
  const child = new Deno.Command("dot", {
    args: ["-Tsvg"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(src));
  await writer.close();
  const out = await child.output();
  const err = new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`dot -Tsvg failed: ${err}`);
  // dot reports syntax errors as warnings and still exits 0 on some inputs
  assert.doesNotMatch(err, /error|syntax/i, `dot -Tsvg complained: ${err}`);
  return new TextDecoder().decode(out.stdout);
}

interface Parsed {
  nodes: Map<string, string>; // id -> attribute text
  edges: [string, string][];
  clusterNodes: Set<string>;
}

/** A small reader for the DOT toDot writes: one statement per line. */
function parse(dot: string): Parsed {
  const nodes = new Map<string, string>();
  const edges: [string, string][] = [];
  const clusterNodes = new Set<string>();
  let depth = 0;
  for (const line of dot.split("\n")) {
    const bare = line.replace(/"(?:[^"\\]|\\.)*"/g, '""');
    const node = /^\s*(n\d+) \[(.*)\];$/.exec(line);
    const edge = /^\s*(n\d+) -> (n\d+)( \[.*\])?;$/.exec(line);
    if (node) {
      assert.ok(!nodes.has(node[1]!), `node ${node[1]} is declared twice`);
      nodes.set(node[1]!, node[2]!);
      if (depth === 2) clusterNodes.add(node[1]!);
    } else if (edge) edges.push([edge[1]!, edge[2]!]);
    depth += (bare.match(/\{/g) ?? []).length - (bare.match(/\}/g) ?? []).length;
    assert.ok(depth >= 0, `unbalanced "}" at: ${line}`);
  }
  assert.equal(depth, 0, "braces are not balanced");
  return { nodes, edges, clusterNodes };
}

Deno.test("toDot of the lecture CNN has one node per graph node and one edge per input", async () => {
  const m = lectureCnn({ channels: 4 });
  const g = m.built;
  const dot = toDot(g, { title: "lecture CNN" });
  assert.match(dot, /^digraph "lecture CNN" \{\n/);
  const p = parse(dot);
  assert.equal(p.nodes.size, g.nodes.length);
  g.nodes.forEach((_, i) => assert.ok(p.nodes.has(`n${i}`), `node n${i} is missing`));
  const want = g.nodes.flatMap((r, i) => r.inputs.map((j) => `n${j}->n${i}`)).sort();
  assert.deepEqual(p.edges.map(([a, b]) => `${a}->${b}`).sort(), want);
  // the label carries name, op and shape with N for the batch axis
  assert.match(p.nodes.get("n3")!, /label="conv1\\nconv2d\\n\[N, 4, 26, 26\]"/);
  assert.match(p.nodes.get("n7")!, /label="fc.weight\\nparam\\n\[10, 676\]"/);
  // the three kinds are styled apart
  const fill = (id: string) => /fillcolor="([^"]+)"/.exec(p.nodes.get(id)!)![1];
  const loss = g.node(m.loss).id;
  const dConv = g.node(m.grads["conv1.weight"]!).id;
  assert.equal(new Set([fill("n0"), fill("n1"), fill("n3"), fill(`n${dConv}`)]).size, 4);
  // backward: every node after the loss (the seed onwards), and only those
  const backward = g.nodes.flatMap((_, i) => (i > loss ? [`n${i}`] : []));
  assert.deepEqual([...p.clusterNodes].sort(), backward.sort());
  assert.match(dot, /subgraph cluster_backward \{\n\s*label="backward";/);
  if (hasDot) assert.match(await renderSvg(dot), /<svg/);
});

Deno.test({
  name: "toDot of the lecture CNN is accepted by dot -Tsvg",
  ignore: !hasDot,
  async fn() {
    const m = lectureCnn({ channels: 4 });
    const svg = await renderSvg(toDot(m.built, { highlight: [m.loss, ...Object.values(m.grads)] }));
    // every node made it into the drawing
    for (const r of m.built.nodes) assert.ok(svg.includes(r.name), `"${r.name}" is not drawn`);
  },
});

Deno.test("toDot finds the backward part by the grad seed, forwardEnd, or vjp's cotangent", () => {
  const m = lectureCnn({ channels: 2 });
  const bySeed = parse(toDot(m.built)).clusterNodes;
  const byEnd = parse(toDot(m.built, { forwardEnd: m.loss })).clusterNodes;
  assert.deepEqual([...bySeed].sort(), [...byEnd].sort());
  // an earlier end moves the boundary: logp and loss are now backward too
  const logp = m.built.node(m.logp).id;
  const early = parse(toDot(m.built, { forwardEnd: logp - 1 })).clusterNodes;
  assert.ok(early.has(`n${logp}`) && early.has(`n${m.built.node(m.loss).id}`));
  // an input after the boundary (target) stays an input, outside the cluster
  assert.ok(!early.has(`n${m.built.node("target").id}`));

  const { graph, outNode } = vjp((x) => mean(mul(x, x)), tensor([1, 2, 3]));
  const p = parse(toDot(graph));
  const cot = graph.node("cotangent").id;
  assert.ok(!p.clusterNodes.has(`n${outNode.id}`));
  assert.ok(p.clusterNodes.size > 0);
  for (const id of p.clusterNodes) assert.ok(Number(id.slice(1)) > cot);
});

Deno.test("toDot of a forward-only graph has no backward cluster", () => {
  const g = new Graph();
  relu(g.input("x", [-1, 2]));
  const dot = toDot(g);
  assert.doesNotMatch(dot, /cluster/);
  assert.equal(parse(dot).nodes.size, 2);
});

Deno.test("toDot escapes quotes, backslashes and newlines in names and the title", async () => {
  const g = new Graph();
  const x = g.input('my "x"\\in', [-1, 2]);
  const w = g.param("w\nline", [2], { kind: "constant", value: 1 });
  const loss = mean(mul(x, w), { name: 'loss "}" {' });
  grad(loss, [w]);
  const dot = toDot(g, { title: 'a "quoted" title \\ {', highlight: [loss.name, 0] });
  const p = parse(dot);
  assert.equal(p.nodes.size, g.nodes.length);
  assert.match(p.nodes.get("n0")!, /label="my \\"x\\"\\\\in\\ninput\\n\[N, 2\]"/);
  assert.match(p.nodes.get("n1")!, /label="w\\nline\\nparam\\n\[2\]"/);
  assert.match(p.nodes.get("n0")!, /penwidth=3/);
  assert.match(p.nodes.get(`n${loss.id}`)!, /penwidth=3/);
  assert.doesNotMatch(p.nodes.get("n1")!, /penwidth/);
  if (hasDot) await renderSvg(dot);
});

Deno.test("toDot rejects a highlight or forwardEnd that names no node", () => {
  const g = new Graph();
  g.input("x", [2]);
  assert.throws(() => toDot(g, { highlight: ["nope"] }), /Graph has no node "nope"/);
  assert.throws(() => toDot(g, { forwardEnd: 5 }), /Graph has no node 5/);
});

Deno.test({
  name: "train/dot_cli.ts run as a script prints the lecture CNN's DOT",
  ignore: Deno.permissions.querySync({ name: "run", command: Deno.execPath() }).state !==
    "granted",
  async fn() {
    const script = new URL("../../train/dot_cli.ts", import.meta.url);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-lock", script.href, "--channels", "3"],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const dot = new TextDecoder().decode(out.stdout);
    const m = lectureCnn({ channels: 3 });
    assert.equal(parse(dot).nodes.size, m.built.nodes.length);
    assert.match(dot, /lecture CNN, 3 channels/);
    assert.match(dot, /\[N, 3, 26, 26\]/);
  },
});
