/**
 * The schedule of a step: micro-batches claimed from a shared counter
 * (`Atomics`) by every thread until none is left, so a slow or busy core
 * takes fewer; with collective nodes, one round of claims per phase with a
 * barrier between phases. A {@linkcode Lane} is one thread's part: the main
 * thread, each worker and `LocalRunner` run the same code and differ only
 * in how they wait. Claims are tagged with the step's sequence number so a
 * thread that wakes late for a step that is over (or was aborted after a
 * fault) claims nothing.
 *
 * Backups (`WaitPolicy.speculate`): a lane with nothing left to claim in
 * the last phase recomputes a micro-batch whose claimer shows no progress
 * (a thread that lost its core beside a busy process, or hung); a
 * micro-batch's result is the same bits on any thread (its own arena,
 * dropout seeded by step and sample), the first copy to finish wins the
 * micro-batch's tag ({@linkcode SPEC}) and joins the tree, the other stops
 * at its next node and is dropped.
 *
 * @module
 */
import type { GradientShard } from "./shard.ts";
import { type GradTree, rootRegions, TREE } from "./reduce.ts";
import type { Updater } from "./update.ts";
import type { ThreadHook } from "./seam.ts";
import { SPAN } from "./trace.ts";

/**
 * Int32 slots of the shared step block; phase `p`'s claim counter is
 * `NEXT + 2p`, its count of finished micro-batches the next slot.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { publishStep, SCHED, schedLength } from "./schedule.ts";
 * const mem = {
 *   sched: new Int32Array(schedLength(1)),
 *   stepNo: new Float64Array(1),
 *   losses: new Float64Array(2),
 *   partials: new Float32Array(0),
 * };
 * publishStep(mem, 9, 120, 64, 2, 1); // sequence 9: step 120, 64 samples in 2 micro-batches
 * const s = mem.sched;
 * assert.deepEqual([s[SCHED.SEQ], s[SCHED.N], s[SCHED.K], s[SCHED.PHASES]], [9, 64, 2, 1]);
 * assert.equal(s[SCHED.NEXT]! >>> 16, 9); // the claim counter carries the step's tag...
 * assert.equal(s[SCHED.NEXT]! & 0xffff, 0); // ...and the next micro-batch to claim
 * assert.equal(mem.stepNo[0], 120);
 * ```
 */
export const SCHED = { SEQ: 0, N: 1, K: 2, PHASES: 3, NEXT: 4 } as const;

/**
 * Int32 slots of a step block for graphs of up to `phases` phases.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SCHED, schedLength } from "./schedule.ts";
 * assert.equal(schedLength(1), SCHED.NEXT + 2); // one claim counter and one count of finished
 * assert.equal(schedLength(3), SCHED.NEXT + 6);
 * ```
 */
export function schedLength(phases: number): number {
  return SCHED.NEXT + 2 * phases;
}

/**
 * The memory every thread of a step shares.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { abortStep, publishStep, SCHED, schedLength, type StepMemory } from "./schedule.ts";
 * const sab = (bytes: number) => new SharedArrayBuffer(bytes);
 * const k = 4; // micro-batches at most
 * const mem: StepMemory = {
 *   sched: new Int32Array(sab(4 * schedLength(1))),
 *   stepNo: new Float64Array(sab(8)),
 *   losses: new Float64Array(sab(8 * k)),
 *   partials: new Float32Array(sab(0)), // no collectives
 * };
 * publishStep(mem, 1, 0, 128, k, 1);
 * abortStep(mem, 1);
 * assert.equal(mem.sched[SCHED.SEQ], 2); // a thread still in step 1 leaves
 * ```
 */
