import "../../ops/mod.ts";
import assert from "node:assert/strict";
import fc from "npm:fast-check@3.23.2";
import { Graph } from "../../graph/graph.ts";
import { vjp } from "../../graph/vjp.ts";
import { layerNorm } from "../../ops/layer_norm.ts";
import { checkVjp, randTensor } from "../_grad_check.ts";

/** A shape of rank 1..3 and how many trailing axes are normalised. */
const lnCase = fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 3 }).chain((s) =>
  fc.record({
    s: fc.constant(s),
    k: fc.integer({ min: 1, max: s.length }),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  })
).filter(({ s, k }) => s.slice(-k).reduce((a, b) => a * b, 1) >= 2);

function direct(
  x: Float64Array,
  s: number[],
  k: number,
  w: Float64Array,
  b: Float64Array,
  eps: number,
) {
  const inner = s.slice(-k).reduce((a, d) => a * d, 1);
  const y = new Float64Array(x.length);
  for (let o = 0; o < x.length; o += inner) {
    const row = x.subarray(o, o + inner);
    const mu = row.reduce((a, v) => a + v, 0) / inner;
    const v = row.reduce((a, q) => a + (q - mu) ** 2, 0) / inner;
    for (let i = 0; i < inner; i++) {
      y[o + i] = ((row[i]! - mu) / Math.sqrt(v + eps)) * w[i]! + b[i]!;
    }
  }
  return y;
}

Deno.test("layerNorm vjp in x, weight and bias matches finite differences", () => {
  fc.assert(
    fc.property(lnCase, ({ s, k, seed }) => {
      const x = randTensor(s, seed, -2, 2);
      const w = randTensor(s.slice(-k), seed + 1, 0.5, 2), b = randTensor(s.slice(-k), seed + 2);
      checkVjp((v, wn, bn) => layerNorm(v, wn, bn, { eps: 0.1 }), [x, w, b], {
        seed,
        rtol: 1e-5,
        full: x.data.length <= 8,
      });
    }),
    { numRuns: 50 },
  );
});

Deno.test("layerNorm forward is the direct per-sample normalisation over trailing axes", () => {
  fc.assert(
    fc.property(lnCase, ({ s, k, seed }) => {
      const x = randTensor(s, seed, -3, 3);
      const w = randTensor(s.slice(-k), seed + 1), b = randTensor(s.slice(-k), seed + 2);
      const axes = Array.from({ length: k }, (_, i) => i - k);
      const got = vjp((v, wn, bn) => layerNorm(v, wn, bn, { axes }), x, w, b).out.data;
      const want = direct(x.data, s, k, w.data, b.data, 1e-5);
      got.forEach((v, i) => assert.ok(Math.abs(v - want[i]!) < 1e-9, `${v} vs ${want[i]}`));
    }),
    { numRuns: 50 },
  );
});

Deno.test("layerNorm errors: leading axes, the batch axis, and a weight of the wrong shape", () => {
  const g = new Graph();
  const x = g.input("x", [-1, 4, 6]);
  assert.throws(
    () => layerNorm(x, null, null, { axes: [1], name: "ln" }),
    /layerNorm "ln": axes \[1\] must be distinct trailing axes/,
  );
  assert.throws(
    () => layerNorm(g.input("v", [-1]), null, null),
    /the batch axis cannot be normalised/,
  );
  assert.throws(
    () => layerNorm(x, g.input("w", [4]), null),
    /weight has shape \[4\] but the normalised axes have \[6\]/,
  );
  assert.deepEqual(layerNorm(x, g.input("w2", [4, 6]), g.input("b2", [4, 6])).shape, [-1, 4, 6]);
});
