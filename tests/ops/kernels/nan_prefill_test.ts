// Every kernel must write every element of its output. A fresh arena is
// zero-filled, so a kernel that leaves part of its output untouched (say, a
// 2×2 max-pool backward that skips the odd last row of dx) passes wherever 0
// is the right value there. Here the same graphs run on an arena pre-filled
// with NaN and on a zeroed one, at odd sizes, on every tier: the results must
// be identical, bit for bit. A table check makes sure the graphs use every
// registered op.
import "../../../ops/mod.ts";
import assert from "node:assert/strict";
import { arenaAllocator } from "../../../graph/arena.ts";
import { Executor } from "../../../graph/executor.ts";
import { Graph, type Node } from "../../../graph/graph.ts";
import { grad } from "../../../graph/grad.ts";
import { registeredOps, type Tier } from "../../../graph/op.ts";
import { makePlan } from "../../../graph/plan.ts";
import { fuseChains } from "../../../graph/passes/chains.ts";
import { fuseGraph } from "../../../graph/passes/fuse.ts";
import {
  add,
  avgPool2d,
  batchSum,
  bceWithLogits,
  concat,
  conv2d,
  crossEntropy,
  div,
  dropout,
  elementCount,
  exp,
  expandAs,
  fill,
  flatten,
  gelu,
  leakyRelu,
  linear,
  log,
  logSoftmax,
  matmul,
  maxPool2d,
  maxPool2dGather,
  mean,
  mseLoss,
  mul,
  nllLoss,
  padAxis,
  pow,
  relu,
  scale,
  sigmoid,
  slice,
  softmax,
  sub,
  sum,
  tanh,
  trainingSelect,
} from "../../../ops/mod.ts";
import { uniformArray } from "../../_rng.ts";

interface Case {
  graph: Graph;
  outputs: Node[];
  feeds: Record<string, ArrayLike<number>>;
}

// Odd sizes throughout: 11×11 images pool to 5×5 with a row and a column
// left over (5 ≥ 4, so the wasm pooling kernel takes it), 3 samples.
function cnn(): Case {
  const g = new Graph();
  const x = g.input("x", [3, 3, 11, 11]);
  const t = g.input("t", [3]);
  const w1 = g.param("w1", [4, 3, 3, 3], { kind: "uniform", bound: 0.3 });
  const b1 = g.param("b1", [4], { kind: "uniform", bound: 0.3 });
  const w2 = g.param("w2", [5, 4, 3, 3], { kind: "uniform", bound: 0.3 });
  const fc = g.param("fc", [7, 5 * 3 * 4], { kind: "uniform", bound: 0.3 });
  let h = maxPool2d(relu(conv2d(x, w1, b1, { padding: 1 })), { size: 2 });
  h = leakyRelu(conv2d(h, w2, null, { stride: 2, padding: 1 }));
  const p3 = maxPool2d(h, { size: 3, stride: 1, padding: 1 });
  const a = avgPool2d(p3, { size: 2, stride: 1, padding: 1 });
  const z = linear(flatten(slice(a, { axis: 2, start: 0, size: 3 })), fc);
  const loss = add(nllLoss(logSoftmax(z), t), crossEntropy(z, t));
  const gx = maxPool2dGather(p3, h, { size: 3, stride: 1, padding: 1 });
  const grads = grad(loss, [x, w1, b1, w2, fc]) as Node[];
  return {
    graph: g,
    outputs: [loss, gx, ...grads],
    feeds: { x: uniformArray(3 * 3 * 121, 1), t: [0, 6, 3] },
  };
}

function mlp(): Case {
  const g = new Graph();
  const x = g.input("x", [5, 9]);
  const t = g.input("t", [5, 3]);
  const w = g.param("w", [9, 7], { kind: "uniform", bound: 0.4 });
  const v = g.param("v", [7, 3], { kind: "uniform", bound: 0.4 });
  const h = dropout(gelu(tanh(matmul(x, w))), { p: 0.3 });
  const y = matmul(sigmoid(h), v);
  const s = softmax(y);
  const e = div(exp(y), add(pow(sub(y, scale(t, 0.5)), 2), 1));
  const wide = padAxis(concat([y, log(add(s, 1))], { axis: 1 }), { axis: 1, before: 1, after: 2 });
  const m = mean(wide, { axes: [1], keepdims: true });
  const sel = trainingSelect(expandAs(m, y), y);
  const n = mul(batchSum(sum(e)), elementCount(e));
  const loss = add(
    add(mseLoss(sel, t), bceWithLogits(y, t)),
    add(scale(n, 0.001), mean(mul(fill([1], 2, g), s))),
  );
  return {
    graph: g,
    outputs: [loss, ...(grad(loss, [x, w, v]) as Node[])],
    feeds: { x: uniformArray(45, 2), t: uniformArray(15, 3, 0, 1) },
  };
}

