import assert from "node:assert/strict";
import { mlp, sharedData as mlpData } from "./_mlp.ts";
import { Graph, type Node } from "../../../graph/graph.ts";
import { initParams } from "../../../graph/params.ts";
import {
  type GradientRunner,
  type InjectedFault,
  LocalRunner,
  type SharedData,
  type TrainGraphSpec,
  WorkerPool,
  type WorkerPoolOptions,
} from "../../../train/parallel/pool.ts";
import { dropout } from "../../../ops/dropout.ts";
import { lectureCnn } from "../../../train/models.ts";
import type { SoloChoice } from "../../../train/parallel/wait.ts";
import { makeOptimizer, type OptimizerName } from "../../../train/optim/optimizer.ts";
import { type AllocCount, countTypedArrays } from "../../_alloc_count.ts";
import { faultSeam } from "../../../train/parallel/faults.ts";
import type { WaitPolicy } from "../../../train/parallel/wait.ts";
import { Executor } from "../../../graph/executor.ts";
import { makePlan } from "../../../graph/plan.ts";
import { batchSum } from "../../../ops/batch_sum.ts";
import { div } from "../../../ops/div.ts";
import { exp } from "../../../ops/exp.ts";
import { mul } from "../../../ops/mul.ts";
import { pow } from "../../../ops/pow.ts";
import { scale } from "../../../ops/scale.ts";
import { sub } from "../../../ops/sub.ts";
import { sum } from "../../../ops/sum.ts";

const SAMPLES = 200;
const SIDE = 4;
const CLASSES = 10;
// 64 + 64 + 37: the last batch is smaller and splits unevenly over 2 workers
const BATCHES = [64, 64, 37];

/** flatten -> linear -> relu -> [dropout] -> [custom] -> linear -> logSoftmax -> nllLoss */
function model(p: number, custom?: (x: Node) => Node): { spec: TrainGraphSpec; graph: Graph } {
  return mlp({ side: SIDE, hidden: 32, classes: CLASSES, bounds: [0.5, 0.5, 0.3, 0.3] }, (h) => {
    if (p > 0) h = dropout(h, { p, seed: 7 });
    return custom ? custom(h) : h;
  });
}

function sharedData(): SharedData {
  return mlpData(SAMPLES, SIDE, CLASSES);
}

/** Batches of distinct sample indices, in a scrambled order. */
function batches(): Uint32Array[] {
  let at = 0;
  return BATCHES.map((b) => Uint32Array.from({ length: b }, () => (at++ * 53) % SAMPLES));
}

interface Trace {
  losses: number[];
  grads: Map<string, Float32Array>[];
}

/** Runs every batch with a plain SGD update in between, so parameters change under the workers. */
async function trace(runner: GradientRunner, params: Map<string, Float32Array>): Promise<Trace> {
  const out: Trace = { losses: [], grads: [] };
  for (const [step, idx] of batches().entries()) {
    const grads = new Map<string, Float32Array>();
    out.losses.push((await runner.step(idx, step, grads)).loss);
    out.grads.push(grads);
    for (const [name, g] of grads) {
      const w = params.get(name)!;
      for (let i = 0; i < w.length; i++) w[i] = w[i]! - 0.1 * g[i]!;
    }
  }
  return out;
}

function freshParams(graph: Graph): Map<string, Float32Array> {
  return initParams(graph, { seed: 3, shared: true }) as Map<string, Float32Array>;
}

async function poolTrace(
  p: number,
  workers: number,
  extra: {
    faults?: InjectedFault[];
    stepTimeoutMs?: number;
    opModules?: string[];
    custom?: (x: Node) => Node;
    mainThread?: boolean;
    wait?: WaitPolicy;
  } = {},
): Promise<Trace> {
  const { custom, ...rest } = extra;
  const { spec, graph } = model(p, custom);
  const params = freshParams(graph);
  const pool = await WorkerPool.create(spec, {
    workers,
    params,
    data: sharedData(),
    maxBatch: 64,
    ...rest,
  });
  try {
    return await trace(pool, params);
  } finally {
    await pool.close();
  }
}

