import assert from "node:assert/strict";
import { mlp, sharedData as mlpData } from "./_mlp.ts";
import type { Graph } from "../../../graph/graph.ts";
import { initParams } from "../../../graph/params.ts";
import {
  LocalRunner,
  type SharedData,
  type TrainGraphSpec,
  WorkerPool,
  type WorkerPoolOptions,
} from "../../../train/parallel/pool.ts";
import {
  makeOptimizer,
  type Optimizer,
  type OptimizerName,
} from "../../../train/optim/optimizer.ts";
import { StepTools } from "../../../train/optim/step_tools.ts";
import { NORM_CHUNK } from "../../../train/optim/rules.ts";
import { faultSeam } from "../../../train/parallel/faults.ts";
import {
  publishUpdate,
  UNIT,
  unitsOf,
  UPD,
  UPDATE_UNIT,
  Updater,
  updateShared,
} from "../../../train/parallel/update.ts";
import { GradTree, regionCount, treeStateLength } from "../../../train/parallel/reduce.ts";
import { SPAN } from "../../../train/parallel/trace.ts";
import { layoutOf } from "../../../train/parallel/spec.ts";
import { countTypedArrays } from "../../_alloc_count.ts";

const SAMPLES = 160;
const SIDE = 4;
const CLASSES = 10;
// fc1.weight has more values than a range of the update: it is split in two
const HIDDEN = 1100;
const BATCHES = [64, 64, 31];

function model(): { spec: TrainGraphSpec; graph: Graph } {
  return mlp({ side: SIDE, hidden: HIDDEN, classes: CLASSES, bounds: [0.3, 0.3, 0.05, 0.05] });
}

function sharedData(): SharedData {
  return mlpData(SAMPLES, SIDE, CLASSES);
}

function batches(): Uint32Array[] {
  let at = 0;
  return BATCHES.map((b) => Uint32Array.from({ length: b }, () => (at++ * 53) % SAMPLES));
}

interface Setup {
  optimizer: OptimizerName;
  lr: number;
  clip?: number;
  schedule?: string;
  weightDecay?: number;
  nesterov?: boolean;
}

const SETUPS: Setup[] = [
  { optimizer: "sgd", lr: 0.02, weightDecay: 1e-3 },
  { optimizer: "momentum", lr: 0.05, nesterov: true, clip: 0.5, schedule: "step:3:0.5" },
  { optimizer: "adam", lr: 1e-2, clip: 0.3, schedule: "warmup:3,cosine" },
  { optimizer: "adamw", lr: 1e-2, weightDecay: 0.1 },
  { optimizer: "adadelta", lr: 1.0, clip: 1.0 },
];
const STEPS = 12;

function tools(s: Setup): { opt: Optimizer; tools: StepTools } {
  const opt = makeOptimizer(s.optimizer, s.lr, {
    weightDecay: s.weightDecay,
    nesterov: s.nesterov,
  });
  return { opt, tools: new StepTools(s.lr, { schedule: s.schedule, clipGradNorm: s.clip }, STEPS) };
}

interface Run {
  losses: number[];
  params: Map<string, Float32Array>;
}

/** `STEPS` steps on one thread: LocalRunner, then clipping, the schedule and the optimizer on the main thread. */
async function oneThread(s: Setup): Promise<Run> {
  const { spec, graph } = model();
  const params = initParams(graph, { seed: 3, shared: true }) as Map<string, Float32Array>;
  const runner = new LocalRunner(spec, { params, data: sharedData(), maxBatch: 64 });
  const { opt, tools: t } = tools(s);
  const grads = new Map<string, Float32Array>();
  const losses: number[] = [];
  const bs = batches();
  for (let step = 0; step < STEPS; step++) {
    losses.push((await runner.step(bs[step % bs.length]!, step, grads)).loss);
    t.beforeStep(opt, grads, step);
    opt.step(params, grads);
  }
  return { losses, params };
}

