/**
 * The parallel update: once a step's gradient tree is complete, every
 * thread of the pool takes part in the reduction's last sum and the
 * optimizer's step, by ranges of the parameters ("units", at most
 * {@linkcode UPDATE_UNIT} elements of one parameter each). On a unit a thread
 * adds the tree's two top halves (the last sum of the reduction, left undone
 * by the tree) into a small buffer of its own, and applies the optimizer's
 * elementwise rule (`train/optim/rules.ts`) with its state in shared memory:
 * the gradient regions are only read, so their cache lines stay with the
 * threads that wrote them. Elementwise work by ranges gives the bits of the
 * whole-array step, whichever thread does which range.
 *
 * With the regions in a shared WebAssembly memory (`sharedRegions`), a
 * unit's last sum and its rule run in WebAssembly (`UpdateWasm`): the
 * gradient made in the thread's own scratch, the unit's parameters and state
 * copied in, the rule applied (SGD and Adam; AdaDelta's rule stays in
 * JavaScript), copied back. The same bits as the JavaScript loops.
 *
 * Units are claimed with a flag each (`Atomics.compareExchange`), in an
 * order of the thread's own ({@linkcode claimOrder}): every thread has a
 * home section of the units (an equal share of the values) that it takes
 * from the front, and once that is gone it takes what is left of the
 * others' sections from their backs. So a thread updates the same
 * parameters step after step (they, their optimizer state and their part of
 * the gradient stay in its core's cache), while a slow or descheduled thread
 * still takes fewer units.
 *
 * Clipping by the global norm is a two-round step: round 0 sums each
 * gradient chunk's squares (chunks of {@linkcode NORM_CHUNK}, after the last
 * sum), a barrier, then round 1 scales and updates by units; the norm adds
 * the chunks' sums in the optimizer's order, as `clipGradNorm` does on one
 * thread.
 *
 * A unit is marked claimed, running, then done, so a step whose update was
 * cut short by a fault re-runs only the units not done; a unit left running
 * by a thread that died inside it cannot be re-run exactly and the step
 * fails.
 *
 * @module
 */
import {
  applyRuleAt,
  NORM_CHUNK,
  ownLines,
  type Rule,
  RULE_SCALARS,
  sumSquares,
  sumSquaresOfSum,
} from "../optim/rules.ts";
import type { Layout } from "./spec.ts";
import { UpdateWasm } from "../../ops/kernels/reduce_wasm.ts";

/**
 * Elements per unit of the parallel update (a divisor of {@linkcode NORM_CHUNK}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NORM_CHUNK } from "../optim/rules.ts";
 * import { unitsOf, UPDATE_UNIT } from "./update.ts";
 * assert.equal(NORM_CHUNK % UPDATE_UNIT, 0);
 * // a parameter of 10,000 values is three units: 4096, 4096 and 1808
 * const grads: [string, string][] = [["w", "grad w"]];
 * const layout = { grads, offsets: [0], sizes: [10_000], total: 10_000 };
 * const units = [0, 0, 4096, 0, 0, 4096, 8192, 0, 0, 8192, 10_000, 0];
 * assert.deepEqual([...unitsOf(layout, ["w"], UPDATE_UNIT)], units);
 * ```
 */
export const UPDATE_UNIT = 4096;

/**
 * Int32 slots of the update's control block: the step's tag, then each round's count of finished units.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NO_STATE } from "../optim/rules.ts";
 * import { publishUpdate, UPD, Updater, updateShared } from "./update.ts";
 * const grads: [string, string][] = [["w", "grad w"]];
 * const layout = { grads, offsets: [0], sizes: [5000], total: 5000 };
 * const u = updateShared(layout, "sgd", ["w"], [NO_STATE], 0);
 * publishUpdate(u, 3, true, false);
 * assert.equal(u.ctl[UPD.TAG], 3 << 2); // the step's tag, above the units' state bits
 * const regions = new Float32Array(5000); // the gradient (region 0; no pair to add)
 * new Updater(u, layout, new Map([["w", new Float32Array(5000)]]), regions, null).begin(3, 0, -1);
 * assert.equal(u.ctl[UPD.DONE0], 0); // nothing run yet
 * ```
 */
