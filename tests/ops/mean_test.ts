// every op registers itself on import; grad finds fill, add, sum, reshape by name
import "../../ops/mod.ts";
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { Executor } from "../../graph/executor.ts";
import { Graph } from "../../graph/graph.ts";
import { grad } from "../../graph/grad.ts";
import { makePlan } from "../../graph/plan.ts";
import { tensor } from "../../graph/tensor.ts";
import { vjp } from "../../graph/vjp.ts";
import { mean } from "../../ops/mean.ts";
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

/** Averages `data` of `shape` over `axes` by visiting every element's coordinates. */
function directMean(
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
  const count = data.length / out.length;
  return { shape: outShape, data: out.map((v) => v / count) };
}

Deno.test("mean forward matches a direct average over random shapes and axes", () => {
  fc.assert(
    fc.property(shapeAxes, fc.integer(), ([shape, axes, keepdims], seed) => {
      const x = randTensor(shape, seed, -2, 2);
      const out = vjp((v) => mean(v, { axes, keepdims }), x).out;
      const want = directMean(x.data, shape, axes, keepdims);
      assert.deepEqual(out.shape, want.shape);
      for (let i = 0; i < want.data.length; i++) {
        assert.ok(Math.abs(out.data[i]! - want.data[i]!) < 1e-13, `out[${i}]`);
      }
    }),
    { numRuns: RUNS },
  );
});

Deno.test("mean vjp matches finite differences over random shapes and axes", () => {
  fc.assert(
    fc.property(shapeAxes, fc.integer(), ([shape, axes, keepdims], seed) => {
      const x = randTensor(shape, seed);
      checkVjp((v) => mean(v, { axes, keepdims }), [x], { seed, full: x.data.length <= 24 });
    }),
    { numRuns: RUNS },
  );
});

Deno.test("mean over the batch axis divides by the run-time batch, forward and backward", () => {
  const g = new Graph();
  const x = g.input("x", [-1, 2]);
  const y = mean(x);
  const ct = g.input("ct", []);
  const [dx] = grad(y, [x], { cotangent: ct });
  assert.deepEqual(y.shape, []);
  for (const batch of [1, 4]) {
    const ex = new Executor(makePlan(g, { batch, outputs: [y, dx!] }));
    const xs = Array.from({ length: 2 * batch }, (_, i) => i + 1);
    const [m, d] = ex.run({ x: xs, ct: [3] });
    assert.equal(m![0], (2 * batch + 1) / 2);
    assert.deepEqual([...d!], xs.map(() => Math.fround(3 / (2 * batch))));
  }
  const { out } = vjp((v) => mean(v, { axes: [0], keepdims: true }), tensor([[1, 2], [3, 6]]));
  assert.deepEqual([out.shape, [...out.data]], [[1, 2], [2, 4]]);
});

Deno.test("mean axis errors name the op, the node and the shape", () => {
  const g = new Graph();
  const x = g.input("x", [-1, 3]);
  assert.throws(
    () => mean(x, { axes: [-3], name: "m" }),
    /mean "m": axis -3 is out of range \(x \[N,3\]\)/,
  );
});
