import assert from "node:assert/strict";
import { allocDataset, sampleSize } from "../../../train/data/dataset.ts";

Deno.test("allocDataset allocates zeroed shared arrays of the right size", () => {
  const ds = allocDataset({ name: "d", count: 3, sampleShape: [1, 4, 5], numClasses: 10 });
  assert.equal(ds.images.length, 60);
  assert.equal(ds.labels.length, 3);
  assert.ok(ds.images.buffer instanceof SharedArrayBuffer);
  assert.ok(ds.labels.buffer instanceof SharedArrayBuffer);
  assert.ok(ds.images.every((v) => v === 0));
  assert.equal(sampleSize(ds.sampleShape), 20);
});

Deno.test("allocDataset rejects bad sizes, naming the dataset", () => {
  const ok = { name: "d", count: 1, sampleShape: [2], numClasses: 2 };
  assert.throws(() => allocDataset({ ...ok, count: -1 }), /Dataset "d": count .* got -1/);
  assert.throws(() => allocDataset({ ...ok, sampleShape: [2, 0] }), /got \[2,0\]/);
  assert.throws(() => allocDataset({ ...ok, numClasses: 300 }), /got 300/);
});
