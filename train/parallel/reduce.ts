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
 * @module
 */
import type { FloatArray } from "../../graph/op.ts";
import type { Layout } from "./spec.ts";

/** Slots of the tree's state array: free-region bitmap, root region, then per-node arrivals and regions. */
export const TREE = { FREE: 0, ROOT: 1, HEAD: 2 } as const;

/** Int32 slots of the state of a tree over at most `maxK` micro-batches. */
export function treeStateLength(maxK: number): number {
  return TREE.HEAD + 4 * maxK;
}

/** Levels above the leaves of a tree over `k` leaves: `⌈log2 k⌉`. */
export function treeLevels(k: number): number {
  let l = 0;
  while ((1 << l) < k) l++;
  return l;
}

/** Gradient regions a tree over at most `maxK` micro-batches needs for `lanes` threads. */
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

  /** A handle on `state` (see {@linkcode TREE}) and `regions` (`regionCount` of `layout.total` floats). */
  constructor(layout: Layout, regions: Float32Array, state: Int32Array, maxK: number) {
    this.layout = layout;
    this.total = layout.total;
    this.regions = regions;
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

  /** A free region, or -1 when none is. */
  tryAcquire(): number {
    const s = this.state;
    for (;;) {
      const v = Atomics.load(s, TREE.FREE);
      if (v === 0) return -1;
      const bit = v & -v;
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

  /** The root's region once the step's reduction is complete, else -1. */
  root(): number {
    return Atomics.load(this.state, TREE.ROOT);
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
      if (sib < this.count[l]!) {
        if (region < 0 && Atomics.load(s, parent) === 1) {
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
          this.addRegion(region, other);
          this.release(other);
        }
      }
      i >>= 1;
    }
  }

  /** Copies the root's region into the caller's buffers and frees it. */
  takeRoot(outs: Float32Array[]): void {
    const r = this.root();
    const { offsets, sizes } = this.layout;
    const base = r * this.total;
    for (let k = 0; k < outs.length; k++) {
      const off = base + offsets[k]!;
      outs[k]!.set(this.regions.subarray(off, off + sizes[k]!));
    }
    Atomics.store(this.state, TREE.ROOT, -1);
    this.release(r);
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
      // the leaf rounded to float32 first, as if it had been stored
      for (let j = 0; j < n; j++) g[at + j] = g[at + j]! + Math.fround(w * src[j]!);
    }
  }

  private addRegion(r: number, other: number): void {
    const g = this.regions;
    const a = r * this.total, b = other * this.total;
    for (let j = 0; j < this.total; j++) g[a + j] = g[a + j]! + g[b + j]!;
  }
}
