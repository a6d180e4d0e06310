import assert from "node:assert/strict";
import fc from "npm:fast-check@3.23.2";
import { greedyMakespan, syncBound } from "../../bench/_sync_bound.ts";
import { cutBatch } from "../../train/parallel/shard.ts";

/** The micro-batch sizes of `cutBatch`. */
function cut(n: number, micro: number, tail: number): number[] {
  const starts = new Int32Array(n + 1);
  const k = cutBatch(n, micro, tail, starts);
  return Array.from({ length: k }, (_, i) => starts[i + 1]! - starts[i]!);
}

Deno.test("syncBound: two micro-batches on two threads is the slower rate twice over the sum", () => {
  fc.assert(fc.property(
    fc.double({ min: 1, max: 1e5, noNaN: true }),
    fc.double({ min: 1, max: 1e5, noNaN: true }),
    (r1, r2) => {
      const b = syncBound([32, 32], [r1, r2]);
      const want = (2 * Math.min(r1, r2)) / (r1 + r2);
      assert.ok(Math.abs(b - want) < 1e-12, `${r1}, ${r2}: ${b} vs ${want}`);
    },
  ));
});

Deno.test("syncBound is at most 1 without a fixed cost, and 1 for equal threads and an even cut", () => {
  fc.assert(fc.property(
    fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 12 }),
    fc.array(fc.double({ min: 1, max: 1e5, noNaN: true }), { minLength: 1, maxLength: 4 }),
    (sizes, rates) => {
      assert.ok(syncBound(sizes, rates) <= 1 + 1e-12);
    },
  ));
  for (const threads of [1, 2, 3, 4]) {
    const rates = new Array(threads).fill(1234);
    assert.equal(syncBound(new Array(4 * threads).fill(16), rates).toFixed(12), "1.000000000000");
  }
});

Deno.test("greedyMakespan follows claiming in order: the thread free first takes the next", () => {
  // batch 256 at micro 64 ending in 32s, threads of 1000 and 500 samples/s:
  // fast 64 (64 ms), slow 64 (128), fast 64 (128), tie: fast 32 (160), slow 32 (192)
  const sizes = cut(256, 64, 32);
  assert.deepEqual(sizes, [64, 64, 64, 32, 32]);
  assert.equal(greedyMakespan(sizes, [1000, 500]).toFixed(6), "0.192000");
  // the order of the threads does not matter
  assert.equal(greedyMakespan(sizes, [500, 1000]).toFixed(6), "0.192000");
  // 1 ms more per micro-batch changes the claims: fast 64 (65), slow 64 (129),
  // fast 64 (130), slow 32 (194), fast 32 (163)
  assert.equal(greedyMakespan(sizes, [1000, 500], 0.001).toFixed(6), "0.194000");
  // one thread takes everything
  assert.equal(greedyMakespan(sizes, [1000]).toFixed(6), "0.256000");
  assert.equal(greedyMakespan(sizes, [1000], 0.001).toFixed(6), "0.261000");
});

Deno.test("syncBound: finer cuts of the end recover more of a slow thread's loss", () => {
  const rates = [1000, 700];
  const b64 = syncBound(cut(64, 32, 32), rates);
  const b64tail = syncBound(cut(64, 32, 8), rates); // 32, 16, 8, 8
  assert.equal(b64.toFixed(4), (1400 / 1700).toFixed(4));
  assert.ok(b64tail > b64, `${b64tail} vs ${b64}`);
});

Deno.test("syncBound and greedyMakespan name bad input", () => {
  assert.throws(() => syncBound([32], [1000, 0]), /rates must be finite and > 0, got \[1000,0\]/);
  assert.throws(() => syncBound([32], []), /rates must be finite and > 0/);
  assert.throws(() => syncBound([-1], [1]), /sizes must be finite and ≥ 0, got \[-1\]/);
  assert.throws(() => greedyMakespan([1], [1], -1), /fixedSec must be finite and ≥ 0, got -1/);
  assert.throws(() => syncBound([], [1]), /an empty step/);
});