async function localTrace(p: number, custom?: (x: Node) => Node): Promise<Trace> {
  const { spec, graph } = model(p, custom);
  const params = freshParams(graph);
  return await trace(new LocalRunner(spec, { params, data: sharedData(), maxBatch: 64 }), params);
}

function assertClose(a: Trace, b: Trace, rel: number): void {
  assert.equal(a.losses.length, b.losses.length);
  for (let s = 0; s < a.losses.length; s++) {
    const la = a.losses[s]!, lb = b.losses[s]!;
    assert.ok(Math.abs(la - lb) <= rel * Math.abs(lb), `step ${s}: loss ${la} vs ${lb}`);
    for (const [name, ga] of a.grads[s]!) {
      const gb = b.grads[s]!.get(name)!;
      let scale = 0;
      for (const v of gb) scale = Math.max(scale, Math.abs(v));
      for (let i = 0; i < ga.length; i++) {
        assert.ok(
          Math.abs(ga[i]! - gb[i]!) <= rel * scale + 1e-12,
          `step ${s} ${name}[${i}]: ${ga[i]} vs ${gb[i]}`,
        );
      }
    }
  }
}

function assertIdentical(a: Trace, b: Trace): void {
  assert.deepEqual(a.losses, b.losses);
  for (let s = 0; s < a.grads.length; s++) {
    for (const [name, ga] of a.grads[s]!) {
      assert.deepEqual(ga, b.grads[s]!.get(name), `step ${s} ${name}`);
    }
  }
}

// filled by the first test, reused by the fault tests
let reference: Trace | undefined;

Deno.test("worker pool with 2 workers gives LocalRunner's bits, including a smaller last batch", async () => {
  const local = await localTrace(0);
  const pooled = await poolTrace(0, 2);
  assertIdentical(pooled, local);
  assert.ok(local.losses.every(Number.isFinite));
  reference = pooled;
});

Deno.test("2 Web Workers give the very bits of the main thread and 1 Web Worker", async () => {
  assertIdentical(await poolTrace(0, 2, { mainThread: false }), reference ?? await poolTrace(0, 2));
});

Deno.test("3 and 4 workers give LocalRunner's bits", async () => {
  const local = await localTrace(0);
  for (const workers of [3, 4]) assertIdentical(await poolTrace(0, workers), local);
});

Deno.test("a wait policy (a shortest spin with Atomics.pause while the cores are owned, another slow-step factor) keeps LocalRunner's bits", async () => {
  const wait = { minSpinMs: 0.2, slowStep: 1.1, pause: true, ownCores: true };
  assertIdentical(await poolTrace(0, 2, { wait }), reference ?? await localTrace(0));
});

Deno.test("worker pool with 1 worker is bit-identical to LocalRunner", async () => {
  assertIdentical(await poolTrace(0, 1, { mainThread: false }), await localTrace(0));
});

Deno.test("two runs with 2 workers are bit-identical", async () => {
  const again = await poolTrace(0, 2);
  assertIdentical(again, reference ?? await poolTrace(0, 2));
});

Deno.test("dropout gives the same bits with 1 and 2 workers (masks ignore sharding)", async () => {
  const one = await poolTrace(0.5, 1, { mainThread: false });
  const two = await poolTrace(0.5, 2);
  assertIdentical(two, one);
  // the masks are really there: with dropout the losses differ from the plain model
  assert.notDeepEqual(one.losses, (reference ?? await poolTrace(0, 2)).losses);
});

// "throw" is an uncaught error in the worker, so Deno prints its stack on
// stderr even though the pool handles it: that output is expected
for (const kind of ["throw", "exit", "hang"] as const) {
  for (const mainThread of [true, false]) {
    const where = mainThread ? "beside the main thread" : "of 2 Web Workers";
    Deno.test(`a worker fault (${kind}) at step 1 ${where} is retried and changes nothing`, async () => {
      const faulty = await poolTrace(0, 2, {
        faults: [{ worker: 1, step: 1, kind }],
        stepTimeoutMs: 2000,
        mainThread,
      });
      assertIdentical(faulty, reference ?? await poolTrace(0, 2));
    });
  }
}

