/**
 * The control block through which the pool and a serving worker signal
 * steps without messages: an Int32Array over a SharedArrayBuffer. The pool
 * publishes a step in the shared step block, writes its sequence number in
 * `SEQ` and bumps `GO`; the worker takes its share of the step's
 * micro-batches, then sets `DONE` to the same `GO` number. A message through
 * two event loops costs about 1 ms a step on a virtual machine, most of it
 * waking a sleeping thread.
 *
 * @module
 */

/**
 * Int32 slots of a worker's control block.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CTRL, CTRL_BYTES } from "./control.ts";
 * const ctl = new Int32Array(new SharedArrayBuffer(CTRL_BYTES));
 * Atomics.store(ctl, CTRL.SEQ, 7); // the pool publishes step 7, then wakes the worker
 * const go = Atomics.add(ctl, CTRL.GO, 1) + 1;
 * Atomics.store(ctl, CTRL.DONE, go); // the worker's answer: done with that GO
 * assert.deepEqual([...ctl], [1, 1, 7, 0]);
 * ```
 */
export const CTRL = { GO: 0, DONE: 1, SEQ: 2, QUIT: 3 } as const;
/**
 * Bytes of a control block.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CTRL, CTRL_BYTES } from "./control.ts";
 * assert.equal(CTRL_BYTES, 4 * Object.keys(CTRL).length); // one Int32 per slot
 * ```
 */
export const CTRL_BYTES = 16;