export interface StepMemory {
  /** The step block (see {@linkcode SCHED}). */
  sched: Int32Array;
  /** One element: the step number. */
  stepNo: Float64Array;
  /** The loss of every micro-batch. */
  losses: Float64Array;
  /** Every micro-batch's collective partials. */
  partials: Float32Array;
  /**
   * Backups of stalled micro-batches (see {@linkcode SPEC}), when the threads
   * make them; without it (or `claimedAt`) a lane never backs one up.
   */
  spec?: Int32Array;
  /**
   * Absolute times in ms (`performance.timeOrigin + performance.now()`,
   * comparable across threads): slot 0 when the step was published, slot
   * `1 + k` when micro-batch `k` last showed progress (its claim, then the
   * start of each node its claimer runs).
   */
  claimedAt?: Float64Array;
}

/**
 * Int32 slots of the backup block ({@linkcode StepMemory.spec}): counts of
 * backups started and of backups that published first, over the pool's
 * life; then, from `HEAD`, per micro-batch the sequence number of the last
 * step in which it was published (whoever finished it first wins it by a
 * compare-exchange, the other copy is dropped), then per micro-batch the
 * sequence number of the last step in which it was backed up (one backup
 * at most). Tagged by step, nothing is reset between steps.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SPEC, specLength } from "./schedule.ts";
 * assert.equal(specLength(4), SPEC.HEAD + 8); // a published and a backed-up tag per micro-batch
 * ```
 */
export const SPEC = { BACKUPS: 0, WON: 1, HEAD: 2 } as const;

/**
 * Int32 slots of a backup block for steps of up to `maxK` micro-batches (see {@linkcode SPEC}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SPEC, specLength } from "./schedule.ts";
 * assert.equal(specLength(1), SPEC.HEAD + 2);
 * ```
 */
export function specLength(maxK: number): number {
  return SPEC.HEAD + 2 * maxK;
}

/** The shortest age (ms) of a claim before another thread backs it up, whatever the micro-batch's size. */
const MIN_BACKUP_MS = 0.5;
// a lane's own recent micro-batch times it keeps (ms per sample): their median scales the age
const BACKUP_TIMES = 8;
// sequence numbers wrap at 2^30: a tag older than the step's is less than half the range behind
const SEQ_MASK = 0x3fffffff;
const SEQ_HALF = 0x20000000;

/** The claim counter tag of sequence number `seq`. */
function tagOf(seq: number): number {
  return seq & 0x7fff;
}

/**
 * Publishes a step in `mem` (main thread, while no thread is in a step):
 * batch `n` in `k` micro-batches and `phases` phases at step `step`, as
 * sequence number `seq`; `skipMicro` publishes it with every micro-batch
 * done (its gradient tree is complete: a retry of its parallel update).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { publishStep, SCHED, schedLength } from "./schedule.ts";
 * const mem = {
 *   sched: new Int32Array(schedLength(2)),
 *   stepNo: new Float64Array(1),
 *   losses: new Float64Array(8),
 *   partials: new Float32Array(0),
 * };
 * publishStep(mem, 3, 0, 256, 8, 2); // two phases: a claim counter and a done count each
 * assert.deepEqual([...mem.sched.subarray(SCHED.NEXT)], [3 << 16, 0, 3 << 16, 0]);
 * publishStep(mem, 4, 0, 256, 8, 2, true); // a retry of the update: every micro-batch done
 * assert.deepEqual([...mem.sched.subarray(SCHED.NEXT)], [(4 << 16) + 8, 8, (4 << 16) + 8, 8]);
 * assert.throws(
 *   () => publishStep(mem, 5, 0, 1 << 17, 1 << 16, 1),
 *   /too many micro-batches in a step \(65536\)/,
 * );
 * ```
 */
export function publishStep(
  mem: StepMemory,
  seq: number,
  step: number,
  n: number,
  k: number,
  phases: number,
  skipMicro = false,
): void {
  if (k > 0xffff) throw new Error(`schedule: too many micro-batches in a step (${k})`);
  const s = mem.sched;
  s[SCHED.N] = n;
  s[SCHED.K] = k;
  s[SCHED.PHASES] = phases;
  mem.stepNo[0] = step;
  for (let p = 0; p < phases; p++) {
    // skipMicro: every micro-batch claimed and done (a retry of the update alone)
    s[SCHED.NEXT + 2 * p] = (tagOf(seq) << 16) + (skipMicro ? k : 0);
    s[SCHED.NEXT + 2 * p + 1] = skipMicro ? k : 0;
  }
  // a claim stamped before this is another step's: not yet stamped for this one
  if (mem.claimedAt) mem.claimedAt[0] = performance.timeOrigin + performance.now();
  // last: a thread that sees the new number sees everything above
  Atomics.store(s, SCHED.SEQ, seq);
}

