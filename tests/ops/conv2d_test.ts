// every op registers itself on import; grad finds fill, add, sum, reshape by name
import "../../ops/mod.ts";
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { Executor } from "../../graph/executor.ts";
import { Graph, type Node } from "../../graph/graph.ts";
import { grad } from "../../graph/grad.ts";
import { makePlan } from "../../graph/plan.ts";
import type { Tensor } from "../../graph/tensor.ts";
import { vjp } from "../../graph/vjp.ts";
import type { FloatArray, Tier } from "../../graph/op.ts";
import { conv2d } from "../../ops/conv2d.ts";
import { conv2dBackwardFilter } from "../../ops/conv2d_backward_filter.ts";
import { conv2dBackwardInput } from "../../ops/conv2d_backward_input.ts";
import { sum } from "../../ops/sum.ts";
import { checkVjp, randTensor } from "../_grad_check.ts";

const RUNS = 40;

interface ConvCase {
  n: number;
  c: number;
  h: number;
  w: number;
  oc: number;
  kh: number;
  kw: number;
  stride: number;
  padding: number;
  bias: boolean;
  seed: number;
}

/** Random convolution geometry; every filter fits (K ≤ 3 ≤ H). */
const smallCase: fc.Arbitrary<ConvCase> = fc.record({
  n: fc.integer({ min: 1, max: 2 }),
  c: fc.integer({ min: 1, max: 3 }),
  h: fc.integer({ min: 3, max: 7 }),
  w: fc.integer({ min: 3, max: 7 }),
  oc: fc.integer({ min: 1, max: 3 }),
  kh: fc.integer({ min: 1, max: 3 }),
  kw: fc.integer({ min: 1, max: 3 }),
  stride: fc.integer({ min: 1, max: 2 }),
  padding: fc.integer({ min: 0, max: 1 }),
  bias: fc.boolean(),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
});

/** Larger geometry for the float32 kernels: sizes that are not multiples of any block. */
const wideCase: fc.Arbitrary<ConvCase> = fc.record({
  n: fc.integer({ min: 1, max: 3 }),
  c: fc.integer({ min: 1, max: 6 }),
  h: fc.integer({ min: 5, max: 12 }),
  w: fc.integer({ min: 5, max: 12 }),
  oc: fc.integer({ min: 1, max: 9 }),
  kh: fc.integer({ min: 1, max: 5 }),
  kw: fc.integer({ min: 1, max: 5 }),
  stride: fc.integer({ min: 1, max: 3 }),
  padding: fc.integer({ min: 0, max: 2 }),
  bias: fc.boolean(),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
});

function outSide(size: number, k: number, stride: number, padding: number): number {
  return Math.floor((size + 2 * padding - k) / stride) + 1;
}

/** The primals of a case: x, w and (when asked) b, uniform in [-1, 1). */
function primals(k: ConvCase): Tensor<Float64Array>[] {
  const ts = [
    randTensor([k.n, k.c, k.h, k.w], k.seed),
    randTensor([k.oc, k.c, k.kh, k.kw], k.seed + 1),
  ];
  if (k.bias) ts.push(randTensor([k.oc], k.seed + 2));
  return ts;
}

/**
 * The lecture's formula with zero padding and stride, written directly:
 * y[s,oc,i,j] = Σ_{ic,i',j'} w[oc,ic,i',j'] · x[s,ic,i·stride+i'−p, j·stride+j'−p] + b[oc].
 */
function convDirect(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  b: ArrayLike<number> | null,
  k: Omit<ConvCase, "bias" | "seed">,
): { y: Float64Array; shape: number[] } {
  const oh = outSide(k.h, k.kh, k.stride, k.padding), ow = outSide(k.w, k.kw, k.stride, k.padding);
  const y = new Float64Array(k.n * k.oc * oh * ow);
  for (let s = 0; s < k.n; s++) {
    for (let o = 0; o < k.oc; o++) {
      for (let i = 0; i < oh; i++) {
        for (let j = 0; j < ow; j++) {
          let acc = b ? b[o]! : 0;
          for (let ic = 0; ic < k.c; ic++) {
            for (let a = 0; a < k.kh; a++) {
              for (let bb = 0; bb < k.kw; bb++) {
                const r = i * k.stride + a - k.padding, q = j * k.stride + bb - k.padding;
                if (r < 0 || r >= k.h || q < 0 || q >= k.w) continue;
                acc += w[((o * k.c + ic) * k.kh + a) * k.kw + bb]! *
                  x[((s * k.c + ic) * k.h + r) * k.w + q]!;
              }
            }
          }
          y[((s * k.oc + o) * oh + i) * ow + j] = acc;
        }
      }
    }
  }
  return { y, shape: [k.n, k.oc, oh, ow] };
}

