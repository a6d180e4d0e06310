/**
 * The one place where tests reach into the pool's threads: a worker given a
 * {@linkcode TestSeam} imports its module and calls the hook it makes at the
 * start of every step and before every micro-batch. Production runs give no
 * seam, so the step path has no test branches; `faults.ts` is the module
 * that simulates crashes, exits, hangs and slow threads.
 *
 * @module
 */

/**
 * A module whose `makeHook` export builds a {@linkcode ThreadHook}, and the plain-data config passed to it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { TestSeam } from "./seam.ts";
 * import { faultSeam } from "./faults.ts";
 * const seam: TestSeam = faultSeam({ slow: [{ worker: 1, ms: 5 }] });
 * assert.ok(seam.module.endsWith("/faults.ts")); // an absolute URL a worker can import
 * assert.deepEqual(structuredClone(seam.config), seam.config); // plain data: posts to workers
 * ```
 */
export interface TestSeam {
  /** Absolute URL of the module (it runs in every worker). */
  module: string;
  /** Passed to `makeHook` (structured-cloned into each worker). */
  config: unknown;
}

/**
 * Which thread a hook runs on: the worker's index, and how many times that slot was started before.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ThreadId } from "./seam.ts";
 * import { makeHook } from "./faults.ts";
 * const config = { faults: [{ worker: 1, step: 0, kind: "hang" as const }] };
 * const first: ThreadId = { worker: 1, generation: 0 };
 * const replacement: ThreadId = { worker: 1, generation: 1 };
 * assert.equal(makeHook(config, first)(0, -1), true); // the first worker 1 hangs at step 0
 * assert.equal(makeHook(config, replacement)(0, -1), false); // its replacement does not
 * ```
 */
export interface ThreadId {
  /** Worker index (0 is the main thread's lane when it takes part). */
  worker: number;
  /** 0 for the first start of this worker index, 1 for its first replacement, ... */
  generation: number;
}

/**
 * The `micro` a {@linkcode ThreadHook} gets when its thread claims a chunk
 * of another thread's kernel (see `ops/kernels/assist.ts`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ASSIST_UNIT } from "./seam.ts";
 * assert.ok(ASSIST_UNIT < -1); // neither a step's start nor a micro-batch
 * ```
 */
export const ASSIST_UNIT = -2;

/**
 * Called with `micro` -1 when a step starts on the thread, then with each
 * micro-batch index it claims, with `update` true and the unit's index
 * before each unit of the parallel update it claims, and with
 * {@linkcode ASSIST_UNIT} before each chunk of another thread's kernel it
 * claims; returning true (at a step's start) makes the worker leave its
 * serve loop for its event loop and never answer (a simulated fault).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ThreadHook } from "./seam.ts";
 * const calls: string[] = [];
 * const hook: ThreadHook = (step, micro, update) => {
 *   calls.push(micro < 0 ? `step ${step}` : update ? `unit ${micro}` : `micro ${micro}`);
 *   return step >= 3 && micro < 0; // from step 3 on, leave at the step's start
 * };
 * assert.equal(hook(2, -1), false);
 * hook(2, 0);
 * hook(2, 1, true);
 * assert.equal(hook(3, -1), true);
 * assert.deepEqual(calls, ["step 2", "micro 0", "unit 1", "step 3"]);
 * ```
 */
export type ThreadHook = (step: number, micro: number, update?: boolean) => boolean;

/**
 * The signature of a seam module's `makeHook` export.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { MakeHook } from "./seam.ts";
 * // a seam that makes worker `config.worker` leave at step `config.step`
 * const makeHook: MakeHook = (config, { worker }) => {
 *   const { worker: w, step: at } = config as { worker: number; step: number };
 *   return (step, micro) => worker === w && micro < 0 && step >= at;
 * };
 * const hook = makeHook({ worker: 0, step: 4 }, { worker: 0, generation: 0 });
 * assert.deepEqual([3, 4, 5].map((step) => hook(step, -1)), [false, true, true]);
 * assert.equal(makeHook({ worker: 0, step: 4 }, { worker: 1, generation: 0 })(4, -1), false);
 * ```
 */
export type MakeHook = (config: unknown, thread: ThreadId) => ThreadHook;

/**
 * Imports the seam's module and builds the hook for `thread`; no seam gives no hook.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadHook } from "./seam.ts";
 * import { faultSeam } from "./faults.ts";
 * const thread = { worker: 0, generation: 0 };
 * assert.equal(await loadHook(undefined, thread), null); // production: no hook at all
 * const seam = faultSeam({ faults: [{ worker: 0, step: 2, kind: "throw", at: "micro" }] });
 * const hook = (await loadHook(seam, thread))!;
 * assert.equal(hook(1, 0), false); // step 1: nothing happens
 * assert.throws(() => hook(2, 0), /Injected fault at step 2/);
 * await assert.rejects(
 *   loadHook({ module: "data:text/javascript,export const x = 1;", config: null }, thread),
 *   /does not export makeHook/,
 * );
 * ```
 */
export async function loadHook(
  seam: TestSeam | undefined,
  thread: ThreadId,
): Promise<ThreadHook | null> {
  if (!seam) return null;
  const mod = await import(seam.module);
  if (typeof mod.makeHook !== "function") {
    throw new Error(`test seam: module ${seam.module} does not export makeHook`);
  }
  return (mod.makeHook as MakeHook)(seam.config, thread);
}