/**
 * Ends step `seq` early: threads in it leave at their next claim or wait.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { abortStep, publishStep, SCHED, schedLength } from "./schedule.ts";
 * const mem = {
 *   sched: new Int32Array(new SharedArrayBuffer(4 * schedLength(1))),
 *   stepNo: new Float64Array(1),
 *   losses: new Float64Array(2),
 *   partials: new Float32Array(0),
 * };
 * publishStep(mem, 7, 0, 64, 2, 1);
 * abortStep(mem, 7);
 * assert.notEqual(mem.sched[SCHED.SEQ], 7); // a lane of step 7 sees it is over
 * assert.equal(Atomics.wait(mem.sched, SCHED.SEQ, 7, 0), "not-equal"); // and does not wait for it
 * ```
 */
export function abortStep(mem: StepMemory, seq: number): void {
  Atomics.store(mem.sched, SCHED.SEQ, seq + 1);
  for (let i = 0; i < mem.sched.length; i++) Atomics.notify(mem.sched, i);
}

const STALE = -2;
// `stalled`: every micro-batch is published; a wait was set
const ALL_DONE = -1;
const WAITING = -3;

/**
 * One thread's part of a step. {@linkcode Lane.advance} runs micro-batches
 * until there is nothing left for this thread (true) or it must wait for
 * other threads (false: wait until `waitOn[waitAt]` is no longer `waitFor`,
 * then call it again).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { allocDataset, initParams, lectureCnn, LocalRunner } from "@denograd/denograd";
 * import { GradientShard } from "./shard.ts";
 * import { GradTree, regionCount, treeStateLength } from "./reduce.ts";
 * import { layoutOf } from "./spec.ts";
 * import { Lane, publishStep, schedLength, stepLoss } from "./schedule.ts";
 * const m = lectureCnn({ channels: 2 });
 * const params = initParams(m.built, { seed: 1 }) as Map<string, Float32Array>;
 * const ds = allocDataset({ name: "blank", count: 8, sampleShape: [1, 28, 28], numClasses: 10 });
 * const data = { images: ds.images, labels: ds.labels, sampleSize: 784 };
 * const layout = layoutOf(m, params, "demo");
 * const indices = Uint32Array.from([0, 1, 2, 3, 4, 5]);
 * const shard = new GradientShard({
 *   ...m,
 *   ...data,
 *   grads: layout.grads,
 *   params,
 *   indices,
 *   microBatch: 2,
 * });
 * const k = shard.count(6); // 3 micro-batches of 2
 * const mem = {
 *   sched: new Int32Array(schedLength(shard.phases)),
 *   stepNo: new Float64Array(1),
 *   losses: new Float64Array(k),
 *   partials: new Float32Array(k * shard.partialSize),
 * };
 * const n = regionCount(k, 1);
 * const regions = new Float32Array(n * layout.total);
 * const tree = new GradTree(layout, regions, new Int32Array(treeStateLength(k)), k);
 * tree.resetFree(n);
 * const claims: number[] = [];
 * const lane = new Lane(shard, tree, mem, (_step, micro) => (claims.push(micro), false));
 * tree.resetStep(k);
 * publishStep(mem, 1, 0, 6, k, shard.phases);
 * assert.ok(lane.begin(1));
 * assert.equal(lane.advance(), true); // alone, it never waits
 * assert.deepEqual(claims, [0, 1, 2]); // one thread claims the micro-batches in order
 * assert.equal(lane.claimed, 3);
 * const grads = layout.grads.map(([name]) => new Float32Array(params.get(name)!.length));
 * tree.takeRoot(grads);
 * // LocalRunner is this lane: the same loss and gradient bits
 * const runner = new LocalRunner(m, { params, data, maxBatch: 6, microBatch: 2 });
 * const out = new Map<string, Float32Array>();
 * assert.equal((await runner.step(indices, 0, out)).loss, stepLoss(mem, shard, 6, k));
 * layout.grads.forEach(([name], i) => assert.deepEqual(out.get(name), grads[i], name));
 * assert.equal(lane.begin(2), false); // step 2 was never published
 * ```
 */
