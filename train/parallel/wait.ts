/**
 * Waiting that yields: a thread waiting for another spins only while
 * spinning pays, then sleeps (`Atomics.wait`, or `Atomics.waitAsync` on the
 * main thread). A {@linkcode Spinner} learns how long waits last: it spins
 * up to twice the recent typical wait, capped, and not at all once waits
 * are long (the other thread is computing, so a spin would only burn a core),
 * once most spins run out before the wait ends, or while the machine looks
 * oversubscribed: more runnable processes than cores, or a step slower than
 * the recent median ({@linkcode StepClock}); a spinning thread would take
 * the core a computing thread needs.
 *
 * @module
 */

/** Longest spin, in milliseconds. */
export const MAX_SPIN_MS = 0.5;
// how often the load average is read
const LOAD_CHECK_MS = 1000;
// spins that ran out before the wait ended, as a moving share of recent waits, above which spinning stops
const TIMEOUT_SHARE = 0.5;
// waits without a spin after spins kept timing out, before a spin is tried again
const BACKOFF_WAITS = 64;
/** Steps without spinning, on every thread, after a step slower than {@linkcode SLOW_STEP} × the recent median. */
export const CALM_STEPS = 16;
/** A step this many times the recent median counts as slow (see {@linkcode StepClock}). */
export const SLOW_STEP = 1.5;

/** Options of a {@linkcode Spinner}. */
export interface SpinnerOptions {
  /**
   * The typical wait is the median of the last {@linkcode MEDIAN_WAITS}
   * waits instead of a moving average, so that a rare long wait (a step the
   * thread sat out, the caller's own work between steps) does not stop the
   * spinning: for a worker's wait for the next step. Such a spinner does
   * not back off after spins that ran out (its budget already follows the
   * waits, and at most half of them outlast their median).
   */
  median?: boolean;
  /**
   * Spin at least this long (ms) whatever the waits, spins that ran out or
   * the calm counter say (default 0); only the load average (more runnable
   * processes than cores) stops it. About a futex wake-up's cost, it keeps
   * short in-step waits from sleeping.
   */
  minSpinMs?: number;
  /** Spin with `Atomics.pause` between reads (a CPU's spin-wait hint), default false. */
  pause?: boolean;
}

/**
 * How a pool's threads wait inside a step (see {@linkcode Spinner} and
 * {@linkcode StepClock}); the defaults are {@linkcode SLOW_STEP} and no
 * shortest spin.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type WaitPolicy, waitPolicyOf } from "./wait.ts";
 * const p: WaitPolicy = waitPolicyOf({ minSpinMs: 0.15 });
 * assert.deepEqual(p, { minSpinMs: 0.15, slowStep: 1.5, pause: false });
 * ```
 */
export interface WaitPolicy {
  /** Shortest spin (ms) of an in-step wait unless the machine is oversubscribed (see {@linkcode SpinnerOptions.minSpinMs}). */
  minSpinMs?: number;
  /** A step this many times the recent median counts as slow (default {@linkcode SLOW_STEP}). */
  slowStep?: number;
  /** Spin with `Atomics.pause` between reads (see {@linkcode SpinnerOptions.pause}). */
  pause?: boolean;
}

/**
 * A {@linkcode WaitPolicy} with every default filled in; throws on a
 * negative spin or a slow-step factor not above 1, naming the value.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SLOW_STEP, waitPolicyOf } from "./wait.ts";
 * assert.deepEqual(waitPolicyOf(), { minSpinMs: 0, slowStep: SLOW_STEP, pause: false });
 * assert.throws(() => waitPolicyOf({ slowStep: 0.5 }), /slowStep/);
 * ```
 */
export function waitPolicyOf(p: WaitPolicy = {}): Required<WaitPolicy> {
  const minSpinMs = p.minSpinMs ?? 0;
  const slowStep = p.slowStep ?? SLOW_STEP;
  if (!(minSpinMs >= 0 && minSpinMs <= MAX_SPIN_MS)) {
    throw new Error(`wait: minSpinMs must be between 0 and ${MAX_SPIN_MS} ms, got ${minSpinMs}`);
  }
  if (!(slowStep > 1 && Number.isFinite(slowStep))) {
    throw new Error(`wait: slowStep must be a finite number above 1, got ${slowStep}`);
  }
  return { minSpinMs, slowStep, pause: p.pause ?? false };
}

