import assert from "node:assert/strict";
import { mlp, sharedData as mlpData } from "./_mlp.ts";
import type { Graph } from "../../../graph/graph.ts";
import { initParams } from "../../../graph/params.ts";
import {
  type GradientRunner,
  LocalRunner,
  type SharedData,
  type TrainGraphSpec,
  WorkerPool,
} from "../../../train/parallel/pool.ts";
import {
  defaultMicroBatch,
  GradientShard,
  LARGE_MICRO_BATCH,
  LARGE_MODEL_FLOATS,
  MICRO_BATCH,
} from "../../../train/parallel/shard.ts";
import { makeOptimizer } from "../../../train/optim/optimizer.ts";

const SIDE = 4;
const CLASSES = 10;
const SAMPLES = 600;

/** flatten -> linear(hidden) -> relu -> linear -> logSoftmax -> nllLoss: 27·hidden + 10 parameters. */
function wideModel(hidden: number): { spec: TrainGraphSpec; graph: Graph } {
  return mlp({ side: SIDE, hidden, classes: CLASSES, bounds: [0.5, 0.5, 0.01, 0.3] });
}

function sharedData(): SharedData {
  return mlpData(SAMPLES, SIDE, CLASSES);
}

// 256 takes the large micro-batches, 200 the small ones: a run switches between the two cuts
const BATCHES = [256, 200, 256];

function batches(): Uint32Array[] {
  let at = 0;
  return BATCHES.map((b) => Uint32Array.from({ length: b }, () => (at++ * 53) % SAMPLES));
}

/** Adam over `steps` steps of the batches in turn: every loss and the final parameters. */
async function run(
  runner: GradientRunner,
  params: Map<string, Float32Array>,
  steps: number,
): Promise<{ losses: number[]; params: Map<string, Float32Array> }> {
  const opt = makeOptimizer("adam", 1e-2);
  const grads = new Map<string, Float32Array>();
  const losses: number[] = [];
  const bs = batches();
  for (let s = 0; s < steps; s++) {
    losses.push((await runner.step(bs[s % bs.length]!, s, grads)).loss);
    opt.step(params, grads);
  }
  return { losses, params };
}

Deno.test("defaultMicroBatch takes large micro-batches only for a large model at a batch of four of them", () => {
  assert.equal(defaultMicroBatch(256, LARGE_MODEL_FLOATS), LARGE_MICRO_BATCH);
  assert.equal(defaultMicroBatch(4 * LARGE_MICRO_BATCH - 1, LARGE_MODEL_FLOATS), MICRO_BATCH);
  assert.equal(defaultMicroBatch(256, LARGE_MODEL_FLOATS - 1), MICRO_BATCH);
  assert.equal(defaultMicroBatch(1, 1), MICRO_BATCH);
});

Deno.test("a shard without a micro-batch size cuts by the model's parameter count and the batch", () => {
  // a large model: 64, 64, 64, 32, 32; a small one: 8 × 32
  for (const [hidden, at256] of [[10_000, 5], [100, 8]] as const) {
    const { spec, graph } = wideModel(hidden);
    const params = initParams(graph, { seed: 3 }) as Map<string, Float32Array>;
    const data = sharedData();
    const shard = new GradientShard({
      ...spec,
      grads: Object.entries(spec.grads),
      params,
      images: data.images,
      labels: data.labels,
      sampleSize: data.sampleSize,
      indices: new Uint32Array(256),
    });
    assert.equal(shard.paramFloats, 27 * hidden + CLASSES);
    assert.equal(shard.micro, null);
    assert.equal(shard.count(256), at256, `hidden ${hidden}`);
    assert.equal(shard.weight(at256 - 1, 256), 32 / 256);
    assert.equal(shard.count(200), 7, `hidden ${hidden}`); // 6 × 32 + 8
    // the region count is sized for the most micro-batches of any batch up to 256
    assert.equal(shard.maxCount(256), 8);
  }
});

Deno.test("the default cut of a large model gives the same bits on 1, 2, 3 and 4 threads", async () => {
  const { spec, graph } = wideModel(10_000); // 270,010 floats: large
  const data = sharedData();
  const fresh = () => initParams(graph, { seed: 3, shared: true }) as Map<string, Float32Array>;
  const p1 = fresh();
  const one = await run(new LocalRunner(spec, { params: p1, data, maxBatch: 256 }), p1, 6);
  for (const workers of [1, 2, 3, 4]) {
    const p = fresh();
    const pool = await WorkerPool.create(spec, { workers, params: p, data, maxBatch: 256 });
    try {
      const many = await run(pool, p, 6);
      assert.deepEqual(many.losses, one.losses, `${workers} threads`);
      for (const [k, v] of one.params) assert.deepEqual(many.params.get(k), v, `${workers}: ${k}`);
    } finally {
      await pool.close();
    }
  }
  // the cut is real: micro-batches of 32 sum in another order and give other bits
  const p32 = fresh();
  const small = await run(
    new LocalRunner(spec, { params: p32, data, maxBatch: 256, microBatch: 32 }),
    p32,
    6,
  );
  assert.notDeepEqual(small.params.get("fc1.weight"), one.params.get("fc1.weight"));
});
