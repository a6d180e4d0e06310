/**
 * Backups of stalled micro-batches (`WaitPolicy.speculate`): a thread with
 * nothing left to claim recomputes a micro-batch another thread holds too
 * long, the first to finish publishes it, and the bits stay LocalRunner's.
 */
import assert from "node:assert/strict";
import { mlp, sharedData } from "./_mlp.ts";
import type { Graph } from "../../../graph/graph.ts";
import { initParams } from "../../../graph/params.ts";
import { dropout } from "../../../ops/dropout.ts";
import {
  type GradientRunner,
  LocalRunner,
  type TrainGraphSpec,
  WorkerPool,
} from "../../../train/parallel/pool.ts";
import { faultSeam } from "../../../train/parallel/faults.ts";
import { makeOptimizer } from "../../../train/optim/optimizer.ts";
import { countTypedArrays } from "../../_alloc_count.ts";
import { GradientShard } from "../../../train/parallel/shard.ts";
import { GradTree, regionCount, TREE, treeStateLength } from "../../../train/parallel/reduce.ts";
import { layoutOf } from "../../../train/parallel/spec.ts";
import {
  Lane,
  publishStep,
  schedLength,
  specLength,
  stepLoss,
  type StepMemory,
} from "../../../train/parallel/schedule.ts";

const SAMPLES = 200;
const SIDE = 4;
const CLASSES = 10;
const MICRO = 8;

function model(p: number): { spec: TrainGraphSpec; graph: Graph } {
  return mlp(
    { side: SIDE, hidden: 32, classes: CLASSES, bounds: [0.5, 0.5, 0.3, 0.3] },
    p > 0 ? (h) => dropout(h, { p, seed: 7 }) : undefined,
  );
}

function freshParams(graph: Graph): Map<string, Float32Array> {
  return initParams(graph, { seed: 3, shared: true }) as Map<string, Float32Array>;
}

/** Batches of 64, 64 and 37 distinct samples in a scrambled order: 8, 8 and 5 micro-batches. */
function batches(): Uint32Array[] {
  let at = 0;
  return [64, 64, 37].map((b) => Uint32Array.from({ length: b }, () => (at++ * 53) % SAMPLES));
}
const BATCHES = batches();

interface Run {
  losses: number[];
  params: Map<string, Float32Array>;
}

/** Adam over `steps` steps of the batches in turn. */
async function run(
  runner: GradientRunner,
  params: Map<string, Float32Array>,
  steps: number,
  from = 0,
  opt = makeOptimizer("adam", 1e-2),
  grads = new Map<string, Float32Array>(),
): Promise<Run> {
  const bs = BATCHES;
  const losses: number[] = [];
  for (let s = from; s < from + steps; s++) {
    losses.push((await runner.step(bs[s % bs.length]!, s, grads)).loss);
    opt.step(params, grads);
  }
  return { losses, params };
}

function assertSameRun(got: Run, want: Run, label: string): void {
  assert.deepEqual(got.losses, want.losses, `${label}: losses`);
  for (const [k, v] of want.params) assert.deepEqual(got.params.get(k), v, `${label}: ${k}`);
}

async function localRun(p: number, steps: number, microBatch = MICRO): Promise<Run> {
  const { spec, graph } = model(p);
  const params = freshParams(graph);
  const data = sharedData(SAMPLES, SIDE, CLASSES);
  return await run(
    new LocalRunner(spec, { params, data, maxBatch: 64, microBatch }),
    params,
    steps,
  );
}