/** Waits a median-based {@linkcode Spinner} keeps. */
export const MEDIAN_WAITS = 8;

/**
 * Adaptive spin budget of one thread. It spins up to twice the recent
 * typical wait (at most {@linkcode MAX_SPIN_MS}) and not at all when any of
 * these says a spin would take a core another thread needs: waits are long
 * (the other thread is computing); most recent spins ran out before the wait
 * ended (then none for the next {@linkcode BACKOFF_WAITS} waits); the load
 * average is above the core count; or the pool's shared calm counter is set
 * (a recent step was slower than the median, see {@linkcode StepClock}).
 * A shortest spin ({@linkcode SpinnerOptions.minSpinMs}, default none)
 * holds through every sign but the load average.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MAX_SPIN_MS, Spinner } from "./wait.ts";
 * const s = new Spinner(1e9, null, { median: true }); // so many cores that the load never counts
 * for (let i = 0; i < 8; i++) s.record(0.1);
 * s.record(50); // a step this thread sat out
 * assert.ok(Math.abs(s.budget(0) - 0.2) < 1e-9);
 * assert.ok(s.budget(0) <= MAX_SPIN_MS);
 * ```
 */
export class Spinner {
  /** Recent typical wait (ms): an exponential moving average, or the median of the last waits (see {@linkcode SpinnerOptions.median}). */
  typical = 0;
  /** Set while the machine looks oversubscribed: no spinning at all. */
  oversubscribed = false;
  /** Recent share of spins that ran out before the wait ended (moving average). */
  timeouts = 0;
  /** Waits left without a spin after spins kept running out. */
  backoff = 0;
  private checkedAt = -Infinity;
  private readonly cores: number;
  private readonly calm: Int32Array | null;
  /** The last waits (median-based only), a ring. */
  private readonly recent: Float64Array | null;
  private readonly scratch: Float64Array | null;
  private recentN = 0;
  private recentAt = 0;
  private readonly minSpin: number;
  /** Whether a spin calls `Atomics.pause` between reads. */
  readonly pause: boolean;

  /**
   * A spinner for a machine of `cores` cores (default:
   * `navigator.hardwareConcurrency`); `calm`, when given, is the pool's
   * shared counter of steps to run without spinning (slot 0).
   */
  constructor(
    cores = navigator.hardwareConcurrency ?? 1,
    calm: Int32Array | null = null,
    options: SpinnerOptions = {},
  ) {
    this.cores = cores;
    this.calm = calm;
    this.recent = options.median ? new Float64Array(MEDIAN_WAITS) : null;
    this.scratch = options.median ? new Float64Array(MEDIAN_WAITS) : null;
    this.minSpin = options.minSpinMs ?? 0;
    this.pause = options.pause ?? false;
  }

  /** How long to spin before sleeping, in milliseconds. */
  budget(now: number): number {
    if (now - this.checkedAt > LOAD_CHECK_MS) {
      this.checkedAt = now;
      this.oversubscribed = loadAverage() > this.cores;
    }
    if (this.oversubscribed) return 0;
    let spin = Math.min(MAX_SPIN_MS, 2 * this.typical);
    if (this.backoff > 0) {
      this.backoff--;
      spin = 0;
    } else if (this.calm && Atomics.load(this.calm, 0) > 0) spin = 0;
    // a long typical wait: the other thread is computing, a spin would only burn a core
    else if (this.typical > MAX_SPIN_MS) spin = 0;
    return Math.max(this.minSpin, spin);
  }

  /** Records how long a wait lasted (ms), and the spin budget it had (a spin that ran out counts against spinning). */
  record(ms: number, spun = 0): void {
    const recent = this.recent;
    if (recent) {
      recent[this.recentAt] = ms;
      this.recentAt = (this.recentAt + 1) % recent.length;
      if (this.recentN < recent.length) this.recentN++;
      this.typical = medianOf(recent, this.recentN, this.scratch!);
    } else this.typical = this.typical * 0.8 + Math.min(ms, 10 * MAX_SPIN_MS) * 0.2;
    // a median's spin that runs out is a wait among the longer half: no backoff (a step sat out
    // after a probe of the main thread alone would otherwise stop the spin for 64 steps)
    if (spun <= 0 || recent) return;
    this.timeouts = this.timeouts * 0.8 + (ms > spun ? 0.2 : 0);
    if (this.timeouts > TIMEOUT_SHARE) {
      this.backoff = BACKOFF_WAITS;
      this.timeouts = 0;
    }
  }
}

