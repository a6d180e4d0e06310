/**
 * Simulated faults for tests, loaded into workers through the test seam
 * (see `seam.ts`): an uncaught error, `self.close()`, a hang, or a thread
 * that is slow on every micro-batch.
 *
 * @module
 */
import { ASSIST_UNIT, type MakeHook, type TestSeam, type ThreadHook } from "./seam.ts";

/**
 * A simulated fault, for tests.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type InjectedFault, makeHook } from "./faults.ts";
 * // worker 0 hangs inside its first micro-batch of step 5 or later; at:"micro" blocks the
 * // thread, so only the steps before are called here
 * const fault: InjectedFault = { worker: 0, step: 5, kind: "hang", at: "micro" };
 * const hook = makeHook({ faults: [fault] }, { worker: 0, generation: 0 });
 * assert.equal(hook(4, -1), false);
 * assert.equal(hook(4, 0), false);
 * assert.equal(hook(5, -1), false); // not at the step's start: in the micro-batch
 * ```
 */
export interface InjectedFault {
  /** Worker index. */
  worker: number;
  /** The first step at or after which the worker starts that it strikes. */
  step: number;
  /** Uncaught error, `self.close()`, or never answering. */
  kind: "throw" | "exit" | "hang";
  /**
   * `"step"` (default): when the worker wakes for the step, before it claims
   * anything; `"micro"`: right after it claims its first micro-batch of the
   * step, so the step cannot finish without a retry; `"update"`: right after
   * it claims its first range of the step's parallel update (before it
   * touches it), so the update must be finished by a retry; `"assist"`:
   * right after it claims its first chunk of another thread's kernel (see
   * `ops/kernels/assist.ts`), so that thread's step cannot finish.
   */
  at?: "step" | "micro" | "update" | "assist";
  /** Every replacement of the worker strikes again at its first step at or after `step`, not only the first worker (to test giving up). */
  every?: boolean;
}

/**
 * What {@linkcode faultSeam} passes to the workers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type FaultConfig, makeHook } from "./faults.ts";
 * const config: FaultConfig = { slow: [{ worker: 1, ms: 20 }] };
 * const slow = makeHook(config, { worker: 1, generation: 0 });
 * const t0 = performance.now();
 * assert.equal(slow(0, 0), false); // waits 20 ms before the micro-batch
 * assert.ok(performance.now() - t0 >= 15);
 * assert.equal(slow(0, -1), false); // not at a step's start
 * ```
 */
export interface FaultConfig {
  /** Faults by worker and step. */
  faults?: InjectedFault[];
  /** Worker indices that wait this many milliseconds before every micro-batch (or, with `at: "update"`, every range of the parallel update). */
  slow?: { worker: number; ms: number; at?: "micro" | "update" }[];
}

/**
 * The seam that simulates `config` in the workers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { faultSeam } from "./faults.ts";
 * const seam = faultSeam({ faults: [{ worker: 1, step: 3, kind: "exit" }] });
 * assert.equal(seam.module, import.meta.resolve("./faults.ts")); // this module is the seam
 * assert.deepEqual(seam.config, { faults: [{ worker: 1, step: 3, kind: "exit" }] });
 * ```
 */
export function faultSeam(config: FaultConfig): TestSeam {
  return { module: import.meta.url, config };
}

function strike(kind: InjectedFault["kind"], step: number): true {
  if (kind === "throw") {
    // an uncaught error, as a bug in a callback would raise: the pool sees
    // it only through the worker's error event
    setTimeout(() => {
      throw new Error(`Injected fault at step ${step}`);
    });
  } else if (kind === "exit") self.close();
  // the worker leaves its serve loop and never answers: a hang, unless the
  // error or the close above ends it first
  return true;
}

/**
 * Builds the hook of one worker (the seam module's entry point).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { makeHook } from "./faults.ts";
 * const config = { faults: [{ worker: 0, step: 2, kind: "hang" as const, every: true }] };
 * const first = makeHook(config, { worker: 0, generation: 0 });
 * assert.equal(first(1, -1), false);
 * assert.equal(first(2, -1), true); // leaves its serve loop: a hang
 * // with `every`, each replacement strikes again
 * assert.equal(makeHook(config, { worker: 0, generation: 1 })(7, -1), true);
 * assert.equal(makeHook(config, { worker: 1, generation: 0 })(7, -1), false); // another worker
 * ```
 */
export const makeHook: MakeHook = (config, { worker, generation }): ThreadHook => {
  const { faults = [], slow = [] } = config as FaultConfig;
  const mine = faults.filter((f) => f.worker === worker && (generation === 0 || f.every));
  const slowAt = slow.find((s) => s.worker === worker);
  const delay = slowAt?.ms ?? 0;
  const delayAt = slowAt?.at ?? "micro";
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  return (step, micro, update) => {
    const at = micro === ASSIST_UNIT ? "assist" : micro < 0 ? "step" : update ? "update" : "micro";
    const f = mine.find((f) => step >= f.step && (f.at ?? "step") === at);
    if (f && at === "step") return strike(f.kind, step);
    if (f) {
      // inside a micro-batch: a throw ends the serve loop with the error; a
      // hang or exit blocks the thread until the pool terminates it
      if (f.kind === "throw") throw new Error(`Injected fault at step ${step}`);
      if (f.kind === "exit") self.close();
      for (;;) Atomics.wait(sleeper, 0, 0);
    }
    if (delay > 0 && at === delayAt) Atomics.wait(sleeper, 0, 0, delay);
    return false;
  };
};
