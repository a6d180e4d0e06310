// every op registers itself on import; grad finds fill, add, sum, reshape by name
import "../../ops/mod.ts";
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { Executor } from "../../graph/executor.ts";
import { Graph } from "../../graph/graph.ts";
import { grad } from "../../graph/grad.ts";
import { makePlan } from "../../graph/plan.ts";
import type { Tensor } from "../../graph/tensor.ts";
import { vjp } from "../../graph/vjp.ts";
import { logSoftmax } from "../../ops/log_softmax.ts";
import { nllLoss, nllLossBackward, type Reduction } from "../../ops/nll_loss.ts";
import { checkVjp, randTensor, rng } from "../_grad_check.ts";

const RUNS = 50;
const reduction = fc.constantFrom<Reduction>("mean", "sum", "none");

/** `n` class indices in 0..classes-1, stored as floats. */
function targets(n: number, classes: number, seed: number): Tensor<Float64Array> {
  const r = rng(seed);
  return { shape: [n], data: Float64Array.from({ length: n }, () => Math.floor(r() * classes)) };
}

Deno.test("nllLoss forward is -logp[n, target[n]], averaged, summed or kept", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 8 }),
      fc.integer({ min: 1, max: 8 }),
      reduction,
      fc.integer(),
      (n, c, red, seed) => {
        const logp = randTensor([n, c], seed, -5, 0);
        const t = targets(n, c, seed);
        const out = vjp((a, b) => nllLoss(a, b, { reduction: red }), logp, t).out;
        const each = [...t.data].map((k, i) => -logp.data[i * c + k]!);
        const total = each.reduce((a, b) => a + b, 0);
        if (red === "none") {
          assert.deepEqual(out.shape, [n]);
          assert.deepEqual([...out.data], each);
        } else {
          assert.deepEqual(out.shape, []);
          const want = red === "mean" ? total / n : total;
          assert.ok(Math.abs(out.data[0]! - want) < 1e-12, `${out.data[0]} vs ${want}`);
        }
      },
    ),
    { numRuns: RUNS },
  );
});

Deno.test("nllLoss vjp matches finite differences with the target held constant", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 1, max: 6 }),
      reduction,
      fc.integer(),
      (n, c, red, seed) => {
        const logp = randTensor([n, c], seed, -5, 0);
        checkVjp((a, b) => nllLoss(a, b, { reduction: red }), [logp, targets(n, c, seed)], {
          seed,
          constant: [1],
          full: n * c <= 16,
        });
      },
    ),
    { numRuns: RUNS },
  );
});

Deno.test("nll_loss_backward vjp (second derivative) matches finite differences", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 5 }),
      fc.integer({ min: 1, max: 5 }),
      reduction,
      fc.integer(),
      (n, c, red, seed) => {
        const dy = randTensor(red === "none" ? [n] : [], seed);
        checkVjp(
          (t, d) => nllLossBackward(t, d, { classes: c, reduction: red }),
          [targets(n, c, seed), dy],
          { seed, constant: [0], full: true },
        );
      },
    ),
    { numRuns: 30 },
  );
});

Deno.test("nllLoss of logSoftmax: gradient is (softmax(x) - onehot) / N and matches differences", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 2, max: 6 }),
      fc.integer(),
      (n, c, seed) => {
        const x = randTensor([n, c], seed, -3, 3);
        const t = targets(n, c, seed);
        const f = (a: Parameters<typeof logSoftmax>[0], b: typeof a) => nllLoss(logSoftmax(a), b);
        checkVjp(f, [x, t], { seed, constant: [1], full: n * c <= 12 });
        const [dx] = vjp(f, x, t).backward([1]);
        for (let i = 0; i < n; i++) {
          let s = 0;
          for (let k = 0; k < c; k++) s += Math.exp(x.data[i * c + k]!);
          for (let k = 0; k < c; k++) {
            const want = (Math.exp(x.data[i * c + k]!) / s - (k === t.data[i] ? 1 : 0)) / n;
            assert.ok(Math.abs(dx!.data[i * c + k]! - want) < 1e-14);
          }
        }
      },
    ),
    { numRuns: 40 },
  );
});

