// every op registers itself on import; the pass finds elementwise_chain by name
import "../../../ops/mod.ts";
import assert from "node:assert/strict";
import { Executor } from "../../../graph/executor.ts";
import { Graph } from "../../../graph/graph.ts";
import { grad } from "../../../graph/grad.ts";
import type { FloatArray, Tier } from "../../../graph/op.ts";
import { chainGroups, fuseChains, fuseGraph } from "../../../graph/passes/mod.ts";
import { makePlan } from "../../../graph/plan.ts";
import { add, dropout, exp, fill, mul, relu, scale, sum, tanh } from "../../../ops/mod.ts";
import { CHAIN_STEPS } from "../../../ops/kernels/elementwise_chain_ref.ts";
import { CHAIN_OPS } from "../../../graph/passes/chains.ts";
import { nn } from "../../../train/layers.ts";
import { defineModel, type TrainingGraph, trainingGraph } from "../../../train/model.ts";
import { lectureCnn, mnistNet } from "../../../train/models.ts";
import { rng } from "../../_grad_check.ts";

/** An MLP with layer norm, GELU, dropout, tanh and sigmoid, built with `nn.*`. */
function mlp(): TrainingGraph {
  const m = defineModel({ input: [24], name: "mlp", seed: 3 }, (x) => {
    let h = nn.gelu(nn.layerNorm(nn.linear(x, 32, { name: "fc1" }), undefined, { name: "ln" }));
    h = nn.dropout(h, 0.25, { seed: 5 });
    h = nn.tanh(nn.linear(h, 16, { name: "fc2" }));
    h = nn.sigmoid(nn.linear(h, 16, { name: "fc3" }));
    return nn.linear(h, 10, { name: "out" });
  });
  return trainingGraph(m, "cross-entropy");
}

function keepOf(m: TrainingGraph): string[] {
  return [m.loss, ...Object.values(m.grads)];
}

function groupsOps(g: Graph, groups: string[][]): string[] {
  return groups.map((gr) => gr.map((n) => g.node(n).op).join(">"));
}

Deno.test("every op the chain pass fuses is a step of elementwise_chain with the same attributes", () => {
  for (const [op, attrs] of Object.entries(CHAIN_OPS)) {
    assert.deepEqual(CHAIN_STEPS[op]?.attrs, attrs, op);
  }
});

Deno.test("fuseChains finds the chains of mnist-net and of an MLP with layer norm and GELU, none in the lecture CNN", () => {
  const cnn = lectureCnn();
  const fused = fuseGraph(cnn.built, keepOf(cnn));
  assert.deepEqual(chainGroups(fused, keepOf(cnn)), []);
  assert.equal(fuseChains(fused, keepOf(cnn)), fused);

  const net = mnistNet();
  const g = fuseGraph(net.built, keepOf(net));
  assert.deepEqual(groupsOps(g, chainGroups(g, keepOf(net))), [
    "relu>dropout",
    "dropout>relu_backward",
  ]);
  const f = fuseChains(g, keepOf(net));
  assert.equal(f.nodes.length, g.nodes.length - 2);
  for (const name of [...keepOf(net), "x", "target", "dropout2", "fc1", "fc2"]) {
    assert.ok(f.has(name), name);
  }
  assert.ok(!f.has("relu3"));
  assert.equal(f.node("dropout2").op, "elementwise_chain");

  const m = mlp();
  const ops = groupsOps(m.built, chainGroups(m.built, keepOf(m)));
  assert.deepEqual(ops, [
    "mul>add", // layer norm's affine part
    "pow>scale>mul", // d rstd
    "mul>mul>mul>add>add", // layer norm's input gradient, [N, 32] with [N, 1] operands
  ]);
  // the original graph is untouched and JSON round-trips the fused one
  const before = m.built.nodes.length;
  const fm = fuseChains(m.built, keepOf(m));
  assert.equal(m.built.nodes.length, before);
  assert.equal(fm.nodes.length, before - 7);
  assert.deepEqual(Graph.fromJSON(JSON.parse(JSON.stringify(fm.toJSON()))).toJSON(), fm.toJSON());
});

Deno.test("fuseChains respects keep, fan-out, shape changes and broadcasts it cannot read in one pass", () => {
  const g = new Graph();
  const x = g.input("x", [-1, 3, 4, 5]);
  const a = scale(x, 2, { name: "a" });
  const b = exp(a, { name: "b" });
  const c = relu(b, { name: "c" });
  // b fans out to c and d: a>b fuse, c stays, d's mul absorbs nothing from b
  // c and d both read b; so does k, outside their group, so b stays a group's output
  const d = mul(b, g.input("bias", [3, 1, 1]), { name: "d" });
  const e = add(c, d, { name: "e" });
  // [3, 1, 5] against [N, 3, 4, 5]: its axes are not one run, so "f" is no candidate
  const f = mul(e, g.input("odd", [3, 1, 5]), { name: "f" });
  const k = mul(f, b, { name: "k" });
  const m = mul(k, fill([], 3, g), { name: "m" });
  sum(m, { name: "s" });
  assert.deepEqual(chainGroups(g, ["s"]), [["a", "b"], ["c", "d", "e"], ["k", "m"]]);
  // keeping a breaks up the first group (a group's output may be kept: b)
  assert.deepEqual(chainGroups(g, ["s", "a"]), [["c", "d", "e"], ["k", "m"]]);
  assert.deepEqual(chainGroups(g, ["s", "b"]), chainGroups(g, ["s"]));
  // keeping c splits the second one
  assert.deepEqual(chainGroups(g, ["s", "c"]), [["a", "b"], ["d", "e"], ["k", "m"]]);
  const fused = fuseChains(g, ["s"]);
  assert.deepEqual(
    fused.nodes.map((r) => r.name),
    ["x", "b", "bias", "e", "odd", "f", "m", "s"],
  );
  // a kept node stays whole: keeping k leaves m alone, a group of one
  const kept = fuseChains(g, ["s", "k"]);
  assert.equal(kept.node("k").op, "mul");
  assert.equal(kept.node("m").op, "mul");
});

