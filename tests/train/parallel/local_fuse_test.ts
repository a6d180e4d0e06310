import assert from "node:assert/strict";
import { initParams } from "../../../graph/params.ts";
import { LocalRunner } from "../../../train/parallel/local.ts";
import { lectureCnn } from "../../../train/models.ts";

Deno.test("LocalRunner with and without the fusion pass: the same loss and gradients within float32 rounding", async () => {
  const spec = lectureCnn({ channels: 6 });
  const count = 40;
  const images = new Float32Array(count * 784).map((_, i) => ((i * 7919) % 251) / 251);
  const labels = new Uint8Array(count).map((_, i) => i % 10);
  const data = { images, labels, sampleSize: 784 };
  const idx = new Uint32Array(count).map((_, i) => i);
  const out = [];
  for (const fuse of [false, true]) {
    const params = initParams(spec.built, { seed: 3 }) as Map<string, Float32Array>;
    const grads = new Map([...params].map(([k, v]) => [k, new Float32Array(v.length)]));
    const runner = new LocalRunner(spec, { params, data, maxBatch: count, tier: "wasm", fuse });
    const { loss } = await runner.step(idx, 0, grads);
    out.push({ loss, grads });
  }
  assert.ok(Math.abs(out[0]!.loss - out[1]!.loss) < 1e-6);
  for (const [name, g] of out[0]!.grads) {
    const f = out[1]!.grads.get(name)!;
    let scale = 0;
    for (const v of g) scale = Math.max(scale, Math.abs(v));
    g.forEach((v, i) => assert.ok(Math.abs(v - f[i]!) <= 1e-4 * scale + 1e-7, `${name}[${i}]`));
  }
});