export class Lane {
  /** The array a waiting lane waits on. */
  waitOn: Int32Array;
  /** Its slot. */
  waitAt = 0;
  /** The value it waits to change. */
  waitFor = 0;
  /** With a timeout: until this `performance.now()` time, then call `advance` again (Infinity: none). */
  waitUntil = Infinity;
  /**
   * Set by a main thread that runs the coming steps without the other
   * threads (`SoloChoice`): nothing to back up then, and no copy to race,
   * so the lane skips the bookkeeping of backups.
   */
  alone = false;
  /** Micro-batches this lane claimed in the current step (all phases); backups not counted. */
  claimed = 0;
  /**
   * Milliseconds this lane spent in the current step on backups and on
   * copies another thread published first: time the other threads' stalls
   * cost it (a main thread's `SoloChoice` counts it as waiting for them).
   */
  stalledMs = 0;
  private shard: GradientShard;
  private tree: GradTree;
  private mem: StepMemory;
  private hook: ThreadHook | null;
  private seq = -1;
  private tag = 0;
  private n = 0;
  private k = 0;
  private phases = 1;
  private phase = 0;
  private step = 0;
  private spare = -1;
  private updater: Updater | null;
  /** In the step's parallel update (after its micro-batches). */
  private updating = false;
  /** Joined the update (the root was there and the loss finite). */
  private joined = false;
  private unitHook: ((unit: number) => void) | null;
  /** The backup block, when this lane backs up stalled micro-batches. */
  private spec: Int32Array | null = null;
  private claimedAt: Float64Array | null = null;
  private backupAfter: number;
  /** Where the backup flags start in `spec`. */
  private backupAt = 0;
  /** The micro-batch this lane runs (what `stop` asks about). */
  private running = 0;
  /** Whether it runs its own claim (it stamps its progress), not a backup. */
  private stamping = false;
  /** Asked between the nodes of a micro-batch: another thread published it first, or the step is over. */
  private stop: (() => boolean) | undefined;
  private times = new Float64Array(BACKUP_TIMES);
  private timesSorted = new Float64Array(BACKUP_TIMES);
  private timesN = 0;
  private timesAt = 0;
  /** The median of `times`, and the step it was taken for. */
  private perSample = 0;
  private perSampleSeq = -1;

  /**
   * A lane over `shard` that reduces into `tree`; `hook` is a test seam's
   * (see `seam.ts`); with an `updater` the lane takes part in the step's
   * parallel update once the micro-batches are all claimed. With
   * `backupAfter` (above 0) and the backup block in `mem`, a lane with
   * nothing left to claim recomputes a micro-batch whose claimer has shown
   * no progress (started no node) for that long in units of this lane's own
   * recent time for it (see `WaitPolicy.speculate` in `wait.ts`).
   */
  constructor(
    shard: GradientShard,
    tree: GradTree,
    mem: StepMemory,
    hook: ThreadHook | null,
    updater: Updater | null = null,
    backupAfter = 0,
  ) {
    this.shard = shard;
    this.tree = tree;
    this.mem = mem;
    this.hook = hook;
    this.waitOn = mem.sched;
    this.updater = updater;
    this.unitHook = hook ? (unit) => void hook(this.step, unit, true) : null;
    this.backupAfter = backupAfter;
    if (mem.spec && mem.claimedAt && backupAfter > 0) {
      const spec = this.spec = mem.spec;
      const stamps = this.claimedAt = mem.claimedAt;
      this.backupAt = SPEC.HEAD + ((spec.length - SPEC.HEAD) >> 1);
      const sched = mem.sched;
      this.stop = () => {
        if (
          Atomics.load(spec, SPEC.HEAD + this.running) === this.seq ||
          Atomics.load(sched, SCHED.SEQ) !== this.seq
        ) return true;
        // the claimer is making progress: no backup before the next stamp is that old
        if (this.stamping) stamps[1 + this.running] = performance.timeOrigin + performance.now();
        return false;
      };
    }
  }

