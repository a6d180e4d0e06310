import assert from "node:assert/strict";
import { cutBatch, maxMicroBatches } from "../../../train/parallel/shard.ts";
import { GradTree, TREE, treeStateLength } from "../../../train/parallel/reduce.ts";

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

Deno.test("the reduction tree of every cut fits its state: right sum, every region back", () => {
  // a ragged tree (e.g. 5 leaves: 5 + 3 + 2 + 1 nodes) has more than 2K nodes; with
  // too small a state, the top's arrival count overlapped leaf 0's region slot
  const layout = { grads: [["p", "g"]] as [string, string][], offsets: [0], sizes: [1], total: 1 };
  for (let k = 1; k <= 40; k++) {
    for (const deferTop of [false, true]) {
      for (const order of ["forward", "reverse"]) {
        const n = 31;
        const tree = new GradTree(
          layout,
          new Float32Array(n),
          new Int32Array(treeStateLength(k)),
          k,
          deferTop,
        );
        tree.resetFree(n);
        tree.resetStep(k);
        // hold region 0, so leaf 0's region number is not 0
        const held = tree.tryAcquire();
        let spare = -1;
        for (let j = 0; j < k; j++) {
          const leaf = order === "forward" ? j : k - 1 - j;
          if (spare < 0) spare = tree.tryAcquire();
          const outs = [new Float32Array(1), Float32Array.of(leaf + 1)];
          if (tree.leaf(leaf, 1, outs, spare)) spare = -1;
        }
        assert.ok(tree.root() >= 0, `k ${k}: no root`);
        const sum = new Float32Array(1);
        tree.takeRoot([sum]);
        assert.equal(sum[0], (k * (k + 1)) / 2, `k ${k} deferTop ${deferTop} ${order}`);
        if (spare >= 0) tree.release(spare);
        tree.release(held);
        assert.equal(tree.stateArray[TREE.FREE], 0x7fffffff, `k ${k}: a region was lost`);
      }
    }
  }
});
