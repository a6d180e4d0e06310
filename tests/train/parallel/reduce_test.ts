// The gradient tree with its loops in WebAssembly (regions in a shared wasm
// memory, gradients in a wasm arena) gives the bits of its JavaScript loops
// (regions in a plain buffer), and both the directly computed tree sum: the
// tree alone over random layouts, weights, leaf counts and completion orders,
// and whole runs of LocalRunner and a pool.
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import {
  GradTree,
  regionCount,
  treeLevels,
  treeStateLength,
} from "../../../train/parallel/reduce.ts";
import { ReduceWasm, sharedRegions } from "../../../ops/kernels/reduce_wasm.ts";
import { wasmArenaBuffer } from "../../../ops/kernels/elementwise_wasm.ts";
import { allocDataset, initParams, lectureCnn, LocalRunner, WorkerPool } from "../../../mod.ts";
import type { GradientRunner } from "../../../train/parallel/pool.ts";

const arena = wasmArenaBuffer(1 << 20)!;

/** A tree over `regions` for `k` leaves of `sizes`, ready for a step. */
function treeOf(sizes: number[], regions: Float32Array, maxK: number, deferTop: boolean) {
  const offsets: number[] = [];
  let total = 0;
  for (const s of sizes) offsets.push(total), total += s;
  const layout = {
    grads: sizes.map((_, i) => [`p${i}`, `g${i}`] as [string, string]),
    offsets,
    sizes,
    total,
  };
  return new GradTree(layout, regions, new Int32Array(treeStateLength(maxK)), maxK, deferTop);
}

/** Runs leaves `order` of a step through `tree` (one thread) and takes the root. */
function reduce(
  tree: GradTree,
  n: number,
  k: number,
  leaves: Float32Array[][],
  weights: number[],
  order: number[],
): Float32Array[] {
  tree.resetFree(n);
  tree.resetStep(k);
  let spare = -1;
  for (const leaf of order) {
    if (spare < 0) spare = tree.tryAcquire();
    assert.ok(spare >= 0, "no free region");
    if (tree.leaf(leaf, weights[leaf]!, [new Float32Array(1), ...leaves[leaf]!], spare)) spare = -1;
  }
  const outs = leaves[0]!.map((g) => new Float32Array(g.length));
  tree.takeRoot(outs);
  return outs;
}

/** The fixed tree's sum, computed directly: leaves `fround(w·g)`, pairs summed level by level. */
function treeSum(leaves: Float32Array[][], weights: number[]): Float32Array[] {
  let level: Float32Array[][] = leaves.map((gs, k) => gs.map((g) => g.map((x) => weights[k]! * x)));
  while (level.length > 1) {
    const up: Float32Array[][] = [];
    for (let i = 0; i < level.length; i += 2) {
      const b = level[i + 1];
      up.push(b ? level[i]!.map((a, e) => a.map((x, j) => x + b[e]![j]!)) : level[i]!);
    }
    level = up;
  }
  return level[0]!;
}

const caseArb = fc.record({
  sizes: fc.array(fc.integer({ min: 1, max: 70 }), { minLength: 1, maxLength: 5 }),
  k: fc.integer({ min: 1, max: 11 }),
  batch: fc.integer({ min: 11, max: 300 }),
  deferTop: fc.boolean(),
  seed: fc.integer(),
});

Deno.test("GradTree: the wasm loops give the JavaScript loops' bits for any layout, weights and order", () => {
  const maxK = 11;
  // any completion order on one thread: more partial sums wait than in claim order
  const n = 31;
  const floats = 5 * 70;
  const wasm = sharedRegions(n * floats);
  assert.ok(ReduceWasm.of(wasm), "the reduce module does not run here");
  fc.assert(
    fc.property(caseArb, ({ sizes, k, batch, deferTop, seed }) => {
      let s = seed >>> 0;
      const rand = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
      // every leaf's gradients in the wasm arena, one after another at odd offsets
      let at = 1;
      const leaves = Array.from({ length: k }, () =>
        sizes.map((size) => {
          const g = new Float32Array(arena, 4 * at, size);
          at += size + 1;
          for (let j = 0; j < size; j++) g[j] = (rand() - 0.5) * 2 ** (rand() * 40 - 20);
          return g;
        }));
      // shares m/batch of the batch: float32 values or not
      const weights = Array.from({ length: k }, () => Math.ceil(rand() * batch) / batch);
      const order = Array.from({ length: k }, (_, i) => i).sort(() => rand() - 0.5);
      const total = sizes.reduce((a, b) => a + b, 0);
      const plain = new Float32Array(new SharedArrayBuffer(4 * n * total));
      const viaJs = reduce(treeOf(sizes, plain, maxK, deferTop), n, k, leaves, weights, order);
      const inWasm = wasm.subarray(0, n * total);
      const viaWasm = reduce(treeOf(sizes, inWasm, maxK, deferTop), n, k, leaves, weights, order);
      assert.deepEqual(viaWasm, viaJs);
      assert.deepEqual(viaJs, treeSum(leaves, weights));
    }),
    { numRuns: 300 },
  );
});