  /** Joins step `seq`; false when that step is no longer the current one. */
  begin(seq: number): boolean {
    const s = this.mem.sched;
    if (Atomics.load(s, SCHED.SEQ) !== seq) return false;
    this.seq = seq;
    this.tag = tagOf(seq);
    this.n = s[SCHED.N]!;
    this.k = s[SCHED.K]!;
    this.phases = s[SCHED.PHASES]!;
    this.step = this.mem.stepNo[0]!;
    this.phase = 0;
    this.claimed = 0;
    this.stalledMs = 0;
    this.updating = false;
    this.joined = false;
    this.tree.prepare(this.k);
    return true;
  }

  /** Runs this lane's share; see {@linkcode Lane}. */
  advance(): boolean {
    const s = this.mem.sched;
    for (;;) {
      if (Atomics.load(s, SCHED.SEQ) !== this.seq) return this.end();
      if (this.updating) return this.update();
      if (this.phase < this.phases - 1) {
        const at = SCHED.NEXT + 2 * this.phase;
        const k = this.claim(at);
        if (k === STALE) return this.end();
        if (k >= 0) {
          this.hook?.(this.step, k);
          this.claimed++;
          this.shard.runPhase(this.step, this.phase, k, this.n, this.mem.partials);
          if (Atomics.add(s, at + 1, 1) + 1 === this.k) Atomics.notify(s, at + 1);
          continue;
        }
        const done = Atomics.load(s, at + 1);
        if (done >= this.k) {
          this.phase++;
          continue;
        }
        return this.wait(s, at + 1, done);
      }
      const at = SCHED.NEXT + 2 * this.phase;
      // nothing left: no region needed (the last one may be the root's)
      if ((Atomics.load(s, at) & 0xffff) >= this.k) {
        if (this.spec && !this.alone) {
          // back up a stalled micro-batch, or wait until one may be, or all are published
          const b = this.stalled(s, at);
          if (b === WAITING) return false;
          if (b >= 0) {
            this.hook?.(this.step, b);
            this.runOne(s, at, b, true);
            continue;
          }
        }
        if (this.finish()) return true;
        continue;
      }
      if (this.spare < 0) {
        this.spare = this.tree.tryAcquire();
        if (this.spare < 0) return this.wait(this.tree.stateArray, 0, 0);
      }
      const k = this.claim(at);
      if (k === STALE) return this.end();
      if (k < 0) {
        if (this.finish()) return true;
        continue;
      }
      if (this.claimedAt && !this.alone) {
        this.claimedAt[1 + k] = performance.timeOrigin + performance.now();
      }
      // whoever waits for a region may now have nothing left to claim
      if (k === this.k - 1) Atomics.notify(this.tree.stateArray, 0);
      this.hook?.(this.step, k);
      this.claimed++;
      this.runOne(s, at, k, false);
    }
  }

  /** Micro-batches backed up (`started`) and backups that published first (`won`), over the life of `mem`'s pool. */
  static backups(mem: StepMemory): { started: number; won: number } {
    const spec = mem.spec;
    if (!spec) return { started: 0, won: 0 };
    return { started: Atomics.load(spec, SPEC.BACKUPS), won: Atomics.load(spec, SPEC.WON) };
  }