/**
 * The main thread's watch on step times: a step slower than
 * {@linkcode SLOW_STEP} × the median of the recent ones (another process
 * took a core, or a spinning thread took a computing thread's) sets the
 * shared calm counter to {@linkcode CALM_STEPS}, and every thread waits
 * without spinning until that many steps have passed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CALM_STEPS, StepClock } from "./wait.ts";
 * const calm = new Int32Array(1);
 * const clock = new StepClock(calm);
 * for (let i = 0; i < 8; i++) clock.record(10);
 * assert.equal(calm[0], 0);
 * clock.record(30);
 * assert.equal(calm[0], CALM_STEPS);
 * ```
 */
export class StepClock {
  private ring = new Float64Array(15);
  private sorted = new Float64Array(15);
  private n = 0;
  private at = 0;
  private calm: Int32Array;
  private slowStep: number;

  /**
   * A clock that sets `calm[0]` (shared with every thread's {@linkcode Spinner})
   * after a step `slowStep` times the recent median.
   */
  constructor(calm: Int32Array, slowStep = SLOW_STEP) {
    this.calm = calm;
    this.slowStep = slowStep;
  }

  /** The median of the recent steps (ms), 0 before any. */
  median(): number {
    return medianOf(this.ring, this.n, this.sorted);
  }

  /** Records a step of `ms` milliseconds (same batch size as the recent ones). */
  record(ms: number): void {
    const med = this.median();
    const c = Atomics.load(this.calm, 0);
    if (this.n >= 4 && ms > this.slowStep * med) Atomics.store(this.calm, 0, CALM_STEPS);
    else if (c > 0) Atomics.store(this.calm, 0, c - 1);
    this.ring[this.at] = ms;
    this.at = (this.at + 1) % this.ring.length;
    if (this.n < this.ring.length) this.n++;
  }

  /** Forgets the recent steps (a new batch size). */
  reset(): void {
    this.n = 0;
    this.at = 0;
  }
}

/** Steps a probe of the other way of running lasts (see {@linkcode SoloChoice}). */
export const PROBE_STEPS = 4;
// steps between probes: the first gap, and the longest it doubles to while a probe loses
const MIN_GAP = 16;
const MAX_GAP = 1024;
// the longest gap while alone: a wrong choice of the main thread alone (a probe of the threads
// that lost to a passing disturbance) costs about 40% a step, a wrong choice of the threads ~10%;
// but each probe of the threads beside a busy process costs its 4 steps at about half speed: at
// most 64 apart that was ~3% of the run (2 threads 0.97x of 1 thread, 935 of 1020 steps alone)
const MAX_SOLO_GAP = 256;
// how many times longer the gap is when the only sign is a slow step: on a quiet host, probes
// set off by its hiccups cost their 4 steps at about half speed each, 20 of 720 steps (~3% of a
// lecture-CNN run at batch 256) with the plain gaps
const CALM_GAP_FACTOR = 8;
// the other way must be this much faster per sample to be chosen
const SWITCH_MARGIN = 0.05;
// share of a step the main thread waits for other threads (a moving average) above which a
// probe of the main thread alone is worth its cost
const SUSPECT_WAIT = 0.25;

/** The median of the first `n` values of `a`, 0 for none (an insertion sort in `scratch`: short arrays, no allocation). */
function medianOf(a: Float64Array, n: number, scratch: Float64Array): number {
  if (n === 0) return 0;
  for (let i = 0; i < n; i++) scratch[i] = a[i]!;
  for (let i = 1; i < n; i++) {
    const v = scratch[i]!;
    let j = i - 1;
    while (j >= 0 && scratch[j]! > v) {
      scratch[j + 1] = scratch[j]!;
      j--;
    }
    scratch[j + 1] = v;
  }
  return scratch[n >> 1]!;
}

