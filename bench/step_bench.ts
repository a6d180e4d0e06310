/**
 * Whole training steps: `deno bench -A bench/step_bench.ts`. One group per
 * model (lecture CNN, mnist-net); each entry is one step at batch 64 (the
 * runner's micro-batches of 32, then an SGD update) on the reference,
 * TypeScript or WebAssembly kernels, with the fusion pass or without. The
 * unfused wasm step is each group's baseline, so `deno bench` prints the
 * step-time ratios against it; the samples/s of every entry, from its own
 * timed calls after the first (which builds the plans), is printed when the
 * run ends. The reference tier runs a
 * handful of steps only (mnist-net's takes seconds).
 *
 * @module
 */
import { initParams } from "../graph/params.ts";
import type { Tier } from "../graph/op.ts";
import { LocalRunner } from "../train/parallel/local.ts";
import { lectureCnn, mnistNet } from "../train/models.ts";
import { Sgd } from "../train/optim/sgd.ts";

const BATCH = 64;
const COUNT = 256;
const images = new Float32Array(COUNT * 784);
const labels = new Uint8Array(COUNT);
{
  let s = 12345;
  for (let i = 0; i < images.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    images[i] = (s >>> 8) / 2 ** 24;
  }
  for (let i = 0; i < COUNT; i++) labels[i] = i % 10;
}
const data = { images, labels, sampleSize: 784 };
const rates: [string, number][] = [];

for (const model of ["lecture-cnn", "mnist-net"] as const) {
  const spec = model === "lecture-cnn" ? lectureCnn() : mnistNet({ seed: 1 });
  for (const tier of ["wasm", "ts", "ref"] as Tier[]) {
    for (const fuse of [false, true]) {
      const params = initParams(spec.built, { seed: 1 }) as Map<string, Float32Array>;
      const grads = new Map([...params].map(([k, v]) => [k, new Float32Array(v.length)]));
      const runner = new LocalRunner(spec, { params, data, maxBatch: BATCH, tier, fuse });
      const opt = new Sgd(0.01);
      let step = 0, ms = 0, calls = 0, seen = 0;
      const name = `${model} ${tier} ${fuse ? "fused" : "unfused"} (batch ${BATCH})`;
      const slow = tier === "ref";
      Deno.bench({
        name,
        group: model,
        baseline: tier === "wasm" && !fuse,
        ...(slow ? { n: model === "mnist-net" ? 1 : 5, warmup: 1 } : {}),
        async fn() {
          const t0 = performance.now();
          const start = (step * BATCH) % COUNT;
          const idx = new Uint32Array(BATCH);
          for (let i = 0; i < BATCH; i++) idx[i] = (start + i) % COUNT;
          await runner.step(idx, step++, grads);
          opt.step(params, grads);
          // the first call builds the plans and compiles: not a step's cost
          if (seen++ > 0) {
            ms += performance.now() - t0;
            calls++;
          }
        },
      });
      rates.push([name, 0]);
      const k = rates.length - 1;
      globalThis.addEventListener("unload", () => {
        rates[k]![1] = calls ? (calls * BATCH * 1000) / ms : NaN;
        if (k === rates.length - 1) {
          for (const [n, r] of rates) console.log(`${n}: ${r.toFixed(0)} samples/s`);
        }
      });
    }
  }
}
