import "../../ops/mod.ts";
import assert from "node:assert/strict";
import fc from "npm:fast-check@3.23.2";
import { Graph } from "../../graph/graph.ts";
import { vjp } from "../../graph/vjp.ts";
import { avgPool2d, avgPool2dBackward } from "../../ops/avg_pool2d.ts";
import { globalAvgPool2d } from "../../ops/global_avg_pool2d.ts";
import { checkVjp, randTensor } from "../_grad_check.ts";

const poolCase = fc.record({
  n: fc.integer({ min: 1, max: 2 }),
  c: fc.integer({ min: 1, max: 2 }),
  size: fc.constantFrom(1, 2, 3),
  stride: fc.integer({ min: 1, max: 3 }),
  h: fc.integer({ min: 1, max: 6 }),
  w: fc.integer({ min: 1, max: 6 }),
  pad: fc.boolean(),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
}).map((r) => ({ ...r, padding: r.pad ? Math.floor(r.size / 2) : 0 }))
  .filter((r) => r.h + 2 * r.padding >= r.size && r.w + 2 * r.padding >= r.size);

/** Zero-pad, then average every full window: PyTorch's count_include_pad=True. */
function direct(
  x: Float64Array,
  [n, c, h, w]: number[],
  size: number,
  stride: number,
  pad: number,
) {
  const hp = h! + 2 * pad, wp = w! + 2 * pad;
  const at = (p: number, i: number, j: number) => {
    const r = i - pad, q = j - pad;
    return r < 0 || q < 0 || r >= h! || q >= w! ? 0 : x[(p * h! + r) * w! + q]!;
  };
  const oh = Math.floor((hp - size) / stride) + 1, ow = Math.floor((wp - size) / stride) + 1;
  const y: number[] = [];
  for (let p = 0; p < n! * c!; p++) {
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++) {
        let s = 0;
        for (let a = 0; a < size; a++) {
          for (let b = 0; b < size; b++) s += at(p, i * stride + a, j * stride + b);
        }
        y.push(s / (size * size));
      }
    }
  }
  return { y, shape: [n!, c!, oh, ow] };
}

Deno.test("avg_pool2d forward equals averaging the zero-padded input (count_include_pad)", () => {
  fc.assert(
    fc.property(poolCase, ({ n, c, h, w, size, stride, padding, seed }) => {
      const x = randTensor([n, c, h, w], seed);
      const { out } = vjp((v) => avgPool2d(v, { size, stride, padding }), x);
      const want = direct(x.data, x.shape, size, stride, padding);
      assert.deepEqual(out.shape, want.shape);
      out.data.forEach((v, i) =>
        assert.ok(Math.abs(v - want.y[i]!) < 1e-14, `y[${i}] ${v} vs ${want.y[i]}`)
      );
    }),
    { numRuns: 60 },
  );
});

Deno.test("avg_pool2d vjp and its backward's vjp match finite differences", () => {
  fc.assert(
    fc.property(poolCase, ({ n, c, h, w, size, stride, padding, seed }) => {
      const x = randTensor([n, c, h, w], seed);
      const opts = { size, stride, padding };
      checkVjp((v) => avgPool2d(v, opts), [x], { seed, full: x.data.length <= 24 });
      const { out } = vjp((v) => avgPool2d(v, opts), x);
      const dy = randTensor(out.shape, seed + 1);
      checkVjp((v) => avgPool2dBackward(v, { ...opts, h, w }), [dy], { seed });
    }),
    { numRuns: 60 },
  );
});

Deno.test("avg_pool2d 3x3 stride 1 padding 1 keeps the size and counts the padding", () => {
  const x = { shape: [1, 1, 2, 2], data: Float64Array.from([9, 9, 9, 9]) };
  const { out, backward } = vjp((v) => avgPool2d(v, { size: 3, stride: 1, padding: 1 }), x);
  // each window holds the four 9s and five padded zeros
  assert.deepEqual([...out.data], [4, 4, 4, 4]);
  assert.deepEqual([...backward([9, 9, 9, 9])[0]!.data], [4, 4, 4, 4]);
});

Deno.test("globalAvgPool2d is the mean of each plane and matches finite differences", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 3 }),
      fc.integer({ min: 1, max: 4 }),
      fc.integer(),
      (c, h, seed) => {
        const x = randTensor([2, c, h, h + 1], seed);
        const { out } = vjp((v) => globalAvgPool2d(v), x);
        assert.deepEqual(out.shape, [2, c, 1, 1]);
        const plane = h * (h + 1);
        for (let p = 0; p < 2 * c; p++) {
          let s = 0;
          for (let i = 0; i < plane; i++) s += x.data[p * plane + i]!;
          assert.ok(Math.abs(out.data[p]! - s / plane) < 1e-15);
        }
        checkVjp((v) => globalAvgPool2d(v), [x], { seed });
      },
    ),
    { numRuns: 30 },
  );
});

Deno.test("avg_pool2d errors name the node and the bad value", () => {
  const g = new Graph();
  const x = g.input("x", [-1, 3, 4, 4]);
  assert.throws(
    () => avgPool2d(x, { size: 2, padding: 2, name: "ap" }),
    /avg_pool2d "ap": padding 2 must be at most half the window size 2 \(x \[N,3,4,4\]\)/,
  );
  assert.throws(() => avgPool2d(x, { size: 0 }), /size must be a whole number ≥ 1, got 0/);
  assert.throws(() => globalAvgPool2d(g.input("flat", [-1, 4])), /must be 4-D/);
  assert.deepEqual(avgPool2d(x, { size: 3, stride: 1, padding: 1 }).shape, [-1, 3, 4, 4]);
});
