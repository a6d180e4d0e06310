/**
 * The gradient reduction: the batch-mean gradient as one fixed binary tree
 * over micro-batch indices, whichever thread computed each micro-batch, so
 * the result is the same bits for any thread count and any schedule.
 *
 * Leaf `k` is `w_k · g_k` rounded to float32 (`w_k` the micro-batch's share
 * of the samples); a node is the float32 sum of its two children; a node
 * without a right sibling (the tree's ragged right edge) passes its value up
 * unchanged. The thread that completes the second child of a node adds the
 * two and carries on upwards; the first publishes its region and stops. A
 * finished leaf whose sibling is already done is added into the sibling's
 * region straight from the executor's buffers, without a copy.
 *
 * Memory: gradient regions of every parameter back to back, `⌈log2 K⌉ + T`
 * of them for `K` micro-batches and `T` threads (the partial sums waiting for
 * a sibling and one per computing thread, a bound that never stalls). For
 * mnist-net's 1.2 M parameters (4.8 MB a region) at batch 256 in
 * micro-batches of 32 on 2 threads: 3 + 2 = 5 regions, 24 MB.
 *
 * The float loops run in WebAssembly SIMD (`ops/kernels/reduce_wasm.ts`)
 * when the regions are in a shared WebAssembly memory (`sharedRegions`) and
 * a gradient is in a wasm arena, else in JavaScript here: the same bits.
 *
 * @module
 */
import type { FloatArray } from "../../graph/op.ts";
import type { Layout } from "./spec.ts";
import { ReduceWasm } from "../../ops/kernels/reduce_wasm.ts";

/**
 * Slots of the tree's state array: free-region bitmap, root region, then
 * per-node arrivals and regions.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GradTree, TREE, treeStateLength } from "./reduce.ts";
 * const grads: [string, string][] = [["w", "grad w"]];
 * const layout = { grads, offsets: [0], sizes: [1], total: 1 };
 * const state = new Int32Array(treeStateLength(4));
 * const tree = new GradTree(layout, new Float32Array(3), state, 4);
 * tree.resetFree(3);
 * assert.equal(state[TREE.FREE], 0b111); // regions 0, 1 and 2 free
 * tree.resetStep(4);
 * assert.equal(state[TREE.ROOT], -1); // no root yet
 * assert.equal(tree.tryAcquire(), 0); // thread 0's own region first
 * assert.equal(state[TREE.FREE], 0b110);
 * ```
 */
export const TREE = { FREE: 0, ROOT: 1, HEAD: 2 } as const;

/**
 * Int32 slots of the state of a tree over at most `maxK` micro-batches: an
 * arrival count and a region slot per node, in halves of `(length - HEAD) / 2`.
 * A ragged tree has more than `2K` nodes (5 leaves: 5 + 3 + 2 + 1), at most
 * `2K + ⌈log2 K⌉ + 1`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TREE, treeStateLength } from "./reduce.ts";
 * const half = (treeStateLength(5) - TREE.HEAD) / 2;
 * assert.equal(half, 18);
 * assert.ok(half >= 5 + 3 + 2 + 1); // room for every node of a ragged tree over 5 leaves
 * ```
 */
export function treeStateLength(maxK: number): number {
  return TREE.HEAD + 4 * (maxK + treeLevels(maxK) + 1);
}

/**
 * Levels above the leaves of a tree over `k` leaves: `⌈log2 k⌉`, at most 31
 * (more than a tree can have: {@linkcode regionCount} refuses it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { treeLevels } from "./reduce.ts";
 * assert.deepEqual([1, 2, 3, 4, 5, 8, 9].map(treeLevels), [0, 1, 2, 2, 3, 3, 4]);
 * ```
 */
export function treeLevels(k: number): number {
  let l = 0;
  // 1 << 31 is negative: stop there rather than loop forever
  while (l < 31 && (1 << l) < k) l++;
  return l;
}

/**
 * The root value of the pair of regions `a` and `b` (see {@linkcode GradTree.root}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pairOf, rootRegions } from "./reduce.ts";
 * assert.deepEqual(rootRegions(pairOf(0, 1)), [0, 1]);
 * assert.ok(pairOf(0, 0) > 31); // never mistaken for a single region (0..30)
 * ```
 */
