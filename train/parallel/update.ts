/**
 * The parallel update: once a step's gradient tree is complete, every
 * thread of the pool takes part in the reduction's last sum and the
 * optimizer's step, by ranges of the parameters. The ranges ("units") are
 * chunks of {@linkcode NORM_CHUNK} elements of each parameter, claimed from
 * a shared counter; on each, a thread adds the tree's two top halves (the
 * last sum of the reduction, left undone by the tree) and applies the
 * optimizer's elementwise rule (`train/optim/rules.ts`) with its state in
 * shared memory. Elementwise work by ranges gives the bits of the
 * whole-array step, whichever thread does which range.
 *
 * Clipping by the global norm is a two-round step: round 0 sums each unit's
 * squares (after the last sum), a barrier, then round 1 scales and updates;
 * the norm adds the units' sums in the optimizer's order, as `clipGradNorm`
 * does on one thread.
 *
 * A unit is marked running, then done, so a step whose update was cut short
 * by a fault re-runs only the units not done; a unit left running by a
 * thread that died inside it cannot be re-run exactly and the step fails.
 *
 * @module
 */
import { applyRule, NORM_CHUNK, type Rule, RULE_SCALARS, sumSquares } from "../optim/rules.ts";
import type { Layout } from "./spec.ts";

/** Int32 slots of the update's control block: the claim counters of rounds 0 and 1, then their counts of finished units. */
export const UPD = { NEXT0: 0, NEXT1: 1, DONE0: 2, DONE1: 3 } as const;

/** What every thread of a pool needs for the parallel update (posted to workers; arrays are shared). */
export interface UpdateShared {
  /** The optimizer's rule. */
  rule: Rule;
  /** The parameters it updates, in the optimizer's order (the others are buffers, summed only). */
  trainable: string[];
  /** Each trainable parameter's two state buffers (shared memory). */
  state: [Float32Array, Float32Array][];
  /** The global-norm limit, 0 for no clipping. */
  clip: number;
  /** The step's numbers of the rule (see `RangeOptimizer.begin`). */
  scalars: Float64Array;
  /** The control block (see {@linkcode UPD}). */
  ctl: Int32Array;
  /** Per round and unit: 0 to do, 1 running, 2 done. */
  flags: Int32Array;
  /** Per unit: its sum of squares (clipping). */
  norms: Float64Array;
}

