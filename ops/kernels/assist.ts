/**
 * Help inside a kernel call. A kernel whose work falls into independent
 * chunks (the fused convolution's output channels) can open a job on this
 * thread's slot of a shared board; threads that wait with nothing of their
 * own to do (a step's micro-batches all claimed) claim chunks from a shared
 * counter and run them on the owner's arena, a shared `WebAssembly.Memory`
 * they hold a copy of. Every chunk runs the same code on the same inputs
 * whichever thread runs it and writes its own outputs, so the results are
 * the same bits as the owner alone. Every call opens a job, so a thread
 * that runs out of work joins a kernel already under way (the last
 * micro-batch's backward, typically); the owner pays an atomic claim per
 * chunk, well under a microsecond against tens for a channel.
 *
 * The board is two shared arrays: per thread a slot of
 * {@linkcode ASSIST_SLOT_INTS} ints (claim counter, done count, chunks,
 * kind, memory id, the kernel's integer arguments) and
 * {@linkcode ASSIST_SLOT_FLOATS} floats (the kernel's float arguments or
 * results), then one int for the whole board: the chunks helpers ran. The claim counter holds the job's tag in its upper 16
 * bits, so a helper that read one job's arguments cannot claim a chunk of
 * the next; below them, a job of up to 255 chunks counts the chunks the
 * owner took from the front and those helpers took from the back (a byte
 * each), a larger one the chunks taken in order.
 *
 * @module
 */

/** Ints of one thread's slot. */
export const ASSIST_SLOT_INTS = 32;
/** Floats of one thread's slot (a job's float arguments or results). */
export const ASSIST_SLOT_FLOATS = 4096;
/**
 * Where a slot's fields sit; the kernel's own integers start at `ARGS`.
 * `SLOTS`: when above 0, only threads whose index is below it may help (the
 * job's kernel has scratch for that many threads in the owner's arena).
 */
export const ASSIST = { CLAIM: 0, DONE: 1, CHUNKS: 2, KIND: 3, MEM: 4, SLOTS: 5, ARGS: 8 } as const;
/** Kernel integer arguments a job can carry. */
export const ASSIST_ARGS = ASSIST_SLOT_INTS - ASSIST.ARGS;
/** Kinds of jobs: a number per chunk runner, the same in every thread. */
export const ASSIST_KIND = {
  CONV_RELU_POOL_FORWARD: 1,
  CONV_RELU_POOL_BACKWARD: 2,
  WINOGRAD: 3,
  WINOGRAD_FILTER: 4,
} as const;
/**
 * How long a waiting thread polls for chunks to run without finding one
 * before it waits as it would without the board (ms).
 */
export const ASSIST_POLL_MS = 2;
/**
 * The same for a pool told to help always (`assist: "always"`, for tests):
 * long enough that a thread waiting on a late one (a test's injected delay of
 * a few ms) is still polling when the late one's kernels open their jobs.
 */
export const ASSIST_POLL_ALWAYS_MS = 25;
/** How long an owner waits for a helper's chunk before it gives up (ms): a chunk takes microseconds. */
export const ASSIST_STALL_MS = 1000;

/**
 * The shared memory of a board for `threads` threads.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ASSIST_SLOT_FLOATS, ASSIST_SLOT_INTS, assistBoard } from "./assist.ts";
 * const b = assistBoard(2);
 * assert.equal(b.ints.length, 2 * ASSIST_SLOT_INTS + 1); // two slots, then the chunks helped
 * assert.equal(b.floats.length, 2 * ASSIST_SLOT_FLOATS);
 * assert.ok(b.ints.buffer instanceof SharedArrayBuffer);
 * ```
 */
export interface AssistBoard {
  /** Slots' ints, then the chunks helpers ran. */
  ints: Int32Array;
  /** Slots' floats. */
  floats: Float32Array;
  /** Threads (slots). */
  threads: number;
}

