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
import { concat, padAxis, slice, stack } from "../../ops/concat.ts";
import { sum } from "../../ops/sum.ts";
import { checkVjp, randTensor } from "../_grad_check.ts";

const RUNS = 50;

/** Row-major coordinates of flat index `i`. */
function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let a = shape.length - 1; a >= 0; a--) {
    idx[a] = i % shape[a]!;
    i = Math.floor(i / shape[a]!);
  }
  return idx;
}

/** Flat index of coordinates `idx`. */
function ravel(idx: readonly number[], shape: readonly number[]): number {
  let i = 0;
  for (let a = 0; a < shape.length; a++) i = i * shape[a]! + idx[a]!;
  return i;
}

/** A base shape, an axis of it, and the sizes of 1..4 parts along that axis (0 allowed). */
const parts = fc
  .array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 4 })
  .chain((base) =>
    fc.tuple(
      fc.constant(base),
      fc.integer({ min: -base.length, max: base.length - 1 }),
      fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 4 })
        .filter((s) => s.some((d) => d > 0)),
    )
  );

function partTensors(base: number[], axis: number, sizes: number[], seed: number) {
  const a = axis < 0 ? axis + base.length : axis;
  return sizes.map((d, k) => randTensor(base.map((b, i) => (i === a ? d : b)), seed + k));
}

Deno.test("concat forward places each input at its offset along the axis", () => {
  fc.assert(
    fc.property(parts, fc.integer(), ([base, axis, sizes], seed) => {
      const a = axis < 0 ? axis + base.length : axis;
      const xs = partTensors(base, axis, sizes, seed);
      const out = vjp((...vs) => concat(vs, { axis }), ...xs).out;
      assert.deepEqual(
        out.shape,
        base.map((b, i) => (i === a ? sizes.reduce((p, q) => p + q) : b)),
      );
      for (let i = 0; i < out.data.length; i++) {
        const idx = unravel(i, out.shape);
        let k = 0;
        while (idx[a]! >= sizes[k]!) idx[a] = idx[a]! - sizes[k++]!;
        assert.equal(out.data[i], xs[k]!.data[ravel(idx, xs[k]!.shape)]);
      }
    }),
    { numRuns: RUNS },
  );
});

Deno.test("concat vjp matches finite differences for any number of inputs", () => {
  fc.assert(
    fc.property(parts, fc.integer(), ([base, axis, sizes], seed) => {
      const xs = partTensors(base, axis, sizes, seed);
      const n = xs.reduce((t, x) => t + x.data.length, 0);
      checkVjp((...vs) => concat(vs, { axis }), xs, { seed, full: n <= 16 });
    }),
    { numRuns: RUNS },
  );
});

Deno.test("concat of one node repeated sums the cotangent slices", () => {
  // fan-out into the same concat: the engine adds the slices
  const x = randTensor([2, 3], 5);
  checkVjp((v) => concat([v, v, v], { axis: 1 }), [x], { full: true });
  const [dx] = vjp((v) => sum(concat([v, v], { axis: 0 })), x).backward([1]);
  assert.deepEqual([...dx!.data], [2, 2, 2, 2, 2, 2]);
});

/** A shape with one axis, a start and a size inside it. */
const window = fc
  .array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 })
  .chain((shape) =>
    fc.integer({ min: 0, max: shape.length - 1 }).chain((axis) =>
      fc.integer({ min: 0, max: shape[axis]! }).chain((start) =>
        fc.tuple(
          fc.constant(shape),
          fc.constant(axis),
          fc.constant(start),
          fc.integer({ min: 0, max: shape[axis]! - start }),
        )
      )
    )
  );

Deno.test("slice and padAxis: forward by coordinates, vjp by finite differences", () => {
  fc.assert(
    fc.property(window, fc.integer(), ([shape, axis, start, size], seed) => {
      const x = randTensor(shape, seed);
      const y = vjp((v) => slice(v, { axis, start, size }), x).out;
      for (let i = 0; i < y.data.length; i++) {
        const idx = unravel(i, y.shape);
        idx[axis] = idx[axis]! + start;
        assert.equal(y.data[i], x.data[ravel(idx, shape)]);
      }
      const after = shape[axis]! - start - size;
      const p = vjp((v) => padAxis(v, { axis, before: start, after }), x).out;
      for (let i = 0; i < p.data.length; i++) {
        const idx = unravel(i, p.shape);
        const k = idx[axis]! - start;
        idx[axis] = k;
        const inside = k >= 0 && k < shape[axis]!;
        assert.equal(p.data[i], inside ? x.data[ravel(idx, shape)] : 0);
      }
      const full = x.data.length <= 16;
      checkVjp((v) => slice(v, { axis, start, size }), [x], { seed, full });
      checkVjp((v) => padAxis(v, { axis, before: start, after }), [x], { seed, full });
    }),
    { numRuns: RUNS },
  );
});

