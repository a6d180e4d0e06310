/**
 * Prints one JSON line per GEMM size and tier with its GFLOP/s:
 * `deno run bench/gemm_gflops.ts [--sizes 256,512,1024] [--tiers ref,ts,wasm] [--rounds 5]`.
 *
 * The tiers run interleaved, round after round, and each reports its best
 * round: on a shared, drifting VM the best round is the most repeatable
 * figure, and interleaving exposes every tier to the same drift.
 *
 * @module
 */

import { benchArgs } from "./_args.ts";
import { gemmRef } from "../ops/kernels/gemm_ref.ts";
import { gemmBlocked } from "../ops/kernels/gemm_blocked.ts";
import { gemmWasm, wasmAvailable, wasmVariant } from "../ops/kernels/gemm_wasm.ts";
import type { Tier } from "../graph/op.ts";

const values = benchArgs("bench/gemm_gflops.ts", {
  sizes: { type: "string", default: "64,128,256,512,1024" },
  tiers: { type: "string", default: "ref,ts,wasm" },
  rounds: { type: "string", default: "5" },
  "round-ms": { type: "string", default: "300" },
});
const sizes = values.sizes.split(",").map(Number);
const tiers = values.tiers.split(",").filter((t) => t !== "wasm" || wasmAvailable()) as Tier[];
const rounds = Number(values.rounds), roundMs = Number(values["round-ms"]);

const kernels = { ref: gemmRef, ts: gemmBlocked, wasm: gemmWasm } as const;

for (const size of sizes) {
  const a = new Float32Array(size * size).map((_, i) => Math.sin(i) * 0.5);
  const b = new Float32Array(size * size).map((_, i) => Math.cos(i) * 0.5);
  const c = new Float32Array(size * size);
  const d = { m: size, n: size, k: size };
  const best = new Map<Tier, number>();
  for (let r = 0; r < rounds; r++) {
    for (const tier of tiers) {
      const f = kernels[tier];
      f(a, b, c, d);
      let calls = 0;
      const t0 = performance.now();
      let t = t0;
      while (t - t0 < roundMs || calls === 0) {
        f(a, b, c, d);
        calls++;
        t = performance.now();
      }
      const ms = (t - t0) / calls;
      best.set(tier, Math.min(best.get(tier) ?? Infinity, ms));
    }
  }
  for (const tier of tiers) {
    const ms = best.get(tier)!;
    console.log(JSON.stringify({
      size,
      tier,
      variant: tier === "wasm" ? wasmVariant() : null,
      ms: Number(ms.toFixed(3)),
      gflops: Number((2 * size ** 3 / ms / 1e6).toFixed(2)),
    }));
  }
}
