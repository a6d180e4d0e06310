// every op registers itself on import; grad finds fill, add, sum, reshape by name
import "../../ops/mod.ts";
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { Graph } from "../../graph/graph.ts";
import type { Tensor } from "../../graph/tensor.ts";
import { vjp } from "../../graph/vjp.ts";
import { maxPool2d, maxPool2dBackward, maxPool2dGather } from "../../ops/max_pool2d.ts";
import { checkVjp, randTensor, rng } from "../_grad_check.ts";

const RUNS = 50;

/** N, C, H, W, size, stride with the window fitting the input. */
const poolCase = fc.record({
  n: fc.integer({ min: 1, max: 2 }),
  c: fc.integer({ min: 1, max: 3 }),
  size: fc.constantFrom(2, 3),
  stride: fc.integer({ min: 1, max: 3 }),
  dh: fc.integer({ min: 0, max: 4 }),
  dw: fc.integer({ min: 0, max: 4 }),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
}).map((r) => ({ ...r, h: r.size + r.dh, w: r.size + r.dw }));

/** Distinct values in [-1, 1): a random permutation of an even grid, so no window has a tie. */
function distinct(shape: number[], seed: number): Tensor<Float64Array> {
  const n = shape.reduce((a, b) => a * b, 1);
  const r = rng(seed);
  const perm = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  }
  return { shape, data: Float64Array.from(perm, (k) => (2 * k) / n - 1) };
}

/** The lecture's definition written directly: y = window max, dx = dy at the first argmax. */
function direct(
  x: Float64Array,
  dy: Float64Array,
  [n, c, h, w]: number[],
  size: number,
  stride: number,
) {
  const oh = Math.floor((h! - size) / stride) + 1;
  const ow = Math.floor((w! - size) / stride) + 1;
  const y = new Float64Array(n! * c! * oh * ow);
  const dx = new Float64Array(x.length);
  for (let p = 0; p < n! * c!; p++) {
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++) {
        let best = -1;
        for (let a = 0; a < size; a++) {
          for (let b = 0; b < size; b++) {
            const k = p * h! * w! + (i * stride + a) * w! + j * stride + b;
            if (best < 0 || x[k]! > x[best]!) best = k;
          }
        }
        const o = (p * oh + i) * ow + j;
        y[o] = x[best]!;
        dx[best] = dx[best]! + dy[o]!;
      }
    }
  }
  return { y, dx, shape: [n!, c!, oh, ow] };
}

Deno.test("max_pool2d vjp matches finite differences without ties", () => {
  fc.assert(
    fc.property(poolCase, ({ n, c, h, w, size, stride, seed }) => {
      const x = distinct([n, c, h, w], seed);
      // the grid spacing 2/numel is far above the finite-difference step, so
      // perturbations never change a window's argmax
      checkVjp((v) => maxPool2d(v, { size, stride }), [x], {
        seed,
        full: x.data.length <= 32,
      });
    }),
    { numRuns: RUNS },
  );
});

Deno.test("max_pool2d forward and backward match the direct formula, ties to the first max", () => {
  fc.assert(
    fc.property(poolCase, ({ n, c, h, w, size, stride, seed }) => {
      // few distinct values: many windows hold ties
      const x = randTensor([n, c, h, w], seed);
      x.data.forEach((v, i) => (x.data[i] = Math.floor(v * 2)));
      const { out, backward } = vjp((v) => maxPool2d(v, { size, stride }), x);
      const dy = randTensor(out.shape, seed + 1).data;
      const want = direct(x.data, dy, x.shape, size, stride);
      assert.deepEqual(out.shape, want.shape);
      assert.deepEqual([...out.data], [...want.y]);
      assert.deepEqual([...backward(dy)[0]!.data], [...want.dx]);
    }),
    { numRuns: RUNS },
  );
});

Deno.test("max_pool2d forward on a hand example (2x2 and 3x3 stride 1)", () => {
  // one 4x4 plane
  // deno-fmt-ignore
  const plane = [
    1, 5, 2, 0,
    3, 4, 8, 1,
    9, 0, 6, 6,
    2, 7, 3, 4,
  ];
  const x = { shape: [1, 1, 4, 4], data: Float64Array.from(plane) };
  assert.deepEqual([...vjp((v) => maxPool2d(v), x).out.data], [5, 8, 9, 6]);
  const r3 = vjp((v) => maxPool2d(v, { size: 3, stride: 1 }), x);
  assert.deepEqual(r3.out.shape, [1, 1, 2, 2]);
  assert.deepEqual([...r3.out.data], [9, 8, 9, 8]);
  // overlapping windows: the 8 is the max of two windows and the 9 of two,
  // so each collects two cotangents
  // deno-fmt-ignore
  const want = [
    0, 0, 0, 0,
    0, 0, 1010, 0,
    101, 0, 0, 0,
    0, 0, 0, 0,
  ];
  assert.deepEqual([...r3.backward([1, 10, 100, 1000])[0]!.data], want);
  // a tie (6, 6) sends the gradient to the first one, like PyTorch
  const r2 = vjp((v) => maxPool2d(v, { size: 2, stride: 2 }), {
    shape: [1, 1, 2, 2],
    data: Float64Array.from([6, 6, 6, 6]),
  });
  assert.deepEqual([...r2.backward([1])[0]!.data], [1, 0, 0, 0]);
});

