// The Winograd filter gradient against im2col + GEMM on mnist-net's conv2 (C 32 → OC 64,
// 26×26 → 24×24), one process, alternating, on an executor-style arena (x and dy read in
// place) and on plain arrays (copied in), and F(4×4) with its images in 1, 4 or 8 groups:
// `deno run -A bench/winograd_filter_bench.ts [N] [reps]`.
import { conv2dBackwardFilterFast, conv2dFastScratch } from "../ops/kernels/conv2d_fast.ts";
import type { Conv2dDims } from "../ops/kernels/conv2d_ref.ts";
import { wasmArenaBuffer } from "../ops/kernels/elementwise_wasm.ts";
import {
  winogradBackwardFilterWasm,
  winogradFilterScratch,
} from "../ops/kernels/winograd_filter_wasm.ts";
import { wholeArgs } from "./_args.ts";
import { median } from "./_stats.ts";

const [n, reps] = wholeArgs(
  "usage: deno run -A bench/winograd_filter_bench.ts [N (images, 64)] [reps (20)]",
  ["N", "reps"],
  [64, 20],
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
const nx = n * 32 * 26 * 26, ny = n * 64 * 24 * 24, nw = 64 * 32 * 9;
const rand = (len: number) => Float32Array.from({ length: len }, () => Math.random() * 2 - 1);
const x = rand(nx), dy = rand(ny), dw = new Float32Array(nw);
const scratch = Math.max(
  conv2dFastScratch(d, "filter"),
  winogradFilterScratch(d, { tile: 2 }),
  winogradFilterScratch(d, { tile: 4 }),
  winogradFilterScratch(d, { tile: 4, maxGroups: 8 }),
);
const buf = wasmArenaBuffer(4 * (nx + ny + nw), 4 * scratch);
if (!buf) throw new Error("winograd_filter_bench: needs WebAssembly SIMD");
const xa = new Float32Array(buf, 0, nx), dya = new Float32Array(buf, 4 * nx, ny);
const dwa = new Float32Array(buf, 4 * (nx + ny), nw);
xa.set(x);
dya.set(dy);
const flop = 2 * n * 64 * 24 * 24 * 32 * 9;
const wino = (maxGroups: number) =>
  winogradBackwardFilterWasm(xa, dya, dwa, d, { tile: 4, maxGroups });
const cases: [string, () => void][] = [
  ["direct, arena", () => conv2dBackwardFilterFast(xa, dya, dwa, d, "wasm")],
  ["F(2x2), arena", () => winogradBackwardFilterWasm(xa, dya, dwa, d, { tile: 2 })],
  ["F(4x4), arena", () => winogradBackwardFilterWasm(xa, dya, dwa, d, { tile: 4 })],
  // the image groups (sums of their own, added after) against one sequence of chunks
  ["F(4x4), 1 group", () => wino(1)],
  ["F(4x4), 4 groups", () => wino(4)],
  ["F(4x4), 8 groups", () => wino(8)],
  ["direct, copied", () => conv2dBackwardFilterFast(x, dy, dw, d, "wasm")],
  ["F(4x4), copied", () => winogradBackwardFilterWasm(x, dy, dw, d, { tile: 4 })],
];
const times = cases.map(() => [] as number[]);
for (let r = 0; r < reps + 2; r++) {
  cases.forEach(([, fn], i) => {
    const t = performance.now();
    fn();
    if (r >= 2) times[i]!.push(performance.now() - t);
  });
}
console.log(`conv2 filter gradient of mnist-net, N=${n}, ${reps} alternating runs, median:`);
const base = median(times[0]!);
cases.forEach(([name], i) => {
  const med = median(times[i]!);
  console.log(
    `${name.padEnd(16)} ${med.toFixed(2).padStart(7)} ms  ${
      (flop / med / 1e6).toFixed(1).padStart(6)
    } GFLOP/s-equivalent  ${(base / med).toFixed(2)}x`,
  );
});
