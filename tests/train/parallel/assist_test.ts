import assert from "node:assert/strict";
import {
  allocDataset,
  defineModel,
  initParams,
  lectureCnn,
  LocalRunner,
  nn,
  type SharedData,
  trainingGraph,
  WorkerPool,
  type WorkerPoolOptions,
} from "../../../mod.ts";
import {
  Assist,
  ASSIST_KIND,
  assistRunner,
  registerAssistRunner,
} from "../../../ops/kernels/assist.ts";
import { winogradFilterGroups } from "../../../ops/kernels/winograd_filter_wasm.ts";
import { makeOptimizer } from "../../../train/optim/optimizer.ts";
import type { GradientRunner } from "../../../train/parallel/pool.ts";
import { faultSeam } from "../../../train/parallel/faults.ts";

// the lecture CNN with its 32 channels: the fused kernel's chunks are its output channels
const spec = lectureCnn();

/** Sparse noise images with random labels, in SharedArrayBuffers. */
function noiseDigits(count: number): SharedData {
  const ds = allocDataset({ name: "noise", count, sampleShape: [1, 28, 28], numClasses: 10 });
  let s = 12345;
  const rnd = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
  for (let i = 0; i < ds.images.length; i++) ds.images[i] = rnd() < 0.7 ? 0 : rnd();
  for (let i = 0; i < count; i++) ds.labels[i] = Math.floor(rnd() * 10);
  return { images: ds.images, labels: ds.labels, sampleSize: 784 };
}

const data = noiseDigits(256);
// 64, 64 and 48 samples: two or one and a half micro-batches per thread at micro 32
const batches = [64, 64, 48].map((n, b) =>
  Uint32Array.from({ length: n }, (_, i) => (b * 71 + i * 37) % 256)
);

function fresh(): Map<string, Float32Array> {
  return initParams(spec.built, { seed: 5, shared: true }) as Map<string, Float32Array>;
}

/** Adam over `steps` steps: the losses and the final parameters. */
async function run(runner: GradientRunner, params: Map<string, Float32Array>, steps: number) {
  const opt = makeOptimizer("adam", 1e-3);
  const grads = new Map<string, Float32Array>();
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    losses.push((await runner.step(batches[s % batches.length]!, s, grads)).loss);
    opt.step(params, grads);
  }
  return { losses, params };
}

function assertSame(
  got: Awaited<ReturnType<typeof run>>,
  want: Awaited<ReturnType<typeof run>>,
  label: string,
): void {
  assert.deepEqual(got.losses, want.losses, `${label}: losses`);
  for (const [k, v] of want.params) assert.deepEqual(got.params.get(k), v, `${label}: ${k}`);
}

/**
 * Counts the chunks of `kind` this (main) thread runs for other threads, as a
 * helper, that `which` accepts (given the job's ints), until `restore()`.
 */
function countHelped(kind: number, which: (ints: Int32Array, at: number) => boolean = () => true) {
  const runner = assistRunner(kind)!, help = Assist.prototype.help;
  let helping = 0, helped = 0;
  Assist.prototype.help = function (this: Assist) {
    helping++;
    try {
      return help.call(this);
    } finally {
      helping--;
    }
  };
  registerAssistRunner(kind, (buf, ints, at, fl, fat, chunk, thread) => {
    if (helping > 0 && which(ints, at)) helped++;
    runner(buf, ints, at, fl, fat, chunk, thread);
  });
  return {
    get helped() {
      return helped;
    },
    restore() {
      Assist.prototype.help = help;
      registerAssistRunner(kind, runner);
    },
  };
}

const STEPS = 24;
let reference: Awaited<ReturnType<typeof run>> | undefined;
async function local() {
  if (!reference) {
    const p = fresh();
    reference = await run(
      new LocalRunner(spec, { params: p, data, maxBatch: 64, microBatch: 32 }),
      p,
      STEPS,
    );
  }
  return reference;
}

/** A pool over fresh parameters: 2 threads, micro-batches of 32, helping whatever the load. */
async function create(opts: Partial<WorkerPoolOptions>) {
  const p = fresh();
  const pool = await WorkerPool.create(spec, {
    workers: 2,
    params: p,
    data,
    maxBatch: 64,
    microBatch: 32,
    assist: "always",
    // helping is the subject: a slow seam's delay before a micro-batch looks like a stall, which a
    // thread with nothing left would back up rather than help (WaitPolicy.speculate)
    wait: { speculate: false },
    ...opts,
  });
  return { pool, p };
}

async function pooled(opts: Partial<WorkerPoolOptions>) {
  const { pool, p } = await create(opts);
  try {
    return { result: await run(pool, p, STEPS), pool };
  } finally {
    await pool.close();
  }
}