Deno.test("max_pool2d_backward vjp in dy (the gather) matches finite differences", () => {
  fc.assert(
    fc.property(poolCase, ({ n, c, h, w, size, stride, seed }) => {
      const x = distinct([n, c, h, w], seed);
      const oh = Math.floor((h - size) / stride) + 1, ow = Math.floor((w - size) / stride) + 1;
      const dy = randTensor([n, c, oh, ow], seed + 3);
      checkVjp((a, b) => maxPool2dBackward(a, b, { size, stride }), [x, dy], {
        seed,
        constant: [0],
      });
      checkVjp((a, b) => maxPool2dGather(a, b, { size, stride }), [x, randTensor(x.shape, seed)], {
        seed,
        constant: [0],
      });
    }),
    { numRuns: 30 },
  );
});

Deno.test("max_pool2d float32 matches float64", () => {
  fc.assert(
    fc.property(poolCase, ({ n, c, h, w, size, stride, seed }) => {
      const x64 = distinct([n, c, h, w], seed);
      const x32 = { shape: x64.shape, data: Float32Array.from(x64.data) };
      const f = (v: Parameters<typeof maxPool2d>[0]) => maxPool2d(v, { size, stride });
      const a = vjp(f, x64), b = vjp(f, x32);
      assert.deepEqual([...b.out.data], [...Float32Array.from(a.out.data)]);
      const dy = randTensor(a.out.shape, seed).data;
      const da = a.backward(dy)[0]!.data, db = b.backward(Float32Array.from(dy))[0]!.data;
      // overlapping windows add up to size² float32 roundings
      db.forEach((v, i) => assert.ok(Math.abs(v - da[i]!) <= 1e-6, `dx[${i}]: ${v} vs ${da[i]}`));
    }),
    { numRuns: 30 },
  );
});

Deno.test("max_pool2d errors name the node and the shapes", () => {
  const g = new Graph();
  const x = g.input("x", [-1, 3, 2, 5]);
  assert.throws(
    () => maxPool2d(x, { size: 3, name: "pool1" }),
    { message: 'max_pool2d "pool1": the 3x3 window does not fit in the 2x5 input (x [N,3,2,5])' },
  );
  assert.throws(
    () => maxPool2d(g.input("flat", [-1, 10]), { name: "pool2" }),
    { message: 'max_pool2d "pool2": x must be 4-D [N,C,H,W], got [N,10] (x [N,10])' },
  );
  assert.deepEqual(maxPool2d(g.input("img", [-1, 32, 26, 26])).shape, [-1, 32, 13, 13]);
  assert.deepEqual(maxPool2d(g.input("odd", [-1, 1, 7, 9]), { size: 3, stride: 2 }).shape, [
    -1,
    1,
    3,
    4,
  ]);
});

Deno.test("max_pool2d passes NaN through, as PyTorch does, in the 2x2 and general paths", () => {
  for (const [size, stride] of [[2, 2], [2, 1], [3, 1]]) {
    for (let at = 0; at < 9; at++) {
      const data = Float32Array.from({ length: 9 }, (_, i) => i);
      data[at] = NaN;
      const { out } = vjp((x) => maxPool2d(x, { size, stride }), { shape: [1, 1, 3, 3], data });
      // every window containing the NaN is NaN
      const oh = Math.floor((3 - size) / stride) + 1;
      for (let r = 0; r < oh; r++) {
        for (let c = 0; c < oh; c++) {
          const r0 = r * stride, c0 = c * stride;
          const ar = Math.floor(at / 3), ac = at % 3;
          const inside = ar >= r0 && ar < r0 + size && ac >= c0 && ac < c0 + size;
          assert.equal(
            Number.isNaN(out.data[r * oh + c]!),
            inside,
            `size ${size} stride ${stride} NaN at ${at}`,
          );
        }
      }
    }
  }
});