/** A board for `threads` threads, in SharedArrayBuffers (see {@linkcode AssistBoard}). */
export function assistBoard(threads: number): AssistBoard {
  return {
    ints: new Int32Array(new SharedArrayBuffer(4 * (threads * ASSIST_SLOT_INTS + 1))),
    floats: new Float32Array(new SharedArrayBuffer(4 * threads * ASSIST_SLOT_FLOATS)),
    threads,
  };
}

/**
 * Chunks of any thread's jobs that a helper ran on `board`, over its life.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { assistBoard, helpedChunks } from "./assist.ts";
 * assert.equal(helpedChunks(assistBoard(2)), 0);
 * ```
 */
export function helpedChunks(board: AssistBoard): number {
  return Atomics.load(board.ints, board.threads * ASSIST_SLOT_INTS);
}

/**
 * Runs chunk `chunk` of a job on `buf`, this thread's view of the owner's
 * arena: `ints[at + i]` are the job's integer arguments, `floats[fat + i]`
 * its floats; `thread` is the index on the board of the thread running it
 * (owner or helper), which picks its scratch in a job opened with slots.
 */
export type AssistRunner = (
  buf: ArrayBufferLike,
  ints: Int32Array,
  at: number,
  floats: Float32Array,
  fat: number,
  chunk: number,
  thread: number,
) => void;

let scratchSlots = 1;

/**
 * Threads a kernel that takes help with scratch of its own per thread
 * should reserve arena scratch for (read by ops' `scratch` hooks while a
 * plan is made; 1 outside a worker pool's shared arenas). Sets it to `n`
 * and returns the previous value; a worker pool's shard sets it around
 * planning a shared arena.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { assistScratchSlots, setAssistScratchSlots } from "./assist.ts";
 * const before = setAssistScratchSlots(3);
 * assert.equal(assistScratchSlots(), 3);
 * setAssistScratchSlots(before);
 * assert.equal(assistScratchSlots(), before);
 * ```
 */
export function setAssistScratchSlots(n: number): number {
  if (!(Number.isInteger(n) && n >= 1)) {
    throw new Error(`setAssistScratchSlots: ${n} is not a positive integer`);
  }
  const was = scratchSlots;
  scratchSlots = n;
  return was;
}

/** See {@linkcode setAssistScratchSlots}. */
export function assistScratchSlots(): number {
  return scratchSlots;
}

const runners: (AssistRunner | undefined)[] = [];

/**
 * Registers the chunk runner of a job kind (see {@linkcode ASSIST_KIND});
 * a kernel module does it when it is imported, in every thread.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { assistRunner, registerAssistRunner } from "./assist.ts";
 * const run = () => {};
 * registerAssistRunner(99, run);
 * assert.equal(assistRunner(99), run);
 * ```
 */
export function registerAssistRunner(kind: number, run: AssistRunner): void {
  runners[kind] = run;
}

/**
 * Whether a node of an op whose kernel may take help does so at its sizes:
 * its input shapes, attributes and output shape, as an op's `scratch` hook
 * gets them.
 */
export type AssistApplies = (
  inShapes: readonly (readonly number[])[],
  // deno-lint-ignore no-explicit-any
  attrs: any,
  outShape: readonly number[],
) => boolean;

const ops = new Map<string, AssistApplies | null>();

/**
 * Registers an op whose kernel opens jobs on the board (an op module does it
 * when it is imported), so that a worker pool shares its threads' arenas
 * only for graphs where some kernel takes help (a shared arena costs kernels
 * a few percent); `applies` says at which sizes it does (default: all).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { registerAssistOp, takesHelp } from "./assist.ts";
 * registerAssistOp("my_op", (ins) => ins[0]![1]! >= 4); // from 4 channels
 * assert.ok(takesHelp("my_op"));
 * assert.ok(takesHelp("my_op", [[8, 4]], {}, [8, 4]));
 * assert.ok(!takesHelp("my_op", [[8, 1]], {}, [8, 1]));
 * assert.ok(!takesHelp("relu"));
 * ```
 */
export function registerAssistOp(name: string, applies: AssistApplies | null = null): void {
  ops.set(name, applies);
}