Deno.test("backups of a slow thread's micro-batches keep LocalRunner's bits on 2, 3 and 4 threads", async () => {
  const steps = 12;
  // dropout: a backup's masks must be the claimer's (seeded by step and sample, not by thread)
  const local = await localRun(0.2, steps);
  for (const workers of [2, 3, 4]) {
    const { spec, graph } = model(0.2);
    const params = freshParams(graph);
    const pool = await WorkerPool.create(spec, {
      workers,
      params,
      data: sharedData(SAMPLES, SIDE, CLASSES),
      maxBatch: 64,
      microBatch: MICRO,
      // the workers lose their core for 20 ms at each micro-batch they take: 40 times the main
      // thread's time for one, so their claims are backed up and the backups publish first
      testSeam: faultSeam({
        slow: Array.from({ length: workers - 1 }, (_, i) => ({ worker: i + 1, ms: 20 })),
      }),
    });
    try {
      assertSameRun(await run(pool, params, steps), local, `${workers} threads`);
      const { started, won } = pool.backups;
      assert.ok(won > 0, `${workers} threads: ${started} backups started, none published first`);
      assert.ok(started >= won);
    } finally {
      await pool.close();
    }
    assert.equal(pool.liveWorkers, 0);
  }
});

Deno.test("without speculate no micro-batch is backed up, and the bits are the same", async () => {
  const steps = 6;
  const local = await localRun(0, steps);
  const { spec, graph } = model(0);
  const params = freshParams(graph);
  const pool = await WorkerPool.create(spec, {
    workers: 2,
    params,
    data: sharedData(SAMPLES, SIDE, CLASSES),
    maxBatch: 64,
    microBatch: MICRO,
    testSeam: faultSeam({ slow: [{ worker: 1, ms: 20 }] }),
    wait: { speculate: false },
  });
  try {
    assertSameRun(await run(pool, params, steps), local, "speculate false");
    assert.deepEqual(pool.backups, { started: 0, won: 0 });
  } finally {
    await pool.close();
  }
});

Deno.test("a copy overtaken by its backup is abandoned between nodes and leaves the tree as LocalRunner's", async () => {
  const { spec, graph } = model(0.2);
  const params = freshParams(graph);
  const data = sharedData(SAMPLES, SIDE, CLASSES);
  const layout = layoutOf(spec, params, "test");
  const n = 37, k = 5; // 8, 8, 8, 8, 5
  const indices = Uint32Array.from(batches()[2]!);
  const shardOf = () =>
    new GradientShard({
      ...spec,
      ...data,
      grads: layout.grads,
      params,
      indices,
      microBatch: MICRO,
    });
  const [sa, sb] = [shardOf(), shardOf()];
  assert.equal(sa.count(n), k);
  const mem: StepMemory = {
    sched: new Int32Array(schedLength(1)),
    stepNo: new Float64Array(1),
    losses: new Float64Array(k),
    partials: new Float32Array(0),
    spec: new Int32Array(specLength(k)),
    claimedAt: new Float64Array(k + 1),
  };
  const regions = regionCount(k, 2);
  const floats = new Float32Array(regions * layout.total);
  const state = new Int32Array(treeStateLength(k));
  const tree = new GradTree(layout, floats, state, k, false, 0);
  const treeB = new GradTree(layout, floats, state, k, false, 1);
  tree.resetFree(regions);
  let inHook = false;
  let seq = 0;
  // lane A's hook, at its claim in the last step: lane B runs the whole step meanwhile
  const b = new Lane(sb, treeB, mem, null, null, 1.5);
  const a = new Lane(
    sa,
    tree,
    mem,
    (_step, micro) => {
      if (inHook || micro !== 0) return false;
      inHook = true;
      assert.ok(b.begin(seq));
      while (!b.advance()) {
        // B waits for A's claim to become stalled: nothing else can change here
        assert.ok(Number.isFinite(b.waitUntil), "B waits for nothing but the clock");
        while (performance.now() < b.waitUntil);
      }
      return false;
    },
    null,
    1.5,
  );
  const grads = layout.grads.map(([name]) => new Float32Array(params.get(name)!.length));
  const runner = new LocalRunner(spec, { params, data, maxBatch: 64, microBatch: MICRO });
  const out = new Map<string, Float32Array>();
  for (let step = 0; step < 4; step++) {
    seq++;
    tree.resetStep(k);
    publishStep(mem, seq, step, n, k, 1);
    if (step < 3) {
      // B alone learns its time per micro-batch
      assert.ok(b.begin(seq));
      assert.equal(b.advance(), true);
    } else {
      assert.ok(a.begin(seq));
      assert.equal(a.advance(), true); // its micro-batch 0 was published by B: nothing left
      assert.equal(a.claimed, 1);
      assert.equal(b.claimed, k - 1);
    }
    tree.takeRoot(grads);
    const want = await runner.step(indices, step, out);
    assert.equal(stepLoss(mem, sa, n, k), want.loss, `step ${step}: loss`);
    layout.grads.forEach(([name], i) =>
      assert.deepEqual(grads[i], out.get(name), `step ${step}: ${name}`)
    );
  }
  assert.deepEqual(Lane.backups(mem), { started: 1, won: 1 });
  // both lanes gave their spares back, and the abandoned copy took no region
  assert.equal(state[TREE.FREE], (1 << regions) - 1, "every region free again");
  await runner.close();
});