/** Cases with padding from 0 to size/2, the window fitting the padded input. */
const padCase = fc.record({
  n: fc.integer({ min: 1, max: 2 }),
  c: fc.integer({ min: 1, max: 2 }),
  size: fc.constantFrom(2, 3, 4),
  stride: fc.integer({ min: 1, max: 3 }),
  h: fc.integer({ min: 1, max: 6 }),
  w: fc.integer({ min: 1, max: 6 }),
  padFrac: fc.double({ min: 0, max: 1, noNaN: true }),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
}).map((r) => ({ ...r, padding: Math.floor(r.padFrac * (Math.floor(r.size / 2) + 0.999)) }))
  .filter((r) => r.h + 2 * r.padding >= r.size && r.w + 2 * r.padding >= r.size);

/** The input padded with -Infinity on every side, pooled without padding, and dx cropped. */
function directPadded(
  x: Float64Array,
  dy: Float64Array,
  [n, c, h, w]: number[],
  size: number,
  stride: number,
  pad: number,
) {
  const hp = h! + 2 * pad, wp = w! + 2 * pad;
  const xp = new Float64Array(n! * c! * hp * wp).fill(-Infinity);
  for (let p = 0; p < n! * c!; p++) {
    for (let i = 0; i < h!; i++) {
      for (let j = 0; j < w!; j++) {
        xp[(p * hp + i + pad) * wp + j + pad] = x[(p * h! + i) * w! + j]!;
      }
    }
  }
  const r = direct(xp, dy, [n!, c!, hp, wp], size, stride);
  const dx = new Float64Array(x.length);
  for (let p = 0; p < n! * c!; p++) {
    for (let i = 0; i < h!; i++) {
      for (let j = 0; j < w!; j++) {
        dx[(p * h! + i) * w! + j] = r.dx[(p * hp + i + pad) * wp + j + pad]!;
      }
    }
  }
  return { y: r.y, dx, shape: r.shape };
}

Deno.test("max_pool2d with padding matches pooling the -inf-padded input; padded cells never win", () => {
  fc.assert(
    fc.property(padCase, ({ n, c, h, w, size, stride, padding, seed }) => {
      // all negative and with ties: a zero-padded kernel would pick the padding
      const x = randTensor([n, c, h, w], seed, -3, -0.01);
      x.data.forEach((v, i) => (x.data[i] = Math.floor(v * 2)));
      const { out, backward } = vjp((v) => maxPool2d(v, { size, stride, padding }), x);
      const dy = randTensor(out.shape, seed + 1).data;
      const want = directPadded(x.data, dy, x.shape, size, stride, padding);
      assert.deepEqual(out.shape, want.shape);
      assert.deepEqual([...out.data], [...want.y]);
      assert.deepEqual([...backward(dy)[0]!.data], [...want.dx]);
    }),
    { numRuns: RUNS },
  );
});

Deno.test("max_pool2d with padding: vjp and the gather's vjp match finite differences", () => {
  fc.assert(
    fc.property(padCase, ({ n, c, h, w, size, stride, padding, seed }) => {
      const x = distinct([n, c, h, w], seed);
      const opts = { size, stride, padding };
      checkVjp((v) => maxPool2d(v, opts), [x], { seed, full: x.data.length <= 24 });
      checkVjp((a, b) => maxPool2dGather(a, b, opts), [x, randTensor(x.shape, seed)], {
        seed,
        constant: [0],
      });
    }),
    { numRuns: RUNS },
  );
});

Deno.test("max_pool2d 2x2 with padding 1 in float32 (fast tiers) equals float64 (reference)", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 9 }),
      fc.integer({ min: 1, max: 12 }),
      fc.integer(),
      (h, w, seed) => {
        const x64 = distinct([2, 2, h, w], seed);
        const x32 = { shape: x64.shape, data: Float32Array.from(x64.data) };
        const f = (v: Parameters<typeof maxPool2d>[0]) => maxPool2d(v, { padding: 1 });
        const a = vjp(f, x64), b = vjp(f, x32);
        assert.deepEqual([...b.out.data], [...Float32Array.from(a.out.data)]);
        const dy = randTensor(a.out.shape, seed).data;
        assert.deepEqual(
          [...b.backward(Float32Array.from(dy))[0]!.data],
          [...Float32Array.from(a.backward(dy)[0]!.data)],
        );
      },
    ),
    { numRuns: 30 },
  );
});

Deno.test("max_pool2d rejects padding above half the window, naming the node", () => {
  const g = new Graph();
  assert.throws(
    () => maxPool2d(g.input("x", [-1, 1, 8, 8]), { size: 3, padding: 2, name: "p" }),
    /max_pool2d "p": padding must be a whole number from 0 to half the window size 3, got 2/,
  );
  // padding 0 leaves the attributes as before, so older graphs hash the same
  assert.deepEqual(maxPool2d(g.input("y", [-1, 1, 8, 8]), { padding: 0 }).record.attrs, {
    size: 2,
    stride: 2,
  });
});