/**
 * Whether a pool's next step runs on all its threads or on the main thread
 * alone. With another process busy on a core, a step cut in two
 * micro-batches waits for whichever thread lost its core, and two threads
 * can be slower than one: the choice measures both ways and keeps the
 * faster. It runs on all threads until there is a sign that the others are
 * held up (the main thread waits for them more than
 * a quarter of the step on average, or a recent step was
 * slow: the calm counter is set), then runs {@linkcode PROBE_STEPS} steps on
 * the main thread alone and compares the median time per sample with the
 * recent steps'; the faster way is kept, and the other is probed again
 * after a gap that starts at 16 steps (8 times that when the only sign is
 * a slow step, often a passing hiccup of the host) and doubles each time a probe loses,
 * to 1024 steps on the threads and to 256 alone (a probe of the threads that
 * lost to a passing disturbance must not keep a quiet machine on one
 * thread for long). A quiet machine, where two threads are faster, sees no probe or a
 * rare one. The result of a step is the same bits either way.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PROBE_STEPS, SoloChoice } from "./wait.ts";
 * const c = new SoloChoice();
 * // two threads, 1 ms a sample, the main thread waiting half of each step: suspicious
 * for (let i = 0; i < 16; i++) {
 *   assert.equal(c.next(), false);
 *   c.record(1, 0.5, false);
 * }
 * // the probe: the main thread alone, faster
 * for (let i = 0; i < PROBE_STEPS; i++) {
 *   assert.equal(c.next(), true);
 *   c.record(0.8, 0, false);
 * }
 * assert.equal(c.solo, true);
 * ```
 */
export class SoloChoice {
  /** Whether the way chosen is the main thread alone. */
  solo = false;
  /** Probes run so far (for a report). */
  probes = 0;
  private probing = false;
  private probeN = 0;
  private probe = new Float64Array(PROBE_STEPS);
  private recent = new Float64Array(8);
  private recentN = 0;
  private recentAt = 0;
  private scratch = new Float64Array(8);
  private sinceProbe = 0;
  private gap = MIN_GAP;
  private waitShare = 0;

  /** Whether the coming step runs on the main thread alone. */
  next(): boolean {
    return this.probing ? !this.solo : this.solo;
  }

  /**
   * Records the step just run as {@linkcode SoloChoice.next} said: `ms`
   * per sample, the share of it the main thread waited for other threads,
   * and whether the pool's calm counter is set (a recent slow step).
   */
  record(ms: number, waitShare: number, calm: boolean): void {
    if (this.probing) {
      this.probe[this.probeN++] = ms;
      if (this.probeN < PROBE_STEPS) return;
      this.probing = false;
      this.sinceProbe = 0;
      const other = medianOf(this.probe, PROBE_STEPS, this.scratch);
      const mine = medianOf(this.recent, this.recentN, this.scratch);
      if (other < mine * (1 - SWITCH_MARGIN)) {
        this.solo = !this.solo;
        this.gap = MIN_GAP;
        this.waitShare = 0;
        this.recent.set(this.probe);
        this.recentN = PROBE_STEPS;
        this.recentAt = PROBE_STEPS;
      } else {
        this.gap = Math.min(this.solo ? MAX_SOLO_GAP : MAX_GAP, 2 * this.gap);
      }
      return;
    }
    this.recent[this.recentAt] = ms;
    this.recentAt = (this.recentAt + 1) % this.recent.length;
    if (this.recentN < this.recent.length) this.recentN++;
    this.sinceProbe++;
    if (!this.solo) this.waitShare = 0.9 * this.waitShare + 0.1 * waitShare;
    // a main thread that waits for the others is a strong sign; a slow step alone (the calm
    // counter) is often a passing hiccup of the host, so it waits 8 times longer between probes
    const strong = this.solo || this.waitShare > SUSPECT_WAIT;
    const gap = strong ? this.gap : Math.min(MAX_GAP, CALM_GAP_FACTOR * this.gap);
    if ((strong || calm) && this.sinceProbe >= gap && this.recentN >= 4) {
      this.probing = true;
      this.probeN = 0;
      this.probes++;
    }
  }

  /** Back to all threads, nothing learned (a new batch size). */
  reset(): void {
    this.solo = false;
    this.probing = false;
    this.recentN = 0;
    this.recentAt = 0;
    this.sinceProbe = 0;
    this.gap = MIN_GAP;
    this.waitShare = 0;
  }
}

let loadAllowed: boolean | undefined;