/**
 * Whether the op `name`'s kernel opens jobs on the board (see
 * {@linkcode registerAssistOp}): at the sizes given, or at some sizes.
 */
export function takesHelp(
  name: string,
  inShapes?: readonly (readonly number[])[],
  // deno-lint-ignore no-explicit-any
  attrs?: any,
  outShape?: readonly number[],
): boolean {
  const applies = ops.get(name);
  if (applies === undefined) return false;
  if (applies === null || !inShapes || !outShape) return true;
  return applies(inShapes, attrs ?? {}, outShape);
}

/** The runner registered for `kind`, if any. */
export function assistRunner(kind: number): AssistRunner | undefined {
  return runners[kind];
}

/** Thrown by an owner whose helper did not finish a chunk in {@linkcode ASSIST_STALL_MS}. */
export class AssistStall extends Error {}

/**
 * One thread's side of a board: it opens jobs on its own slot (as an owner)
 * and runs chunks of other threads' jobs (as a helper) on the arenas it was
 * given with {@linkcode Assist.adopt}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Assist, assistBoard, registerAssistRunner } from "./assist.ts";
 * const board = assistBoard(2);
 * const arena = new SharedArrayBuffer(64); // stands for an arena memory's buffer
 * const seen: number[] = [];
 * registerAssistRunner(98, (buf, ints, at, _f, _fat, chunk) => {
 *   new Int32Array(buf)[chunk] = ints[at]! + chunk; // a chunk writes its own output
 *   seen.push(chunk);
 * });
 * const owner = new Assist(board, 0), helper = new Assist(board, 1);
 * owner.adopt(7, arena, true);
 * helper.adopt(7, arena);
 * const at = owner.open(arena, 98, 4);
 * assert.ok(at >= 0);
 * board.ints[at] = 100;
 * assert.equal(helper.help(), 0); // not published yet
 * owner.publish();
 * assert.equal(helper.help(), 4); // a helper in another thread would claim some, here all
 * owner.finish();
 * assert.deepEqual([...new Int32Array(arena, 0, 4)], [100, 101, 102, 103]);
 * assert.equal(owner.helpedChunks, 4);
 * ```
 */
export class Assist {
  /** The board. */
  readonly board: AssistBoard;
  /** This thread's slot. */
  readonly me: number;
  private readonly ints: Int32Array;
  private readonly floats: Float32Array;
  private readonly helpedAt: number;
  /** Memory id → this thread's view of that arena. */
  private readonly arenas = new Map<number, ArrayBufferLike>();
  /** This thread's own arenas → their ids. */
  private readonly own = new Map<ArrayBufferLike, number>();
  private tag = 0;
  private open_ = false;
  /** Milliseconds this thread spent running other threads' chunks (see {@linkcode Assist.help}). */
  helpedMs = 0;
  /** Called after each claim of another thread's chunk, before it runs (a test seam's). */
  onClaim: (() => void) | null = null;
  /** Set by the owner for the job it runs: the chunk runner of its kind. */
  private ownerRun: AssistRunner | null = null;
  private ownerBuf: ArrayBufferLike | null = null;

  /** Thread `me`'s side of `board`. */
  constructor(board: AssistBoard, me: number) {
    if (!(me >= 0 && me < board.threads)) {
      throw new Error(`Assist: thread ${me} is not one of the board's ${board.threads}`);
    }
    this.board = board;
    this.me = me;
    this.ints = board.ints;
    this.floats = board.floats;
    this.helpedAt = board.threads * ASSIST_SLOT_INTS;
    // a replacement of a thread that died goes on from its predecessor's tag: a helper that read
    // a job the dead owner left open cannot claim a chunk of the next one under the same tag
    this.tag = Atomics.load(this.ints, me * ASSIST_SLOT_INTS + ASSIST.CLAIM) >>> 16;
  }

  /**
   * Registers the arena `buf` (this thread's view of a shared memory) under
   * `id`, the same in every thread; `mine` when it is this thread's own
   * arena, whose kernels may open jobs.
   */
  adopt(id: number, buf: ArrayBufferLike, mine = false): void {
    this.arenas.set(id, buf);
    if (mine) this.own.set(buf, id);
  }

