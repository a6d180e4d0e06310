/**
 * The one place where tests reach into the pool's threads: a worker given a
 * {@linkcode TestSeam} imports its module and calls the hook it makes at the
 * start of every step and before every micro-batch. Production runs give no
 * seam, so the step path has no test branches; `faults.ts` is the module
 * that simulates crashes, exits, hangs and slow threads.
 *
 * @module
 */

/** A module whose `makeHook` export builds a {@linkcode ThreadHook}, and the plain-data config passed to it. */
export interface TestSeam {
  /** Absolute URL of the module (it runs in every worker). */
  module: string;
  /** Passed to `makeHook` (structured-cloned into each worker). */
  config: unknown;
}

/** Which thread a hook runs on: the worker's index, and how many times that slot was started before. */
export interface ThreadId {
  /** Worker index (0 is the main thread's lane when it takes part). */
  worker: number;
  /** 0 for the first start of this worker index, 1 for its first replacement, ... */
  generation: number;
}

/**
 * Called with `micro` -1 when a step starts on the thread, then with each
 * micro-batch index it claims, and with `update` true and the unit's index
 * before each unit of the parallel update it claims; returning true (at a
 * step's start) makes the worker leave its serve loop for its event loop
 * and never answer (a simulated fault).
 */
export type ThreadHook = (step: number, micro: number, update?: boolean) => boolean;

/** The signature of a seam module's `makeHook` export. */
export type MakeHook = (config: unknown, thread: ThreadId) => ThreadHook;

/** Imports the seam's module and builds the hook for `thread`; no seam gives no hook. */
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