  /**
   * Runs the last phase of micro-batch `k` (claimed, or a `backup` of
   * another thread's claim) and adds it to the tree, unless another thread
   * published it first: then this copy is dropped and the spare kept.
   */
  private runOne(s: Int32Array, at: number, k: number, backup: boolean): void {
    const spec = this.alone ? null : this.spec;
    this.running = k;
    this.stamping = !backup;
    const t0 = performance.now();
    if (backup) Atomics.add(spec!, SPEC.BACKUPS, 1);
    const outs = this.shard.runFinal(
      this.step,
      k,
      this.n,
      this.mem.partials,
      spec ? this.stop : undefined,
    );
    if (spec) {
      const won = this.wins(spec, k);
      const t1 = performance.now();
      this.shard.recorder?.span(won ? SPAN.MICRO : SPAN.DROPPED, k, t0, t1);
      if (backup || !won) this.stalledMs += t1 - t0;
      if (!won) return;
      if (backup) Atomics.add(spec, SPEC.WON, 1);
      this.record((performance.now() - t0) / this.shard.samples(k, this.n));
    }
    this.mem.losses[k] = outs[0]![0]!;
    const t1 = this.shard.recorder ? performance.now() : 0;
    if (this.tree.leaf(k, this.shard.weight(k, this.n), outs, this.spare)) this.spare = -1;
    this.shard.recorder?.span(SPAN.REDUCE, k, t1, performance.now());
    // a lane waiting to back up a micro-batch wakes when the last is published
    if (spec && Atomics.add(s, at + 1, 1) + 1 === this.k) Atomics.notify(s, at + 1);
  }

  /** Whether this lane publishes micro-batch `k` of its step: no other thread did, and the step is on. */
  private wins(spec: Int32Array, k: number): boolean {
    if (Atomics.load(this.mem.sched, SCHED.SEQ) !== this.seq) return false;
    for (;;) {
      const v = Atomics.load(spec, SPEC.HEAD + k);
      // published in this step, or (a lane that woke late) in a later one
      const behind = (this.seq - v) & SEQ_MASK;
      if (behind === 0 || behind >= SEQ_HALF) return false;
      if (Atomics.compareExchange(spec, SPEC.HEAD + k, v, this.seq) === v) return true;
    }
  }

  /** Keeps `ms` per sample among this lane's recent micro-batch times. */
  private record(ms: number): void {
    if (!(ms > 0 && Number.isFinite(ms))) return;
    this.times[this.timesAt] = ms;
    this.timesAt = (this.timesAt + 1) % BACKUP_TIMES;
    if (this.timesN < BACKUP_TIMES) this.timesN++;
  }

  /** The median of this lane's recent times per sample, 0 before it has 4 (computed once a step). */
  private typicalPerSample(): number {
    if (this.perSampleSeq === this.seq) return this.perSample;
    this.perSampleSeq = this.seq;
    const n = this.timesN;
    if (n < 4) return this.perSample = 0;
    const a = this.timesSorted;
    for (let i = 0; i < n; i++) {
      const v = this.times[i]!;
      let j = i - 1;
      while (j >= 0 && a[j]! > v) {
        a[j + 1] = a[j]!;
        j--;
      }
      a[j + 1] = v;
    }
    return this.perSample = a[n >> 1]!;
  }

  /**
   * With every micro-batch of the last phase claimed: {@linkcode ALL_DONE}
   * when all are published; a micro-batch to back up (its claimer showed
   * no progress for longer than `backupAfter` times this lane's own time
   * for it, not published nor backed up yet: now this lane's backup, a
   * spare region held); or {@linkcode WAITING}, a wait set until the last
   * is published or the next claim's progress becomes that old.
   */
  private stalled(s: Int32Array, at: number): number {
    const done = Atomics.load(s, at + 1);
    if (done >= this.k) return ALL_DONE;
    const spec = this.spec!, stamps = this.claimedAt!;
    const origin = performance.timeOrigin;
    const now = origin + performance.now();
    const started = stamps[0]!;
    const per = this.typicalPerSample();
    let next = Infinity;
    if (per > 0) {
      for (let i = 0; i < this.k; i++) {
        if (Atomics.load(spec, SPEC.HEAD + i) === this.seq) continue;
        const flag = this.backupAt + i;
        const v = Atomics.load(spec, flag);
        if (v === this.seq) continue;
        // a stamp older than the step is another step's: the claim was just made
        // (a claimer that shows progress pushes its deadline on: the wait is then shorter)
        const t = stamps[1 + i]!;
        const due = (t >= started ? t : now) +
          Math.max(MIN_BACKUP_MS, this.backupAfter * per * this.shard.samples(i, this.n));
        if (due > now) {
          if (due < next) next = due;
          continue;
        }
        if (this.spare < 0) this.spare = this.tree.tryAcquire();
        if (this.spare < 0) {
          // no region to compute into: look again soon
          next = now + MIN_BACKUP_MS;
          break;
        }
        if (Atomics.compareExchange(spec, flag, v, this.seq) === v) return i;
      }
    }
    this.wait(s, at + 1, done, next - origin);
    return WAITING;
  }