Deno.test("a thread with nothing left runs channels of the slower one's convolution: the bits stay LocalRunner's", async () => {
  const want = await local();
  // worker 1 starts each micro-batch 1 ms late, so the main thread is done first and helps
  const { result, pool } = await pooled({ testSeam: faultSeam({ slow: [{ worker: 1, ms: 1 }] }) });
  assertSame(result, want, "2 threads helping");
  assert.equal(pool.sharedArenas, true);
  assert.ok(pool.assistedChunks > 0, "no chunk was run by a helper");
  assert.equal(pool.liveWorkers, 0);
});

Deno.test("helping keeps LocalRunner's bits on 3 and 4 threads, and without the main thread", async () => {
  const want = await local();
  for (const workers of [3, 4]) {
    const { result, pool } = await pooled({ workers });
    assertSame(result, want, `${workers} threads`);
    assert.ok(pool.assistedChunks > 0, `${workers} threads: no chunk was run by a helper`);
  }
  // the workers help each other, also once their share is done and there is no update to join
  const { result, pool } = await pooled({
    mainThread: false,
    testSeam: faultSeam({ slow: [{ worker: 0, ms: 1 }] }),
  });
  assertSame(result, want, "2 workers");
  assert.ok(pool.assistedChunks > 0, "2 workers: no chunk was run by a helper");
});

Deno.test("with assist: false the arenas stay unshared and nobody helps; the bits are the same", async () => {
  const { result, pool } = await pooled({
    assist: false,
    testSeam: faultSeam({ slow: [{ worker: 1, ms: 1 }] }),
  });
  assertSame(result, await local(), "no assist");
  assert.equal(pool.assistedChunks, 0);
  assert.equal(pool.sharedArenas, false);
});

for (const kind of ["throw", "exit", "hang"] as const) {
  Deno.test(`a helper that fails (${kind}) inside another thread's chunk: the step is retried with the same bits`, async () => {
    // worker 0 is slow, so worker 1 waits and helps it; at step 2 it fails in its first chunk
    const { result, pool } = await pooled({
      mainThread: false,
      stepTimeoutMs: 5000,
      testSeam: faultSeam({
        slow: [{ worker: 0, ms: 2 }],
        faults: [{ worker: 1, step: 2, kind, at: "assist" }],
      }),
    });
    assertSame(result, await local(), kind);
    assert.ok(pool.restarts >= 1, `restarts: ${pool.restarts}`);
    assert.equal(pool.liveWorkers, 0);
  });
}

Deno.test("a graph without a kernel that takes help keeps unshared arenas (they cost its kernels 1-3%)", async () => {
  const { mlp, sharedData } = await import("./_mlp.ts");
  const { spec, graph } = mlp({ side: 4, hidden: 8, classes: 3, bounds: [0.5, 0.5, 0.3, 0.3] });
  const params = initParams(graph, { seed: 1, shared: true }) as Map<string, Float32Array>;
  const pool = await WorkerPool.create(spec, {
    workers: 2,
    params,
    data: sharedData(16, 4, 3),
    maxBatch: 8,
  });
  try {
    assert.equal(pool.sharedArenas, false);
    const { loss } = await pool.step(Uint32Array.from([0, 1, 2, 3, 4, 5, 6, 7]), 0, new Map());
    assert.ok(Number.isFinite(loss));
  } finally {
    await pool.close();
  }
});

/**
 * Runs 3 steps on `pool` (the gradients' arrays are made in the first), then
 * asserts that 6 more make no typed-array memory on the main thread; returns
 * how much `helped()` grew over those 6.
 */
async function assertNoAllocPerStep(pool: WorkerPool, helped: () => number): Promise<number> {
  const { countTypedArrays } = await import("../../_alloc_count.ts");
  const grads = new Map<string, Float32Array>();
  const steps = async (from: number, n: number) => {
    for (let s = from; s < from + n; s++) await pool.step(batches[s % batches.length]!, s, grads);
  };
  await steps(0, 3);
  const before = helped();
  // whether a helper runs in a window is up to the threads' timing: up to 5 windows of 6 steps,
  // each allocating nothing, until one saw help
  for (let w = 0, from = 3; w < 5 && helped() === before; w++, from += 6) {
    const seen = await countTypedArrays(() => steps(from, 6));
    assert.equal(seen.owning, 0, JSON.stringify(seen.byKind));
  }
  return helped() - before;
}

Deno.test("a steady-state step with help allocates no typed-array memory on the main thread", async () => {
  // the worker is late, so the main thread helps it and its own kernels open jobs
  const { pool } = await create({ testSeam: faultSeam({ slow: [{ worker: 1, ms: 1 }] }) });
  try {
    const ran = await assertNoAllocPerStep(pool, () => pool.assistedChunks);
    assert.ok(ran > 0, "no chunk was run by a helper in the steps counted");
  } finally {
    await pool.close();
  }
});