// "throw" is an uncaught error in the worker: Deno prints its stack, as expected
for (const kind of ["hang", "exit", "throw"] as const) {
  Deno.test(`a worker fault (${kind}) while it holds a micro-batch: no step waits for it, the bits hold, and the worker is retired`, async () => {
    const { spec, graph } = model(0);
    const params = freshParams(graph);
    const stepTimeoutMs = 600;
    const pool = await WorkerPool.create(spec, {
      workers: 2,
      params,
      data: sharedData(SAMPLES, SIDE, CLASSES),
      maxBatch: 64,
      // 32 micro-batches a step: the worker surely wakes in time to take one
      microBatch: 2,
      stepTimeoutMs,
      // from step 2 on, at the first micro-batch it takes (the main thread may take them all)
      faults: [{ worker: 1, step: 2, kind, at: "micro" }],
    });
    const opt = makeOptimizer("adam", 1e-2);
    const grads = new Map<string, Float32Array>();
    const losses: number[] = [];
    let steps = 0;
    let slowest = 0;
    const one = async () => {
      const t0 = performance.now();
      losses.push(...(await run(pool, params, 1, steps++, opt, grads)).losses);
      slowest = Math.max(slowest, performance.now() - t0);
    };
    try {
      // the worker fails at its first micro-batch from step 2 on; a hung one never answers that
      // step, so once the step timeout has passed it is retired and replaced
      const t0 = performance.now();
      while (pool.restarts === 0 && performance.now() - t0 < 10 * stepTimeoutMs) {
        await one();
        if (steps > 3) await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(pool.restarts, 1);
      // no step waited for it: the main thread backed up the micro-batch it held (or, for a crash
      // seen during the step, the step was run again at once)
      assert.ok(slowest < stepTimeoutMs / 2, `a step took ${slowest.toFixed(0)} ms`);
      if (kind !== "throw") assert.ok(pool.backups.won >= 1, JSON.stringify(pool.backups));
      for (let i = 0; i < 2; i++) await one(); // the replacement serves
    } finally {
      await pool.close();
    }
    assert.equal(pool.liveWorkers, 0);
    assertSameRun({ losses, params }, await localRun(0, steps, 2), "hung worker");
  });
}

Deno.test("a steady pool step with backups allocates no typed-array memory on the main thread", async () => {
  const { spec, graph } = model(0.3);
  const params = freshParams(graph);
  const pool = await WorkerPool.create(spec, {
    workers: 2,
    params,
    data: sharedData(SAMPLES, SIDE, CLASSES),
    maxBatch: 64,
    // 32 micro-batches a step: the worker wakes in time to claim some, held up 10 ms each
    microBatch: 2,
    testSeam: faultSeam({ slow: [{ worker: 1, ms: 10 }] }),
  });
  try {
    const opt = makeOptimizer("momentum", 0.05);
    const grads = new Map<string, Float32Array>();
    await run(pool, params, 6, 0, opt, grads);
    // the steps counted must hold a backup (on a loaded machine the worker may claim none)
    for (let tries = 0, from = 6;; tries++, from += 6) {
      const before = pool.backups.started;
      const seen = await countTypedArrays(() => run(pool, params, 6, from, opt, grads));
      assert.equal(seen.owning, 0, JSON.stringify(seen.byKind));
      if (pool.backups.started > before) break;
      assert.ok(tries < 5, "no backup in 36 steps");
    }
  } finally {
    await pool.close();
  }
});
