// every op registers itself on import; grad finds fill, add, sum, reshape by name
import "../../ops/mod.ts";
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { Graph } from "../../graph/graph.ts";
import { tensor } from "../../graph/tensor.ts";
import { vjp } from "../../graph/vjp.ts";
import { mul } from "../../ops/mul.ts";
import { softmax, softmaxBackward } from "../../ops/softmax.ts";
import { sum } from "../../ops/sum.ts";
import { checkVjp, randTensor } from "../_grad_check.ts";

const RUNS = 50;

/** A shape of rank 1..4 and an axis of it, possibly negative. */
const shapeAxis = fc
  .array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 })
  .chain((shape) =>
    fc.tuple(fc.constant(shape), fc.integer({ min: -shape.length, max: shape.length - 1 }))
  );

/** Flat indices of the elements sharing every coordinate of `i` except the one on `axis`. */
function fiber(shape: number[], axis: number, i: number): number[] {
  const a = axis < 0 ? axis + shape.length : axis;
  let inner = 1;
  for (const d of shape.slice(a + 1)) inner *= d;
  const k = Math.floor(i / inner) % shape[a]!;
  const first = i - k * inner;
  return Array.from({ length: shape[a]! }, (_, j) => first + j * inner);
}

Deno.test("softmax forward is exp(x) / Σ exp(x) along the axis and sums to 1", () => {
  fc.assert(
    fc.property(shapeAxis, fc.integer(), ([shape, axis], seed) => {
      const x = randTensor(shape, seed, -3, 3);
      const y = vjp((v) => softmax(v, { axis }), x).out.data;
      for (let i = 0; i < y.length; i++) {
        const f = fiber(shape, axis, i);
        let s = 0;
        for (const j of f) s += Math.exp(x.data[j]!);
        assert.ok(Math.abs(y[i]! - Math.exp(x.data[i]!) / s) < 1e-14, `y[${i}]`);
        let total = 0;
        for (const j of f) total += y[j]!;
        assert.ok(Math.abs(total - 1) < 1e-14, `fiber of ${i} sums to ${total}`);
      }
    }),
    { numRuns: RUNS },
  );
});

Deno.test("softmax vjp matches finite differences over random shapes and axes", () => {
  fc.assert(
    fc.property(shapeAxis, fc.integer(), ([shape, axis], seed) => {
      const x = randTensor(shape, seed, -2, 2);
      checkVjp((v) => softmax(v, { axis }), [x], { seed, full: x.data.length <= 24 });
    }),
    { numRuns: RUNS },
  );
});

Deno.test("softmax_backward vjp (second derivative) matches finite differences", () => {
  fc.assert(
    fc.property(shapeAxis, fc.integer(), ([shape, axis], seed) => {
      // the rule is a polynomial in y and dy, so any y works, not only softmax outputs
      const y = randTensor(shape, seed, 0, 1);
      const dy = randTensor(shape, seed + 1);
      checkVjp((a, b) => softmaxBackward(a, b, { axis }), [y, dy], {
        seed,
        full: y.data.length <= 12,
      });
    }),
    { numRuns: 30 },
  );
});

Deno.test("softmax through a weighted sum has the gradient y * (w - Σ w*y)", () => {
  const x = tensor([[0.5, -1, 2], [0, 0, 0]]);
  const w = tensor([[1, 2, 3], [4, 5, 6]]);
  const { out, backward } = vjp((v, k) => sum(mul(softmax(v), k)), x, w);
  const [dx] = backward([1]);
  const y = vjp((v) => softmax(v), x).out.data;
  for (let r = 0; r < 2; r++) {
    let s = 0;
    for (let c = 0; c < 3; c++) s += w.data[r * 3 + c]! * y[r * 3 + c]!;
    for (let c = 0; c < 3; c++) {
      const i = r * 3 + c;
      assert.ok(Math.abs(dx!.data[i]! - y[i]! * (w.data[i]! - s)) < 1e-6);
    }
  }
  assert.ok(Math.abs(out.data[0]! - (y[0]! + 2 * y[1]! + 3 * y[2]! + 5)) < 1e-5);
});

Deno.test("softmax of large inputs stays finite in float32", () => {
  const y = vjp((v) => softmax(v), tensor([1000, 999, -1000, 1e30, 1e30, 0], [2, 3])).out.data;
  const e = Math.exp(-1);
  assert.ok(Math.abs(y[0]! - 1 / (1 + e)) < 1e-6);
  assert.ok(Math.abs(y[1]! - e / (1 + e)) < 1e-6);
  assert.equal(y[2], 0);
  assert.deepEqual([...y.slice(3)], [0.5, 0.5, 0]);
});

Deno.test("softmax keeps a batch axis and errors name the op and node", () => {
  const g = new Graph();
  const x = g.input("logits", [-1, 10]);
  assert.deepEqual(softmax(x).shape, [-1, 10]);
  assert.throws(
    () => softmax(x, { axis: 2, name: "probs" }),
    /softmax "probs": axis 2 is out of range \(x \[N,10\]\)/,
  );
  assert.throws(
    () => softmaxBackward(x, g.input("dy", [-1, 9]), { name: "sb" }),
    /softmax_backward "sb": y and dy must have the same shape \(y \[N,10\], dy \[N,9\]\)/,
  );
});