Deno.test("fuseChains keeps dropout out of chains with steps the wasm tier cannot run", () => {
  const g = new Graph();
  const x = g.input("x", [-1, 8]);
  // exp feeds a dropout: they stay apart, the dropout joins the ReLU after it
  const c = relu(dropout(exp(x, { name: "a" }), { p: 0.5, seed: 1, name: "b" }), { name: "c" });
  // a dropout before a tanh: the tanh takes the mul, the dropout the ReLU before it
  const d = dropout(relu(x, { name: "r" }), { p: 0.5, seed: 2, name: "d" });
  const e = tanh(mul(d, 2, { name: "m" }), { name: "e" });
  add(sum(c), sum(e), { name: "s" });
  assert.deepEqual(chainGroups(g, ["s"]), [["b", "c"], ["r", "d"], ["m", "e"]]);
});

Deno.test("fuseChains copies scalar constants into the program and drops them when nothing else reads them", () => {
  const g = new Graph();
  const x = g.input("x", [-1, 4]);
  const y = relu(add(scale(x, 0.5), fill([], 1.5, g, { name: "one" })), { name: "y" });
  const f = fuseChains(g, [y.name]);
  assert.deepEqual(f.nodes.map((r) => r.op), ["input", "elementwise_chain"]);
  const steps = f.node("y").record.attrs.steps as { op: string }[];
  assert.deepEqual(steps.map((s) => s.op), ["const", "scale", "add", "relu"]);
  const ex = new Executor(makePlan(f, { batch: 1, outputs: [f.node("y")] }));
  assert.deepEqual([...ex.run({ x: [-4, 0, 2, 10] })[0]!], [0, 1.5, 2.5, 6.5]);
});

// the loss and gradients of a training graph, fused or not
function lossAndGrads(
  g: Graph,
  names: string[],
  tier: Tier,
  dtype: "float32" | "float64",
  batch: number,
  feeds: Record<string, ArrayLike<number>>,
): FloatArray[] {
  const plan = makePlan(g, { batch, dtype, outputs: names.map((n) => g.node(n)) });
  const ex = new Executor(plan, { seed: 7, tier });
  return ex.run(feeds, { training: true, step: 3, sampleOffset: 2 }).map((a) => a.slice());
}

function assertSameBits(got: FloatArray, want: FloatArray, what: string): void {
  assert.equal(got.length, want.length, what);
  for (let i = 0; i < got.length; i++) {
    assert.ok(Object.is(got[i], want[i]), `${what}[${i}]: ${got[i]}, want ${want[i]}`);
  }
}

for (
  const [name, make, inputSize] of [
    ["lecture CNN", () => lectureCnn({ channels: 4 }), 784],
    ["mnist-net", () => mnistNet({ seed: 2 }), 784],
    ["MLP with layer norm and GELU", mlp, 24],
  ] as const
) {
  Deno.test(`fuseChains: ${name} gives the same loss and gradients bit for bit, every tier`, () => {
    const m = make();
    const keep = keepOf(m);
    const plain = fuseGraph(m.built, keep);
    const chained = fuseChains(plain, keep);
    const batch = 5;
    const r = rng(11);
    const x = Array.from({ length: batch * inputSize }, () => r() * 2 - 1);
    const target = Array.from({ length: batch }, (_, i) => (i * 3) % 10);
    const feeds = { [m.input]: x, [m.target]: target };
    for (
      const [tier, dtype] of [["wasm", "float32"], ["ts", "float32"], ["ref", "float32"], [
        "ref",
        "float64",
      ]] as const
    ) {
      const want = lossAndGrads(plain, keep, tier, dtype, batch, feeds);
      const got = lossAndGrads(chained, keep, tier, dtype, batch, feeds);
      keep.forEach((k, i) => assertSameBits(got[i]!, want[i]!, `${tier} ${dtype} ${k}`));
    }
  });
}

Deno.test("fuseChains' graph differentiates like the original (the fused op's VJP)", () => {
  const g = new Graph();
  const x = g.input("x", [-1, 3]);
  const w = g.param("w", [3], { kind: "uniform", bound: 1 });
  const h = mul(exp(scale(x, 0.5)), w, { name: "h" });
  const loss = sum(mul(h, h), { name: "loss" });
  const f = fuseChains(g, ["loss", "h"]);
  assert.equal(f.node("h").op, "elementwise_chain");
  const [gw] = grad(f.node("loss"), [f.node("w")]);
  const [gw0] = grad(loss, [w]);
  const feeds = { x: [0.5, -1, 2, 0, 1, -2] };
  const run = (gr: Graph, n: string) => {
    const plan = makePlan(gr, { batch: 2, dtype: "float64", outputs: [gr.node(n)] });
    return new Executor(plan, { seed: 1 }).run(feeds)[0]!;
  };
  const a = run(f, gw!.name), b = run(g, gw0!.name);
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-12 * Math.abs(b[i]!));
});
