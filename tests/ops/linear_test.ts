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
import { linear } from "../../ops/linear.ts";
import { mean } from "../../ops/mean.ts";
import { checkVjp, randTensor } from "../_grad_check.ts";

const RUNS = 40;
const dim = fc.integer({ min: 1, max: 6 });

Deno.test("linear forward is x·Wᵀ + b, with and without bias", () => {
  fc.assert(
    fc.property(dim, dim, dim, fc.boolean(), fc.integer(), (n, inF, outF, withBias, seed) => {
      const x = randTensor([n, inF], seed);
      const w = randTensor([outF, inF], seed + 1);
      const b = randTensor([outF], seed + 2);
      const out = withBias
        ? vjp((xv, wv, bv) => linear(xv, wv, bv), x, w, b).out
        : vjp((xv, wv) => linear(xv, wv), x, w).out;
      assert.deepEqual(out.shape, [n, outF]);
      for (let i = 0; i < n; i++) {
        for (let o = 0; o < outF; o++) {
          let s = withBias ? b.data[o]! : 0;
          for (let k = 0; k < inF; k++) s += x.data[i * inF + k]! * w.data[o * inF + k]!;
          assert.ok(Math.abs(out.data[i * outF + o]! - s) < 1e-12, `y[${i},${o}]`);
        }
      }
    }),
    { numRuns: RUNS },
  );
});

Deno.test("linear vjp matches finite differences, with and without bias", () => {
  fc.assert(
    fc.property(dim, dim, dim, fc.boolean(), fc.integer(), (n, inF, outF, withBias, seed) => {
      const x = randTensor([n, inF], seed);
      const w = randTensor([outF, inF], seed + 1);
      const full = (n * inF + outF * inF + outF) * n * outF <= 200;
      if (withBias) {
        const b = randTensor([outF], seed + 2);
        checkVjp((xv, wv, bv) => linear(xv, wv, bv), [x, w, b], { seed, full });
      } else {
        checkVjp((xv, wv) => linear(xv, wv), [x, w], { seed, full });
      }
    }),
    { numRuns: RUNS },
  );
});

Deno.test("linear on a batch input: gradients of the parameters at two batch sizes", () => {
  const g = new Graph();
  const x = g.input("x", [-1, 2]);
  const w = g.param("fc.weight", [3, 2], { kind: "constant", value: 0 });
  const b = g.param("fc.bias", [3], { kind: "constant", value: 0 });
  const loss = mean(linear(x, w, b));
  const [dw, db] = grad(loss, [w, b]);
  assert.deepEqual([dw!.shape, db!.shape], [[3, 2], [3]]);
  for (const batch of [1, 4]) {
    const ex = new Executor(makePlan(g, { batch, outputs: [loss, dw!, db!] }));
    const xs = Array.from({ length: 2 * batch }, (_, i) => i + 1);
    const [, dwv, dbv] = ex.run({ x: xs });
    // d mean / dW[o, k] = Σ_n x[n, k] / (N * 3); d mean / db[o] = 1 / 3
    const col = [0, 1].map((k) => xs.filter((_, i) => i % 2 === k).reduce((p, q) => p + q));
    const want = [0, 1, 2].flatMap(() => col.map((c) => c / (batch * 3)));
    want.forEach((v, i) => assert.ok(Math.abs(dwv![i]! - v) < 1e-6, `dW[${i}] ${dwv![i]} vs ${v}`));
    for (const v of dbv!) assert.ok(Math.abs(v - 1 / 3) < 1e-7);
  }
});

Deno.test("linear shape errors name the op, the node and the shapes", () => {
  const g = new Graph();
  const x = g.input("x", [-1, 4]);
  assert.throws(
    () => linear(x, g.input("w", [3, 5]), null, { name: "fc1" }),
    /linear "fc1": x has 4 features but w expects 5 \(x \[N,4\], w \[3,5\]\)/,
  );
  assert.throws(
    () => linear(x, g.input("w2", [3, 4]), g.input("b", [4]), { name: "fc2" }),
    /linear "fc2": b must be \[3\] \(x \[N,4\], w \[3,4\], b \[4\]\)/,
  );
  assert.throws(
    () => linear(g.input("img", [-1, 2, 2]), g.input("w3", [3, 4]), null, { name: "fc3" }),
    /linear "fc3": x must be 2-D \[batch, in\]/,
  );
});
