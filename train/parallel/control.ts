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

/** Int32 slots of a worker's control block. */
export const CTRL = { GO: 0, DONE: 1, SEQ: 2, QUIT: 3 } as const;
/** Bytes of a control block. */
export const CTRL_BYTES = 16;
