// every op registers itself on import; grad finds fill, add, sum, reshape by name
import "../../ops/mod.ts";
import assert from "node:assert/strict";
import { Executor } from "../../graph/executor.ts";
import { Graph } from "../../graph/graph.ts";
import { grad } from "../../graph/grad.ts";
import { makePlan } from "../../graph/plan.ts";
import { add } from "../../ops/add.ts";
import { mean } from "../../ops/mean.ts";
import { mul } from "../../ops/mul.ts";
import { relu } from "../../ops/relu.ts";
import { scale } from "../../ops/scale.ts";
import { sub } from "../../ops/sub.ts";

Deno.test("executor recomputes only what changed: polynomial features once, the rest every step", () => {
  const g = new Graph();
  const x = g.input("x", [-1]);
  const t = g.input("t", [-1]);
  const w0 = g.param("w0", [1], { kind: "constant", value: 0 });
  const w1 = g.param("w1", [1], { kind: "constant", value: 0 });
  const w2 = g.param("w2", [1], { kind: "constant", value: 0 });
  const x2 = mul(x, x, { name: "x_squared" }); // a feature column: depends on data only
  const y = add(add(mul(x2, w2), mul(x, w1)), w0, { name: "y" });
  const d = sub(y, t);
  const loss = mean(mul(d, d), { name: "loss" });
  const grads = grad(loss, [w0, w1, w2]) as ReturnType<typeof g.node>[];
  const ex = new Executor(makePlan(g, { batch: 50, outputs: [loss, ...grads] }));
  const xs = Float32Array.from({ length: 50 }, (_, i) => -1 + (2 * i) / 49);
  const ts = xs.map((v) => 0.5 - 2 * v + 3 * v * v);
  ex.feed("x", xs);
  ex.feed("t", ts);
  const losses: number[] = [];
  const steps = 200;
  for (let s = 0; s < steps; s++) {
    const [l, ...gs] = ex.run();
    losses.push(l![0]!);
    ["w0", "w1", "w2"].forEach((n, i) => (ex.params.get(n)![0]! -= 0.3 * gs[i]![0]!));
    ex.invalidate();
  }
  assert.equal(ex.kernelRuns[x2.id], 1, "the feature column is computed once");
  assert.equal(ex.kernelRuns[y.id], steps, "the prediction is recomputed every step");
  assert.ok(losses.at(-1)! < losses[0]! / 100, `loss fell from ${losses[0]} to ${losses.at(-1)}`);
  // a run with nothing changed computes nothing
  ex.run();
  const before = ex.kernelRuns.reduce((a, b) => a + b, 0);
  ex.run();
  assert.equal(ex.kernelRuns.reduce((a, b) => a + b, 0), before);
});

Deno.test("plan reuses buffers whose lifetimes do not overlap", () => {
  const g = new Graph();
  let h = g.input("x", [-1, 256]);
  const w = g.param("w", [256], { kind: "uniform", bound: 1 });
  for (let i = 0; i < 8; i++) h = relu(mul(h, w));
  const loss = mean(h);
  const [dw] = grad(loss, [w]);
  const plan = makePlan(g, { batch: 16, outputs: [loss, dw!] });
  const total = plan.shapes.reduce(
    (s, sh, i) => s + (g.nodes[i]!.op === "param" ? 0 : sh.reduce((a, b) => a * b, 1)),
    0,
  );
  // the backward pass needs most forward activations, so about half can be shared
  assert.ok(plan.arenaLength < total * 0.55, `arena ${plan.arenaLength} of ${total} elements`);
  // the forward pass alone needs the input and two buffers in turn, whatever its depth
  const fwd = makePlan(g, { batch: 16, outputs: [loss], prune: true });
  assert.ok(fwd.arenaLength <= 3 * 16 * 256 + 16, `forward arena ${fwd.arenaLength}`);
  // and sharing does not change the result: compare with the run of a plan that shares nothing
  const ex = new Executor(plan, { seed: 3 });
  const x = Float32Array.from({ length: 16 * 256 }, (_, i) => Math.sin(i));
  const [, g1] = ex.run({ x });
  const noShare = { ...plan, persistent: plan.persistent.map(() => true) };
  const fresh = makePlan(g, { batch: 16, outputs: g.nodes.map((_, i) => g.node(i)) });
  const ex2 = new Executor(fresh, { params: ex.params });
  const [, g2] = ex2.run({ x }, { outputs: [loss, dw!] });
  assert.ok(noShare.persistent.every(Boolean));
  assert.deepEqual([...g1!], [...g2!]);
});

Deno.test("executor errors name the input and the sizes", () => {
  const g = new Graph();
  const y = scale(g.input("x", [-1, 3]), 2);
  const ex = new Executor(makePlan(g, { batch: 2, outputs: [y] }));
  assert.throws(() => ex.run({ x: [1, 2, 3] }), /input "x" of shape \[2,3\] needs 6 values, got 3/);
  assert.throws(() => ex.run({ z: [1] }), /no input "z"/);
});