Deno.test("stack forward puts input k at index k of the new axis; vjp matches differences", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 0, maxLength: 3 }),
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 0, max: 3 }),
      fc.integer(),
      (shape, count, axisPick, seed) => {
        const r = shape.length + 1;
        const axis = (axisPick % r) - (seed % 2 === 0 ? 0 : r); // both signs
        const a = axis < 0 ? axis + r : axis;
        const xs: Tensor<Float64Array>[] = Array.from(
          { length: count },
          (_, k) => randTensor(shape, seed + k),
        );
        const out = vjp((...vs) => stack(vs, { axis }), ...xs).out;
        assert.deepEqual(out.shape, [...shape.slice(0, a), count, ...shape.slice(a)]);
        for (let i = 0; i < out.data.length; i++) {
          const idx = unravel(i, out.shape);
          const [k] = idx.splice(a, 1);
          assert.equal(out.data[i], xs[k!]!.data[ravel(idx, shape)]);
        }
        const n = xs.length * xs[0]!.data.length;
        checkVjp((...vs) => stack(vs, { axis }), xs, { seed, full: n <= 16 });
      },
    ),
    { numRuns: RUNS },
  );
});

Deno.test("concat and stack keep the batch axis of batch-sized inputs", () => {
  const g = new Graph();
  const x = g.input("x", [-1, 2]);
  const feats = concat([x, g.input("z", [-1, 1])], { axis: 1, name: "feats" });
  const st = stack([x, x], { axis: -1 });
  assert.deepEqual(feats.shape, [-1, 3]);
  assert.deepEqual(st.shape, [-1, 2, 2]);
  const [dx] = grad(sum(feats), [x]);
  const ex = new Executor(makePlan(g, { batch: 2, outputs: [feats, st, dx!] }));
  const [f, s, d] = ex.run({ x: [1, 2, 3, 4], z: [9, 8] });
  assert.deepEqual([...f!], [1, 2, 9, 3, 4, 8]);
  assert.deepEqual([...s!], [1, 1, 2, 2, 3, 3, 4, 4]);
  assert.deepEqual([...d!], [1, 1, 1, 1]);
});

Deno.test("concat, stack, slice and padAxis errors name the op, the node and the shapes", () => {
  const g = new Graph();
  const x = g.input("x", [-1, 2]);
  assert.throws(
    () => concat([x, g.input("y", [-1, 3])], { axis: 0, name: "rows" }),
    /concat "rows": cannot concatenate along the batch axis \(xs \[N,2\], xs \[N,3\]\)/,
  );
  assert.throws(
    () => concat([x, g.input("w", [4, 3])], { axis: 1, name: "cols" }),
    /concat "cols": input 1 \[4,3\] differs from input 0 \[N,2\] at axis 0/,
  );
  assert.throws(
    () => concat([x, g.input("v", [4])], { axis: 1, name: "c3" }),
    /concat "c3": input 1 has rank 1 but input 0 has 2/,
  );
  assert.throws(() => concat([x], { axis: 2, name: "c4" }), /concat "c4": axis 2 is out of range/);
  assert.throws(() => concat([], { name: "c5" }), /concat "c5": no inputs to join/);
  assert.throws(
    () => stack([x, x], { axis: 0, name: "s1" }),
    /stack "s1": axis 0 would move the batch axis of \[N,2\]/,
  );
  assert.throws(
    () => stack([x, g.input("u", [-1, 3])], { axis: 1, name: "s2" }),
    /stack "s2": input 1 "u" has shape \[N,3\] but input 0 has \[N,2\]/,
  );
  assert.throws(
    () => slice(x, { axis: 1, start: 1, size: 2, name: "sl" }),
    /slice "sl": slice 1\.\.3 runs past axis 1 of size 2 \(x \[N,2\]\)/,
  );
  assert.throws(
    () => padAxis(x, { axis: 0, before: 1, after: 0, name: "pd" }),
    /pad_axis "pd": cannot pad along the batch axis/,
  );
});

Deno.test("concat, stack and their slices survive a JSON round trip", () => {
  const g = new Graph();
  const x = g.input("x", [-1, 2]);
  const y = concat([x, g.input("z", [-1, 3])], { axis: 1 });
  grad(sum(stack([y, y], { axis: 1 })), [x]);
  grad(sum(padAxis(x, { axis: 1, before: 1, after: 2 })), [x]);
  const back = Graph.fromJSON(JSON.parse(JSON.stringify(g.toJSON())));
  assert.deepEqual(back.toJSON(), g.toJSON());
  for (const op of ["concat", "slice", "pad_axis"]) assert.ok(back.nodes.some((r) => r.op === op));
});
