/**
 * Simulated faults for tests, loaded into workers through the test seam
 * (see `seam.ts`): an uncaught error, `self.close()`, a hang, or a thread
 * that is slow on every micro-batch.
 *
 * @module
 */
import type { MakeHook, TestSeam, ThreadHook } from "./seam.ts";

/** A simulated fault, for tests. */
export interface InjectedFault {
  /** Worker index. */
  worker: number;
  /** Step at which it strikes. */
  step: number;
  /** Uncaught error, `self.close()`, or never answering. */
  kind: "throw" | "exit" | "hang";
  /** Strike on every attempt of the step (every replacement worker), not only the first (to test giving up). */
  every?: boolean;
}

/** What {@linkcode faultSeam} passes to the workers. */
export interface FaultConfig {
  /** Faults by worker and step. */
  faults?: InjectedFault[];
  /** Worker indices that wait this many milliseconds before every micro-batch. */
  slow?: { worker: number; ms: number }[];
}

/** The seam that simulates `config` in the workers. */
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

/** Builds the hook of one worker (the seam module's entry point). */
export const makeHook: MakeHook = (config, { worker, generation }): ThreadHook => {
  const { faults = [], slow = [] } = config as FaultConfig;
  const mine = faults.filter((f) => f.worker === worker && (generation === 0 || f.every));
  const delay = slow.find((s) => s.worker === worker)?.ms ?? 0;
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  return (step, micro) => {
    if (micro < 0) {
      const f = mine.find((f) => f.step === step);
      if (f) return strike(f.kind, step);
    } else if (delay > 0) Atomics.wait(sleeper, 0, 0, delay);
    return false;
  };
};