export const UPD = { TAG: 0, DONE0: 2, DONE1: 3 } as const;

/**
 * States of a unit's flag (its low two bits; the step's tag is above them).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NO_STATE } from "../optim/rules.ts";
 * import { SPAN } from "./trace.ts";
 * import { publishUpdate, UNIT, UPD, Updater, updateShared } from "./update.ts";
 * const grads: [string, string][] = [["w", "grad w"]];
 * const layout = { grads, offsets: [0], sizes: [5000], total: 5000 };
 * const u = updateShared(layout, "sgd", ["w"], [NO_STATE], 0);
 * publishUpdate(u, 3, true, false);
 * assert.deepEqual([...u.flags], [(3 << 2) | UNIT.TODO, (3 << 2) | UNIT.TODO]); // 4096 + 904
 * const params = new Map([["w", new Float32Array(5000)]]);
 * const up = new Updater(u, layout, params, new Float32Array(5000), null);
 * up.begin(3, 0, -1);
 * assert.equal(up.advance(null, SPAN.UPDATE), true);
 * assert.deepEqual([...u.flags], [(3 << 2) | UNIT.DONE, (3 << 2) | UNIT.DONE]);
 * assert.equal(u.ctl[UPD.DONE0], 2);
 * ```
 */
export const UNIT = { TODO: 0, RUNNING: 1, DONE: 2, CLAIMED: 3 } as const;

/**
 * What every thread of a pool needs for the parallel update (posted to workers; arrays are shared).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Sgd } from "../../mod.ts";
 * import { NO_STATE } from "../optim/rules.ts";
 * import { type UpdateShared, updateShared } from "./update.ts";
 * const grads: [string, string][] = [["w", "grad w"]];
 * const layout = { grads, offsets: [0], sizes: [3], total: 3 };
 * const u: UpdateShared = updateShared(layout, "sgd", ["w"], [NO_STATE], 0, 2);
 * new Sgd(0.5).begin(u.scalars); // the step's numbers, read by every thread
 * assert.equal(u.scalars[0], 0.5); // SGD's learning rate
 * for (const a of [u.scalars, u.ctl, u.flags, u.norms]) {
 *   assert.ok(a.buffer instanceof SharedArrayBuffer);
 * }
 * assert.deepEqual(structuredClone(u).counts, [1, 0]); // posts to workers
 * ```
 */
export interface UpdateShared {
  /** The optimizer's rule. */
  rule: Rule;
  /** The parameters it updates, in the optimizer's order (the others are buffers, summed only). */
  trainable: string[];
  /** Each trainable parameter's two state buffers (shared memory). */
  state: [Float32Array, Float32Array][];
  /** The global-norm limit, 0 for no clipping. */
  clip: number;
  /** Threads of the pool (each has a home section of the units, see {@linkcode claimOrder}). */
  threads: number;
  /** Units of round 0 and round 1 (0 without clipping). */
  counts: [number, number];
  /** The step's numbers of the rule (see `RangeOptimizer.begin`). */
  scalars: Float64Array;
  /** The control block (see {@linkcode UPD}). */
  ctl: Int32Array;
  /** Round 0's units, then round 1's: `tag << 2 | state` (see {@linkcode UNIT}). */
  flags: Int32Array;
  /** Per unit of round 0 with clipping: its gradient chunk's sum of squares. */
  norms: Float64Array;
}

/**
 * Units of `size` elements (the last of each parameter shorter) over
 * `layout`: `[layout entry, lo, hi, trainable index or -1]` each, trainable
 * ones first in the optimizer's order, then the buffers' (summed only).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { unitsOf } from "./update.ts";
 * const layout = {
 *   grads: [["w", "grad w"], ["b", "grad b"]] as [string, string][],
 *   offsets: [0, 5],
 *   sizes: [5, 2],
 *   total: 7,
 * };
 * // only b is trainable: its unit first, then w's as a buffer (-1)
 * assert.deepEqual([...unitsOf(layout, ["b"], 4)], [1, 0, 2, 0, 0, 0, 4, -1, 0, 4, 5, -1]);
 * assert.throws(() => unitsOf(layout, ["x"], 4), /parameter "x" has no gradient/);
 * ```
 */