export function pairOf(a: number, b: number): number {
  return a | ((b + 1) << 5);
}

/**
 * The regions of a root value: `[a, -1]` for one region, `[a, b]` for a
 * pair whose sum is the root.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pairOf, rootRegions } from "./reduce.ts";
 * assert.deepEqual(rootRegions(pairOf(3, 7)), [3, 7]);
 * assert.deepEqual(rootRegions(4), [4, -1]);
 * ```
 */
export function rootRegions(root: number): [number, number] {
  return [root & 31, (root >> 5) - 1];
}

/**
 * Gradient regions a tree over at most `maxK` micro-batches needs for `lanes` threads.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { regionCount } from "./reduce.ts";
 * assert.equal(regionCount(8, 2), 5); // batch 256 in micro-batches of 32 on 2 threads: 3 + 2
 * assert.equal(regionCount(1, 1), 1);
 * assert.equal(regionCount(1 << 20, 16), 31); // at most 31: the free-region bitmap's bits
 * ```
 */
export function regionCount(maxK: number, lanes: number): number {
  const n = treeLevels(maxK) + lanes;
  if (treeLevels(maxK) + 1 > 31) throw new Error(`GradTree: too many micro-batches (${maxK})`);
  return Math.min(31, n);
}

/**
 * One thread's handle on a gradient tree in shared memory (`state`,
 * `regions`); every thread of a step calls {@linkcode GradTree.prepare} with
 * the step's micro-batch count, the main thread {@linkcode GradTree.resetStep}
 * before any starts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GradTree, regionCount, treeStateLength } from "./reduce.ts";
 * // one gradient of 2 floats, a step of 3 micro-batches on 1 thread
 * const grads: [string, string][] = [["w", "grad w"]];
 * const layout = { grads, offsets: [0], sizes: [2], total: 2 };
 * const k = 3, n = regionCount(k, 1);
 * const tree = new GradTree(layout, new Float32Array(n * 2), new Int32Array(treeStateLength(k)), k);
 * tree.resetFree(n);
 * tree.resetStep(k);
 * const g = [[0.1, 1], [0.2, 2], [0.3, 3]].map((v) => Float32Array.from(v));
 * const w = [0.4, 0.4, 0.2]; // each micro-batch's share of the samples
 * let spare = -1;
 * for (let i = 0; i < k; i++) {
 *   if (spare < 0) spare = tree.tryAcquire();
 *   // outs[0] is the micro-batch's loss, outs[1..] its gradients
 *   if (tree.leaf(i, w[i]!, [new Float32Array(1), g[i]!], spare)) spare = -1;
 * }
 * if (spare >= 0) tree.release(spare);
 * assert.ok(tree.root() >= 0); // complete
 * const out = new Float32Array(2);
 * tree.takeRoot([out]);
 * // (leaf 0 + leaf 1) + leaf 2, every leaf and sum rounded to float32
 * const f = Math.fround;
 * const leaf = (i: number, j: number) => f(w[i]! * g[i]![j]!);
 * assert.deepEqual([...out], [0, 1].map((j) => f(f(leaf(0, j) + leaf(1, j)) + leaf(2, j))));
 * assert.ok(Math.abs(out[0]! - 0.18) < 1e-6 && Math.abs(out[1]! - 1.8) < 1e-6); // the weighted mean
 * assert.equal(tree.root(), -1); // taken: every region free again
 * ```
 */
export class GradTree {
  /** Floats per region. */
  readonly total: number;
  private layout: Layout;
  private regions: Float32Array;
  private state: Int32Array;
  private base: Int32Array;
  private count: Int32Array;
  private levels = 0;
  /** The loops in WebAssembly, when the regions are in a shared wasm memory. */
  private wasm: ReduceWasm | null;

  /** Leaves the top node's sum undone (see {@linkcode GradTree.root}). */
  readonly deferTop: boolean;
  /** The bit of this thread's own region (see {@linkcode GradTree.tryAcquire}). */
  private home: number;