/** A 2-worker pool over the test model with dropout `p`, fresh parameters and data. */
async function twoWorkers(
  p: number,
  extra: Partial<WorkerPoolOptions> = {},
): Promise<{ pool: WorkerPool; params: Map<string, Float32Array> }> {
  const { spec, graph } = model(p);
  const params = freshParams(graph);
  const opts = { workers: 2, params, data: sharedData(), maxBatch: 64, ...extra };
  return { pool: await WorkerPool.create(spec, opts), params };
}

Deno.test("workers that fail on every restart make the pool give up naming the step, with every worker terminated", async () => {
  const { pool } = await twoWorkers(0, {
    maxRetries: 2,
    faults: [0, 1].map((worker) => ({ worker, step: 1, kind: "throw" as const, every: true })),
    mainThread: false,
  });
  try {
    const [b0, b1] = batches();
    const grads = new Map<string, Float32Array>();
    await pool.step(b0!, 0, grads);
    await assert.rejects(
      pool.step(b1!, 1, grads),
      /step 1 failed 3 times in a row \(worker \d: worker \d crashed: .*Injected fault at step 1.*\), giving up/,
    );
    assert.equal(pool.liveWorkers, 0);
    await assert.rejects(pool.step(b0!, 2, grads), /the pool is closed: step 1 failed/);
  } finally {
    await pool.close();
    await pool.close(); // safe twice
  }
});

Deno.test("a step that times out every time with no worker to blame makes the pool give up, with every worker terminated", async () => {
  const { spec, graph } = model(0);
  const pool = await WorkerPool.create(spec, {
    workers: 2,
    params: freshParams(graph),
    data: sharedData(),
    maxBatch: 64,
    // 64 micro-batches: the worker claims some, and each takes it 300 ms, past the step timeout;
    // it still leaves each aborted step in time, so no worker is to blame
    microBatch: 1,
    stepTimeoutMs: 100,
    maxRetries: 1,
    testSeam: faultSeam({ slow: [{ worker: 1, ms: 300 }] }),
    // a backup of the worker's micro-batch would finish the step in time
    wait: { speculate: false },
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const grads = new Map<string, Float32Array>();
    // before the fix it retried forever: give it 20 s
    const stuck = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("still retrying after 20 s")), 20_000);
    });
    // a step the worker woke too late for (the main thread took every micro-batch) succeeds
    let error: Error | null = null;
    for (let s = 0; s < 5 && !error; s++) {
      await Promise.race([pool.step(batches()[0]!, s, grads), stuck]).catch((e) => (error = e));
    }
    assert.match(
      String(error),
      /step \d failed 2 times in a row \(the step timed out after 100 ms\), giving up/,
    );
    assert.equal(pool.liveWorkers, 0);
  } finally {
    clearTimeout(timer);
    await pool.close();
  }
});

