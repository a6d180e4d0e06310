/**
 * The control block through which the pool and a serving worker signal
 * steps without messages: an Int32Array over a SharedArrayBuffer. The pool
 * writes a shard and bumps `GO`; the worker runs it, then sets `DONE` to the
 * same number. Waiting is a short spin, then `Atomics.wait` woken by
 * `Atomics.notify`; a message through two event loops costs about 1 ms a step
 * on a virtual machine, most of it waking a sleeping thread.
 *
 * @module
 */

/** Int32 slots of a worker's control block. */
export const CTRL = { GO: 0, DONE: 1, START: 2, END: 3, QUIT: 4 } as const;
/** Bytes of a control block: the Int32 slots, then the step number as a float64 at `CTRL_STEP_BYTE`. */
export const CTRL_BYTES = 48;
/** Byte offset of the float64 step number in a control block. */
export const CTRL_STEP_BYTE = 32;