export function unitsOf(layout: Layout, trainable: string[], size = NORM_CHUNK): Int32Array {
  const names = layout.grads.map(([name]) => name);
  const out: number[] = [];
  const chunks = (entry: number, t: number) => {
    const n = layout.sizes[entry]!;
    for (let lo = 0; lo < n; lo += size) out.push(entry, lo, Math.min(n, lo + size), t);
  };
  trainable.forEach((name, t) => {
    const entry = names.indexOf(name);
    if (entry < 0) throw new Error(`parallel update: parameter "${name}" has no gradient`);
    chunks(entry, t);
  });
  names.forEach((name, entry) => {
    if (!trainable.includes(name)) chunks(entry, -1);
  });
  return Int32Array.from(out);
}

/**
 * The unit lists of rounds 0 and 1: without clipping one round of
 * {@linkcode UPDATE_UNIT}-element units (buffers included, for their last
 * sum); with clipping round 0 by norm chunks (every gradient), round 1 by
 * units of the trainable parameters.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { roundUnits } from "./update.ts";
 * // a trainable w of 20,000 values and a buffer m of 3
 * const layout = {
 *   grads: [["w", "grad w"], ["m", "grad m"]] as [string, string][],
 *   offsets: [0, 20_000],
 *   sizes: [20_000, 3],
 *   total: 20_003,
 * };
 * const units = ([a, b]: Int32Array[]) => [a!.length / 4, b!.length / 4];
 * assert.deepEqual(units(roundUnits(layout, ["w"], 0)), [6, 0]); // 5 of w by 4096, 1 of m
 * assert.deepEqual(units(roundUnits(layout, ["w"], 1)), [3, 5]); // by 16,384 (2 + 1), then w's 5
 * ```
 */
export function roundUnits(
  layout: Layout,
  trainable: string[],
  clip: number,
): [Int32Array, Int32Array] {
  const fine = unitsOf(layout, trainable, UPDATE_UNIT);
  if (!(clip > 0)) return [fine, new Int32Array(0)];
  let t = 0;
  while (4 * t < fine.length && fine[4 * t + 3]! >= 0) t++;
  return [unitsOf(layout, trainable, NORM_CHUNK), fine.slice(0, 4 * t)];
}

/**
 * The shared memory of an update over `layout` on `threads` threads (the rule, names and state are the caller's).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RULE_SCALARS } from "../optim/rules.ts";
 * import { updateShared } from "./update.ts";
 * const grads: [string, string][] = [["w", "grad w"]];
 * const layout = { grads, offsets: [0], sizes: [20_000], total: 20_000 };
 * const state: [Float32Array, Float32Array] = [new Float32Array(20_000), new Float32Array(20_000)];
 * const u = updateShared(layout, "adam", ["w"], [state], 1.0, 2);
 * assert.deepEqual(u.counts, [2, 5]); // clipping: 2 norm chunks, then 5 units
 * assert.equal(u.flags.length, 7); // a flag per unit of both rounds
 * assert.equal(u.norms.length, 2); // a sum of squares per norm chunk
 * assert.equal(u.scalars.length, RULE_SCALARS);
 * assert.equal(u.state[0], state); // the caller's buffers, not copies
 * ```
 */
export function updateShared(
  layout: Layout,
  rule: Rule,
  trainable: string[],
  state: [Float32Array, Float32Array][],
  clip: number,
  threads = 1,
): UpdateShared {
  const [r0, r1] = roundUnits(layout, trainable, clip);
  const counts: [number, number] = [r0.length / 4, r1.length / 4];
  const sab = (bytes: number) => new SharedArrayBuffer(Math.max(8, bytes));
  return {
    rule,
    trainable,
    state,
    clip,
    threads: Math.max(1, threads),
    counts,
    scalars: new Float64Array(sab(8 * RULE_SCALARS)),
    ctl: new Int32Array(sab(16)),
    flags: new Int32Array(sab(4 * (counts[0] + counts[1]))),
    norms: new Float64Array(sab(8 * counts[0])),
  };
}