/** mnist-net's layers at small widths: conv 1→c1, conv c1→c2 (3×3), 2×2 pool, linear 10. */
function smallMnistNet(c1: number, c2: number, name: string) {
  return trainingGraph(
    defineModel({ input: [1, 28, 28], seed: 3, name }, (x) => {
      let h = nn.relu(nn.conv2d(x, c1, 3, { name: "conv1" }), { name: "relu1" });
      h = nn.relu(nn.conv2d(h, c2, 3, { name: "conv2" }), { name: "relu2" });
      h = nn.maxPool2d(h, 2, { name: "pool" });
      return nn.linear(nn.flatten(h, { name: "flat" }), 10, { name: "fc" });
    }),
    "cross-entropy",
  );
}

// conv2's filter gradient runs Winograd, its 32 images in 4 groups of 2 chunks
const mini = smallMnistNet(4, 8, "mini-mnist-net");

Deno.test("the Winograd filter gradient's image groups take help: the bits stay LocalRunner's", async () => {
  const conv2 = { n: 32, c: 4, h: 26, w: 26, oc: 8, kh: 3, kw: 3, oh: 24, ow: 24 };
  const groups = winogradFilterGroups({ ...conv2, stride: 1, padding: 0 });
  if (groups < 2) return; // no WebAssembly SIMD here: the direct kernel, no job
  const freshMini = () =>
    initParams(mini.built, { seed: 5, shared: true }) as Map<string, Float32Array>;
  const p0 = freshMini();
  const want = await run(
    new LocalRunner(mini, { params: p0, data, maxBatch: 64, microBatch: 32 }),
    p0,
    STEPS,
  );
  // count the groups this (main) thread runs for the workers, as a helper
  const spy = countHelped(ASSIST_KIND.WINOGRAD_FILTER);
  try {
    for (const [workers, slow] of [[2, 2], [3, 0]]) {
      const p = freshMini();
      const pool = await WorkerPool.create(mini, {
        workers,
        params: p,
        data,
        maxBatch: 64,
        microBatch: 32,
        assist: "always",
        // helping is the subject: a slow seam's delay before a micro-batch looks like a stall, which a
        // thread with nothing left would back up rather than help (WaitPolicy.speculate)
        wait: { speculate: false },
        // worker 1 starts each micro-batch late: the main thread, done first, helps it
        testSeam: slow ? faultSeam({ slow: [{ worker: 1, ms: slow }] }) : undefined,
      });
      try {
        const before = spy.helped;
        assertSame(await run(pool, p, STEPS), want, `${workers} threads`);
        assert.equal(pool.sharedArenas, true);
        assert.ok(pool.assistedChunks > 0, `${workers} threads: no chunk was helped`);
        if (slow) assert.ok(spy.helped > before, `${workers} threads: no group was helped`);
        // a steady-state step, helping and helped, makes no typed array on the main thread
        if (slow) await assertNoAllocPerStep(pool, () => spy.helped);
      } finally {
        await pool.close();
      }
    }
  } finally {
    spy.restore();
  }
});

// mnist-net's shape at small widths: conv 1→8 (one input channel: im2col + GEMM, no job), conv
// 8→16 3×3 by Winograd, whose forward and backward-to-input calls take help image by image
const winoSpec = smallMnistNet(8, 16, "small-mnist-net");
const winoFresh = () =>
  initParams(winoSpec.built, { seed: 7, shared: true }) as Map<string, Float32Array>;

Deno.test("a thread with nothing left runs images of the slower one's Winograd convolutions: the bits stay LocalRunner's, no typed array per step", async () => {
  const p0 = winoFresh();
  const want = await run(
    new LocalRunner(winoSpec, { params: p0, data, maxBatch: 64, microBatch: 32 }),
    p0,
    12,
  );
  // count the Winograd convolution chunks this (main) thread runs for the workers, as a helper
  const spy = countHelped(ASSIST_KIND.WINOGRAD);
  try {
    for (const workers of [2, 3]) {
      const p = winoFresh();
      const pool = await WorkerPool.create(winoSpec, {
        workers,
        params: p,
        data,
        maxBatch: 64,
        microBatch: 32,
        assist: "always",
        // helping is the subject: a slow seam's delay before a micro-batch looks like a stall, which a
        // thread with nothing left would back up rather than help (WaitPolicy.speculate)
        wait: { speculate: false },
        // every worker starts each micro-batch 2 ms late: the main thread is done first (or has
        // no micro-batch at all) and helps them (with one worker on time, 3 threads could end
        // together and nobody help)
        testSeam: faultSeam({
          slow: Array.from({ length: workers }, (_, worker) => ({ worker, ms: 2 })),
        }),
      });
      try {
        const before = spy.helped;
        assertSame(await run(pool, p, 12), want, `${workers} threads helping Winograd`);
        assert.equal(pool.sharedArenas, true);
        assert.ok(spy.helped > before, `${workers} threads: no image was run by a helper`);
        if (workers > 2) continue;
        const ran = await assertNoAllocPerStep(pool, () => spy.helped);
        assert.ok(ran > 0, "no image was run by a helper in the steps counted");
      } finally {
        await pool.close();
      }
    }
  } finally {
    spy.restore();
  }
});