Deno.test("WorkerPool.create rejects bad setups with clear messages", async () => {
  const { spec, graph } = model(0);
  const data = sharedData();
  const plain = initParams(graph, { seed: 3 }) as Map<string, Float32Array>;
  await assert.rejects(
    WorkerPool.create(spec, { workers: 2, params: plain, data, maxBatch: 8 }),
    /parameter "fc1.weight" is not in a SharedArrayBuffer/,
  );
  await assert.rejects(
    WorkerPool.create({ ...spec, loss: "nope" }, {
      workers: 2,
      params: freshParams(graph),
      data,
      maxBatch: 8,
    }),
    /the graph has no loss "nope"/,
  );
  const pool = await WorkerPool.create(spec, {
    workers: 2,
    params: freshParams(graph),
    data,
    maxBatch: 8,
  });
  try {
    await assert.rejects(
      pool.step(new Uint32Array(9), 0, new Map()),
      /1\.\.8 sample indices, got 9/,
    );
    await assert.rejects(
      pool.step(Uint32Array.of(SAMPLES), 0, new Map()),
      /sample index 200 is outside the data/,
    );
    // the main thread computes shard 0, so one Web Worker runs
    assert.equal(pool.liveWorkers, 1);
  } finally {
    await pool.close();
  }
  assert.equal(pool.liveWorkers, 0);
  for (const [worker, mainThread, range] of [[0, true, "1..1"], [2, false, "0..1"]] as const) {
    await assert.rejects(
      WorkerPool.create(spec, {
        workers: 2,
        params: freshParams(graph),
        data,
        maxBatch: 8,
        mainThread,
        faults: [{ worker, step: 0, kind: "hang" }],
      }),
      new RegExp(`a fault names worker ${worker}, but the workers are ${range}`),
    );
  }
});

Deno.test("each step writes the buffers the grads map holds at that step: a new map, a replaced buffer, a missing one; a wrong size is refused", async () => {
  const { spec, graph } = model(0);
  const pool = await WorkerPool.create(spec, {
    workers: 2,
    params: freshParams(graph),
    data: sharedData(),
    maxBatch: 64,
  });
  try {
    const batch = batches()[0]!;
    // no optimizer: the same batch at the same step gives the same gradients every time
    const first = new Map<string, Float32Array>();
    await pool.step(batch, 0, first);
    const want = new Map([...first].map(([k, v]) => [k, v.slice()]));
    assert.ok(want.get("fc1.weight")!.some((x) => x !== 0));
    const other = new Map<string, Float32Array>();
    await pool.step(batch, 0, other);
    assert.deepEqual(other, want);
    // the same map, one buffer replaced by the caller: the new one is written, the old one not
    const old = first.get("fc2.weight")!.fill(0);
    const fresh = new Float32Array(old.length);
    first.set("fc2.weight", fresh);
    first.delete("fc1.bias");
    await pool.step(batch, 0, first);
    assert.deepEqual(fresh, want.get("fc2.weight"));
    assert.deepEqual(first.get("fc1.bias"), want.get("fc1.bias"));
    assert.ok(old.every((x) => x === 0));
    first.set("fc2.bias", new Float32Array(3));
    await assert.rejects(
      pool.step(batch, 0, first),
      /grads buffer for "fc2.bias" holds 3 floats but the parameter has 10/,
    );
    first.set("fc2.bias", new Float32Array(10));
    await pool.step(batch, 0, first);
    assert.deepEqual(first, want);
  } finally {
    await pool.close();
  }
});

Deno.test("opModules registers a custom op in the workers", async () => {
  // a module no worker knows of, like a user's own op file
  const url = "data:application/typescript," + encodeURIComponent(`
    import { registerOp } from "${new URL("../../../graph/op.ts", import.meta.url).href}";
    export const cubeOp = registerOp({
      name: "test_cube",
      inputs: ["x"],
      shape: ([x]) => x,
      forward([x], y) { for (let i = 0; i < y.length; i++) y[i] = x[i] ** 3 / 8; },
      // dx = dy * 3x² / 8
      vjp: ({ inputs: [x], dy }) => [x.graph.apply(cubeGradOp, [x, dy], {})],
    });
    const cubeGradOp = registerOp({
      name: "test_cube_grad",
      inputs: ["x", "dy"],
      shape: ([x]) => x,
      forward([x, dy], dx) { for (let i = 0; i < dx.length; i++) dx[i] = dy[i] * 3 * x[i] ** 2 / 8; },
    });
  `);
  const { cubeOp } = await import(url);
  const custom = (x: Node) => x.graph.apply(cubeOp, [x], {});
  const pooled = await poolTrace(0, 2, { opModules: [url], custom });
  assertClose(pooled, await localTrace(0, custom), 1e-5);
  await assert.rejects(poolTrace(0, 2, { custom }), /Unknown op "test_cube"/);
});