Deno.test("nllLoss mean divides by the batch bound at plan time", () => {
  const g = new Graph();
  const logp = g.input("logp", [-1, 3]);
  const label = g.input("label", [-1]);
  const loss = nllLoss(logp, label);
  const [dlogp] = grad(loss, [logp]);
  for (const batch of [1, 2, 5]) {
    const ex = new Executor(makePlan(g, { batch, outputs: [loss, dlogp!] }));
    const lp = Array.from({ length: batch * 3 }, (_, i) => -(i + 1));
    const lb = Array.from({ length: batch }, (_, i) => i % 3);
    const [l, d] = ex.run({ logp: lp, label: lb });
    let want = 0;
    for (let i = 0; i < batch; i++) want += (i * 3 + (i % 3) + 1) / batch;
    assert.ok(Math.abs(l![0]! - want) < 1e-5, `batch ${batch}: ${l![0]} vs ${want}`);
    for (let i = 0; i < batch * 3; i++) {
      assert.equal(d![i], i % 3 === (Math.floor(i / 3) % 3) ? Math.fround(-1 / batch) : 0);
    }
  }
});

Deno.test("nllLoss rejects a target that is not a class index, naming the sample and value", () => {
  const logp = { shape: [3, 4], data: new Float32Array(12) };
  for (const [bad, shown] of [[4, "4"], [-1, "-1"], [1.5, "1.5"], [NaN, "NaN"]] as const) {
    const t = { shape: [3], data: Float32Array.from([0, 3, bad]) };
    assert.throws(
      () => vjp((a, b) => nllLoss(a, b), logp, t),
      new RegExp(`nll_loss: target of sample 2 is ${shown}, not a class index in 0\\.\\.3`),
    );
  }
  // with a shard offset, the sample index is the one in the whole mini-batch
  const g = new Graph();
  const loss = nllLoss(g.input("logp", [-1, 4]), g.input("label", [-1]));
  const ex = new Executor(makePlan(g, { batch: 2, outputs: [loss] }));
  assert.throws(
    () => ex.run({ logp: new Float32Array(8), label: [1, 9] }, { sampleOffset: 64 }),
    /nll_loss: target of sample 65 is 9/,
  );
});

Deno.test("nllLoss shape errors name the op, the node and the shapes", () => {
  const g = new Graph();
  const logp = g.input("logp", [-1, 10]);
  assert.throws(
    () => nllLoss(logp, g.input("t5", [5]), { name: "loss" }),
    /nll_loss "loss": logp holds N samples but target holds 5 \(logp \[N,10\], target \[5\]\)/,
  );
  assert.throws(
    () => nllLoss(logp, g.input("t2", [-1, 1]), { name: "loss2" }),
    /nll_loss "loss2": target must be 1-D \[batch\] \(logp \[N,10\], target \[N,1\]\)/,
  );
  assert.throws(
    () => nllLoss(g.input("x", [-1, 2, 5]), g.input("t", [-1]), { name: "loss3" }),
    /nll_loss "loss3": logp must be 2-D/,
  );
  assert.throws(
    () => nllLoss(logp, g.input("t3", [-1]), { reduction: "avg" as Reduction, name: "loss4" }),
    /nll_loss "loss4": reduction must be "mean", "sum" or "none", got "avg"/,
  );
});

Deno.test("a classifier loss graph with its backward survives a JSON round trip", () => {
  // workers rebuild graphs from JSON through the registry: attrs must be plain data
  const g = new Graph();
  const logits = g.input("logits", [-1, 4]);
  const loss = nllLoss(logSoftmax(logits), g.input("label", [-1]), { reduction: "sum" });
  grad(loss, [logits]);
  const back = Graph.fromJSON(JSON.parse(JSON.stringify(g.toJSON())));
  assert.deepEqual(back.toJSON(), g.toJSON());
  assert.ok(back.nodes.some((r) => r.op === "nll_loss_backward"));
  assert.ok(back.nodes.some((r) => r.op === "log_softmax_backward"));
});