function lecture() {
  const spec = lectureCnn({ channels: 4 });
  const ds = allocDataset({ name: "blank", count: 100, sampleShape: [1, 28, 28], numClasses: 10 });
  for (let i = 0; i < ds.images.length; i++) ds.images[i] = Math.sin(i * 0.37);
  for (let i = 0; i < ds.labels.length; i++) ds.labels[i] = (i * 7) % 10;
  const shared = <T extends Float32Array | Uint8Array>(a: T): T => {
    const b = new (a.constructor as new (buf: SharedArrayBuffer) => T)(
      new SharedArrayBuffer(a.byteLength),
    );
    b.set(a as never);
    return b;
  };
  const data = {
    images: shared(ds.images as Float32Array),
    labels: shared(ds.labels as Uint8Array),
    sampleSize: 784,
  };
  const params = () =>
    initParams(spec.built, { seed: 1, shared: true }) as Map<string, Float32Array>;
  return { spec, data, params };
}

/** Three steps (batches 64, 37, 64) with SGD in between: every step's gradients. */
async function run(
  runner: GradientRunner,
  params: Map<string, Float32Array>,
): Promise<Map<string, Float32Array>[]> {
  const out = [];
  let at = 0;
  for (const [step, b] of [64, 37, 64].entries()) {
    const idx = Uint32Array.from({ length: b }, () => (at++ * 31) % 100);
    const grads = new Map<string, Float32Array>();
    await runner.step(idx, step, grads);
    out.push(grads);
    for (const [name, g] of grads) {
      const w = params.get(name)!;
      for (let i = 0; i < w.length; i++) w[i] = w[i]! - 0.05 * g[i]!;
    }
  }
  await runner.close();
  return out;
}

Deno.test("LocalRunner and a 2-thread pool give the same bits with the reduction in wasm or JavaScript", async () => {
  const { spec, data, params } = lecture();
  const common = { data, maxBatch: 64, tier: "wasm" as const };
  let p = params();
  const js = await run(new LocalRunner(spec, { ...common, params: p, wasmReduce: false }), p);
  p = params();
  const wasm = await run(new LocalRunner(spec, { ...common, params: p }), p);
  assert.deepEqual(wasm, js);
  p = params();
  const pool = await WorkerPool.create(spec, { ...common, params: p, workers: 2 });
  assert.deepEqual(await run(pool, p), js);
});

Deno.test("LocalRunner runs without SharedArrayBuffer (a page not cross-origin isolated), the same bits", async () => {
  const { spec, data, params } = lecture();
  const common = { data, maxBatch: 64, tier: "wasm" as const };
  let p = params();
  const want = await run(new LocalRunner(spec, { ...common, params: p }), p);
  p = params();
  const g = globalThis as { SharedArrayBuffer?: unknown };
  const saved = g.SharedArrayBuffer;
  let runner: LocalRunner;
  try {
    delete g.SharedArrayBuffer;
    // (with the wasm loops off: Deno makes a shared WebAssembly.Memory even so)
    runner = new LocalRunner(spec, { ...common, params: p, wasmReduce: false });
  } finally {
    g.SharedArrayBuffer = saved;
  }
  assert.deepEqual(await run(runner, p), want);
});

Deno.test("a tree over more than 2^30 micro-batches is refused by name instead of looping forever", () => {
  assert.equal(treeLevels(2 ** 30), 30);
  assert.equal(treeLevels(2 ** 30 + 1), 31);
  assert.equal(treeLevels(2 ** 31 + 5), 31);
  assert.equal(regionCount(2 ** 30, 1), 31);
  assert.throws(
    () => regionCount(2 ** 30 + 1, 1),
    /GradTree: too many micro-batches \(1073741825\)/,
  );
});