/**
 * Units the last round of an update over `layout` has.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { unitCount } from "./update.ts";
 * const layout = {
 *   grads: [["w", "grad w"], ["m", "grad m"]] as [string, string][],
 *   offsets: [0, 20_000],
 *   sizes: [20_000, 3],
 *   total: 20_003,
 * };
 * assert.equal(unitCount(layout, ["w"]), 6); // w's 5 units and the buffer m's
 * assert.equal(unitCount(layout, ["w"], 1), 5); // with clipping the last round is w's alone
 * ```
 */
export function unitCount(layout: Layout, trainable: string[], clip = 0): number {
  const [r0, r1] = roundUnits(layout, trainable, clip);
  return (clip > 0 ? r1 : r0).length / 4;
}

/** The claim tag of sequence number `seq` (as the schedule's). */
function tagOf(seq: number): number {
  return seq & 0x7fff;
}

/**
 * Where each thread's home section of `units` (`[entry, lo, hi, t]` each)
 * starts, for `threads` threads, and its end last: sections of about equal
 * numbers of elements, so that threads of equal speed meet at their ends.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sections } from "./update.ts";
 * // four units of 10, 10, 10 and 30 elements on two threads
 * const units = Int32Array.from([0, 0, 10, 0, 0, 10, 20, 0, 0, 20, 30, 0, 1, 0, 30, 1]);
 * assert.deepEqual([...sections(units, 2)], [0, 3, 4]);
 * ```
 */
export function sections(units: Int32Array, threads: number): Int32Array {
  const n = units.length / 4;
  let total = 0;
  for (let i = 0; i < n; i++) total += units[4 * i + 2]! - units[4 * i + 1]!;
  const out = new Int32Array(threads + 1);
  let at = 0, sum = 0;
  for (let t = 1; t < threads; t++) {
    // the first unit whose middle lies past t/threads of the elements
    while (at < n && sum + (units[4 * at + 2]! - units[4 * at + 1]!) / 2 < (total * t) / threads) {
      sum += units[4 * at + 2]! - units[4 * at + 1]!;
      at++;
    }
    out[t] = at;
  }
  out[threads] = n;
  return out;
}

/**
 * The order in which thread `me` tries the units given its `sections` (see
 * {@linkcode sections}): its own section front to back, then the others'
 * sections, the next thread's first, each back to front.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { claimOrder } from "./update.ts";
 * const s = Int32Array.from([0, 3, 6]);
 * assert.deepEqual([...claimOrder(s, 0)], [0, 1, 2, 5, 4, 3]);
 * assert.deepEqual([...claimOrder(s, 1)], [3, 4, 5, 2, 1, 0]);
 * ```
 */
export function claimOrder(sections: Int32Array, me: number): Int32Array {
  const threads = sections.length - 1;
  const out = new Int32Array(sections[threads]!);
  let k = 0;
  for (let i = sections[me]!; i < sections[me + 1]!; i++) out[k++] = i;
  for (let d = 1; d < threads; d++) {
    const t = (me + d) % threads;
    for (let i = sections[t + 1]! - 1; i >= sections[t]!; i--) out[k++] = i;
  }
  return out;
}