Deno.test("a shard run in micro-batches gives the batch-mean loss and gradients", async () => {
  const { spec, graph } = model(0.3);
  const data = sharedData();
  const results: { loss: number; grads: Map<string, Float32Array> }[] = [];
  for (const microBatch of [64, 16, 5]) {
    const params = initParams(graph, { seed: 4, shared: true }) as Map<string, Float32Array>;
    const runner = new LocalRunner(spec, { params, data, maxBatch: 64, microBatch });
    const grads = new Map<string, Float32Array>();
    const { loss } = await runner.step(batches()[2]!, 3, grads);
    await runner.close();
    results.push({ loss, grads });
  }
  for (const r of results.slice(1)) {
    assert.ok(Math.abs(r.loss - results[0]!.loss) < 1e-5, `loss ${r.loss} vs ${results[0]!.loss}`);
    for (const [k, g] of results[0]!.grads) {
      const h = r.grads.get(k)!;
      g.forEach((v, i) =>
        assert.ok(Math.abs(v - h[i]!) < 1e-5 * (1 + Math.abs(v)), `${k}[${i}]: ${v} vs ${h[i]}`)
      );
    }
  }
});

Deno.test("the allocation counter sees typed arrays made by constructors and by methods", async () => {
  const seen = await countTypedArrays(() => {
    const a = new Float32Array(4);
    Uint8Array.from([1, 2]);
    a.slice(1);
    a.subarray(2);
    new Float64Array(new ArrayBuffer(16), 8, 1);
  });
  assert.equal(seen.owning, 3, JSON.stringify(seen.byKind));
  assert.equal(seen.views, 2, JSON.stringify(seen.byKind));
  assert.ok(new Float32Array(1) instanceof Float32Array, "the constructors are restored");
});

/**
 * Typed-array memory made by steps 3..8 of training with `runner` (steps 0..2
 * warm up plans, buffers and optimizer state); views are counted apart.
 */
async function steadyStateAllocs(
  runner: GradientRunner,
  params: Map<string, Float32Array>,
  optimizer: OptimizerName,
): Promise<AllocCount> {
  const opt = makeOptimizer(optimizer, optimizer === "momentum" ? 0.05 : 1e-3);
  const grads = new Map<string, Float32Array>();
  const bs = batches();
  const train = async (from: number, n: number) => {
    for (let s = from; s < from + n; s++) {
      await runner.step(bs[s % bs.length]!, s, grads);
      opt.step(params, grads);
    }
  };
  await train(0, 3);
  return await countTypedArrays(() => train(3, 6));
}

for (const tier of ["wasm", "ts", "ref"] as const) {
  Deno.test(`a steady-state training step allocates no typed-array memory (lecture CNN and dropout MLP, ${tier} kernels)`, async () => {
    const mlp = model(0.3);
    const cnn = lectureCnn({ channels: 4 });
    const models = [
      { name: "lecture CNN", spec: cnn, graph: cnn.built, side: 28 },
      { name: "dropout MLP", spec: mlp.spec, graph: mlp.graph, side: SIDE },
    ];
    for (const m of models) {
      const params = initParams(m.graph, { seed: 5, shared: true }) as Map<string, Float32Array>;
      const ss = m.side * m.side;
      const images = Float32Array.from({ length: SAMPLES * ss }, (_, i) => Math.sin(i) ** 2);
      const data = { images, labels: sharedData().labels, sampleSize: ss };
      const runner = new LocalRunner(m.spec, { params, data, maxBatch: 64, tier, microBatch: 32 });
      try {
        const seen = await steadyStateAllocs(runner, params, "adam");
        // views of existing memory (per-sample subarrays, wasm scratch views) are allowed
        assert.equal(seen.owning, 0, `${m.name}: ${JSON.stringify(seen.byKind)}`);
      } finally {
        await runner.close();
      }
    }
  });
}

