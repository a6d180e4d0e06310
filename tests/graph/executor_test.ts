// every op registers itself on import; grad finds fill, add, sum, reshape by name
import "../../ops/mod.ts";
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { Executor } from "../../graph/executor.ts";
import { Graph, type Node } from "../../graph/graph.ts";
import { grad } from "../../graph/grad.ts";
import { makePlan } from "../../graph/plan.ts";
import { add } from "../../ops/add.ts";
import { conv2d } from "../../ops/conv2d.ts";
import { crossEntropy } from "../../ops/cross_entropy.ts";
import { flatten } from "../../ops/reshape.ts";
import { linear } from "../../ops/linear.ts";
import { gemmStagedBytes, wasmAvailable } from "../../ops/kernels/gemm_wasm.ts";
import { arenaKernels, sharedWasmArenaBuffer } from "../../ops/kernels/elementwise_wasm.ts";
import type { FloatArray } from "../../graph/op.ts";
import { uniformArray } from "../_rng.ts";
import { dropout } from "../../ops/dropout.ts";
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
  // and sharing does not change the result: compare with the run of a plan
  // that shares nothing (every node an output)
  const ex = new Executor(plan, { seed: 3 });
  const x = Float32Array.from({ length: 16 * 256 }, (_, i) => Math.sin(i));
  const [, g1] = ex.run({ x });
  const fresh = makePlan(g, { batch: 16, outputs: g.nodes.map((_, i) => g.node(i)) });
  const ex2 = new Executor(fresh, { params: ex.params });
  const [, g2] = ex2.run({ x }, { outputs: [loss, dw!] });
  assert.deepEqual([...g1!], [...g2!]);
});

Deno.test("executor errors name the input and the sizes", () => {
  const g = new Graph();
  const y = scale(g.input("x", [-1, 3]), 2);
  const ex = new Executor(makePlan(g, { batch: 2, outputs: [y] }));
  assert.throws(() => ex.run({ x: [1, 2, 3] }), /input "x" of shape \[2,3\] needs 6 values, got 3/);
  assert.throws(() => ex.run({ z: [1] }), /no input "z"/);
});

Deno.test("a feed marks its input changed: the next run recomputes from the new values", () => {
  const g = new Graph();
  const y = scale(g.input("x", [3]), 2);
  const ex = new Executor(makePlan(g, { outputs: [y] }));
  assert.deepEqual([...ex.run({ x: [1, 2, 3] })[0]!], [2, 4, 6]);
  ex.feed("x", [4, 5, 6]);
  assert.deepEqual([...ex.run()[0]!], [8, 10, 12]);
  // the same values fed again still count as a change: a feed does not compare
  ex.run({ x: [4, 5, 6] });
  assert.equal(ex.kernelRuns[y.id], 3);
  ex.run();
  assert.equal(ex.kernelRuns[y.id], 3);
});