/**
 * Prepares the update of step `seq` (main thread, while no thread is in the
 * step): a fresh step clears every unit; a retry (`fresh` false) keeps the
 * units done, frees those claimed but not started, and throws when a unit
 * was left running (a thread died inside it: the parameters there are
 * partly updated), unless the round only sums squares, which re-runs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NO_STATE } from "../optim/rules.ts";
 * import { publishUpdate, UNIT, UPD, updateShared } from "./update.ts";
 * const grads: [string, string][] = [["w", "grad w"]];
 * const layout = { grads, offsets: [0], sizes: [10_000], total: 10_000 };
 * const u = updateShared(layout, "sgd", ["w"], [NO_STATE], 0);
 * publishUpdate(u, 5, true, false);
 * assert.ok([...u.flags].every((f) => f === (5 << 2 | UNIT.TODO)));
 * // a retry: a unit done stays done, one claimed but not started is free again
 * u.flags[0] = 5 << 2 | UNIT.DONE;
 * u.flags[1] = 5 << 2 | UNIT.CLAIMED;
 * publishUpdate(u, 6, false, false);
 * assert.deepEqual([...u.flags].map((f) => f & 3), [UNIT.DONE, UNIT.TODO, UNIT.TODO]);
 * assert.equal(u.ctl[UPD.DONE0], 1);
 * // one left running cannot be re-run exactly
 * u.flags[2] = 6 << 2 | UNIT.RUNNING;
 * assert.throws(
 *   () => publishUpdate(u, 7, false, false),
 *   /died while updating unit 2 of 3 \(round 0\)/,
 * );
 * ```
 */
export function publishUpdate(u: UpdateShared, seq: number, fresh: boolean, pair: boolean): void {
  const tag = tagOf(seq) << 2;
  let at = 0;
  for (let r = 0; r < 2; r++) {
    const units = u.counts[r]!;
    let done = 0;
    for (let i = 0; i < units; i++, at++) {
      let st = fresh ? UNIT.TODO : u.flags[at]! & 3;
      if (st === UNIT.CLAIMED) st = UNIT.TODO;
      if (st === UNIT.RUNNING) {
        // round 0 of a clipped update without a last sum only reads
        if (r === 0 && u.clip > 0 && !pair) st = UNIT.TODO;
        else {
          throw new Error(
            `parallel update: a thread died while updating unit ${i} of ${units} (round ${r}); those parameters are partly updated and the step cannot be re-run exactly`,
          );
        }
      }
      if (st === UNIT.DONE) done++;
      u.flags[at] = tag | st;
    }
    u.ctl[UPD.DONE0 + r] = done;
  }
  Atomics.store(u.ctl, UPD.TAG, tag);
}

/**
 * Called before each unit a thread claims (a test seam's hook, `seam.ts`: it may throw or block).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NO_STATE } from "../optim/rules.ts";
 * import { SPAN } from "./trace.ts";
 * import { publishUpdate, type UnitHook, Updater, updateShared } from "./update.ts";
 * const grads: [string, string][] = [["w", "grad w"]];
 * const layout = { grads, offsets: [0], sizes: [10_000], total: 10_000 };
 * const u = updateShared(layout, "sgd", ["w"], [NO_STATE], 0);
 * publishUpdate(u, 1, true, false);
 * const params = new Map([["w", new Float32Array(10_000)]]);
 * const up = new Updater(u, layout, params, new Float32Array(10_000), null);
 * const units: number[] = [];
 * const hook: UnitHook = (unit) => void units.push(unit);
 * up.begin(1, 0, -1);
 * assert.equal(up.advance(hook, SPAN.UPDATE), true);
 * assert.deepEqual(units, [0, 1, 2]); // one thread: every unit, in order
 * ```
 */
export type UnitHook = (unit: number) => void;

const STALE = -2;

