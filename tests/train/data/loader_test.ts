import assert from "node:assert/strict";
import { BatchLoader } from "../../../train/data/loader.ts";
import { allocDataset, type Dataset } from "../../../train/data/dataset.ts";

/** A dataset whose sample i has every pixel equal to i / 1000 and label i % 10. */
function numbered(count: number): Dataset {
  const ds = allocDataset({ name: "numbered", count, sampleShape: [1, 2, 3], numClasses: 10 });
  for (let i = 0; i < count; i++) {
    ds.images.fill(i / 1000, i * 6, (i + 1) * 6);
    ds.labels[i] = i % 10;
  }
  return ds;
}

/** Runs one epoch and returns the sample ids in the order they were served, per batch. */
function epoch(loader: BatchLoader, e: number, batch: number): number[][] {
  const x = new Float32Array(batch * 6).fill(-1);
  const y = new Float32Array(batch).fill(-1);
  const out: number[][] = [];
  for (let s = 0; s < loader.stepsPerEpoch; s++) {
    const n = loader.fill(e, s, x, y);
    const ids: number[] = [];
    for (let i = 0; i < n; i++) {
      const id = Math.round(x[i * 6] * 1000);
      // Every pixel of the sample and its label were copied together.
      for (let p = 0; p < 6; p++) assert.equal(x[i * 6 + p], Math.fround(id / 1000));
      assert.equal(y[i], id % 10);
      ids.push(id);
    }
    out.push(ids);
  }
  return out;
}

Deno.test("BatchLoader visits every sample exactly once per epoch, last batch partial", () => {
  const ds = numbered(23);
  const loader = new BatchLoader(ds, { batch: 5, seed: 11 });
  assert.equal(loader.stepsPerEpoch, 5);
  for (const e of [0, 1, 7]) {
    const batches = epoch(loader, e, 5);
    assert.deepEqual(batches.map((b) => b.length), [5, 5, 5, 5, 3]);
    const flat = batches.flat();
    assert.deepEqual([...flat].sort((a, b) => a - b), Array.from({ length: 23 }, (_, i) => i));
    assert.deepEqual(flat, [...loader.epochOrder(e)]);
  }
});

Deno.test("BatchLoader with dropLast skips the partial batch", () => {
  const loader = new BatchLoader(numbered(23), { batch: 5, seed: 11, dropLast: true });
  assert.equal(loader.stepsPerEpoch, 4);
  const batches = epoch(loader, 0, 5);
  assert.deepEqual(batches.map((b) => b.length), [5, 5, 5, 5]);
  assert.throws(() => loader.fill(0, 4, new Float32Array(30), new Float32Array(5)), /step 4/);
});

Deno.test("BatchLoader epoch order depends only on (seed, epoch)", () => {
  const ds = numbered(100);
  const a = new BatchLoader(ds, { batch: 8, seed: 3 });
  const orders = [0, 1, 2].map((e) => [...a.epochOrder(e)]);
  // A fresh loader, as after resuming from a checkpoint, asked for epoch 2 first.
  const b = new BatchLoader(ds, { batch: 8, seed: 3 });
  assert.deepEqual([...b.epochOrder(2)], orders[2]);
  assert.deepEqual([...b.epochOrder(0)], orders[0]);
  assert.deepEqual(epoch(b, 1, 8).flat(), orders[1]);
  assert.notDeepEqual(orders[0], orders[1]);
  assert.notDeepEqual(orders[1], orders[2]);
  const c = new BatchLoader(ds, { batch: 8, seed: 4 });
  assert.notDeepEqual([...c.epochOrder(0)], orders[0]);
  // The order is independent of the batch size, so changing it keeps the sample sequence.
  assert.deepEqual([...new BatchLoader(ds, { batch: 13, seed: 3 }).epochOrder(1)], orders[1]);
  // Returned orders are copies the caller may modify.
  a.epochOrder(0).fill(0);
  assert.deepEqual([...a.epochOrder(0)], orders[0]);
});

Deno.test("BatchLoader without shuffle serves samples in order", () => {
  const loader = new BatchLoader(numbered(7), { batch: 3, seed: 0, shuffle: false });
  assert.deepEqual(epoch(loader, 5, 3), [[0, 1, 2], [3, 4, 5], [6]]);
});

Deno.test("BatchLoader rejects bad options and too-small buffers", () => {
  const ds = numbered(10);
  assert.throws(() => new BatchLoader(ds, { batch: 0, seed: 0 }), /"numbered".*got 0/);
  assert.throws(() => new BatchLoader(ds, { batch: 2, seed: 0.5 }), /seed .* got 0.5/);
  const loader = new BatchLoader(ds, { batch: 4, seed: 0 });
  assert.throws(
    () => loader.fill(0, 0, new Float32Array(23), new Float32Array(4)),
    /x holds 23 values but a batch of 4 needs 24/,
  );
  assert.throws(
    () => loader.fill(0, 0, new Float32Array(24), new Float32Array(3)),
    /labels holds 3 values but a batch needs 4/,
  );
  assert.throws(() => loader.fill(-1, 0, new Float32Array(24), new Float32Array(4)), /epoch/);
  // The last batch has 2 samples, so buffers for 2 are enough.
  assert.equal(loader.fill(0, 2, new Float32Array(12), new Float32Array(2)), 2);
});