/** Units of an update: `[layout entry, lo, hi, trainable index or -1]` each, trainable ones first. */
export function unitsOf(layout: Layout, trainable: string[]): Int32Array {
  const names = layout.grads.map(([name]) => name);
  const out: number[] = [];
  const chunks = (entry: number, t: number) => {
    const n = layout.sizes[entry]!;
    for (let lo = 0; lo < n; lo += NORM_CHUNK) out.push(entry, lo, Math.min(n, lo + NORM_CHUNK), t);
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

/** The shared memory of an update over `layout` (the rule, names and state are the caller's). */
export function updateShared(
  layout: Layout,
  rule: Rule,
  trainable: string[],
  state: [Float32Array, Float32Array][],
  clip: number,
): UpdateShared {
  const units = unitsOf(layout, trainable).length / 4;
  const sab = (bytes: number) => new SharedArrayBuffer(Math.max(8, bytes));
  return {
    rule,
    trainable,
    state,
    clip,
    scalars: new Float64Array(sab(8 * RULE_SCALARS)),
    ctl: new Int32Array(sab(16)),
    flags: new Int32Array(sab(8 * units)),
    norms: new Float64Array(sab(8 * units)),
  };
}

/** Units an update over `layout` has. */
export function unitCount(layout: Layout, trainable: string[]): number {
  return unitsOf(layout, trainable).length / 4;
}

/** The claim counter tag of sequence number `seq` (as the schedule's). */
function tagOf(seq: number): number {
  return seq & 0x7fff;
}

/**
 * Prepares the update of step `seq` (main thread, while no thread is in the
 * step): a fresh step clears every unit; a retry (`fresh` false) keeps the
 * units done and throws when a unit was left running (a thread died inside
 * it: the parameters there are partly updated), unless the round only sums
 * squares, which re-runs.
 */
export function publishUpdate(u: UpdateShared, seq: number, fresh: boolean, pair: boolean): void {
  const units = u.flags.length / 2;
  if (fresh) u.flags.fill(0);
  else {
    for (let r = 0; r < 2; r++) {
      for (let i = 0; i < units; i++) {
        if (u.flags[r * units + i] !== 1) continue;
        // round 0 of a clipped update without a last sum only reads
        if (r === 0 && u.clip > 0 && !pair) u.flags[i] = 0;
        else {
          throw new Error(
            `parallel update: a thread died while updating unit ${i} of ${units} (round ${r}); those parameters are partly updated and the step cannot be re-run exactly`,
          );
        }
      }
    }
  }
  for (let r = 0; r < 2; r++) {
    let done = 0;
    for (let i = 0; i < units; i++) if (u.flags[r * units + i] === 2) done++;
    u.ctl[UPD.DONE0 + r] = done;
  }
  Atomics.store(u.ctl, UPD.NEXT0, tagOf(seq) << 16);
  Atomics.store(u.ctl, UPD.NEXT1, tagOf(seq) << 16);
}

/** Called before each unit a thread claims (a test seam's hook, `seam.ts`: it may throw or block). */
export type UnitHook = (unit: number) => void;

/**
 * One thread's part of the parallel update of a step; {@linkcode Updater.advance}
 * works like `Lane.advance` (true: nothing left for this thread; false: wait
 * until `waitOn[waitAt]` is no longer `waitFor`).
 */
export class Updater {
  /** Units of the update (see {@linkcode unitsOf}). */
  readonly units: number;
  /** The array a waiting thread waits on. */
  waitOn: Int32Array;
  /** Its slot. */
  waitAt = 0;
  /** The value it waits to change. */
  waitFor = 0;
  private u: UpdateShared;
  private list: Int32Array;
  private trainableUnits: number;
  private params: Float32Array[];
  /** Per region, per layout entry: the gradient's view. */
  private views: Float32Array[][];
  private tag = 0;
  private round = 0;
  private a = 0;
  private b = -1;
  private scale = 1;
  private scaled = false;
  private recorder: { span(kind: number, id: number, s: number, e: number): void } | null;

  /**
   * A thread's updater of `params` (by name, the trainable ones updated in
   * place) with gradients in `regions` (`layout` each).
   */
  constructor(
    u: UpdateShared,
    layout: Layout,
    params: Map<string, Float32Array>,
    regions: Float32Array,
    recorder: { span(kind: number, id: number, s: number, e: number): void } | null,
  ) {
    this.u = u;
    this.list = unitsOf(layout, u.trainable);
    this.units = this.list.length / 4;
    let t = 0;
    while (t < this.units && this.list[4 * t + 3]! >= 0) t++;
    this.trainableUnits = t;
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
  }

  /** Joins the update of step `seq` with the tree's root regions `a` and `b` (-1: no last sum). */
  begin(seq: number, a: number, b: number): void {
    this.tag = tagOf(seq);
    this.a = a;
    this.b = b;
    this.round = 0;
    this.scaled = false;
  }

  /** Rounds this update has: 2 with clipping, else 1. */
  get rounds(): number {
    return this.u.clip > 0 ? 2 : 1;
  }

  /**
   * Claims and runs units until none is left for this thread (true), or it
   * must wait for the other threads to finish round 0 (false); `stale()`
   * says when the step is over (aborted), `hook` runs before each unit.
   */
  advance(hook: UnitHook | null, spanKind: number): boolean {
    const u = this.u;
    const units = this.units;
    for (;;) {
      const at = UPD.NEXT0 + this.round;
      const i = this.claim(at);
      if (i === -2) return true;
      if (i >= 0) {
        const flag = this.round * units + i;
        if (Atomics.load(u.flags, flag) === 2) continue;
        hook?.(i);
        const t0 = this.recorder ? performance.now() : 0;
        Atomics.store(u.flags, flag, 1);
        this.run(i);
        Atomics.store(u.flags, flag, 2);
        if (Atomics.add(u.ctl, UPD.DONE0 + this.round, 1) + 1 === units) {
          Atomics.notify(u.ctl, UPD.DONE0 + this.round);
        }
        this.recorder?.span(spanKind, this.round * 65536 + i, t0, performance.now());
        continue;
      }
      // nothing left to claim in this round
      if (this.round + 1 >= this.rounds) return true;
      const done = Atomics.load(u.ctl, UPD.DONE0 + this.round);
      if (done < units) {
        this.waitOn = u.ctl;
        this.waitAt = UPD.DONE0 + this.round;
        this.waitFor = done;
        return false;
      }
      this.round++;
    }
  }

  /** The slot the last round's count of finished units is in. */
  get lastDoneSlot(): number {
    return UPD.DONE0 + this.rounds - 1;
  }

  /** The next unit of the counter at `at`, -1 when none is left, -2 for another step. */
  private claim(at: number): number {
    const s = this.u.ctl;
    for (;;) {
      const v = Atomics.load(s, at);
      if (v >>> 16 !== this.tag) return -2;
      const i = v & 0xffff;
      if (i >= this.units) return -1;
      if (Atomics.compareExchange(s, at, v, v + 1) === v) return i;
    }
  }

  private run(i: number): void {
    const u = this.u;
    const l = this.list;
    const entry = l[4 * i]!, lo = l[4 * i + 1]!, hi = l[4 * i + 2]!, t = l[4 * i + 3]!;
    const g = this.views[this.a]![entry]!;
    if (this.round === 0 && this.b >= 0) {
      // the reduction's last sum, this unit's range of it
      const h = this.views[this.b]![entry]!;
      for (let j = lo; j < hi; j++) g[j] = g[j]! + h[j]!;
    }
    if (t < 0) return;
    if (this.round === 0 && u.clip > 0) {
      u.norms[i] = sumSquares(g, lo, hi);
      return;
    }
    if (u.clip > 0) {
      if (!this.scaled) {
        let sq = 0;
        for (let k = 0; k < this.trainableUnits; k++) sq += u.norms[k]!;
        this.scale = u.clip / (Math.sqrt(sq) + 1e-6);
        this.scaled = true;
      }
      const k = this.scale;
      if (k < 1) { for (let j = lo; j < hi; j++) g[j] = g[j]! * k; }
    }
    const [sa, sb] = u.state[t]!;
    applyRule(u.rule, u.scalars, this.params[t]!, g, sa, sb, lo, hi);
  }
}