for (const mainThread of [true, false]) {
  Deno.test(`a steady-state pool step allocates no typed-array memory on the main thread (mainThread: ${mainThread})`, async () => {
    const { pool, params } = await twoWorkers(0.3, { mainThread });
    try {
      const seen = await steadyStateAllocs(pool, params, "momentum");
      assert.equal(seen.owning, 0, JSON.stringify(seen.byKind));
    } finally {
      await pool.close();
    }
  });
}

/** Adam over `steps` steps of the batches in turn; the final parameters and every loss. */
async function longRun(
  runner: GradientRunner,
  params: Map<string, Float32Array>,
  steps: number,
  bs = batches(),
): Promise<{ losses: number[]; params: Map<string, Float32Array> }> {
  const opt = makeOptimizer("adam", 1e-2);
  const grads = new Map<string, Float32Array>();
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    losses.push((await runner.step(bs[s % bs.length]!, s, grads)).loss);
    opt.step(params, grads);
  }
  return { losses, params };
}

/** `longRun` on a LocalRunner over fresh parameters: the bits every pool must give. */
function localRun(
  m: { spec: TrainGraphSpec; graph: Graph },
  data: SharedData,
  cut: { microBatch: number; microTail?: number },
  steps: number,
  bs = batches(),
): Promise<{ losses: number[]; params: Map<string, Float32Array> }> {
  const params = freshParams(m.graph);
  return longRun(
    new LocalRunner(m.spec, { params, data, maxBatch: 64, ...cut }),
    params,
    steps,
    bs,
  );
}

/** Asserts that two runs gave the same losses and the same parameter bits. */
function assertSameRun(
  got: { losses: number[]; params: Map<string, Float32Array> },
  want: { losses: number[]; params: Map<string, Float32Array> },
  label: string,
): void {
  assert.deepEqual(got.losses, want.losses, `${label}: losses`);
  for (const [k, v] of want.params) assert.deepEqual(got.params.get(k), v, `${label}: ${k}`);
}

Deno.test("200 Adam steps give bit-identical parameters on 1, 2, 3 and 4 threads", async () => {
  const { spec, graph } = model(0.2);
  const data = sharedData();
  const microBatch = 16; // batches of 64, 64, 37: 4, 4 and 3 micro-batches
  const params = freshParams(graph);
  const runner = new LocalRunner(spec, { params, data, maxBatch: 64, microBatch });
  const one = await longRun(runner, params, 200);
  assert.ok(one.losses.every(Number.isFinite));
  assert.ok(one.losses.at(-1)! < one.losses[0]!, `loss ${one.losses[0]} -> ${one.losses.at(-1)}`);
  for (const workers of [2, 3, 4]) {
    const p = freshParams(graph);
    const pool = await WorkerPool.create(spec, {
      workers,
      params: p,
      data,
      maxBatch: 64,
      microBatch,
    });
    try {
      assertSameRun(await longRun(pool, p, 200), one, `${workers} threads`);
    } finally {
      await pool.close();
    }
    assert.equal(pool.liveWorkers, 0);
  }
});

Deno.test("a slow worker takes fewer micro-batches and the result keeps its bits", async () => {
  const { spec, graph } = model(0);
  const data = sharedData();
  const microBatch = 8;
  const local = await localRun({ spec, graph }, data, { microBatch }, 6);
  const p2 = freshParams(graph);
  const pool = await WorkerPool.create(spec, {
    workers: 2,
    params: p2,
    data,
    maxBatch: 64,
    microBatch,
    testSeam: faultSeam({ slow: [{ worker: 1, ms: 40 }] }),
  });
  try {
    assertSameRun(await longRun(pool, p2, 6), local, "slow worker");
    // 5 micro-batches in the last step (37 samples): the main thread took most
    assert.ok(
      pool.mainThreadMicroBatches >= 3,
      `main thread took ${pool.mainThreadMicroBatches} of 5`,
    );
  } finally {
    await pool.close();
  }
});