  /** Chunks of any thread's jobs that a helper ran, over the board's life. */
  get helpedChunks(): number {
    return helpedChunks(this.board);
  }

  /**
   * As an owner: opens a job of `chunks` chunks of `kind` on the arena
   * `buf` when `buf` is one of this thread's arenas and there are other threads;
   * returns the int index of the job's arguments in `board.ints` (the
   * floats start at `floatsAt()`), or -1 (run the kernel alone). With
   * `slots` above 0, the job's kernel has per-thread scratch for threads
   * below that index only: only they help, and none when this thread is not
   * one of them or no other is. The caller writes the arguments, then calls
   * {@linkcode Assist.publish} and {@linkcode Assist.finish}.
   */
  open(buf: ArrayBufferLike, kind: number, chunks: number, slots = 0): number {
    if (this.open_ || chunks < 2 || chunks > 0xffff || this.board.threads < 2) return -1;
    if (slots > 0 && (this.me >= slots || slots < 2)) return -1;
    const id = this.own.get(buf);
    const run = runners[kind];
    if (id === undefined || !run) return -1;
    const s = this.me * ASSIST_SLOT_INTS, ints = this.ints;
    // nothing claimable while the arguments change: a helper that read the last job's counter
    // and then this job's chunk count must not claim a chunk under the last job's tag
    Atomics.store(ints, s + ASSIST.CLAIM, (this.tag << 16) | 0xffff);
    ints[s + ASSIST.CHUNKS] = chunks;
    ints[s + ASSIST.KIND] = kind;
    ints[s + ASSIST.MEM] = id;
    ints[s + ASSIST.SLOTS] = slots;
    Atomics.store(ints, s + ASSIST.DONE, 0);
    this.open_ = true;
    this.ownerRun = run;
    this.ownerBuf = buf;
    return s + ASSIST.ARGS;
  }

  /** Index in `board.floats` of this thread's job's floats. */
  floatsAt(): number {
    return this.me * ASSIST_SLOT_FLOATS;
  }

  /** Makes the opened job's chunks claimable. */
  publish(): void {
    this.tag = this.tag >= 0x7fff ? 1 : this.tag + 1;
    Atomics.store(this.ints, this.me * ASSIST_SLOT_INTS + ASSIST.CLAIM, this.tag << 16);
  }

  /**
   * As the owner: runs the chunks nobody else claimed, then waits for the
   * helpers' (they take microseconds each); throws {@linkcode AssistStall}
   * after {@linkcode ASSIST_STALL_MS} without progress.
   */
  finish(): void {
    const s = this.me * ASSIST_SLOT_INTS, ints = this.ints;
    const chunks = ints[s + ASSIST.CHUNKS]!;
    const run = this.ownerRun!, buf = this.ownerBuf!, fat = this.floatsAt();
    try {
      for (;;) {
        const c = claim(ints, s, chunks);
        if (c < 0) break;
        run(buf, ints, s + ASSIST.ARGS, this.floats, fat, c, this.me);
        Atomics.add(ints, s + ASSIST.DONE, 1);
      }
      let done = Atomics.load(ints, s + ASSIST.DONE);
      let since = done < chunks ? performance.now() : 0;
      while (done < chunks) {
        const now = Atomics.load(ints, s + ASSIST.DONE);
        if (now !== done) {
          done = now;
          since = performance.now();
        } else if (performance.now() - since > ASSIST_STALL_MS) {
          throw new AssistStall(
            `a thread helping thread ${this.me} left ${
              chunks - done
            } chunk(s) of a kernel unfinished for ${ASSIST_STALL_MS} ms`,
          );
        }
      }
    } finally {
      this.open_ = false;
      this.ownerRun = null;
      this.ownerBuf = null;
    }
  }