  /**
   * A handle on `state` (see {@linkcode TREE}) and `regions` (`regionCount`
   * of `layout.total` floats). With `deferTop` the thread completing the top
   * node does not add its two halves: the root is the pair, summed by
   * whoever takes it (the parallel update, by ranges, on every thread).
   * `thread` (0 for the main thread's lane, worker `i` for the others) picks
   * the region this handle prefers.
   */
  constructor(
    layout: Layout,
    regions: Float32Array,
    state: Int32Array,
    maxK: number,
    deferTop = false,
    thread = 0,
  ) {
    this.deferTop = deferTop;
    this.home = thread >= 0 && thread < 31 ? 1 << thread : 0;
    this.layout = layout;
    this.total = layout.total;
    this.regions = regions;
    this.wasm = ReduceWasm.of(regions);
    this.state = state;
    this.base = new Int32Array(treeLevels(maxK) + 2);
    this.count = new Int32Array(treeLevels(maxK) + 2);
  }

  /** Marks every one of `n` regions free; only while no thread is in a step. */
  resetFree(n: number): void {
    Atomics.store(this.state, TREE.FREE, n >= 31 ? 0x7fffffff : (1 << n) - 1);
  }

  /** Binds this handle to a step of `k` micro-batches. */
  prepare(k: number): void {
    let l = 0, at = 0, c = k;
    for (;;) {
      this.base[l] = at;
      this.count[l] = c;
      at += c;
      if (c === 1) break;
      c = (c + 1) >> 1;
      l++;
    }
    this.levels = l;
  }

  /** Clears the arrivals of a step of `k` micro-batches (main thread, before the step starts). */
  resetStep(k: number): void {
    this.prepare(k);
    const nodes = this.base[this.levels]! + 1;
    this.state.fill(0, TREE.HEAD, TREE.HEAD + nodes);
    Atomics.store(this.state, TREE.ROOT, -1);
  }

  /**
   * A free region, or -1 when none is: this thread's own region (region `t`
   * for thread `t`) when it is free, else the highest free one (the regions
   * above the threads' own are nobody's), so a thread writes its leaves
   * where its core's cache already holds the lines, step after step, and
   * takes another thread's region only when nothing else is free.
   */
  tryAcquire(): number {
    const s = this.state;
    for (;;) {
      const v = Atomics.load(s, TREE.FREE);
      if (v === 0) return -1;
      const bit = (v & this.home) !== 0 ? this.home : 1 << (31 - Math.clz32(v));
      if (Atomics.compareExchange(s, TREE.FREE, v, v & ~bit) === v) return 31 - Math.clz32(bit);
    }
  }

  /** Gives region `r` back and wakes a thread waiting for one. */
  release(r: number): void {
    Atomics.or(this.state, TREE.FREE, 1 << r);
    Atomics.notify(this.state, TREE.FREE);
  }

  /** The state array (waiting for a free region is waiting on its slot 0, {@linkcode TREE.FREE}). */
  get stateArray(): Int32Array {
    return this.state;
  }

  /**
   * The root once the step's reduction is complete, else -1: a region, or
   * with `deferTop` possibly a pair whose sum is the root (see
   * {@linkcode rootRegions}).
   */
  root(): number {
    return Atomics.load(this.state, TREE.ROOT);
  }

  /** Frees every region but those of the root `root` (a pair or one); only while no thread is in a step. */
  keepOnly(n: number, root: number): void {
    const [a, b] = rootRegions(root);
    let free = n >= 31 ? 0x7fffffff : (1 << n) - 1;
    free &= ~(1 << a);
    if (b >= 0) free &= ~(1 << b);
    Atomics.store(this.state, TREE.FREE, free);
  }