/**
 * One thread's part of the parallel update of a step; {@linkcode Updater.advance}
 * works like `Lane.advance` (true: nothing left for this thread; false: wait
 * until `waitOn[waitAt]` is no longer `waitFor`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Sgd } from "../../mod.ts";
 * import { NO_STATE } from "../optim/rules.ts";
 * import { SPAN } from "./trace.ts";
 * import { publishUpdate, Updater, updateShared } from "./update.ts";
 * const grads: [string, string][] = [["w", "grad w"]];
 * const layout = { grads, offsets: [0], sizes: [3], total: 3 };
 * // the tree's root is a pair: regions 0 and 1, whose sum is the gradient
 * const regions = Float32Array.from([1, 1, 1, 1, 0, -1]);
 * const params = new Map([["w", Float32Array.from([1, 2, 3])]]);
 * const u = updateShared(layout, "sgd", ["w"], [NO_STATE], 0);
 * new Sgd(0.5).begin(u.scalars);
 * publishUpdate(u, 1, true, true);
 * const up = new Updater(u, layout, params, regions, null);
 * up.begin(1, 0, 1);
 * assert.equal(up.advance(null, SPAN.UPDATE), true); // one thread: all done
 * assert.equal(up.ran, up.units);
 * // w - 0.5 · (g0 + g1) = [1, 2, 3] - 0.5 · [2, 1, 0]
 * assert.deepEqual([...params.get("w")!], [0, 1.5, 3]);
 * assert.deepEqual([...regions], [1, 1, 1, 1, 0, -1]); // the regions are only read
 * ```
 */
export class Updater {
  /** Units of the update's last round (the pool waits for them all to be done). */
  readonly units: number;
  /** The array a waiting thread waits on. */
  waitOn: Int32Array;
  /** Its slot. */
  waitAt = 0;
  /** The value it waits to change. */
  waitFor = 0;
  /** Units this thread ran in the current step (all rounds). */
  ran = 0;
  private u: UpdateShared;
  /** Per round: its units, this thread's claim order, the round's first flag. */
  private lists: [Int32Array, Int32Array];
  private orders: [Int32Array, Int32Array];
  private firstFlag: [number, number];
  /** Units of round 0 that are trainable (their norms make the global norm). */
  private normUnits: number;
  private params: Float32Array[];
  /** Per region, per layout entry: the gradient's view. */
  private views: Float32Array[][];
  /** The unit's gradient (last sum, clipping) when it is not a region's own values. */
  private scratch = new Float32Array(UPDATE_UNIT);
  /** The loops in WebAssembly, when the regions are in a shared wasm memory. */
  private wasm: UpdateWasm | null;
  private offsets: number[];
  private total: number;
  /**
   * Per unit of the last round: its parameters' and state's ranges, and the
   * scratch copies' views of the same length (made once: no allocation per step).
   */
  private ranges: Float32Array[][] = [];
  private tag = 0;
  private round = 0;
  /** Position in the round's claim order. */
  private next = 0;
  private a = 0;
  private b = -1;
  private scale = 1;
  private scaled = false;
  private recorder: { span(kind: number, id: number, s: number, e: number): void } | null;

  /**
   * Thread `thread`'s updater of `params` (by name, the trainable ones
   * updated in place) with gradients in `regions` (`layout` each).
   */
  constructor(
    u: UpdateShared,
    layout: Layout,
    params: Map<string, Float32Array>,
    regions: Float32Array,
    recorder: { span(kind: number, id: number, s: number, e: number): void } | null,
    thread = 0,
  ) {
    this.u = u;
    this.lists = roundUnits(layout, u.trainable, u.clip);
    const me = thread % u.threads;
    this.orders = [
      claimOrder(sections(this.lists[0], u.threads), me),
      claimOrder(sections(this.lists[1], u.threads), me),
    ];
    this.firstFlag = [0, u.counts[0]];
    this.units = u.counts[u.clip > 0 ? 1 : 0];
    let t = 0;
    const l0 = this.lists[0];
    while (4 * t < l0.length && l0[4 * t + 3]! >= 0) t++;
    this.normUnits = t;
    this.params = u.trainable.map((name) => {
      const p = params.get(name);
      if (!p) throw new Error(`parallel update: no buffer for parameter "${name}"`);
      return p;
    });
    const count = Math.floor(regions.length / Math.max(1, layout.total));
    this.views = Array.from(
      { length: count },
      (_, r) =>
        layout.offsets.map((off, k) =>
          regions.subarray(r * layout.total + off, r * layout.total + off + layout.sizes[k]!)
        ),
    );
    this.waitOn = u.ctl;
    this.recorder = recorder;
    this.offsets = layout.offsets;
    this.total = layout.total;
    this.wasm = UpdateWasm.of(regions, UPDATE_UNIT);
    const w = this.wasm;
    if (w) {
      const last = this.lists[u.clip > 0 ? 1 : 0];
      for (let i = 0; 4 * i < last.length; i++) {
        const lo = last[4 * i + 1]!, hi = last[4 * i + 2]!, t = last[4 * i + 3]!;
        if (t < 0) continue;
        const [sa, sb] = u.state[t]!;
        const n = hi - lo;
        this.ranges[i] = [
          this.params[t]!.subarray(lo, hi),
          w.p.subarray(0, n),
          sa.subarray(lo, Math.min(hi, sa.length)),
          w.a.subarray(0, sa.length > 0 ? n : 0),
          sb.subarray(lo, Math.min(hi, sb.length)),
          w.b.subarray(0, sb.length > 0 ? n : 0),
        ];
      }
    }
  }

