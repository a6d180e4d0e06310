/**
 * Convolution kernels on the lecture's shapes: `deno bench bench/conv2d_bench.ts`.
 * The direct-loop reference is the baseline of each group; the fast kernels
 * run with the TypeScript and the WebAssembly GEMM.
 *
 * - conv1: x (64, 1, 28, 28), w (32, 1, 3, 3): forward and filter gradient
 *   (the input gradient of the first layer is never needed);
 * - conv2 of the MNIST net: x (64, 32, 26, 26), w (64, 32, 3, 3): forward,
 *   input gradient and filter gradient.
 *
 * @module
 */

import {
  conv2dBackwardFilterRef,
  conv2dBackwardInputRef,
  type Conv2dDims,
  conv2dRef,
} from "../ops/kernels/conv2d_ref.ts";
import {
  conv2dBackwardFilterFast,
  conv2dBackwardInputFast,
  conv2dFast,
} from "../ops/kernels/conv2d_fast.ts";
import { wasmAvailable } from "../ops/kernels/gemm_wasm.ts";

function randomArray(len: number, seed: number): Float32Array {
  const out = new Float32Array(len);
  let s = seed;
  for (let i = 0; i < len; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

function dims(n: number, c: number, hw: number, oc: number, k: number): Conv2dDims {
  const o = hw - k + 1;
  return { n, c, h: hw, w: hw, oc, kh: k, kw: k, oh: o, ow: o, stride: 1, padding: 0 };
}

const shapes = [
  { name: "conv1", d: dims(64, 1, 28, 32, 3), passes: ["fwd", "bwd-filter"] },
  { name: "conv2", d: dims(64, 32, 26, 64, 3), passes: ["fwd", "bwd-input", "bwd-filter"] },
];

for (const { name, d, passes } of shapes) {
  const x = randomArray(d.n * d.c * d.h * d.w, 1);
  const w = randomArray(d.oc * d.c * d.kh * d.kw, 2);
  const b = randomArray(d.oc, 3);
  const y = new Float32Array(d.n * d.oc * d.oh * d.ow);
  const dy = randomArray(y.length, 4);
  const dx = new Float32Array(x.length), dw = new Float32Array(w.length);
  // The reference needs seconds per call on conv2: a couple of runs suffice.
  const refRuns = d.c > 1 ? { n: 1, warmup: 1 } : {};
  for (const pass of passes) {
    const group = `${name} ${pass}`;
    const [ref, fast] = pass === "fwd"
      ? [() => conv2dRef(x, w, b, y, d), (t: "ts" | "wasm") => conv2dFast(x, w, b, y, d, t)]
      : pass === "bwd-input"
      ? [
        () => conv2dBackwardInputRef(dy, w, dx, d),
        (t: "ts" | "wasm") => conv2dBackwardInputFast(dy, w, dx, d, t),
      ]
      : [
        () => conv2dBackwardFilterRef(x, dy, dw, d),
        (t: "ts" | "wasm") => conv2dBackwardFilterFast(x, dy, dw, d, t),
      ];
    Deno.bench({ name: `${group} ref`, group, baseline: true, ...refRuns, fn: ref });
    Deno.bench({ name: `${group} fast ts`, group, fn: () => fast("ts") });
    Deno.bench({
      name: `${group} fast wasm`,
      group,
      ignore: !wasmAvailable(),
      fn: () => fast("wasm"),
    });
  }
}