/** The same steps with a pool that applies the optimizer on every thread. */
async function inPool(
  s: Setup,
  workers: number,
  extra: Partial<WorkerPoolOptions> = {},
): Promise<Run & { pool: WorkerPool }> {
  const { spec, graph } = model();
  const params = initParams(graph, { seed: 3, shared: true }) as Map<string, Float32Array>;
  const { opt, tools: t } = tools(s);
  const pool = await WorkerPool.create(spec, {
    workers,
    params,
    data: sharedData(),
    maxBatch: 64,
    update: { optimizer: opt, trainable: [...params.keys()], clipGradNorm: t.clip },
    ...extra,
  });
  try {
    assert.ok(pool.updates);
    const grads = new Map<string, Float32Array>();
    const losses: number[] = [];
    const bs = batches();
    for (let step = 0; step < STEPS; step++) {
      t.setLr(opt, step);
      losses.push((await pool.step(bs[step % bs.length]!, step, grads)).loss);
    }
    return { losses, params, pool };
  } finally {
    await pool.close();
  }
}

function assertSame(got: Run, want: Run, what: string): void {
  assert.deepEqual(got.losses, want.losses, `${what}: losses`);
  for (const [k, v] of want.params) assert.deepEqual(got.params.get(k), v, `${what}: ${k}`);
}

Deno.test("the model's largest parameter spans two ranges of the update", () => {
  const { spec, graph } = model();
  const params = initParams(graph, { seed: 3 }) as Map<string, Float32Array>;
  const layout = layoutOf(spec, params, "test");
  const units = unitsOf(layout, [...params.keys()]);
  assert.ok(HIDDEN * SIDE * SIDE > NORM_CHUNK);
  assert.equal(units.length / 4, 5);
  // the update's own units are finer: 17600 values in units of 4096 are 5
  assert.equal(unitsOf(layout, [...params.keys()], UPDATE_UNIT).length / 4, 10);
  // trainable units first, in the optimizer's order; a buffer's units come last, marked -1
  const some = unitsOf(layout, ["fc2.bias", "fc1.weight"]);
  assert.deepEqual([...some.slice(0, 12)].filter((_, i) => i % 4 === 3), [0, 1, 1]);
  assert.ok([...some.slice(12)].filter((_, i) => i % 4 === 3).every((t) => t === -1));
});

for (const s of SETUPS) {
  const name = `${s.optimizer}${s.clip ? ` clipped to ${s.clip}` : ""}${
    s.schedule ? ` on schedule ${s.schedule}` : ""
  }`;
  Deno.test(`the parallel update (${name}) gives the bits of one thread on 1 to 4 threads`, async () => {
    const want = await oneThread(s);
    assert.ok(want.losses.every(Number.isFinite));
    assert.ok(
      want.losses.at(-1)! < want.losses[0]!,
      `loss ${want.losses[0]} -> ${want.losses.at(-1)}`,
    );
    for (const workers of [1, 2, 3, 4]) {
      const got = await inPool(s, workers);
      assertSame(got, want, `${workers} threads`);
      assert.equal(got.pool.liveWorkers, 0);
    }
  });
}

Deno.test("the parallel update with the main thread out of it gives the same bits", async () => {
  const s = SETUPS[2]!;
  assertSame(await inPool(s, 2, { mainThread: false }), await oneThread(s), "2 workers");
});

for (const kind of ["throw", "hang", "exit"] as const) {
  Deno.test(`a worker fault (${kind}) during the parallel update re-runs the update's rest with the same bits`, async () => {
    const s = SETUPS[2]!;
    const want = await oneThread(s);
    const got = await inPool(s, 2, {
      mainThread: false,
      stepTimeoutMs: 3000,
      // worker 0 is slow on every range, so worker 1 surely claims one of step 1
      testSeam: faultSeam({
        slow: [{ worker: 0, ms: 30, at: "update" }],
        faults: [{ worker: 1, step: 1, kind, at: "update" }],
      }),
    });
    assertSame(got, want, kind);
    assert.equal(got.pool.restarts, 1);
  });
}