  /** Joins the update of step `seq` with the tree's root regions `a` and `b` (-1: no last sum). */
  begin(seq: number, a: number, b: number): void {
    this.tag = tagOf(seq) << 2;
    this.a = a;
    this.b = b;
    this.round = 0;
    this.next = 0;
    this.ran = 0;
    this.scaled = false;
  }

  /** Rounds this update has: 2 with clipping, else 1. */
  get rounds(): number {
    return this.u.clip > 0 ? 2 : 1;
  }

  /**
   * Claims and runs units until none is left for this thread (true), or it
   * must wait for the other threads to finish round 0 (false); the step
   * being over (aborted, or a later one) ends it too; `hook` runs before
   * each unit.
   */
  advance(hook: UnitHook | null, spanKind: number): boolean {
    const u = this.u;
    for (;;) {
      const i = this.claim();
      if (i === STALE) return true;
      if (i >= 0) {
        const flag = this.firstFlag[this.round] + i;
        hook?.(i);
        const t0 = this.recorder ? performance.now() : 0;
        Atomics.store(u.flags, flag, this.tag | UNIT.RUNNING);
        this.run(i);
        Atomics.store(u.flags, flag, this.tag | UNIT.DONE);
        this.ran++;
        const units = u.counts[this.round];
        if (Atomics.add(u.ctl, UPD.DONE0 + this.round, 1) + 1 === units) {
          Atomics.notify(u.ctl, UPD.DONE0 + this.round);
        }
        this.recorder?.span(spanKind, this.round * 65536 + i, t0, performance.now());
        continue;
      }
      // nothing left to claim in this round
      if (this.round + 1 >= this.rounds) return true;
      const done = Atomics.load(u.ctl, UPD.DONE0 + this.round);
      if (done < u.counts[this.round]) {
        this.waitOn = u.ctl;
        this.waitAt = UPD.DONE0 + this.round;
        this.waitFor = done;
        return false;
      }
      this.round++;
      this.next = 0;
    }
  }

  /** The slot the last round's count of finished units is in. */
  get lastDoneSlot(): number {
    return UPD.DONE0 + this.rounds - 1;
  }

  /** The next unit this thread claims in the current round, -1 when none is left, STALE for another step. */
  private claim(): number {
    const flags = this.u.flags;
    const order = this.orders[this.round];
    const first = this.firstFlag[this.round];
    const todo = this.tag | UNIT.TODO;
    while (this.next < order.length) {
      const i = order[this.next++]!;
      const v = Atomics.load(flags, first + i);
      if ((v & ~3) !== this.tag) return STALE;
      if (
        v === todo && Atomics.compareExchange(flags, first + i, v, this.tag | UNIT.CLAIMED) === v
      ) {
        return i;
      }
    }
    return -1;
  }