const convFn = (k: ConvCase) => (x: Node, w: Node, b?: Node) =>
  conv2d(x, w, b, { stride: k.stride, padding: k.padding });

Deno.test("conv2d vjp matches finite differences (stride 1-2, padding 0-1, with and without bias)", () => {
  fc.assert(
    fc.property(smallCase, (k) => {
      const ps = primals(k);
      const nIn = ps.reduce((a, t) => a + t.data.length, 0);
      const nOut = k.n * k.oc * outSide(k.h, k.kh, k.stride, k.padding) *
        outSide(k.w, k.kw, k.stride, k.padding);
      checkVjp(convFn(k), ps, { seed: k.seed, full: nIn <= 60 && nOut <= 40 });
    }),
    { numRuns: 60 },
  );
});

Deno.test("conv2d forward matches the lecture's formula on random shapes", () => {
  fc.assert(
    fc.property(smallCase, (k) => {
      const ps = primals(k);
      const want = convDirect(ps[0]!.data, ps[1]!.data, k.bias ? ps[2]!.data : null, k);
      const got = vjp(convFn(k), ...ps).out;
      assert.deepEqual(got.shape, want.shape);
      got.data.forEach((v, i) => assert.ok(Math.abs(v - want.y[i]!) <= 1e-12, `y[${i}]`));
    }),
    { numRuns: RUNS },
  );
});

Deno.test("conv2d forward on hand-computed examples", () => {
  // single channel, the lecture's y[i,j] = Σ w[i',j'] x[i+i',j+j'] + b
  const x1 = { shape: [1, 1, 3, 3], data: Float64Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]) };
  const w1 = { shape: [1, 1, 2, 2], data: Float64Array.from([1, 2, 3, 4]) };
  const b1 = { shape: [1], data: Float64Array.from([0.5]) };
  // 1·1 + 2·2 + 3·4 + 4·5 = 37, then 47, 67, 77
  const y1 = vjp((x, w, b) => conv2d(x, w, b), x1, w1, b1).out;
  assert.deepEqual(y1.shape, [1, 1, 2, 2]);
  assert.deepEqual([...y1.data], [37.5, 47.5, 67.5, 77.5]);

  // two channels, stride 2, padding 1: channel 0's filter reads the window's
  // top-left tap (x[2i−1, 2j−1], zero outside), channel 1's the bottom-right (x[2i, 2j])
  const x2 = {
    shape: [1, 2, 3, 3],
    data: Float64Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 30, 40, 50, 60, 70, 80, 90]),
  };
  const w2 = { shape: [1, 2, 2, 2], data: Float64Array.from([1, 0, 0, 0, 0, 0, 0, 1]) };
  const b2 = { shape: [1], data: Float64Array.from([-1]) };
  const y2 = vjp((x, w, b) => conv2d(x, w, b, { stride: 2, padding: 1 }), x2, w2, b2);
  assert.deepEqual(y2.out.shape, [1, 1, 2, 2]);
  assert.deepEqual([...y2.out.data], [0 + 10 - 1, 0 + 30 - 1, 0 + 70 - 1, 5 + 90 - 1]);
  // and back: each output's cotangent lands on the two taps it read, the bias gets their sum
  const [dx, dw, db] = y2.backward([1, 2, 3, 4]);
  assert.deepEqual([...dx!.data], [0, 0, 0, 0, 4, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 3, 0, 4]);
  // dw[0,ic,a,b] = Σ_{i,j} dy[i,j] · x[ic, 2i+a−1, 2j+b−1]
  assert.deepEqual([...dw!.data], [
    4 * 5,
    3 * 4 + 4 * 6,
    2 * 2 + 4 * 8,
    1 * 1 + 2 * 3 + 3 * 7 + 4 * 9,
    4 * 50,
    3 * 40 + 4 * 60,
    2 * 20 + 4 * 80,
    1 * 10 + 2 * 30 + 3 * 70 + 4 * 90,
  ]);
  assert.deepEqual([...db!.data], [10]);
});

