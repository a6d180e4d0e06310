// every op registers itself on import; grad finds fill, add, sum, reshape by name
import "../../ops/mod.ts";
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { Executor } from "../../graph/executor.ts";
import { Graph } from "../../graph/graph.ts";
import { grad } from "../../graph/grad.ts";
import { makePlan } from "../../graph/plan.ts";
import { vjp } from "../../graph/vjp.ts";
import { mseLoss } from "../../ops/mse_loss.ts";
import type { Reduction } from "../../ops/nll_loss.ts";
import { checkVjp, randTensor } from "../_grad_check.ts";

const RUNS = 50;
const shape = fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 0, maxLength: 3 });
const reduction = fc.constantFrom<Reduction>("mean", "sum", "none");

Deno.test("mseLoss forward is mean, sum or the elements of (a - b)^2", () => {
  fc.assert(
    fc.property(shape, reduction, fc.integer(), (s, red, seed) => {
      const a = randTensor(s, seed, -3, 3);
      const b = randTensor(s, seed + 1, -3, 3);
      const out = vjp((x, y) => mseLoss(x, y, { reduction: red }), a, b).out;
      const sq = a.data.map((v, i) => (v - b.data[i]!) ** 2);
      if (red === "none") {
        assert.deepEqual(out.shape, s);
        assert.deepEqual([...out.data], [...sq]);
      } else {
        const total = sq.reduce((p, q) => p + q, 0);
        const want = red === "mean" ? total / sq.length : total;
        assert.deepEqual(out.shape, []);
        assert.ok(Math.abs(out.data[0]! - want) < 1e-12 * (1 + want), `${out.data[0]} vs ${want}`);
      }
    }),
    { numRuns: RUNS },
  );
});

Deno.test("mseLoss vjp matches finite differences in both arguments", () => {
  fc.assert(
    fc.property(shape, reduction, fc.integer(), (s, red, seed) => {
      const a = randTensor(s, seed, -3, 3);
      const b = randTensor(s, seed + 1, -3, 3);
      checkVjp((x, y) => mseLoss(x, y, { reduction: red }), [a, b], {
        seed,
        full: a.data.length <= 8,
      });
    }),
    { numRuns: RUNS },
  );
});

Deno.test("mseLoss gradient is 2 (a - b) / n and the mean counts the run-time batch", () => {
  const g = new Graph();
  const pred = g.input("pred", [-1, 2]);
  const y = g.input("y", [-1, 2]);
  const loss = mseLoss(pred, y, { name: "mse" });
  assert.equal(loss.name, "mse");
  const [dp] = grad(loss, [pred]);
  for (const batch of [1, 3]) {
    const ex = new Executor(makePlan(g, { batch, outputs: [loss, dp!] }));
    const p = Array.from({ length: 2 * batch }, (_, i) => i);
    const t = Array.from({ length: 2 * batch }, (_, i) => i % 2 ? i + 1 : i - 2);
    const [l, d] = ex.run({ pred: p, y: t });
    const want = p.reduce((acc, v, i) => acc + (v - t[i]!) ** 2, 0) / (2 * batch);
    assert.ok(Math.abs(l![0]! - want) < 1e-6, `batch ${batch}: ${l![0]} vs ${want}`);
    assert.deepEqual([...d!], p.map((v, i) => Math.fround((2 * (v - t[i]!)) / (2 * batch))));
  }
});

Deno.test("mseLoss refuses shapes that would broadcast, naming the node and shapes", () => {
  const g = new Graph();
  assert.throws(
    () => mseLoss(g.input("pred", [-1, 1]), g.input("y", [-1]), { name: "fit" }),
    /mse_loss "fit": a "pred" has shape \[N,1\] but b "y" has \[N\]; they must match/,
  );
  const x = g.input("x", [2]);
  assert.throws(
    () => mseLoss(x, x, { reduction: "max" as Reduction }),
    /mse_loss "mse_loss": reduction must be "mean", "sum" or "none", got "max"/,
  );
});
