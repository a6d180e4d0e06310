/**
 * GEMM tiers side by side: `deno bench bench/gemm_bench.ts`. One group per
 * square size, the naive reference as baseline, so the summary reads as
 * speed-ups. GFLOP/s per size and tier: `deno run bench/gemm_gflops.ts`.
 *
 * @module
 */

import { gemmRef } from "../ops/kernels/gemm_ref.ts";
import { gemmBlocked } from "../ops/kernels/gemm_blocked.ts";
import { gemmWasm, wasmAvailable } from "../ops/kernels/gemm_wasm.ts";

function randomMatrix(len: number, seed: number): Float32Array {
  const out = new Float32Array(len);
  let s = seed;
  for (let i = 0; i < len; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

for (const size of [64, 128, 256, 512, 1024]) {
  const a = randomMatrix(size * size, 1), b = randomMatrix(size * size, 2);
  const c = new Float32Array(size * size);
  const d = { m: size, n: size, k: size };
  const group = `gemm ${size}`;
  // The naive loops take over a second per call at 1024: a few runs suffice.
  const slow = size >= 512 ? { n: size >= 1024 ? 2 : 5, warmup: 1 } : {};
  Deno.bench({
    name: `ref ${size}`,
    group,
    baseline: true,
    ...slow,
    fn: () => gemmRef(a, b, c, d),
  });
  Deno.bench({ name: `ts blocked ${size}`, group, fn: () => gemmBlocked(a, b, c, d) });
  Deno.bench({
    name: `wasm simd ${size}`,
    group,
    ignore: !wasmAvailable(),
    fn: () => gemmWasm(a, b, c, d),
  });
}
