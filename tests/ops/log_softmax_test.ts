// every op registers itself on import; grad finds fill, add, sum, reshape by name
import "../../ops/mod.ts";
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { Graph } from "../../graph/graph.ts";
import { tensor } from "../../graph/tensor.ts";
import { vjp } from "../../graph/vjp.ts";
import { logSoftmax, logSoftmaxBackward } from "../../ops/log_softmax.ts";
import { softmax } from "../../ops/softmax.ts";
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

Deno.test("logSoftmax forward is x - log Σ exp(x) along the axis", () => {
  fc.assert(
    fc.property(shapeAxis, fc.integer(), ([shape, axis], seed) => {
      const x = randTensor(shape, seed, -3, 3);
      const y = vjp((v) => logSoftmax(v, { axis }), x).out.data;
      const p = vjp((v) => softmax(v, { axis }), x).out.data;
      for (let i = 0; i < y.length; i++) {
        let s = 0;
        for (const j of fiber(shape, axis, i)) s += Math.exp(x.data[j]!);
        assert.ok(Math.abs(y[i]! - (x.data[i]! - Math.log(s))) < 1e-13, `y[${i}]`);
        assert.ok(Math.abs(Math.exp(y[i]!) - p[i]!) < 1e-14, `exp(y[${i}]) is softmax`);
      }
    }),
    { numRuns: RUNS },
  );
});

Deno.test("logSoftmax vjp matches finite differences over random shapes and axes", () => {
  fc.assert(
    fc.property(shapeAxis, fc.integer(), ([shape, axis], seed) => {
      const x = randTensor(shape, seed, -2, 2);
      checkVjp((v) => logSoftmax(v, { axis }), [x], { seed, full: x.data.length <= 24 });
    }),
    { numRuns: RUNS },
  );
});

Deno.test("logSoftmax vjp is dy - softmax(x) * Σ dy", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 5 }),
      fc.integer({ min: 1, max: 6 }),
      fc.integer(),
      (n, c, seed) => {
        const x = randTensor([n, c], seed, -3, 3);
        const dy = randTensor([n, c], seed + 1);
        const [dx] = vjp((v) => logSoftmax(v), x).backward(dy);
        const p = vjp((v) => softmax(v), x).out.data;
        for (let r = 0; r < n; r++) {
          let s = 0;
          for (let k = 0; k < c; k++) s += dy.data[r * c + k]!;
          for (let k = 0; k < c; k++) {
            const i = r * c + k;
            assert.ok(Math.abs(dx!.data[i]! - (dy.data[i]! - p[i]! * s)) < 1e-13);
          }
        }
      },
    ),
    { numRuns: 30 },
  );
});

Deno.test("logSoftmax of inputs near ±1000 stays finite, in float32 and float64", () => {
  const vals = [1000, 1000, -1000, 0, 1000, 999];
  const f32 = vjp((v) => logSoftmax(v), tensor(vals, [2, 3]));
  const f64 = vjp((v) => logSoftmax(v), { shape: [2, 3], data: Float64Array.from(vals) });
  for (const { out, backward } of [f32, f64]) {
    const y = out.data;
    assert.ok(y.every((v: number) => Number.isFinite(v)), `finite: ${[...y]}`);
    assert.ok(Math.abs(y[0]! + Math.LN2) < 1e-6 && Math.abs(y[1]! + Math.LN2) < 1e-6);
    assert.ok(Math.abs(y[2]! + 2000 + Math.LN2) < 1e-3);
    const lse = 1000 + Math.log(1 + Math.exp(-1) + Math.exp(-1000));
    assert.ok(Math.abs(y[5]! - (999 - lse)) < 1e-4);
    assert.ok(backward([1, 0, 0, 0, 0, 1])[0]!.data.every((v: number) => Number.isFinite(v)));
  }
});

Deno.test("logSoftmax keeps a batch axis and errors name the op and node", () => {
  const g = new Graph();
  const x = g.input("logits", [-1, 10]);
  assert.deepEqual(logSoftmax(x, { axis: 0 }).shape, [-1, 10]);
  assert.throws(
    () => logSoftmax(x, { axis: -3, name: "logp" }),
    /log_softmax "logp": axis -3 is out of range \(x \[N,10\]\)/,
  );
  assert.throws(
    () => logSoftmaxBackward(x, g.input("dy", [1, 10]), { name: "lb" }),
    /log_softmax_backward "lb": y and dy must have the same shape/,
  );
});