Deno.test("a thread shares an arena per micro-batch size of the max batch's cut", async () => {
  const { GradientShard } = await import("../../../train/parallel/shard.ts");
  const { ownArenas } = await import("../../../train/parallel/worker.ts");
  // a cut of 64 with a tail of 16: 32, 16, 16; each size has its own plan and arena
  const p = fresh();
  const shard = new GradientShard({
    ...spec,
    grads: Object.entries(spec.grads),
    params: p,
    images: data.images,
    labels: data.labels,
    sampleSize: data.sampleSize,
    indices: new Uint32Array(64),
    microBatch: 32,
    microTail: 16,
    sharedArena: true,
    assistThreads: 2,
  });
  const own = ownArenas(shard, 64);
  if (own.size > 0) { // no wasm arenas without WebAssembly SIMD
    assert.deepEqual([...own.keys()], [32, 16]);
    assert.notEqual(own.get(32)!.memory, own.get(16)!.memory);
  }
});

Deno.test("the micro-batches at a step's end (the tail's size) take help too: their arenas are shared", async () => {
  const conv2 = { n: 16, c: 4, h: 26, w: 26, oc: 8, kh: 3, kw: 3, oh: 24, ow: 24 };
  if (winogradFilterGroups({ ...conv2, stride: 1, padding: 0 }) < 2) return; // no wasm SIMD
  const freshMini = () =>
    initParams(mini.built, { seed: 6, shared: true }) as Map<string, Float32Array>;
  // 64 → 32, 16, 16; 48 → 32, 16
  const cut = { maxBatch: 64, microBatch: 32, microTail: 16 };
  const p0 = freshMini();
  // which thread claims the 32 first is up to timing; over 48 steps the worker holds a 16 often
  const steps = 48;
  const want = await run(new LocalRunner(mini, { params: p0, data, ...cut }), p0, steps);
  // the groups of 16-image calls this (main) thread runs for worker 1, as a helper
  const spy = countHelped(ASSIST_KIND.WINOGRAD_FILTER, (ints, at) => ints[at + 3] === 16);
  try {
    const p = freshMini();
    const pool = await WorkerPool.create(mini, {
      workers: 2,
      params: p,
      data,
      ...cut,
      assist: "always",
      // helping is the subject: a slow seam's delay before a micro-batch looks like a stall, which a
      // thread with nothing left would back up rather than help (WaitPolicy.speculate)
      wait: { speculate: false },
      testSeam: faultSeam({ slow: [{ worker: 1, ms: 2 }] }),
    });
    try {
      assertSame(await run(pool, p, steps), want, "tail micro-batches");
      assert.ok(spy.helped > 0, "no group of a 16-image micro-batch was helped");
    } finally {
      await pool.close();
    }
  } finally {
    spy.restore();
  }
});

Deno.test("convolutions at sizes where no kernel takes help (one input channel) keep unshared arenas", async () => {
  const oneConv = trainingGraph(
    defineModel({ input: [1, 28, 28], seed: 3, name: "one-conv" }, (x) => {
      // no pooling: conv + ReLU + pool would fuse into the lecture CNN's kernel, which takes help
      const h = nn.relu(nn.conv2d(x, 4, 3, { name: "conv1" }));
      return nn.linear(nn.flatten(h), 10, { name: "fc" });
    }),
    "cross-entropy",
  );
  const open = async (spec: typeof oneConv) => {
    const params = initParams(spec.built, { seed: 1, shared: true }) as Map<string, Float32Array>;
    return await WorkerPool.create(spec, {
      workers: 2,
      params,
      data,
      maxBatch: 64,
      microBatch: 32,
    });
  };
  const pool = await open(oneConv);
  try {
    assert.equal(pool.sharedArenas, false); // conv2d and its filter gradient run, but not by Winograd
    const { loss } = await pool.step(batches[0]!, 0, new Map());
    assert.ok(Number.isFinite(loss));
  } finally {
    await pool.close();
  }
  const wino = await open(winoSpec); // conv2 (8 → 16 channels) runs by Winograd
  try {
    assert.equal(wino.sharedArenas, true);
  } finally {
    await wino.close();
  }
});
