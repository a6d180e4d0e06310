// Winograd against im2col + GEMM on mnist-net's conv2 (C 32 → OC 64, 26×26 → 24×24), forward
// and backward-to-input, one process, alternating: `deno run -A bench/winograd_bench.ts [N] [reps]`.
import { conv2dBackwardInputFast, conv2dFast } from "../ops/kernels/conv2d_fast.ts";
import {
  conv2dBackwardInputWinogradWasm,
  conv2dWinogradWasm,
} from "../ops/kernels/winograd_wasm.ts";
import type { Conv2dDims } from "../ops/kernels/conv2d_ref.ts";
import { wholeArgs } from "./_args.ts";
import { median } from "./_stats.ts";

const [n, reps] = wholeArgs(
  "usage: deno run -A bench/winograd_bench.ts [N (images, 32)] [reps (20)]",
  ["N", "reps"],
  [32, 20],
);
const d: Conv2dDims = {
  n,
  c: 32,
  h: 26,
  w: 26,
  oc: 64,
  kh: 3,
  kw: 3,
  oh: 24,
  ow: 24,
  stride: 1,
  padding: 0,
};
const rand = (len: number) => Float32Array.from({ length: len }, () => Math.random() * 2 - 1);
const x = rand(n * 32 * 26 * 26), w = rand(64 * 32 * 9), b = rand(64);
const y = new Float32Array(n * 64 * 24 * 24), dx = new Float32Array(x.length);
const flop = 2 * n * 64 * 24 * 24 * 32 * 9;
const cases: [string, () => void][] = [
  ["fwd direct", () => conv2dFast(x, w, b, y, d, "wasm")],
  ["fwd F(2x2)", () => conv2dWinogradWasm(x, w, b, y, d, 2)],
  ["fwd F(4x4)", () => conv2dWinogradWasm(x, w, b, y, d, 4)],
  ["bwd-input direct", () => conv2dBackwardInputFast(y, w, dx, d, "wasm")],
  ["bwd-input F(2x2)", () => conv2dBackwardInputWinogradWasm(y, w, dx, d, 2)],
  ["bwd-input F(4x4)", () => conv2dBackwardInputWinogradWasm(y, w, dx, d, 4)],
];
const times = cases.map(() => [] as number[]);
for (let r = 0; r < reps + 2; r++) {
  cases.forEach(([, fn], i) => {
    const t = performance.now();
    fn();
    if (r >= 2) times[i]!.push(performance.now() - t);
  });
}
console.log(`conv2 of mnist-net, N=${n}, ${reps} alternating runs, median:`);
cases.forEach(([name], i) => {
  const med = median(times[i]!);
  console.log(
    `${name.padEnd(18)} ${med.toFixed(2).padStart(7)} ms  ${
      (flop / med / 1e6).toFixed(1).padStart(6)
    } GFLOP/s-equivalent`,
  );
});