Deno.test("a pool whose worker is held up runs steps on the main thread alone, with the same bits", async () => {
  const { spec, graph } = model(0);
  const data = sharedData();
  // 64 micro-batches a step: the worker usually wakes in time to claim some, each held up 40 ms
  const microBatch = 1;
  const steps = 40;
  // one batch size throughout: a new size starts the choice afresh
  const one = [batches()[0]!];
  const local = await localRun({ spec, graph }, data, { microBatch }, steps, one);
  const p2 = freshParams(graph);
  const pool = await WorkerPool.create(spec, {
    workers: 2,
    params: p2,
    data,
    maxBatch: 64,
    microBatch,
    // a worker that loses its core for 40 ms at each micro-batch
    testSeam: faultSeam({ slow: [{ worker: 1, ms: 40 }] }),
    soloWhenFaster: true,
    // backups would keep the threads ahead: SoloChoice is the subject here; the worker sleeps
    // (no busy process), so the host's spare cores would say quiet and block the probe
    wait: { speculate: false, hostLoad: false },
  });
  try {
    assertSameRun(await longRun(pool, p2, steps, one), local, "held-up worker");
    // held-up steps make the pool probe the main thread alone (4 steps; whether it then stays
    // alone is timing, tested on SoloChoice itself in wait_test.ts), and the bits hold
    assert.ok(pool.soloSteps >= 4, `${pool.soloSteps} of ${steps} steps alone`);
  } finally {
    await pool.close();
  }
});

Deno.test("a lecture-CNN pool with shared arenas runs steps on the main thread alone with LocalRunner's bits", async () => {
  const cnn = lectureCnn();
  const graph = cnn.built;
  const images = new Float32Array(new SharedArrayBuffer(4 * SAMPLES * 784));
  for (let i = 0; i < images.length; i++) images[i] = Math.sin(i) ** 2;
  const data = { images, labels: sharedData().labels, sampleSize: 784 };
  const microBatch = 4;
  const steps = 30;
  const one = [batches()[0]!.subarray(0, 16)];
  const local = await localRun({ spec: cnn, graph }, data, { microBatch }, steps, one);
  const p2 = freshParams(graph);
  const pool = await WorkerPool.create(cnn, {
    workers: 2,
    params: p2,
    data,
    maxBatch: 64,
    microBatch,
    soloWhenFaster: true,
    wait: { hostLoad: false },
  });
  try {
    assert.equal(pool.sharedArenas, true, "the fused convolution takes help: arenas shared");
    // alone after the first step (as after a won probe; the first step's new batch size
    // starts the choice afresh): alone until its first probe of the threads 16 steps on,
    // whatever the timing
    const choice = (pool as unknown as { choice: SoloChoice }).choice;
    const runner = {
      step: async (b: Uint32Array, s: number, g: Map<string, Float32Array>) => {
        const out = await pool.step(b, s, g);
        if (s === 0) choice.solo = true;
        return out;
      },
    } as GradientRunner;
    assertSameRun(await longRun(runner, p2, steps, one), local, "steps alone");
    assert.ok(pool.soloSteps >= 16, `${pool.soloSteps} of ${steps} steps alone`);
  } finally {
    await pool.close();
  }
});

for (const kind of ["throw", "hang", "exit"] as const) {
  Deno.test(`a worker fault (${kind}) while it holds a micro-batch aborts the step, which is retried with the same bits`, async () => {
    const { spec, graph } = model(0);
    const data = sharedData();
    const microBatch = 8;
    const local = await localRun({ spec, graph }, data, { microBatch }, 3);
    const p2 = freshParams(graph);
    const pool = await WorkerPool.create(spec, {
      workers: 2,
      params: p2,
      data,
      maxBatch: 64,
      microBatch,
      mainThread: false,
      stepTimeoutMs: 3000,
      // worker 0 is slow, so worker 1 surely claims a micro-batch of step 1
      testSeam: faultSeam({
        slow: [{ worker: 0, ms: 30 }],
        faults: [{ worker: 1, step: 1, kind, at: "micro" }],
      }),
      // the retry is the subject here: a backup would finish the step without the worker
      // (speculate_test.ts covers that case)
      wait: { speculate: false },
    });
    try {
      assertSameRun(await longRun(pool, p2, 3), local, kind);
      assert.equal(pool.restarts, 1);
    } finally {
      await pool.close();
    }
  });
}