Deno.test("conv2d channel mismatch names the node and the shapes", () => {
  const g = new Graph();
  const x = g.input("x", [-1, 3, 28, 28]);
  const w = g.param("w", [32, 1, 3, 3], { kind: "uniform", bound: 0.1 });
  assert.throws(() => conv2d(x, w, null, { name: "conv1" }), {
    message:
      'conv2d "conv1": input has 3 channels but the filter expects 1 (x [N,3,28,28], w [32,1,3,3])',
  });
  const w3 = g.param("w3", [32, 3, 3, 3], { kind: "uniform", bound: 0.1 });
  assert.throws(() => conv2d(x, w3, g.param("b", [16], { kind: "constant", value: 0 })), {
    message: /the bias must be \[32\], one value per output channel, got \[16\]/,
  });
  assert.throws(() => conv2d(g.input("small", [-1, 3, 2, 2]), w3), {
    message: /the 3x3 filter does not fit in the 2x2 input padded by 0/,
  });
  assert.throws(() => conv2d(x, w3, null, { stride: 0 }), { message: /stride must be a positive/ });
  assert.throws(
    () => conv2dBackwardInput(g.input("dy", [-1, 32, 13, 13]), w3, { inputSize: [28, 28] }),
    { message: /dy is 13x13 but a 28x28 input gives 26x26 outputs with a 3x3 filter/ },
  );
  assert.deepEqual(conv2d(x, w3, null, { padding: 1 }).shape, [-1, 32, 28, 28]);
});

/** y, dx, dw (and db) of `sum(conv2d(x, w, b) * u)` through an executor of a given tier. */
function runConv(
  k: ConvCase,
  ps: Tensor<FloatArray>[],
  u: FloatArray,
  dtype: "float32" | "float64",
  tier?: Tier,
): FloatArray[] {
  const g = new Graph();
  const xs = ps.map((p, i) => g.input(`x${i}`, p.shape));
  const y = convFn(k)(xs[0]!, xs[1]!, xs[2]);
  const ct = g.input("u", y.shape);
  const ds = grad(y, xs, { cotangent: ct }).map((d) => d!);
  const ex = new Executor(makePlan(g, { dtype, outputs: [y, ...ds] }), { tier });
  const feeds = Object.fromEntries(ps.map((p, i) => [`x${i}`, p.data]));
  return ex.run({ ...feeds, u }, { outputs: [y, ...ds] }).map((a) => a.slice());
}

Deno.test("conv2d float32 kernels (every tier) match the float64 reference, forward and backward", () => {
  fc.assert(
    fc.property(wideCase, (k) => {
      // float32-representable data, so only the arithmetic differs
      const ps = primals(k).map((t) => ({ shape: t.shape, data: t.data.map(Math.fround) }));
      const oh = outSide(k.h, k.kh, k.stride, k.padding),
        ow = outSide(k.w, k.kw, k.stride, k.padding);
      const u = randTensor([k.n, k.oc, oh, ow], k.seed + 5).data.map(Math.fround);
      const ref = runConv(k, ps, u, "float64");
      // Σ|terms| of every output: the same computation on absolute values
      const abs = (a: Float64Array) => a.map(Math.abs);
      const bound = runConv(
        k,
        ps.map((p) => ({ shape: p.shape, data: abs(p.data) })),
        abs(u),
        "float64",
      );
      const ps32 = ps.map((p) => ({ shape: p.shape, data: Float32Array.from(p.data) }));
      const wino = k.kh === 3 && k.kw === 3 && k.stride === 1;
      const through = vjp(convFn(k), ...ps32);
      const viaVjp = [
        through.out.data,
        ...through.backward(Float32Array.from(u)).map((t) => t.data),
      ];
      for (
        const [label, got] of [
          ["vjp (default tier)", viaVjp],
          ["ts", runConv(k, ps32, Float32Array.from(u), "float32", "ts")],
          ["wasm", runConv(k, ps32, Float32Array.from(u), "float32", "wasm")],
          ["ref", runConv(k, ps32, Float32Array.from(u), "float32", "ref")],
        ] as const
      ) {
        got.forEach((arr, t) => {
          assert.equal(arr.length, ref[t]!.length);
          arr.forEach((v, i) => {
            // a float32 sum errs by a small multiple of eps32 times Σ|terms|; Winograd F(4×4)
            // (wasm tier, 3×3 stride 1, see winograd_wasm.ts) mixes a whole 6×6 input patch
            // into each output, and an output whose own window is small (at a padded edge)
            // errs up to ~3e-5 of it (worst of 3000 random cases)
            const tol = (wino && label !== "ts" && label !== "ref" ? 2e-4 : 2e-5) * bound[t]![i]! +
              1e-7;
            const r = ref[t]![i]!;
            if (!(Math.abs(v - r) <= tol)) {
              assert.fail(
                `${label}: output ${t} element ${i} is ${v}, float64 gives ${r} (tol ${tol})`,
              );
            }
          });
        });
      }
    }),
    { numRuns: 30 },
  );
});