Deno.test("a range left half updated by a thread that died cannot be re-run: publishUpdate says so", () => {
  const { spec, graph } = model();
  const params = initParams(graph, { seed: 3 }) as Map<string, Float32Array>;
  const layout = layoutOf(spec, params, "test");
  const names = [...params.keys()];
  const none: [Float32Array, Float32Array] = [new Float32Array(0), new Float32Array(0)];
  const u = updateShared(layout, "sgd", names, names.map(() => none), 0);
  publishUpdate(u, 1, true, true);
  u.flags[0] = 2;
  u.flags[1] = 1;
  assert.throws(() => publishUpdate(u, 2, false, true), /unit 1 of 10 .*partly updated/);
  // done units are kept and counted on a retry
  u.flags[1] = 0;
  publishUpdate(u, 3, false, true);
  assert.equal(u.ctl[2], 1);
  // a clipped update's first round without a last sum only reads: a half-done range re-runs
  const c = updateShared(layout, "sgd", names, names.map(() => none), 1);
  c.flags[3] = 1;
  publishUpdate(c, 4, false, false);
  assert.equal(c.flags[3]! & 3, 0);
});

Deno.test("a steady-state pool step with the parallel update allocates no typed-array memory on the main thread", async () => {
  const { spec, graph } = model();
  const params = initParams(graph, { seed: 3, shared: true }) as Map<string, Float32Array>;
  const s = SETUPS[2]!;
  const { opt, tools: t } = tools(s);
  const pool = await WorkerPool.create(spec, {
    workers: 2,
    params,
    data: sharedData(),
    maxBatch: 64,
    update: { optimizer: opt, trainable: [...params.keys()], clipGradNorm: t.clip },
  });
  try {
    const grads = new Map<string, Float32Array>();
    const bs = batches();
    const run = async (from: number, n: number) => {
      for (let step = from; step < from + n; step++) {
        t.setLr(opt, step);
        await pool.step(bs[step % bs.length]!, step, grads);
      }
    };
    await run(0, 3);
    const seen = await countTypedArrays(() => run(3, 6));
    assert.equal(seen.owning, 0, JSON.stringify(seen.byKind));
  } finally {
    await pool.close();
  }
});

Deno.test("WorkerPool.create refuses an update by an optimizer without a rule, naming it", async () => {
  const { spec, graph } = model();
  const params = initParams(graph, { seed: 3, shared: true }) as Map<string, Float32Array>;
  const custom: Optimizer = {
    name: "mine",
    lr: 1,
    step() {},
    state: () => ({}),
    loadState() {},
  };
  await assert.rejects(
    WorkerPool.create(spec, {
      workers: 2,
      params,
      data: sharedData(),
      maxBatch: 64,
      update: { optimizer: custom, trainable: [...params.keys()] },
    }),
    /optimizer "mine" has no elementwise rule/,
  );
});

/** Two threads' updaters of one step in one process, with the gradient pair in regions 0 and 1. */
function twoUpdaters(s: Setup) {
  const { spec, graph } = model();
  const layout = layoutOf(spec, initParams(graph, { seed: 3 }) as Map<string, Float32Array>, "t");
  const regions = new Float32Array(new SharedArrayBuffer(4 * 2 * layout.total));
  for (let i = 0; i < regions.length; i++) regions[i] = Math.sin(i * 0.37) * 1e-2;
  const make = () => {
    const params = initParams(graph, { seed: 3, shared: true }) as Map<string, Float32Array>;
    const { opt } = tools(s);
    const names = [...params.keys()];
    const state = names.map((n) => (opt as any).buffers(n, params.get(n)!.length, true));
    const u = updateShared(layout, (opt as any).rule, names, state, 0, 2);
    (opt as any).begin(u.scalars);
    publishUpdate(u, 7, true, true);
    return { u, params };
  };
  return { layout, regions, make };
}

