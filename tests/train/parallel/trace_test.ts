import assert from "node:assert/strict";
import { initParams } from "../../../graph/params.ts";
import { LocalRunner, WorkerPool } from "../../../train/parallel/pool.ts";
import { microBatchTable, opTable, SPAN, stepBalance } from "../../../train/parallel/trace.ts";
import { lectureCnn } from "../../../train/models.ts";

const SAMPLES = 64;

function setup() {
  const spec = lectureCnn({ channels: 4 });
  const params = initParams(spec.built, { seed: 1, shared: true }) as Map<string, Float32Array>;
  const images = new Float32Array(new SharedArrayBuffer(4 * SAMPLES * 784));
  for (let i = 0; i < images.length; i++) images[i] = Math.sin(i) ** 2;
  const labels = new Uint8Array(new SharedArrayBuffer(SAMPLES));
  labels.forEach((_, i) => (labels[i] = i % 10));
  const batch = Uint32Array.from({ length: 40 }, (_, i) => (i * 7) % SAMPLES);
  return { spec, params, data: { images, labels, sampleSize: 784 }, batch };
}

Deno.test("a profiled pool writes a Chrome trace: a track per thread, kernels as fwd/bwd, micro-batches, reductions, steps, updates", async () => {
  const { spec, params, data, batch } = setup();
  const before = Date.now();
  const pool = await WorkerPool.create(spec, {
    workers: 2,
    params,
    data,
    maxBatch: 64,
    microBatch: 8, // 5 micro-batches a step
    profile: true,
  });
  try {
    const grads = new Map<string, Float32Array>();
    for (let s = 0; s < 3; s++) {
      await pool.step(batch, s, grads);
      const u = performance.now();
      pool.profiler!.main.span(SPAN.UPDATE, 0, u, u + 0.5);
    }
    // a worker writes a reduction's span just after publishing its sum, so the
    // step can end first: give the last span up to 2 s to arrive before closing
    const reduces = () =>
      pool.profiler!.toChromeTrace().traceEvents.filter((e) => e.cat === "reduce").length;
    for (let i = 0; i < 200 && reduces() < 15; i++) await new Promise((r) => setTimeout(r, 10));
  } finally {
    await pool.close();
  }
  const trace = pool.profiler!.toChromeTrace();
  JSON.parse(JSON.stringify(trace)); // plain JSON
  // the first span's wall-clock time (ts 0), to line the trace up with perf's (sched_trace.ts)
  const { epochMs } = trace.otherData;
  assert.ok(
    epochMs >= before - 1 && epochMs <= Date.now(),
    `epochMs ${epochMs}, run from ${before}`,
  );
  assert.equal(Math.min(...trace.traceEvents.filter((e) => e.ph === "X").map((e) => e.ts!)), 0);
  const spans = trace.traceEvents.filter((e) => e.ph === "X");
  const names = trace.traceEvents.filter((e) => e.ph === "M").map((e) => e.args!.name);
  // worker i is thread i + 1; with the main thread computing, the pool has worker 1 only
  assert.deepEqual(names, ["main thread", "worker 1"]);
  const count = (cat: string) => spans.filter((e) => e.cat === cat).length;
  assert.equal(count("step"), 3);
  assert.equal(count("update"), 3);
  // every micro-batch of every step, whichever thread ran it, and its reduction
  assert.equal(count("micro-batch"), 15);
  assert.equal(count("reduce"), 15);
  // names are the graph the threads run, after fusion
  assert.ok(
    spans.some((e) => e.cat === "fwd" && /^(conv2d\S*) /.test(e.name)),
    "a forward conv span",
  );
  assert.ok(spans.some((e) => e.cat === "bwd" && /^conv2d\S*backward/.test(e.name)));
  // the main thread (0) and worker 1 (thread 2) computed; worker 0 does not exist
  const tids = new Set(spans.filter((e) => e.cat === "micro-batch").map((e) => e.tid));
  assert.ok([...tids].every((t) => t === 0 || t === 2), `threads ${[...tids]}`);
  for (const e of spans) assert.ok(e.ts! >= 0 && e.dur! >= 0, JSON.stringify(e));
  const { steps, rows } = opTable(trace);
  assert.equal(steps, 3);
  const shares = rows.reduce((a, r) => a + r.share, 0);
  assert.ok(Math.abs(shares - 1) < 1e-9, `shares sum to ${shares}`);
  assert.ok(rows.every((r, i) => i === 0 || rows[i - 1]!.msPerStep >= r.msPerStep));
  assert.equal(pool.profiler!.dropped, 0);
  // per thread: the micro-batches of both threads add up to all 15
  const perThread = microBatchTable(trace);
  assert.equal(perThread.reduce((n, r) => n + r.count, 0), 15);
  for (const r of perThread) assert.ok(r.p10 <= r.p50 && r.p50 <= r.p90, JSON.stringify(r));
  const bal = stepBalance(trace);
  assert.equal(bal.steps + bal.soloSteps, 3);
  assert.ok(bal.steps === 0 || (bal.balance > 0 && bal.balance <= 1), JSON.stringify(bal));
});

Deno.test("an unprofiled runner records nothing and has no profiler", async () => {
  const { spec, params, data, batch } = setup();
  const runner = new LocalRunner(spec, { params, data, maxBatch: 64 });
  await runner.step(batch, 0, new Map());
  assert.equal(runner.profiler, null);
});

for (const kind of ["LocalRunner", "WorkerPool"] as const) {
  Deno.test(`${kind} lets timers run between steps (the event loop turns once a step)`, async () => {
    const { spec, params, data, batch } = setup();
    const runner = kind === "LocalRunner"
      ? new LocalRunner(spec, { params, data, maxBatch: 64 })
      : await WorkerPool.create(spec, { workers: 2, params, data, maxBatch: 64 });
    try {
      let done = 0;
      let firedAfter = -1;
      setTimeout(() => (firedAfter = done), 0);
      for (let s = 0; s < 4; s++) {
        await runner.step(batch, s, new Map());
        done++;
      }
      assert.ok(firedAfter >= 0 && firedAfter <= 1, `the timer ran after ${firedAfter} steps`);
    } finally {
      await runner.close();
    }
  });
}