  /**
   * Adds leaf `k` (`w · outs[1..]`, the gradients of one micro-batch) into the
   * tree, with `spare` a region this thread holds; returns whether `spare`
   * was used (it now belongs to the tree).
   */
  leaf(k: number, w: number, outs: FloatArray[], spare: number): boolean {
    const s = this.state;
    const arrive = TREE.HEAD;
    const regionOf = TREE.HEAD + 2 * this.capacity();
    let region = -1;
    let used = false;
    let i = k;
    for (let l = 0;; l++) {
      if (l === this.levels) {
        if (region < 0) {
          this.writeLeaf(spare, w, outs);
          region = spare;
          used = true;
        }
        Atomics.store(s, TREE.ROOT, region);
        Atomics.notify(s, TREE.ROOT);
        return used;
      }
      const sib = i ^ 1;
      const parent = arrive + this.base[l + 1]! + (i >> 1);
      const top = this.deferTop && l === this.levels - 1;
      if (sib < this.count[l]!) {
        if (region < 0 && Atomics.load(s, parent) === 1 && !top) {
          // the sibling is done: add this leaf into its region, no copy
          region = Atomics.load(s, regionOf + this.base[l]! + sib);
          this.addLeaf(region, w, outs);
        } else {
          if (region < 0) {
            this.writeLeaf(spare, w, outs);
            region = spare;
            used = true;
          }
          Atomics.store(s, regionOf + this.base[l]! + i, region);
          if (Atomics.add(s, parent, 1) === 0) return used;
          const other = Atomics.load(s, regionOf + this.base[l]! + sib);
          if (top) {
            // the last sum is the taker's (float32 addition is commutative: the order of the pair does not matter)
            Atomics.store(s, TREE.ROOT, pairOf(region, other));
            Atomics.notify(s, TREE.ROOT);
            return used;
          }
          this.addRegion(region, other);
          this.release(other);
        }
      }
      i >>= 1;
    }
  }

  /** Copies the root's sum into the caller's buffers and frees its regions. */
  takeRoot(outs: Float32Array[]): void {
    const [r, b] = rootRegions(this.root());
    if (b >= 0) {
      this.addRegion(r, b);
      this.release(b);
    }
    const { offsets, sizes } = this.layout;
    const base = r * this.total;
    for (let k = 0; k < outs.length; k++) {
      const off = base + offsets[k]!;
      outs[k]!.set(this.regions.subarray(off, off + sizes[k]!));
    }
    Atomics.store(this.state, TREE.ROOT, -1);
    this.release(r);
  }

  /**
   * After the parallel update summed the root's pair into its first region:
   * copies the entries of `outs` that are not null (layout order) out of it
   * and frees the root's regions.
   */
  releaseRoot(outs: (Float32Array | null)[]): void {
    const [r, b] = rootRegions(this.root());
    const { offsets, sizes } = this.layout;
    const base = r * this.total;
    for (let k = 0; k < outs.length; k++) {
      const off = base + offsets[k]!;
      outs[k]?.set(this.regions.subarray(off, off + sizes[k]!));
    }
    Atomics.store(this.state, TREE.ROOT, -1);
    this.release(r);
    if (b >= 0) this.release(b);
  }

  private capacity(): number {
    return (this.state.length - TREE.HEAD) >> 2;
  }

  private writeLeaf(r: number, w: number, outs: FloatArray[]): void {
    const g = this.regions;
    const { offsets, sizes } = this.layout;
    for (let k = 0; k < sizes.length; k++) {
      const src = outs[k + 1]!;
      const at = r * this.total + offsets[k]!;
      const n = sizes[k]!;
      if (this.wasm?.scale(w, src, at, n)) continue;
      for (let j = 0; j < n; j++) g[at + j] = w * src[j]!;
    }
  }

  private addLeaf(r: number, w: number, outs: FloatArray[]): void {
    const g = this.regions;
    const { offsets, sizes } = this.layout;
    for (let k = 0; k < sizes.length; k++) {
      const src = outs[k + 1]!;
      const at = r * this.total + offsets[k]!;
      const n = sizes[k]!;
      if (this.wasm?.addScaled(w, src, at, n)) continue;
      // the leaf rounded to float32 first, as if it had been stored
      for (let j = 0; j < n; j++) g[at + j] = g[at + j]! + Math.fround(w * src[j]!);
    }
  }

  private addRegion(r: number, other: number): void {
    const g = this.regions;
    const a = r * this.total, b = other * this.total;
    if (this.wasm) return this.wasm.add(a, b, this.total);
    for (let j = 0; j < this.total; j++) g[a + j] = g[a + j]! + g[b + j]!;
  }
}
