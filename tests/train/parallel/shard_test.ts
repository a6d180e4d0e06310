import assert from "node:assert/strict";
import { cutBatch, maxMicroBatches } from "../../../train/parallel/shard.ts";
import { GradTree, regionCount, TREE, treeStateLength } from "../../../train/parallel/reduce.ts";

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

/** A gradient tree over `k` leaves of one value each, with `n` free regions, ready for a step. */
function oneValueTree(k: number, n: number, deferTop: boolean): GradTree {
  const layout = { grads: [["p", "g"]] as [string, string][], offsets: [0], sizes: [1], total: 1 };
  const tree = new GradTree(
    layout,
    new Float32Array(n),
    new Int32Array(treeStateLength(k)),
    k,
    deferTop,
  );
  tree.resetFree(n);
  tree.resetStep(k);
  return tree;
}

Deno.test("the reduction tree of every cut fits its state: right sum, every region back", () => {
  // a ragged tree (e.g. 5 leaves: 5 + 3 + 2 + 1 nodes) has more than 2K nodes; with
  // too small a state, the top's arrival count overlapped leaf 0's region slot
  for (let k = 1; k <= 40; k++) {
    for (const deferTop of [false, true]) {
      for (const order of ["forward", "reverse"]) {
        const n = 31;
        const tree = oneValueTree(k, n, deferTop);
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

Deno.test("regionCount regions never stall T threads claiming in any order of completion", () => {
  // a step as the lanes run it: a lane takes a spare region, claims the next leaf,
  // finishes its claimed leaves in a random order; it stalls only if no region is free
  let seed = 12345;
  const rand = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  for (let k = 1; k <= 40; k++) {
    for (let threads = 1; threads <= 4; threads++) {
      for (const deferTop of [false, true]) {
        for (let trial = 0; trial < 20; trial++) {
          const n = regionCount(k, threads);
          const tree = oneValueTree(k, n, deferTop);
          const spare = new Array<number>(threads).fill(-1);
          const busy = new Array<number>(threads).fill(-1);
          let next = 0;
          for (;;) {
            // every idle lane claims while leaves are left (taking a spare first)
            for (let t = 0; t < threads; t++) {
              if (busy[t]! >= 0 || next >= k) continue;
              if (spare[t]! < 0) spare[t] = tree.tryAcquire();
              if (spare[t]! >= 0) busy[t] = next++;
            }
            const working = busy.flatMap((b, t) => (b >= 0 ? [t] : []));
            if (working.length === 0) break;
            const t = working[rand(working.length)]!;
            const outs = [new Float32Array(1), Float32Array.of(busy[t]! + 1)];
            if (tree.leaf(busy[t]!, 1, outs, spare[t]!)) spare[t] = -1;
            busy[t] = -1;
          }
          const what = `k ${k}, ${threads} threads, deferTop ${deferTop}, trial ${trial}`;
          assert.equal(next, k, `${what}: stalled with ${k - next} leaves left`);
          const sum = new Float32Array(1);
          tree.takeRoot([sum]);
          assert.equal(sum[0], (k * (k + 1)) / 2, what);
        }
      }
    }
  }
});