  /** The micro-batches are all claimed: true when this lane is done, false to go on to the update. */
  private finish(): boolean {
    this.end();
    if (!this.updater) return true;
    this.updating = true;
    return false;
  }

  /** This lane's part of the parallel update: waits for the tree's root, then claims ranges. */
  private update(): boolean {
    const u = this.updater!;
    if (!this.joined) {
      const root = this.tree.root();
      if (root < 0) return this.wait(this.tree.stateArray, TREE.ROOT, -1);
      // a non-finite loss ends the run: the parameters keep their last good values
      if (!Number.isFinite(stepLoss(this.mem, this.shard, this.n, this.k))) return this.end();
      const [a, b] = rootRegions(root);
      u.begin(this.seq, a, b);
      this.joined = true;
    }
    if (u.advance(this.unitHook, SPAN.UPDATE)) return this.end();
    return this.wait(u.waitOn, u.waitAt, u.waitFor);
  }

  private wait(on: Int32Array, at: number, value: number, until = Infinity): false {
    this.waitOn = on;
    this.waitAt = at;
    this.waitFor = value;
    this.waitUntil = until;
    return false;
  }

  private end(): true {
    if (this.spare >= 0) this.tree.release(this.spare);
    this.spare = -1;
    return true;
  }

  /** The next micro-batch index of the counter at `at`, -1 when none is left, STALE for another step. */
  private claim(at: number): number {
    const s = this.mem.sched;
    for (;;) {
      const v = Atomics.load(s, at);
      if (v >>> 16 !== this.tag) return STALE;
      const i = v & 0xffff;
      if (i >= this.k) return -1;
      if (Atomics.compareExchange(s, at, v, v + 1) === v) return i;
    }
  }
}

/**
 * The batch-mean loss of a finished step: `Σ_k w_k · loss_k` in micro-batch order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { allocDataset, initParams, lectureCnn } from "@denograd/denograd";
 * import { GradientShard } from "./shard.ts";
 * import { stepLoss } from "./schedule.ts";
 * const m = lectureCnn({ channels: 2 });
 * const params = initParams(m.built, { seed: 1 }) as Map<string, Float32Array>;
 * const ds = allocDataset({ name: "blank", count: 8, sampleShape: [1, 28, 28], numClasses: 10 });
 * const shard = new GradientShard({
 *   ...m,
 *   grads: Object.entries(m.grads),
 *   params,
 *   images: ds.images,
 *   labels: ds.labels,
 *   sampleSize: 784,
 *   indices: new Uint32Array(5),
 *   microBatch: 2,
 * });
 * const mem = {
 *   sched: new Int32Array(6),
 *   stepNo: new Float64Array(1),
 *   losses: Float64Array.from([1, 2, 3]), // the micro-batches' losses
 *   partials: new Float32Array(0),
 * };
 * // 5 samples cut 2, 2, 1: weights 0.4, 0.4, 0.2
 * assert.ok(Math.abs(stepLoss(mem, shard, 5, 3) - (0.4 * 1 + 0.4 * 2 + 0.2 * 3)) < 1e-12);
 * ```
 */
export function stepLoss(mem: StepMemory, shard: GradientShard, n: number, k: number): number {
  let loss = 0;
  for (let i = 0; i < k; i++) loss += shard.weight(i, n) * mem.losses[i]!;
  return loss;
}
