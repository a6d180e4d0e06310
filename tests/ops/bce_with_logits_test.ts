import "../../ops/mod.ts";
import assert from "node:assert/strict";
import fc from "npm:fast-check@3.23.2";
import { Graph } from "../../graph/graph.ts";
import { vjp } from "../../graph/vjp.ts";
import { tensor } from "../../graph/tensor.ts";
import { bceWithLogits } from "../../ops/bce_with_logits.ts";
import type { Reduction } from "../../ops/nll_loss.ts";
import { checkVjp, randTensor } from "../_grad_check.ts";
import { smallShape } from "./_unary_check.ts";

const reduction = fc.constantFrom<Reduction>("mean", "sum", "none");

Deno.test("bce_with_logits vjp in logits and targets matches finite differences", () => {
  fc.assert(
    fc.property(smallShape, reduction, fc.integer(), (s, r, seed) => {
      const x = randTensor(s, seed, -4, 4), t = randTensor(s, seed + 1, 0, 1);
      checkVjp((a, b) => bceWithLogits(a, b, { reduction: r }), [x, t], {
        seed,
        full: x.data.length <= 8,
      });
    }),
    { numRuns: 60 },
  );
});

Deno.test("bce_with_logits equals -(t log σ(x) + (1-t) log(1-σ(x))) directly", () => {
  fc.assert(
    fc.property(smallShape, reduction, fc.integer(), (s, r, seed) => {
      const x = randTensor(s, seed, -6, 6), t = randTensor(s, seed + 1, 0, 1);
      const per = x.data.map((v, i) => {
        const p = 1 / (1 + Math.exp(-v));
        return -(t.data[i]! * Math.log(p) + (1 - t.data[i]!) * Math.log(1 - p));
      });
      const total = per.reduce((a, b) => a + b, 0);
      const want = r === "none" ? [...per] : [r === "sum" ? total : total / per.length];
      const got = vjp((a, b) => bceWithLogits(a, b, { reduction: r }), x, t).out.data;
      want.forEach((w, i) => assert.ok(Math.abs(got[i]! - w) < 1e-12, `${got[i]} vs ${w}`));
    }),
    { numRuns: 60 },
  );
});

Deno.test("bce_with_logits is finite for logits far beyond exp's range", () => {
  const { out, backward } = vjp(
    (x, t) => bceWithLogits(x, t, { reduction: "none" }),
    tensor([-1000, 1000, -1000]),
    tensor([0, 1, 1]),
  );
  assert.deepEqual([...out.data], [0, 0, 1000]);
  assert.deepEqual([...backward([1, 1, 1])[0]!.data], [0, 0, -1]);
});

Deno.test("bce_with_logits checks that target has the logits' shape", () => {
  const g = new Graph();
  assert.throws(
    () => bceWithLogits(g.input("x", [-1, 1]), g.input("t", [-1]), { name: "bce" }),
    /bce_with_logits "bce": target must have the shape of logits \[N,1\], got \[N\]/,
  );
});
