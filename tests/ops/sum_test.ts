// every op registers itself on import; grad finds fill, add, sum, reshape by name
import "../../ops/mod.ts";
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { Executor } from "../../graph/executor.ts";
import { Graph } from "../../graph/graph.ts";
import { makePlan } from "../../graph/plan.ts";
import { tensor } from "../../graph/tensor.ts";
import { vjp } from "../../graph/vjp.ts";
import { sum } from "../../ops/sum.ts";
import { checkVjp, randTensor } from "../_grad_check.ts";

const RUNS = 50;

/** A shape of rank 0..4 with a set of its axes (some negative), or `undefined` for all. */
const shapeAxes = fc
  .array(fc.integer({ min: 1, max: 4 }), { minLength: 0, maxLength: 4 })
  .chain((shape) =>
    fc.tuple(
      fc.constant(shape),
      fc.option(
        fc.subarray([...shape.keys()]).chain((axes) =>
          fc.tuple(...axes.map((a) => fc.constantFrom(a, a - shape.length)))
        ),
        { nil: undefined },
      ),
      fc.boolean(),
    )
  );

/** Sums `data` of `shape` over `axes` by visiting every element's coordinates. */
function directSum(
  data: Float64Array,
  shape: number[],
  axes: number[] | undefined,
  keepdims: boolean,
) {
  const r = shape.length;
  const red = new Set((axes ?? [...shape.keys()]).map((a) => (a < 0 ? a + r : a)));
  const kept = shape.map((d, i) => (red.has(i) ? 1 : d));
  const outShape = keepdims ? kept : shape.filter((_, i) => !red.has(i));
  const out = new Float64Array(kept.reduce((p, q) => p * q, 1));
  for (let i = 0; i < data.length; i++) {
    let rest = i, o = 0, stride = 1;
    for (let a = r - 1; a >= 0; a--) {
      const c = rest % shape[a]!;
      rest = Math.floor(rest / shape[a]!);
      if (!red.has(a)) o += c * stride;
      stride *= kept[a]!;
    }
    out[o] = out[o]! + data[i]!;
  }
  return { shape: outShape, data: out };
}

Deno.test("sum forward matches a direct sum over random shapes and axes", () => {
  fc.assert(
    fc.property(shapeAxes, fc.integer(), ([shape, axes, keepdims], seed) => {
      const x = randTensor(shape, seed, -2, 2);
      const out = vjp((v) => sum(v, { axes, keepdims }), x).out;
      const want = directSum(x.data, shape, axes, keepdims);
      assert.deepEqual(out.shape, want.shape);
      for (let i = 0; i < want.data.length; i++) {
        assert.ok(Math.abs(out.data[i]! - want.data[i]!) < 1e-12, `out[${i}]`);
      }
    }),
    { numRuns: RUNS },
  );
});

Deno.test("sum vjp matches finite differences over random shapes and axes", () => {
  fc.assert(
    fc.property(shapeAxes, fc.integer(), ([shape, axes, keepdims], seed) => {
      const x = randTensor(shape, seed);
      checkVjp((v) => sum(v, { axes, keepdims }), [x], { seed, full: x.data.length <= 24 });
    }),
    { numRuns: RUNS },
  );
});

Deno.test("sum over the batch axis adds the run-time batch", () => {
  const g = new Graph();
  const y = sum(g.input("x", [-1, 2]), { axes: [0] });
  assert.deepEqual(y.shape, [2]);
  const ex = new Executor(makePlan(g, { batch: 3, outputs: [y] }));
  assert.deepEqual([...ex.run({ x: [1, 2, 3, 4, 5, 6] })[0]!], [9, 12]);
  const { out, backward } = vjp((v) => sum(v, { axes: [1], keepdims: true }), tensor([[1, 2, 3]]));
  assert.deepEqual([out.shape, [...out.data]], [[1, 1], [6]]);
  assert.deepEqual([...backward([2])[0]!.data], [2, 2, 2]);
});

Deno.test("sum axis errors name the op, the node and the shape", () => {
  const g = new Graph();
  const x = g.input("x", [-1, 3]);
  assert.throws(
    () => sum(x, { axes: [2], name: "s" }),
    /sum "s": axis 2 is out of range \(x \[N,3\]\)/,
  );
  assert.throws(
    () => sum(x, { axes: [1, -1], name: "t" }),
    /sum "t": axes \[1,-1\] repeat an axis/,
  );
});

// the float32 tiers of the run-summing patterns (a bias gradient over (N, C, H, W) is one)
for (const tier of ["ts", "wasm"] as const) {
  Deno.test(`sum over runs in float32 (${tier}) is the float64 sum to float32 accuracy`, () => {
    const shapes = fc.tuple(...[3, 4, 6, 7].map((max) => fc.integer({ min: 1, max })));
    const patterns = fc.constantFrom([0, 2, 3], [2, 3], [1, 2, 3], [0, 1, 2, 3], [3], [0, 3]);
    fc.assert(
      fc.property(shapes, patterns, fc.integer(), (shape, axes, seed) => {
        const x64 = randTensor(shape, seed, -2, 2);
        const want = directSum(x64.data, shape, axes, false);
        const g = new Graph();
        const y = sum(g.input("x", shape), { axes });
        const ex = new Executor(makePlan(g, { outputs: [y] }), { tier });
        const got = ex.run({ x: Float32Array.from(x64.data) })[0]!;
        const n = x64.data.length / want.data.length;
        for (let i = 0; i < want.data.length; i++) {
          // n float32 roundings of the inputs and of the partial sums, each within 2⁻²⁴ of |x| ≤ 2
          assert.ok(
            Math.abs(got[i]! - want.data[i]!) <= n * 4 * 2 ** -23,
            `out[${i}]: ${got[i]} vs ${want.data[i]}`,
          );
        }
      }),
      { numRuns: RUNS },
    );
  });
}