  private run(i: number): void {
    const u = this.u;
    const l = this.lists[this.round];
    const entry = l[4 * i]!, lo = l[4 * i + 1]!, hi = l[4 * i + 2]!, t = l[4 * i + 3]!;
    const g = this.views[this.a]![entry]!;
    const h = this.b >= 0 ? this.views[this.b]![entry]! : null;
    const w = this.wasm;
    if (t < 0) {
      // a buffer: the reduction's last sum, this unit's range of it, in place (the pool copies it out)
      if (this.round === 0 && h) {
        if (w) w.addInPlace(this.at(this.a, entry, lo), this.at(this.b, entry, lo), hi - lo);
        else for (let j = lo; j < hi; j++) g[j] = g[j]! + h[j]!;
      }
      return;
    }
    if (this.round === 0 && u.clip > 0) {
      u.norms[i] = h ? sumSquaresOfSum(g, h, lo, hi) : sumSquares(g, lo, hi);
      return;
    }
    let k = 1;
    if (u.clip > 0) {
      if (!this.scaled) {
        let sq = 0;
        for (let c = 0; c < this.normUnits; c++) sq += u.norms[c]!;
        this.scale = u.clip / (Math.sqrt(sq) + 1e-6);
        this.scaled = true;
      }
      k = this.scale;
    }
    const [sa, sb] = u.state[t]!;
    const p = this.params[t]!;
    if (w) return this.runWasm(w, i, entry, lo, hi, h !== null, k, sa, sb, p);
    // every thread read these parameters in its forward pass: take their lines for writing, many at a time
    ownLines(p, lo, hi);
    if (sa.length > 0) ownLines(sa, lo, hi);
    if (sb.length > 0) ownLines(sb, lo, hi);
    if (!h && !(k < 1)) {
      applyRuleAt(u.rule, u.scalars, p, g, 0, sa, sb, lo, hi);
      return;
    }
    // the unit's gradient as the whole-array step sees it: the last sum, then the clipping, each rounded to float32
    const s = this.scratch;
    const n = hi - lo;
    if (h && k < 1) { for (let j = 0; j < n; j++) s[j] = Math.fround(g[lo + j]! + h[lo + j]!) * k; }
    else if (h) { for (let j = 0; j < n; j++) s[j] = g[lo + j]! + h[lo + j]!; }
    else for (let j = 0; j < n; j++) s[j] = g[lo + j]! * k;
    applyRuleAt(u.rule, u.scalars, p, s, lo, sa, sb, lo, hi);
  }

  /** Float index of element `lo` of layout entry `entry` in region `r`. */
  private at(r: number, entry: number, lo: number): number {
    return r * this.total + this.offsets[entry]! + lo;
  }

  /** {@linkcode Updater.run}'s rule part in WebAssembly: unit `i` of the last round. */
  private runWasm(
    w: UpdateWasm,
    i: number,
    entry: number,
    lo: number,
    hi: number,
    pair: boolean,
    k: number,
    sa: Float32Array,
    sb: Float32Array,
    p: Float32Array,
  ): void {
    const n = hi - lo;
    const ga = this.at(this.a, entry, lo);
    if (pair && k < 1) w.sumScale(k, ga, this.at(this.b, entry, lo), n);
    else if (pair) w.sum(ga, this.at(this.b, entry, lo), n);
    else w.scale(k, ga, n);
    const s = this.u.scalars;
    const rule = this.u.rule;
    if (rule === "adadelta") {
      applyRuleAt(rule, s, p, w.grad, lo, sa, sb, lo, hi);
      return;
    }
    // the state the rule keeps: Adam's two moments, SGD's momentum buffer (given twice) or none
    const [pr, pc, ar, ac, br, bc] = this.ranges[i]!;
    const states = rule === "adam" ? 2 : s[1] !== 0 ? 1 : 0;
    pc!.set(pr!);
    if (states > 0) ac!.set(ar!);
    if (states > 1) bc!.set(br!);
    if (rule === "adam") w.adam(s, n);
    else if (states === 0) w.sgd(s[0]!, s[2]!, n);
    else w.sgdMomentum(s[0]!, s[1]!, s[2]!, s[4] !== 0, s[3] !== 0, n);
    pr!.set(pc!);
    if (states > 0) ar!.set(ac!);
    if (states > 1) br!.set(bc!);
  }
}