/** Normalises h over the whole mini-batch with its statistics (two collective phases), as batch norm does. */
function batchNormalise(h: Node): Node {
  const count = batchSum(sum(exp(scale(h, 0)), { axes: [0] }));
  const mean = div(batchSum(sum(h, { axes: [0] })), count);
  const c = sub(h, mean);
  const variance = div(batchSum(sum(mul(c, c), { axes: [0] })), count);
  return div(c, pow(variance, 0.5));
}

Deno.test("a graph with batch_sum gives the full-batch executor's result for any thread count and micro-batch size", async () => {
  const { spec, graph } = model(0, batchNormalise);
  const data = sharedData();
  const [batch] = batches().slice(2); // 37 samples
  // the plain executor over the whole batch: batch_sum is the identity there
  const params = freshParams(graph);
  const g = Graph.fromJSON(spec.graph);
  const outs = [spec.loss, ...Object.values(spec.grads)].map((n) => g.node(n));
  const ex = new Executor(makePlan(g, { batch: 37, outputs: outs }), { params });
  const x = new Float32Array(37 * SIDE * SIDE);
  const y = new Float32Array(37);
  batch!.forEach((idx, i) => {
    x.set(data.images.subarray(idx * SIDE * SIDE, (idx + 1) * SIDE * SIDE), i * SIDE * SIDE);
    y[i] = data.labels[idx]!;
  });
  const full = ex.run({ x, y }, { step: 0 }).map((v) => Float32Array.from(v));
  const names = Object.keys(spec.grads);
  const run = async (runner: GradientRunner) => {
    const grads = new Map<string, Float32Array>();
    const { loss } = await runner.step(batch!, 0, grads);
    await runner.close();
    return [Float32Array.of(loss), ...names.map((n) => grads.get(n)!)];
  };
  // one micro-batch: the very bits
  const whole = await run(new LocalRunner(spec, { params, data, maxBatch: 64, microBatch: 64 }));
  assert.deepEqual(whole, full);
  for (const microBatch of [16, 5]) {
    const local = await run(new LocalRunner(spec, { params, data, maxBatch: 64, microBatch }));
    local.forEach((v, i) => {
      const scale = Math.max(...full[i]!.map(Math.abs));
      v.forEach((a, j) =>
        assert.ok(
          Math.abs(a - full[i]![j]!) <= 1e-5 * scale,
          `micro ${microBatch} out ${i}[${j}]: ${a} vs ${full[i]![j]}`,
        )
      );
    });
    for (const workers of [2, 3]) {
      const pool = await WorkerPool.create(spec, {
        workers,
        params,
        data,
        maxBatch: 64,
        microBatch,
      });
      assert.deepEqual(await run(pool), local, `${workers} threads, micro ${microBatch}`);
    }
  }
  // the normalisation is real: without batch_sum's collective, micro-batches would differ
  assert.ok(g.nodes.some((r) => r.op === "batch_sum" && r.attrs.cotangent === true));
});

Deno.test("a guided tail cut (microTail) gives the same bits on 1, 2 and 3 threads", async () => {
  const { spec, graph } = model(0.2);
  const data = sharedData();
  const cut = { microBatch: 16, microTail: 4 }; // 64 -> 16, 16, 16, 8, 4, 4
  const one = await localRun({ spec, graph }, data, cut, 12);
  for (const workers of [2, 3]) {
    const p = freshParams(graph);
    const pool = await WorkerPool.create(spec, { workers, params: p, data, maxBatch: 64, ...cut });
    try {
      assertSameRun(await longRun(pool, p, 12), one, `${workers} threads`);
    } finally {
      await pool.close();
    }
  }
});