Deno.test("conv2d backward ops have VJPs that match finite differences (second derivatives)", () => {
  fc.assert(
    fc.property(smallCase, (k) => {
      const oh = outSide(k.h, k.kh, k.stride, k.padding),
        ow = outSide(k.w, k.kw, k.stride, k.padding);
      const x = randTensor([k.n, k.c, k.h, k.w], k.seed);
      const w = randTensor([k.oc, k.c, k.kh, k.kw], k.seed + 1);
      const dy = randTensor([k.n, k.oc, oh, ow], k.seed + 2);
      const { stride, padding } = k;
      checkVjp(
        (d, f) => conv2dBackwardInput(d, f, { stride, padding, inputSize: [k.h, k.w] }),
        [dy, w],
        { seed: k.seed },
      );
      checkVjp(
        (a, d) => conv2dBackwardFilter(a, d, { stride, padding, kernelSize: [k.kh, k.kw] }),
        [x, dy],
        { seed: k.seed },
      );
    }),
    { numRuns: 30 },
  );
});

Deno.test("conv2d gradient graph survives JSON and binds a batch size at plan time", () => {
  const k: ConvCase = {
    n: 3,
    c: 2,
    h: 6,
    w: 5,
    oc: 3,
    kh: 3,
    kw: 2,
    stride: 2,
    padding: 1,
    bias: true,
    seed: 11,
  };
  const g = new Graph();
  const x = g.input("x", [-1, k.c, k.h, k.w]);
  const w = g.param("w", [k.oc, k.c, k.kh, k.kw], { kind: "uniform", bound: 1 });
  const b = g.param("b", [k.oc], { kind: "uniform", bound: 1 });
  const loss = sum(conv2d(x, w, b, { stride: k.stride, padding: k.padding }));
  const names = grad(loss, [x, w, b]).map((d) => d!.name);
  const g2 = Graph.fromJSON(JSON.parse(JSON.stringify(g.toJSON())));
  const outs = names.map((nm) => g2.node(nm));
  const ex = new Executor(makePlan(g2, { batch: k.n, dtype: "float64", outputs: outs }), {
    seed: 4,
  });
  const xv = randTensor([k.n, k.c, k.h, k.w], 3);
  const got = ex.run({ x: xv.data }, { outputs: outs }).map((a) => [...a]);
  // the same gradients from vjp on concrete shapes, with the executor's parameter values
  const wv = { shape: [k.oc, k.c, k.kh, k.kw], data: ex.params.get("w")! as Float64Array };
  const bv = { shape: [k.oc], data: ex.params.get("b")! as Float64Array };
  const r = vjp((a, f, c) => sum(conv2d(a, f, c, { stride: 2, padding: 1 })), xv, wv, bv);
  const want = r.backward([1]).map((t) => [...t.data]);
  got.forEach((arr, t) => arr.forEach((v, i) => assert.ok(Math.abs(v - want[t]![i]!) < 1e-12)));
});
