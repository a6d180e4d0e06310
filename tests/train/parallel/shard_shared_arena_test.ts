import assert from "node:assert/strict";
import { initParams } from "../../../graph/params.ts";
import { lectureCnn, mnistNet } from "../../../train/models.ts";
import { GradientShard, type ShardInit } from "../../../train/parallel/shard.ts";
import { arenaKernels, arenaMemory, arenaScratch } from "../../../ops/kernels/elementwise_wasm.ts";
import type { Classifier } from "../../../train/models.ts";

const COUNT = 96;

function shardInit(spec: Classifier, params: Map<string, Float32Array>): ShardInit {
  const images = new Float32Array(COUNT * 784).map((_, i) => ((i * 7919) % 251) / 251 - 0.3);
  const labels = new Uint8Array(COUNT).map((_, i) => (i * 7) % 10);
  return {
    graph: spec.graph,
    input: spec.input,
    target: spec.target,
    loss: spec.loss,
    grads: Object.entries(spec.grads),
    params,
    images,
    labels,
    sampleSize: 784,
    indices: new Uint32Array(COUNT).map((_, i) => (i * 37) % COUNT),
    tier: "wasm",
    microBatch: 32,
  };
}

/** Every micro-batch of a batch of `n` at step `step`: [loss, ...gradients] copied, and the arenas. */
function run(shard: GradientShard, n: number, step: number) {
  const count = shard.count(n);
  const partials = new Float32Array(Math.max(1, count * shard.partialSize));
  for (let p = 0; p < shard.phases - 1; p++) {
    for (let k = 0; k < count; k++) shard.runPhase(step, p, k, n, partials);
  }
  const outs: Float32Array[][] = [];
  const bufs: ArrayBufferLike[] = [];
  for (let k = 0; k < count; k++) {
    const o = shard.runFinal(step, k, n, partials) as Float32Array[];
    outs.push(o.map((a) => a.slice()));
    bufs.push(o[0]!.buffer);
  }
  return { outs, bufs };
}

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

for (
  const [name, make, expect] of [
    ["lecture CNN (32 channels, fused)", () => lectureCnn(), ["conv_relu_pool", "gemm"]],
    ["mnist-net", () => mnistNet({ seed: 2 }), [
      "gemm",
      "winograd",
      "winograd_filter",
      "elementwise_chain",
    ]],
  ] as const
) {
  Deno.test(`GradientShard on a shared arena: ${name}: loss and gradients bit-identical to an unshared arena, on the wasm kernels`, () => {
    const spec = make();
    const params = initParams(spec.built, { seed: 5 }) as Map<string, Float32Array>;
    const init = shardInit(spec, params);
    const plain = new GradientShard(init);
    const shared = new GradientShard({ ...init, sharedArena: true });
    // the plan of a micro-batch size built eagerly: its arena, to post to a helper
    const a = shared.arenaFor(32);
    assert.ok(a, "a shared wasm arena (WebAssembly SIMD is present here)");
    assert.ok(a.memory.buffer instanceof SharedArrayBuffer);
    assert.equal(a.scratchStart, arenaScratch(a.memory.buffer)!.byteOffset);
    assert.equal(plain.arenaFor(32), null);
    for (const [n, step] of [[64, 0], [96, 1], [40, 2]]) {
      const p = run(plain, n, step), s = run(shared, n, step);
      assert.equal(s.outs.length, p.outs.length);
      for (let k = 0; k < p.outs.length; k++) {
        assert.ok(s.bufs[k] instanceof SharedArrayBuffer, `micro-batch ${k}: a shared arena`);
        assert.ok(p.bufs[k] instanceof ArrayBuffer, `micro-batch ${k}: an unshared arena`);
        assert.ok(arenaMemory(s.bufs[k]!), "the shared arena is a wasm memory");
        p.outs[k]!.forEach((want, o) => {
          assert.deepEqual(bits(s.outs[k]![o]!), bits(want), `n ${n} micro-batch ${k} output ${o}`);
        });
        // the same wasm modules ran on both arenas (none fell back to TypeScript)
        const kernels = arenaKernels(s.bufs[k]!);
        assert.deepEqual(kernels, arenaKernels(p.bufs[k]!));
        for (const e of ["elementwise", ...expect]) assert.ok(kernels.includes(e), kernels.join());
      }
    }
    // the 32-sample plan's arena is the one arenaFor gave
    assert.equal(run(shared, 64, 3).bufs[0], a.memory.buffer);
  });
}