// The reactive executor against a fresh one: after any sequence of feeds,
// parameter updates with invalidate, bare invalidates and runs (with other
// outputs, modes and steps), a run returns what a fresh executor returns, a
// repeated run computes nothing, and the data-only nodes (which keep their
// buffers) run exactly when something they read was fed.
Deno.test("executor property: random feeds, updates, invalidates and runs equal a fresh executor", () => {
  const B = 3;
  const g = new Graph();
  const x = g.input("x", [-1, 4]);
  const t = g.input("t", [-1, 4]);
  const w = g.param("w", [4], { kind: "uniform", bound: 1 });
  const b = g.param("b", [4], { kind: "uniform", bound: 1 });
  const feat = mul(x, x, { name: "feat" }); // data only
  const feat2 = scale(feat, 0.5, { name: "feat2" }); // data only, reads feat
  const tt = scale(t, 2, { name: "tt" }); // data only, reads t
  const h = dropout(relu(add(mul(x, w), b)), { p: 0.5 });
  const d = sub(add(h, feat2), tt);
  const loss = mean(mul(d, d), { name: "loss" });
  const [gw, gb] = grad(loss, [w, b]) as Node[];
  const plan = makePlan(g, { batch: B, outputs: [loss, gw!, gb!, feat2, tt] });
  const outputSets = [[loss], [loss, gw!, gb!], [feat2], [tt, feat2], [loss, gw!, gb!, feat2, tt]];
  // which inputs each data-only node reads, directly or not
  const dataNodes = [[feat, ["x"]], [feat2, ["x"]], [tt, ["t"]]] as const;
  const needs = (o: Node[], n: Node) => {
    const need = new Set(o.map((v) => v.id));
    for (let i = g.nodes.length - 1; i >= 0; i--) {
      if (need.has(i)) { for (const j of g.nodes[i]!.inputs) need.add(j); }
    }
    return need.has(n.id);
  };

  const values = (n: number, seed: number) =>
    Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 31 + i * 7));
  const action = fc.oneof(
    fc.record({
      kind: fc.constant("feed" as const),
      name: fc.constantFrom("x", "t"),
      seed: fc.nat(99),
    }),
    fc.record({
      kind: fc.constant("update" as const),
      name: fc.constantFrom("w", "b"),
      seed: fc.nat(99),
    }),
    fc.record({ kind: fc.constant("invalidate" as const) }),
    fc.record({
      kind: fc.constant("run" as const),
      outs: fc.nat(outputSets.length - 1),
      training: fc.boolean(),
      step: fc.nat(2),
    }),
  );
  fc.assert(
    fc.property(fc.array(action, { minLength: 1, maxLength: 14 }), (actions) => {
      const ex = new Executor(plan, { seed: 5 });
      const feeds: Record<string, Float32Array> = { x: values(B * 4, 1), t: values(B * 4, 2) };
      ex.run(feeds);
      // inputs fed since each data-only node last ran
      const stale = new Map<number, Set<string>>(dataNodes.map(([n]) => [n.id, new Set()]));
      for (const a of actions) {
        if (a.kind === "feed") {
          feeds[a.name] = values(B * 4, a.seed);
          ex.feed(a.name, feeds[a.name]!);
          for (const s of stale.values()) s.add(a.name);
        } else if (a.kind === "update") {
          ex.params.get(a.name)!.set(values(4, a.seed));
          ex.invalidate(a.seed % 2 ? [a.name] : undefined);
        } else if (a.kind === "invalidate") {
          ex.invalidate();
        } else {
          const outs = outputSets[a.outs]!;
          const opts = { outputs: outs, training: a.training, step: a.step };
          const before = Array.from(ex.kernelRuns);
          const got = ex.run({}, opts).map((v) => [...v]);
          const fresh = new Executor(plan, {
            params: new Map([...ex.params].map(([k, v]) => [k, v.slice()])),
          });
          assert.deepEqual(got, fresh.run(feeds, opts).map((v) => [...v]));
          for (const [n, reads] of dataNodes) {
            const fed = reads.some((r) => stale.get(n.id)!.has(r));
            const runs = ex.kernelRuns[n.id]! - before[n.id]!;
            assert.equal(runs, needs(outs, n) && fed ? 1 : 0, `${n.name} ran ${runs} times`);
            if (needs(outs, n)) stale.get(n.id)!.clear();
          }
          // the same run again computes nothing
          const total = ex.kernelRuns.reduce((s, v) => s + v, 0);
          ex.run({}, opts);
          assert.equal(ex.kernelRuns.reduce((s, v) => s + v, 0), total);
        }
      }
    }),
    { numRuns: 60 },
  );
});

Deno.test("a stochastic node that a run skips still reruns when a later run needs it at the new step", () => {
  // found by the property test above: the step of a run that did not need the
  // dropout used to count as the step dropout's value was for
  const g = new Graph();
  const x = g.input("x", [1, 64]);
  const y = dropout(x, { p: 0.5 });
  const other = scale(x, 2);
  const plan = makePlan(g, { outputs: [y, other] });
  const ex = new Executor(plan);
  const ones = new Float32Array(64).fill(1);
  ex.run({ x: ones }, { outputs: [y], step: 0 });
  ex.run({}, { outputs: [other], step: 1 });
  const got = [...ex.run({}, { outputs: [y], step: 1 })[0]!];
  const want = [...new Executor(plan).run({ x: ones }, { outputs: [y], step: 1 })[0]!];
  assert.deepEqual(got, want);
  assert.notDeepEqual(got, [...new Executor(plan).run({ x: ones }, { outputs: [y] })[0]!]);
});