/** The 1-minute load average, or 0 where it cannot be read (no --allow-sys, a browser). */
function loadAverage(): number {
  // read from the global object: a web page has no Deno (tests/web/deno_free_test.ts)
  const deno = (globalThis as { Deno?: typeof Deno }).Deno;
  if (!deno) return 0;
  try {
    // asked once, without a prompt: a run without --allow-sys just spins by the wait times
    loadAllowed ??= deno.permissions.querySync({ name: "sys", kind: "loadavg" }).state ===
      "granted";
    return loadAllowed ? deno.loadavg()[0]! : 0;
  } catch {
    loadAllowed = false;
    return 0;
  }
}

/**
 * Blocks this thread until `arr[at]` is no longer `value` or `timeoutMs`
 * passed: a spin within `spinner`'s budget, then `Atomics.wait` (workers
 * only). Returns whether the value changed.
 */
export function waitChange(
  arr: Int32Array,
  at: number,
  value: number,
  spinner: Spinner,
  timeoutMs: number,
): boolean {
  const t0 = performance.now();
  const spin = spinner.budget(t0);
  const until = t0 + spin;
  let changed = Atomics.load(arr, at) !== value;
  if (spinner.pause) {
    while (!changed && performance.now() < until) {
      spinPause(16);
      changed = Atomics.load(arr, at) !== value;
    }
  } else {
    while (!changed && performance.now() < until) changed = Atomics.load(arr, at) !== value;
  }
  if (!changed) {
    Atomics.wait(arr, at, value, timeoutMs);
    changed = Atomics.load(arr, at) !== value;
  }
  spinner.record(performance.now() - t0, spin);
  return changed;
}

/**
 * `Atomics.pause(n)` where the runtime has it (a CPU's spin-wait hint,
 * which leaves a sibling hardware thread more of the core), else nothing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { spinPause } from "./wait.ts";
 * assert.equal(spinPause(16), undefined);
 * ```
 */
export const spinPause: (n: number) => void =
  (Atomics as unknown as { pause?: (n: number) => void }).pause?.bind(Atomics) ?? (() => {});

/** `setImmediate` where the runtime has it (Deno, Node), else undefined (a web page). */
const immediate = (globalThis as { setImmediate?: (f: () => void) => unknown }).setImmediate;

/**
 * A turn of the event loop each step at almost no cost, so signals (Ctrl-C),
 * timers and worker events run between steps: {@linkcode Yielder.settle}
 * goes round the event loop through `setImmediate`, which in Deno runs after
 * the loop has polled its timers and ops (a signal's listener runs at a
 * turn after the signal arrives). Measured on this project's 2-core VM
 * (Deno 2.9.6), 1 ms steps: 5 µs a turn, a signal's listener run at the
 * turn of the step it arrived in. A
 * zero-delay timer, the fallback where there is no `setImmediate` (a web
 * page; {@linkcode Yielder.arm} starts it when a step starts), fires only
 * 2.0–2.7 ms after it was set, so a step shorter than that waited for it:
 * +0.56 ms a step on average for 1.7 ms of work, about a quarter of a
 * 2-thread lecture-CNN step at batch 64.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Yielder } from "./wait.ts";
 * const y = new Yielder();
 * let ran = false;
 * setTimeout(() => (ran = true), 0);
 * y.arm();
 * const t0 = performance.now();
 * while (performance.now() - t0 < 5); // a step's work, long enough for the timer to be due
 * await y.settle();
 * assert.ok(ran);
 * ```
 */
export class Yielder {
  private due: Promise<void> | null = null;
  private readonly useTimer: boolean;

  /** A yielder; `timer` forces the zero-delay timer even where `setImmediate` exists (for comparison). */
  constructor(timer = false) {
    this.useTimer = timer || immediate === undefined;
  }

  /** Whether a turn is a `setImmediate` (a few microseconds), not a zero-delay timer armed at the step's start. */
  get immediate(): boolean {
    return !this.useTimer;
  }

  /** Starts the turn's timer where the turn is a timer (idempotent until settled); nothing otherwise. */
  arm(): void {
    if (this.useTimer) this.due ??= new Promise<void>((resolve) => setTimeout(resolve, 0));
  }

  /** Goes round the event loop once (waits for the timer armed, if the turn is a timer). */
  async settle(): Promise<void> {
    if (!this.useTimer) {
      await new Promise<void>((resolve) => immediate!(resolve));
      return;
    }
    this.arm();
    const due = this.due;
    this.due = null;
    await due;
  }
}
