import assert from "node:assert/strict";
import { cutBatch, maxMicroBatches } from "../../../train/parallel/shard.ts";

function cut(n: number, micro: number, tail: number): number[] {
  const starts = new Int32Array(n + 2);
  const k = cutBatch(n, micro, tail, starts);
  return [...starts.subarray(0, k + 1)];
}

Deno.test("an even cut: micro-batches of `micro` samples, the last one smaller", () => {
  assert.deepEqual(cut(64, 32, 32), [0, 32, 64]);
  assert.deepEqual(cut(37, 16, 16), [0, 16, 32, 37]);
  assert.deepEqual(cut(5, 32, 32), [0, 5]);
  // a tail above micro means the even cut
  assert.deepEqual(cut(64, 32, 99), [0, 32, 64]);
});

Deno.test("a guided tail halves what is left down to `tail` samples", () => {
  assert.deepEqual(cut(64, 32, 8), [0, 32, 48, 56, 64]);
  assert.deepEqual(cut(256, 32, 8), [0, 32, 64, 96, 128, 160, 192, 224, 240, 248, 256]);
  assert.deepEqual(cut(37, 32, 8), [0, 19, 28, 36, 37]);
  assert.deepEqual(cut(1, 32, 8), [0, 1]);
  for (const n of [1, 7, 63, 64, 65, 200]) {
    const s = cut(n, 16, 4);
    assert.equal(s.at(-1), n);
    for (let i = 1; i < s.length; i++) {
      const size = s[i]! - s[i - 1]!;
      assert.ok(size >= 1 && size <= 16, `n ${n}: ${s}`);
    }
    assert.ok(s.length - 1 <= maxMicroBatches(200, 16, 4));
  }
});