Deno.test({
  name:
    "a wasm executor runs convolutions and linear layers on its arena: only the weights are copied, results as with a plain buffer",
  ignore: !wasmAvailable(),
  fn() {
    const g = new Graph();
    const x = g.input("x", [-1, 2, 10, 10]);
    const t = g.input("t", [-1]);
    const w1 = g.param("w1", [6, 2, 3, 3], { kind: "uniform", bound: 0.3 });
    const b1 = g.param("b1", [6], { kind: "uniform", bound: 0.3 });
    const w2 = g.param("w2", [4, 6, 3, 3], { kind: "uniform", bound: 0.3 });
    const fc = g.param("fc", [5, 4 * 4 * 4], { kind: "uniform", bound: 0.3 });
    const h = relu(conv2d(relu(conv2d(x, w1, b1, { padding: 1 })), w2, null, { stride: 2 }));
    const loss = crossEntropy(linear(flatten(h), fc), t, { name: "loss" });
    const grads = grad(loss, [w1, b1, w2, fc]) as Node[];
    const plan = makePlan(g, { batch: 3, outputs: [loss, ...grads] });
    assert.ok(plan.scratchLength > 0, "the convolutions and the linear layer reserve scratch");
    const feeds = { x: uniformArray(3 * 200, 7), t: [1, 4, 0] };
    const plain = new Executor(plan, {
      seed: 3,
      tier: "wasm",
      allocate: (n) => new ArrayBuffer(n),
    });
    const want = plain.run(feeds).map((v) => [...v]);
    const ex = new Executor(plan, { seed: 3, tier: "wasm" });
    const staged0 = gemmStagedBytes();
    const got = ex.run(feeds).map((v) => [...v]);
    const staged = gemmStagedBytes() - staged0;
    // the elementwise kernels (bias sums) differ from the plain buffer's in rounding only
    got.forEach((o, i) =>
      o.forEach((v, j) =>
        assert.ok(Math.abs(v - want[i]![j]!) <= 1e-5 * (1 + Math.abs(want[i]![j]!)), `${i}/${j}`)
      )
    );
    // each weight is copied for the forward and the backward-to-input (none for
    // the first layer's input), never an activation or a gradient
    const weights = (6 * 2 * 9 + 2 * 4 * 6 * 9 + 2 * 5 * 64) * 4;
    assert.equal(staged, weights, `staged ${staged} bytes`);
  },
});

Deno.test({
  name:
    "an allocator may give a SharedArrayBuffer: a shared wasm arena gives the default arena's bits, a plain shared buffer the plain buffer's",
  ignore: !wasmAvailable(),
  fn() {
    const g = new Graph();
    const x = g.input("x", [-1, 2, 10, 10]);
    const t = g.input("t", [-1]);
    const w1 = g.param("w1", [6, 2, 3, 3], { kind: "uniform", bound: 0.3 });
    const b1 = g.param("b1", [6], { kind: "uniform", bound: 0.3 });
    const fc = g.param("fc", [5, 6 * 5 * 5], { kind: "uniform", bound: 0.3 });
    const h = relu(conv2d(x, w1, b1, { padding: 1, stride: 2 }));
    const loss = crossEntropy(linear(flatten(h), fc), t, { name: "loss" });
    const grads = grad(loss, [w1, b1, fc]) as Node[];
    const plan = makePlan(g, { batch: 3, outputs: [loss, ...grads] });
    const feeds = { x: uniformArray(3 * 200, 7), t: [1, 4, 0] };
    const bits = (vs: FloatArray[]) => vs.map((v) => [...new Uint32Array(v.slice().buffer)]);
    const run = (allocate?: (n: number, s?: number) => ArrayBufferLike | null) => {
      const ex = new Executor(plan, { seed: 3, tier: "wasm", allocate });
      return { out: bits(ex.run(feeds)), buf: ex.arenaBuffer };
    };
    const wasm = run(), shared = run(sharedWasmArenaBuffer);
    assert.ok(wasm.buf instanceof ArrayBuffer && shared.buf instanceof SharedArrayBuffer);
    assert.deepEqual(shared.out, wasm.out);
    assert.deepEqual(arenaKernels(shared.buf), arenaKernels(wasm.buf));
    assert.ok(arenaKernels(shared.buf).includes("gemm"), arenaKernels(shared.buf).join());
    // no wasm memory: the TypeScript kernels on a SharedArrayBuffer
    const plain = run((n) => new ArrayBuffer(n)),
      plainShared = run((n) => new SharedArrayBuffer(n));
    assert.ok(plainShared.buf instanceof SharedArrayBuffer);
    assert.deepEqual(plainShared.out, plain.out);
    assert.deepEqual(arenaKernels(plainShared.buf), []);
  },
});