  /**
   * As a helper: runs every chunk of other threads' open jobs it can claim
   * (on arenas it adopted, of kinds it has a runner for); returns how many.
   */
  help(): number {
    const ints = this.ints;
    let ran = 0;
    for (let t = 0; t < this.board.threads; t++) {
      if (t === this.me) continue;
      const s = t * ASSIST_SLOT_INTS;
      for (;;) {
        const v = Atomics.load(ints, s + ASSIST.CLAIM);
        if (v === 0) break;
        const chunks = ints[s + ASSIST.CHUNKS]!;
        const c = fromBack(v, chunks);
        if (c < 0) break;
        const buf = this.arenas.get(ints[s + ASSIST.MEM]!);
        const run = runners[ints[s + ASSIST.KIND]!];
        const slots = ints[s + ASSIST.SLOTS]!;
        if (!buf || !run || (slots > 0 && this.me >= slots)) break;
        // the arguments read above belong to the job the tag names only if the claim succeeds
        const next = chunks <= TWO_ENDED ? v + 0x100 : v + 1;
        if (Atomics.compareExchange(ints, s + ASSIST.CLAIM, v, next) !== v) continue;
        this.onClaim?.();
        const t0 = performance.now();
        run(buf, ints, s + ASSIST.ARGS, this.floats, t * ASSIST_SLOT_FLOATS, c, this.me);
        this.helpedMs += performance.now() - t0;
        Atomics.add(ints, this.helpedAt, 1);
        Atomics.add(ints, s + ASSIST.DONE, 1);
        ran++;
      }
    }
    return ran;
  }

  /**
   * While `arr[at]` is `value`: helps other threads' jobs until the value
   * changes or `pollMs` pass without a chunk to run. Returns the milliseconds spent
   * running chunks.
   */
  waitHelping(arr: Int32Array, at: number, value: number, pollMs: number): number {
    const before = this.helpedMs;
    let until = performance.now() + pollMs;
    while (Atomics.load(arr, at) === value) {
      if (this.help() > 0) until = performance.now() + pollMs;
      else if (performance.now() > until) break;
    }
    return this.helpedMs - before;
  }
}

/**
 * Jobs of at most this many chunks are claimed from both ends: the owner
 * takes chunks from the front (the claim word's low byte counts them),
 * helpers from the back (the next byte), so each thread's chunks are
 * neighbours and their outputs share no cache line but where the two runs
 * meet (the fused convolution's channels write planes of 169 floats: taken
 * in turn, every plane's edge lines went back and forth between the cores).
 * Larger jobs are claimed in order from the front by everyone (16 bits).
 */
const TWO_ENDED = 0xff;

// the owner's next chunk under claim word v (front), or -1 when none is left
function fromFront(v: number, chunks: number): number {
  if (chunks > TWO_ENDED) return (v & 0xffff) < chunks ? v & 0xffff : -1;
  const front = v & 0xff, back = (v >>> 8) & 0xff;
  return front + back < chunks ? front : -1;
}

// a helper's next chunk under claim word v (from the back when the job is small), or -1
function fromBack(v: number, chunks: number): number {
  if (chunks > TWO_ENDED) return fromFront(v, chunks);
  const front = v & 0xff, back = (v >>> 8) & 0xff;
  return front + back < chunks ? chunks - 1 - back : -1;
}

function claim(ints: Int32Array, s: number, chunks: number): number {
  for (;;) {
    const v = Atomics.load(ints, s + ASSIST.CLAIM);
    const c = fromFront(v, chunks);
    if (c < 0) return -1;
    if (Atomics.compareExchange(ints, s + ASSIST.CLAIM, v, v + 1) === v) return c;
  }
}

let active: Assist | null = null;

/**
 * The board this thread's kernels open jobs on (set by a worker pool around
 * its micro-batches), or null.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { activeAssist, Assist, assistBoard, setActiveAssist } from "./assist.ts";
 * const a = new Assist(assistBoard(1), 0);
 * setActiveAssist(a);
 * assert.equal(activeAssist(), a);
 * setActiveAssist(null);
 * assert.equal(activeAssist(), null);
 * ```
 */
export function activeAssist(): Assist | null {
  return active;
}

/** Sets this thread's {@linkcode activeAssist}. */
export function setActiveAssist(a: Assist | null): void {
  active = a;
}