// The fused first layer (the fusion pass's conv2d_relu_pool and its backward,
// packed_first, take) at an odd size, and a batch_sum.
function fused(): Case {
  const g = new Graph();
  const x = g.input("x", [3, 1, 13, 13]);
  const w = g.param("w", [4, 1, 3, 3], { kind: "uniform", bound: 0.5 });
  const b = g.param("b", [4], { kind: "uniform", bound: 0.5 });
  const h = maxPool2d(relu(conv2d(x, w, b)), { size: 2 }); // 11x11 -> 5x5, one row left
  const s = batchSum(sum(mul(h, h), { axes: [0] }));
  const loss = mean(s, { name: "loss" });
  const [dw, db] = grad(loss, [w, b]) as Node[];
  const f = fuseGraph(g, [loss.name, dw!.name, db!.name]);
  assert.ok(f.nodes.some((r) => r.op === "conv2d_relu_pool"), "the pass fused the layer");
  return {
    graph: f,
    outputs: [loss.name, dw!.name, db!.name].map((n) => f.node(n)),
    feeds: { x: uniformArray(3 * 169, 4) },
  };
}

// the mlp graph with its elementwise chains fused (elementwise_chain nodes)
function chained(): Case {
  const c = mlp();
  const names = c.outputs.map((o) => o.name);
  const f = fuseChains(c.graph, names);
  assert.ok(f.nodes.some((r) => r.op === "elementwise_chain"), "the pass fused a chain");
  return { graph: f, outputs: names.map((n) => f.node(n)), feeds: c.feeds };
}

// A later layer fused by the pass (bias_relu_pool and its backward, with an
// input gradient): odd sizes, a pooled width of 5 for the wasm kernels and an
// odd last row and column, feeding the first layer's backward.
function fused2(): Case {
  const g = new Graph();
  const x = g.input("x", [2, 2, 10, 15]);
  const w1 = g.param("w1", [3, 2, 3, 3], { kind: "uniform", bound: 0.5 });
  const b1 = g.param("b1", [3], { kind: "uniform", bound: 0.5 });
  const w2 = g.param("w2", [4, 3, 2, 3], { kind: "uniform", bound: 0.5 });
  const b2 = g.param("b2", [4], { kind: "uniform", bound: 0.5 });
  const h = relu(conv2d(x, w1, b1)); // 8x13
  const y = maxPool2d(relu(conv2d(h, w2, b2)), { size: 2 }); // 7x11 -> 3x5
  const loss = mean(mul(y, y), { name: "loss" });
  const gs = grad(loss, [w1, b1, w2, b2]) as Node[];
  const names = [loss.name, ...gs.map((n) => n.name)];
  const f = fuseGraph(g, names);
  assert.ok(f.nodes.some((r) => r.op === "bias_relu_pool"), "the pass fused the layer");
  return {
    graph: f,
    outputs: names.map((n) => f.node(n)),
    feeds: { x: uniformArray(2 * 2 * 150, 5) },
  };
}

const cases: [string, () => Case][] = [
  ["cnn", cnn],
  ["mlp", mlp],
  ["fused", fused],
  ["fused2", fused2],
  ["chained", chained],
];

// the kernel scratch past the arena is NaN-filled too
function nanArena(bytes: number, scratchBytes?: number): ArrayBufferLike {
  const buf = arenaAllocator()?.(bytes, scratchBytes) ?? new ArrayBuffer(bytes);
  new Float32Array(buf).fill(NaN);
  return buf;
}

function run(c: Case, tier: Tier, prefill: boolean): number[][] {
  const plan = makePlan(c.graph, { outputs: c.outputs });
  const ex = new Executor(plan, {
    seed: 11,
    tier,
    ...(prefill ? { allocate: nanArena } : {}),
  });
  return ex.run(c.feeds, { step: 1 }).map((v) => [...v]);
}

for (const [name, make] of cases) {
  for (const tier of ["ref", "ts", "wasm"] as const) {
    Deno.test(`${name} on the ${tier} tier: a NaN-filled arena gives the zeroed arena's results`, () => {
      const c = make();
      const clean = run(c, tier, false);
      assert.ok(clean.every((o) => o.every(Number.isFinite)), "the clean run is finite");
      assert.deepEqual(run(c, tier, true), clean);
    });
  }
}

Deno.test("the NaN-prefill graphs use every registered op", () => {
  const used = new Set<string>();
  for (const [, make] of cases) for (const r of make().graph.nodes) used.add(r.op);
  const missing = registeredOps().map((op) => op.name).filter((n) => !used.has(n));
  assert.deepEqual(missing, [], `add these ops to a graph in ${import.meta.url}`);
});