Deno.test("each thread starts the update in its own section; one that comes late finds the rest taken, every unit done once, the same bits", () => {
  const { layout, regions, make } = twoUpdaters(SETUPS[2]!);
  // one thread alone
  const alone = make();
  const solo = new Updater(alone.u, layout, alone.params, regions, null, 0);
  solo.begin(7, 0, 1);
  assert.equal(solo.advance(null, SPAN.UPDATE), true);
  assert.equal(solo.ran, solo.units);
  // two threads: thread 1 runs to the end while thread 0 is inside its first unit
  const two = make();
  const t0 = new Updater(two.u, layout, two.params, regions, null, 0);
  const t1 = new Updater(two.u, layout, two.params, regions, null, 1);
  t0.begin(7, 0, 1);
  t1.begin(7, 0, 1);
  const by: number[] = [];
  let inner = true;
  t0.advance((i) => {
    by[i] = 0;
    if (inner) {
      inner = false;
      assert.equal(i, 0, "thread 0 starts at the front of the units");
      t1.advance((j) => (by[j] = 1), SPAN.UPDATE);
    }
  }, SPAN.UPDATE);
  assert.equal(t0.ran + t1.ran, t0.units);
  assert.equal(t0.ran, 1, "thread 1 took everything but the unit thread 0 was in");
  assert.equal(two.u.ctl[UPD.DONE0], t0.units);
  assert.ok(two.u.flags.every((f) => (f & 3) === UNIT.DONE));
  // thread 1 began in its own section (the back half), then took thread 0's from its back
  const firstOf1 = by.indexOf(1);
  assert.ok(firstOf1 > 0);
  for (const [k, v] of alone.params) assert.deepEqual(two.params.get(k), v, k);
});

Deno.test("a thread's own region is the one it gets back when it is free", () => {
  const { spec, graph } = model();
  const layout = layoutOf(spec, initParams(graph, { seed: 3 }) as Map<string, Float32Array>, "t");
  const n = regionCount(4, 2);
  const state = new Int32Array(new SharedArrayBuffer(4 * treeStateLength(4)));
  const regions = new Float32Array(new SharedArrayBuffer(4 * n * layout.total));
  const trees = [0, 1].map((t) => new GradTree(layout, regions, state, 4, true, t));
  trees[0]!.resetFree(n);
  // thread 1 asks first, still gets region 1; thread 0 gets region 0
  assert.equal(trees[1]!.tryAcquire(), 1);
  assert.equal(trees[0]!.tryAcquire(), 0);
  // with its own taken, a thread takes the highest free region (nobody's), never another's own
  assert.equal(trees[0]!.tryAcquire(), n - 1);
  trees[0]!.release(0);
  assert.equal(trees[1]!.tryAcquire(), n - 2);
  // when only another's own is left, it is taken rather than stall
  for (let r = n - 3; r >= 2; r--) assert.equal(trees[1]!.tryAcquire(), r);
  assert.equal(trees[1]!.tryAcquire(), 0);
  assert.equal(trees[1]!.tryAcquire(), -1);
});

Deno.test("in a 2-thread pool each unit of the update is done by the same thread in most steps", async () => {
  // both threads take 2 ms a unit, so both are in every update from its start (this model's
  // units take microseconds: otherwise the first thread to arrive may do them all, as it should)
  const { spec, graph } = model();
  const params = initParams(graph, { seed: 3, shared: true }) as Map<string, Float32Array>;
  const s = SETUPS[0]!;
  const { opt, tools: t } = tools(s);
  const pool = await WorkerPool.create(spec, {
    workers: 2,
    params,
    data: sharedData(),
    maxBatch: 64,
    profile: true,
    mainThread: false,
    testSeam: faultSeam({
      slow: [{ worker: 0, ms: 2, at: "update" }, { worker: 1, ms: 2, at: "update" }],
    }),
    update: { optimizer: opt, trainable: [...params.keys()] },
  });
  try {
    const grads = new Map<string, Float32Array>();
    const bs = batches();
    for (let step = 0; step < 20; step++) {
      t.setLr(opt, step);
      await pool.step(bs[0]!, step, grads);
    }
    const spans = pool.profiler!.toChromeTrace().traceEvents.filter((e) => e.cat === "update");
    // per unit, the thread of each step in turn (spans are in time order per thread: sort by start)
    spans.sort((a, b) => a.ts! - b.ts!);
    const last = new Map<number, number>();
    let same = 0, pairs = 0;
    for (const e of spans) {
      const id = e.args!.id as number;
      if (last.has(id)) {
        pairs++;
        if (last.get(id) === e.tid) same++;
      }
      last.set(id, e.tid);
    }
    assert.equal(pairs, 19 * 10);
    assert.ok(same / pairs >= 0.8, `a unit went to the same thread in ${same} of ${pairs} steps`);
  } finally {
    await pool.close();
  }
});
