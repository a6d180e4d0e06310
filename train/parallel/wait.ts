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
 * Those signs are slow or blunt: the load average reacts over a minute, and
 * on this project's noisy 2-vCPU VM a step 1.5× the median (which sets the
 * calm counter for 16 steps) came in 57–65% of the steps, so the threads
 * nearly always slept, and paid for it: the `Atomics.notify` that wakes a
 * sleeping thread costs the notifier 45–90 µs there (an interrupt to a
 * halted vCPU), and the sleeper wakes late. With
 * {@linkcode WaitPolicy.ownCores} the pool measures directly whether it owns
 * its cores ({@linkcode CoreShare}): the share of CPU its threads get while
 * they are runnable, Δ process CPU time / Σ over threads of (Δ wall time −
 * Δ time asleep in `Atomics.wait`), every {@linkcode SHARE_PERIOD_MS} ms.
 * Measured there: a busy loop alone gets 0.92–1.0 of wall time, beside two
 * `yes` processes 0.67. At {@linkcode OWNED_SHARE} or more a spin takes
 * nobody's core: the threads then spin at least {@linkcode OWNED_SPIN_MS}
 * (or `minSpinMs`), whatever the calm counter, the backoff or the load
 * average say; below it (another process is runnable beside the pool), or
 * where the process's CPU time cannot be read (a web page), they wait as
 * without the option, without the shortest spin. Measured there (lecture
 * CNN, 2 threads, `bench:train --ab "own-cores=false | own-cores=true"`,
 * 2-thread B/A median per run): batch 64 1.066 (8/9 reps ahead), 1.033
 * (5/9), 1.013 (5/9), 1.005 (5/9), where an A/A run (both sides off) gave
 * 1.008 (per-rep 0.92–1.04); batch 256 1.016 (6/7); mnist-net batch 256
 * 1.023 (4/5); beside one `yes` (`--busy 1`) no period of threads was found
 * owned (0/6): the threads waited as without the option. A gain of 0–7% at
 * batch 64 against run-to-run noise of that size, so the option is off by
 * default.
 *
 * @module
 */

/**
 * Longest spin, in milliseconds.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MAX_SPIN_MS, Spinner } from "./wait.ts";
 * const s = new Spinner(1e9, null, { median: true }); // so many cores that the load never counts
 * for (let i = 0; i < 8; i++) s.record(0.4); // twice the typical wait would be 0.8 ms
 * assert.equal(s.budget(0), MAX_SPIN_MS);
 * ```
 */
export const MAX_SPIN_MS = 0.5;
// how often the load average is read
const LOAD_CHECK_MS = 1000;
// spins that ran out before the wait ended, as a moving share of recent waits, above which spinning stops
const TIMEOUT_SHARE = 0.5;
// waits without a spin after spins kept timing out, before a spin is tried again
const BACKOFF_WAITS = 64;
/**
 * Steps without spinning, on every thread, after a step slower than {@linkcode SLOW_STEP} × the recent median.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CALM_STEPS, Spinner, StepClock } from "./wait.ts";
 * const calm = new Int32Array(1);
 * const clock = new StepClock(calm);
 * const s = new Spinner(1e9, calm);
 * s.record(0.1);
 * for (let i = 0; i < 8; i++) clock.record(10);
 * clock.record(30); // slow: no spin for CALM_STEPS steps
 * assert.equal(calm[0], CALM_STEPS);
 * assert.equal(s.budget(0), 0);
 * for (let i = 0; i < CALM_STEPS; i++) clock.record(10);
 * assert.equal(calm[0], 0);
 * assert.ok(s.budget(0) > 0);
 * ```
 */
export const CALM_STEPS = 16;
/**
 * A step this many times the recent median counts as slow (see {@linkcode StepClock}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CALM_STEPS, SLOW_STEP, StepClock } from "./wait.ts";
 * const calm = new Int32Array(1);
 * const clock = new StepClock(calm);
 * for (let i = 0; i < 8; i++) clock.record(10);
 * clock.record(10 * SLOW_STEP); // only above SLOW_STEP × the median counts
 * assert.equal(calm[0], 0);
 * clock.record(10 * SLOW_STEP + 0.1);
 * assert.equal(calm[0], CALM_STEPS);
 * ```
 */
export const SLOW_STEP = 1.5;

/**
 * Options of a {@linkcode Spinner}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Spinner, type SpinnerOptions } from "./wait.ts";
 * const at = new Float64Array(2);
 * const options: SpinnerOptions = { minSpinMs: 0.2, asleep: { at, slot: 0 } };
 * const s = new Spinner(1e9, null, options);
 * s.record(5); // long waits: no spin, but the shortest one holds
 * assert.equal(s.budget(0), 0.2);
 * s.sleep();
 * assert.ok(at[1]! > 0); // the start of a sleep under way
 * const t0 = performance.now();
 * while (performance.now() - t0 < 2); // asleep 2 ms
 * s.wake();
 * assert.equal(at[1], 0);
 * assert.ok(at[0]! >= 1.9);
 * ```
 */
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
  /**
   * Read the pool's verdict on its cores (slot {@linkcode OWNED} of the
   * calm array, set by {@linkcode CoreShare}): while it is set, spin at
   * least `minSpinMs` (default {@linkcode OWNED_SPIN_MS}) whatever the calm
   * counter, the backoff or the load average say; while it is not, spin
   * as without this option and without a shortest spin. Default false.
   */
  ownCores?: boolean;
  /**
   * Where this thread shows its sleep in `Atomics.wait` (see
   * {@linkcode CoreShare}): `at[2 * slot]` sums the milliseconds it slept,
   * `at[2 * slot + 1]` holds when its sleep started while it sleeps
   * (`performance.timeOrigin + performance.now()`), else 0.
   */
  asleep?: { at: Float64Array; slot: number };
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
 * assert.deepEqual(p, {
 *   minSpinMs: 0.15,
 *   slowStep: 1.5,
 *   pause: false,
 *   ownCores: false,
 *   speculate: true,
 *   backupAfter: 0.5,
 *   betweenSpinMs: 0,
 *   slowProbes: false,
 *   hostLoad: true,
 *   probeEarlyEnd: true,
 * });
 * ```
 */
export interface WaitPolicy {
  /** Shortest spin (ms) of an in-step wait unless the machine is oversubscribed (see {@linkcode SpinnerOptions.minSpinMs}). */
  minSpinMs?: number;
  /** A step this many times the recent median counts as slow (default {@linkcode SLOW_STEP}). */
  slowStep?: number;
  /** Spin with `Atomics.pause` between reads (see {@linkcode SpinnerOptions.pause}). */
  pause?: boolean;
  /**
   * Spin at least `minSpinMs` (default {@linkcode OWNED_SPIN_MS} here) while
   * the pool's threads get their cores' whole time (see {@linkcode CoreShare}),
   * and never otherwise; default false.
   */
  ownCores?: boolean;
  /**
   * A thread with no micro-batch left to claim recomputes one whose claimer
   * has shown no progress (started no node of it) for
   * {@linkcode WaitPolicy.backupAfter} times the thread's own recent time
   * for that many samples, at least 0.5 ms (the claimer lost its core);
   * whichever finishes first publishes it, the same bits either way, and
   * the other stops at its next node (see `Lane` in `schedule.ts`).
   * Default true.
   */
  speculate?: boolean;
  /** See {@linkcode WaitPolicy.speculate} (default {@linkcode BACKUP_AFTER}). */
  backupAfter?: number;
  /**
   * A worker's shortest spin (ms) in its wait for the next step, unless the
   * machine is oversubscribed (the load average above the cores); default
   * 0: twice the median of its recent waits for a step (see
   * {@linkcode SpinnerOptions.median}). A worker whose spin ran out sleeps
   * in `Atomics.wait`, and a woken one started its step late: on this
   * project's 2-vCPU VM 150-1,400 µs in about half the steps whose wait
   * outlasted 100 µs (lecture CNN batch 64, 2 threads).
   */
  betweenSpinMs?: number;
  /**
   * Whether `SoloChoice` probes the main thread alone when the only sign
   * that the other threads are held up is a slow step (the calm counter),
   * default false. On a quiet host such steps come from its hiccups (18-21%
   * of the steps at lecture CNN batch 64, 2 threads): a probe at steps 128,
   * 388, … in every run, 4 steps on one thread at about 1.5× the step. A
   * busy process beside the pool shows otherwise: the main thread waits for
   * (or backs up) the other threads' micro-batches. Measured
   * (`bench:train --batch 64 --steps 400 --chunk 20 --ab "slow-probes=true
   * | slow-probes=false"`, 2 threads, B/A median per run): 1.022 (7/7 reps
   * ahead), 1.002 (5/9), 1.005 (6/9); beside one `yes` (`--busy 1`, batch
   * 64) 0.998 (2/5) and 1.027 (3/5), batch 256 0.986 (2/5), 2 threads
   * over 1 with it 1.00 and 1.01 (0.94-0.99 with probes).
   */
  slowProbes?: boolean;
  /**
   * Whether `SoloChoice` reads the host's spare cores (`os.cpus()` times,
   * see {@linkcode hostLoad}) where it may: on the threads it probes the main
   * thread alone only while other processes use a core's quarter or more
   * (a quiet host never goes alone on a hiccup), alone it probes the
   * threads as soon as a core is seen free and seldom (4× the gap) while
   * none is. Default true; where it cannot be read, the probes go by the
   * steps' times alone.
   */
  hostLoad?: boolean;
  /**
   * Whether a probe of the threads by `SoloChoice` (running alone) ends
   * after {@linkcode EARLY_STEPS} steps when each was over
   * {@linkcode EARLY_END} times the recent steps' median per sample
   * (clearly the slower way), instead of always running
   * {@linkcode PROBE_STEPS} steps. Default true.
   */
  probeEarlyEnd?: boolean;
}

/**
 * For how long, in units of a thread's own recent time for a micro-batch,
 * another thread's claim must show no progress before the thread backs it
 * up (see {@linkcode WaitPolicy.speculate}). The lecture CNN's longest node
 * (the fused convolution) is about a third of a micro-batch.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BACKUP_AFTER, waitPolicyOf } from "./wait.ts";
 * assert.equal(waitPolicyOf().backupAfter, BACKUP_AFTER);
 * assert.ok(BACKUP_AFTER > 0 && BACKUP_AFTER < 1);
 * ```
 */
export const BACKUP_AFTER = 0.5;

/**
 * A {@linkcode WaitPolicy} with every default filled in; throws on a
 * negative spin or a slow-step factor not above 1, naming the value.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SLOW_STEP, waitPolicyOf } from "./wait.ts";
 * assert.deepEqual(waitPolicyOf(), {
 *   minSpinMs: 0,
 *   slowStep: SLOW_STEP,
 *   pause: false,
 *   ownCores: false,
 *   speculate: true,
 *   backupAfter: 0.5,
 *   betweenSpinMs: 0,
 *   slowProbes: false,
 *   hostLoad: true,
 *   probeEarlyEnd: true,
 * });
 * assert.equal(waitPolicyOf({ ownCores: true }).minSpinMs, 0.3);
 * assert.throws(() => waitPolicyOf({ slowStep: 0.5 }), /slowStep/);
 * ```
 */
export function waitPolicyOf(p: WaitPolicy = {}): Required<WaitPolicy> {
  const ownCores = p.ownCores ?? false;
  const minSpinMs = p.minSpinMs ?? (ownCores ? OWNED_SPIN_MS : 0);
  const slowStep = p.slowStep ?? SLOW_STEP;
  if (!(minSpinMs >= 0 && minSpinMs <= MAX_SPIN_MS)) {
    throw new Error(`wait: minSpinMs must be between 0 and ${MAX_SPIN_MS} ms, got ${minSpinMs}`);
  }
  if (!(slowStep > 1 && Number.isFinite(slowStep))) {
    throw new Error(`wait: slowStep must be a finite number above 1, got ${slowStep}`);
  }
  const backupAfter = p.backupAfter ?? BACKUP_AFTER;
  if (!(backupAfter > 0 && Number.isFinite(backupAfter))) {
    throw new Error(`wait: backupAfter must be a finite number above 0, got ${backupAfter}`);
  }
  const betweenSpinMs = p.betweenSpinMs ?? 0;
  if (!(betweenSpinMs >= 0 && betweenSpinMs <= MAX_SPIN_MS)) {
    throw new Error(
      `wait: betweenSpinMs must be between 0 and ${MAX_SPIN_MS} ms, got ${betweenSpinMs}`,
    );
  }
  return {
    minSpinMs,
    slowStep,
    pause: p.pause ?? false,
    ownCores,
    speculate: p.speculate ?? true,
    backupAfter,
    betweenSpinMs,
    slowProbes: p.slowProbes ?? false,
    hostLoad: p.hostLoad ?? true,
    probeEarlyEnd: p.probeEarlyEnd ?? true,
  };
}

/**
 * Waits a median-based {@linkcode Spinner} keeps.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MEDIAN_WAITS, Spinner } from "./wait.ts";
 * const s = new Spinner(1e9, null, { median: true });
 * for (let i = 0; i < MEDIAN_WAITS; i++) s.record(0.3);
 * for (let i = 0; i < MEDIAN_WAITS; i++) s.record(0.1); // the 0.3s are forgotten
 * assert.equal(s.typical, 0.1);
 * ```
 */
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
  private readonly ownCores: boolean;
  private readonly asleep: Float64Array | null;
  private readonly asleepSlot: number;
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
    this.ownCores = (options.ownCores ?? false) && calm !== null && calm.length > OWNED;
    this.minSpin = options.minSpinMs ?? (this.ownCores ? OWNED_SPIN_MS : 0);
    this.pause = options.pause ?? false;
    this.asleep = options.asleep?.at ?? null;
    this.asleepSlot = options.asleep?.slot ?? 0;
  }

  /** This thread goes to sleep in `Atomics.wait` (see {@linkcode SpinnerOptions.asleep}). */
  sleep(): void {
    if (this.asleep) {
      this.asleep[2 * this.asleepSlot + 1] = performance.timeOrigin + performance.now();
    }
  }

  /** This thread woke from `Atomics.wait`: its sleep joins the sum. */
  wake(): void {
    const a = this.asleep;
    if (!a) return;
    // one writer per slot, aligned 8-byte stores read by the main thread without a lock: the sum
    // first, then the start cleared, so a reader (the sum, then the start) may miss a sleep that
    // just ended until its next reading, never count it twice
    const at = 2 * this.asleepSlot;
    a[at] = a[at]! + performance.timeOrigin + performance.now() - a[at + 1]!;
    a[at + 1] = 0;
  }

  /**
   * Whether a wait may poll for other threads' kernel chunks to run (see
   * `Assist` in `ops/kernels/assist.ts`): not while the machine looks
   * oversubscribed (the load average above the cores), where a polling
   * thread would take the core a computing one needs. A slow step (the
   * calm counter) does not stop it: a thread polls only once its own share
   * of the step is done, and on this project's VM slow steps come from the
   * host as often as from another process (the calm counter was set in
   * most steps of a quiet run, and helping then ran a third of the chunks).
   */
  mayAssist(now: number): boolean {
    return !this.loaded(now);
  }

  /** Whether the machine looks oversubscribed, the load average read at most once a second. */
  private loaded(now: number): boolean {
    if (now - this.checkedAt > LOAD_CHECK_MS) {
      this.checkedAt = now;
      this.oversubscribed = loadAverage() > this.cores;
    }
    return this.oversubscribed;
  }

  /** How long to spin before sleeping, in milliseconds. */
  budget(now: number): number {
    const owned = this.ownCores && Atomics.load(this.calm!, OWNED) === 1;
    if (owned) {
      // the pool's threads get their cores' whole time: a spin takes nobody's core
      const spin = this.typical > MAX_SPIN_MS ? 0 : Math.min(MAX_SPIN_MS, 2 * this.typical);
      return Math.max(this.minSpin, spin);
    }
    if (this.loaded(now)) return 0;
    let spin = Math.min(MAX_SPIN_MS, 2 * this.typical);
    if (this.backoff > 0) {
      this.backoff--;
      spin = 0;
    } else if (this.calm && Atomics.load(this.calm, 0) > 0) spin = 0;
    // a long typical wait: the other thread is computing, a spin would only burn a core
    else if (this.typical > MAX_SPIN_MS) spin = 0;
    // with ownCores the shortest spin is for owned cores only
    return this.ownCores ? spin : Math.max(this.minSpin, spin);
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

/**
 * Slot of the pool's shared calm array that holds 1 while the pool owns its cores (see {@linkcode CoreShare}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CALM_STEPS, OWNED, Spinner } from "./wait.ts";
 * const calm = new Int32Array(OWNED + 1);
 * calm[0] = CALM_STEPS; // a slow step was just seen
 * const s = new Spinner(1e9, calm, { ownCores: true });
 * assert.equal(s.budget(0), 0);
 * calm[OWNED] = 1; // owned cores: the spin holds whatever the calm counter says
 * assert.ok(s.budget(0) > 0);
 * ```
 */
export const OWNED = 1;
/**
 * A share of CPU at least this high while runnable means the pool's threads own their cores.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CoreShare, OWNED, OWNED_SHARE } from "./wait.ts";
 * const calm = new Int32Array(OWNED + 1);
 * let cpu = 0;
 * const watch = new CoreShare(calm, new Float64Array(4), 2, () => cpu, 0, 0);
 * watch.begin(0);
 * cpu = 90; // 2 threads, 50 ms, never asleep: a share of 0.9
 * watch.check(50);
 * assert.equal(watch.share, OWNED_SHARE);
 * assert.equal(calm[OWNED], 1);
 * cpu += 89;
 * watch.check(100);
 * assert.equal(calm[OWNED], 0);
 * ```
 */
export const OWNED_SHARE = 0.9;
/**
 * Shortest spin (ms) while the pool owns its cores, unless `minSpinMs` says otherwise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { OWNED, OWNED_SPIN_MS, Spinner, waitPolicyOf } from "./wait.ts";
 * assert.equal(waitPolicyOf({ ownCores: true }).minSpinMs, OWNED_SPIN_MS);
 * const calm = new Int32Array(OWNED + 1);
 * calm[OWNED] = 1;
 * const s = new Spinner(1e9, calm, { ownCores: true });
 * s.record(5); // long waits would not spin
 * assert.equal(s.budget(0), OWNED_SPIN_MS);
 * ```
 */
export const OWNED_SPIN_MS = 0.3;
/**
 * How often (ms of wall time) {@linkcode CoreShare} measures the share.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CoreShare, OWNED, SHARE_PERIOD_MS } from "./wait.ts";
 * let cpu = 0;
 * const watch = new CoreShare(new Int32Array(OWNED + 1), new Float64Array(2), 1, () => cpu, 0, 0);
 * watch.begin(0);
 * cpu = SHARE_PERIOD_MS;
 * watch.check(SHARE_PERIOD_MS - 1); // too soon: nothing measured
 * assert.equal(watch.periods, 0);
 * watch.check(SHARE_PERIOD_MS);
 * assert.equal(watch.periods, 1);
 * assert.equal(watch.share, 1);
 * ```
 */
export const SHARE_PERIOD_MS = 50;
// below this much runnable thread time (ms) in a period the share says nothing (every thread asleep)
const MIN_RUNNABLE_MS = 5;
// periods not owned after a period spent spinning found the cores not owned: 1, doubling each
// time to this many (3.2 s), back to 1 after this many owned periods in a row
const MAX_HOLD_PERIODS = 64;
const GOOD_PERIODS = 8;
/**
 * A pause between two steps this long (ms) starts a new period, cores not owned until measured (see {@linkcode CoreShare.begin}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CoreShare, IDLE_GAP_MS, OWNED } from "./wait.ts";
 * const calm = new Int32Array(OWNED + 1);
 * let cpu = 0;
 * const watch = new CoreShare(calm, new Float64Array(2), 1, () => cpu, 0, 0);
 * watch.begin(0);
 * cpu = 50;
 * watch.check(50); // a step ended at 50 ms, its core owned
 * assert.equal(calm[OWNED], 1);
 * watch.begin(50 + IDLE_GAP_MS / 2); // a short pause: same period
 * assert.equal(calm[OWNED], 1);
 * watch.begin(50 + IDLE_GAP_MS); // a long one: not owned until measured again
 * assert.equal(calm[OWNED], 0);
 * ```
 */
export const IDLE_GAP_MS = 5;

/**
 * The share of CPU a process's threads got while runnable: `cpuMs` (the
 * process's CPU time over a period) over `threads` × `wallMs` less
 * `asleepMs` (their summed time asleep in `Atomics.wait` over it); NaN when
 * they were runnable less than 5 ms in all (nothing to judge by).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cpuShare } from "./wait.ts";
 * // 2 threads over 50 ms, 20 ms of it asleep: 80 ms runnable, 72 ms on a core
 * assert.equal(cpuShare(72, 50, 2, 20), 0.9);
 * assert.ok(Number.isNaN(cpuShare(1, 50, 2, 99)));
 * ```
 */
export function cpuShare(cpuMs: number, wallMs: number, threads: number, asleepMs: number): number {
  const runnable = threads * wallMs - asleepMs;
  return runnable < MIN_RUNNABLE_MS ? NaN : cpuMs / runnable;
}

/**
 * The process's CPU time so far (user + system, ms), or null where it cannot be read (a web page).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { processCpuMs } from "./wait.ts";
 * const before = processCpuMs()!;
 * const t0 = performance.now();
 * while (performance.now() - t0 < 5); // 5 ms busy
 * assert.ok(processCpuMs()! > before);
 * ```
 */
export function processCpuMs(): number | null {
  // the global `process` of Deno and Node, read from the global object: a web page has none
  const p = (globalThis as { process?: { cpuUsage?: () => { user: number; system: number } } })
    .process;
  if (typeof p?.cpuUsage !== "function") return null;
  const u = p.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * The main thread's watch on whether the pool owns its cores: every
 * {@linkcode SHARE_PERIOD_MS} ms (checked between steps) it reads the
 * process's CPU time (`process.cpuUsage()`, a few microseconds) and the
 * threads' time asleep (each thread shows its own in two slots of `asleep`,
 * its sum and the start of a sleep under way, see
 * {@linkcode SpinnerOptions.asleep}), and sets `calm[OWNED]` to 1 when
 * {@linkcode cpuShare} is at least {@linkcode OWNED_SHARE}, else 0. Another
 * process runnable beside the pool's threads takes its part of the cores
 * (one `yes` beside 2 threads on 2 cores: about 0.67) and stops the spin
 * within a period. Where the CPU time cannot be read, `calm[OWNED]` stays 0.
 * The process's CPU time counts every thread of the process: between steps
 * the main thread may run other work (another pool's steps, which would
 * make this pool's share look high), so a pause of {@linkcode IDLE_GAP_MS}
 * or more between two steps starts a new period with the cores not owned,
 * and so does a change of the threads a step runs on (the main thread
 * alone owns its core beside one `yes`, all threads do not). A period
 * spent spinning that finds the cores not owned keeps them not owned for 1
 * period, then 2, 4, … up to 64 each time it happens again (threads that
 * sleep leave room beside another process, so the share says owned; once
 * they spin they take that room and it says not owned), back to 1 after 8
 * owned periods in a row.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CoreShare, OWNED } from "./wait.ts";
 * const calm = new Int32Array(2);
 * const asleep = new Float64Array(4);
 * let cpu = 0;
 * const watch = new CoreShare(calm, asleep, 2, () => cpu, 0, 0);
 * watch.begin(0);
 * cpu = 95; // 2 threads, 50 ms, never asleep
 * watch.check(50);
 * assert.equal(calm[OWNED], 1);
 * cpu += 67; // the next 50 ms: a third process took its share
 * watch.check(100);
 * assert.equal(calm[OWNED], 0);
 * assert.ok(Math.abs(watch.share - 0.67) < 1e-9);
 * ```
 */
export class CoreShare {
  /** The last share measured (NaN before any). */
  share = NaN;
  /** Periods measured, and how many of them found the cores owned (for a report). */
  periods = 0;
  ownedPeriods = 0;
  private readonly calm: Int32Array;
  private readonly asleep: Float64Array;
  private readonly threads: number;
  private readonly cpu: () => number | null;
  private readonly origin: number;
  private lastAt: number;
  private lastCpu: number | null;
  private lastAsleep = 0;
  private lastEnd = -Infinity;
  /** Periods left not owned after a spin's period found the cores not owned, and the next such wait. */
  private holdoff = 0;
  private hold = 1;
  /** Owned periods in a row while spinning. */
  private good = 0;

  /**
   * A watch that sets `calm[OWNED]` for a pool of `threads` threads whose
   * time asleep is shown in `asleep` (two slots a thread); `cpu` gives the
   * process's CPU time in ms (null: unknown), `now` the time of the first
   * reading, `origin` what turns it into the threads' time of a sleep's
   * start (`performance.timeOrigin`).
   */
  constructor(
    calm: Int32Array,
    asleep: Float64Array,
    threads: number,
    cpu: () => number | null = processCpuMs,
    now: number = performance.now(),
    origin: number = performance.timeOrigin,
  ) {
    if (calm.length <= OWNED) {
      throw new Error(`CoreShare: the calm array needs ${OWNED + 1} slots, got ${calm.length}`);
    }
    this.calm = calm;
    this.asleep = asleep;
    this.threads = threads;
    this.cpu = cpu;
    this.origin = origin;
    this.lastAt = now;
    this.lastCpu = cpu();
    this.lastAsleep = this.asleepMs(now);
  }

  /**
   * A step starts at `now`: after a pause of {@linkcode IDLE_GAP_MS} or more
   * since the last step's end, or when `changed` (the step runs on other
   * threads than the last: the main thread alone, then all, whose share was
   * not measured), a new period starts and the cores count as not owned
   * until it is measured.
   */
  begin(now: number, changed = false): void {
    if ((!changed && now - this.lastEnd < IDLE_GAP_MS) || this.lastCpu === null) return;
    Atomics.store(this.calm, OWNED, 0);
    this.lastAt = now;
    this.lastCpu = this.cpu();
    this.lastAsleep = this.asleepMs(now);
  }

  /** A step ended at `now` (`performance.now()` time): measures the share when a period has passed since the last measure. */
  check(now: number): void {
    this.lastEnd = now;
    if (this.lastCpu === null || now - this.lastAt < SHARE_PERIOD_MS) return;
    const cpu = this.cpu();
    if (cpu === null) return;
    const asleep = this.asleepMs(now);
    const share = cpuShare(
      cpu - this.lastCpu,
      now - this.lastAt,
      this.threads,
      asleep - this.lastAsleep,
    );
    this.lastAt = now;
    this.lastCpu = cpu;
    this.lastAsleep = asleep;
    // all asleep: nothing learned, the verdict stands
    if (Number.isNaN(share)) return;
    this.share = share;
    this.periods++;
    let owned = share >= OWNED_SHARE;
    if (Atomics.load(this.calm, OWNED) === 1) {
      // measured while the threads spun: a low share may be the spin's own doing (threads that
      // slept left room beside another process, spinning ones take it), so stay off the longer
      // the more often that happens; many good periods in a row forgive it
      if (!owned) {
        this.holdoff = this.hold;
        this.hold = Math.min(MAX_HOLD_PERIODS, 2 * this.hold);
        this.good = 0;
      } else if (++this.good >= GOOD_PERIODS) this.hold = 1;
    } else if (this.holdoff > 0) {
      this.holdoff--;
      owned = false;
    }
    if (owned) this.ownedPeriods++;
    Atomics.store(this.calm, OWNED, owned ? 1 : 0);
  }

  /** The threads' time asleep so far (ms), sleeps under way included up to `now`. */
  private asleepMs(now: number): number {
    const a = this.asleep;
    const at = this.origin + now;
    let sum = 0;
    for (let i = 0; i + 1 < a.length; i += 2) {
      sum += a[i]!;
      const since = a[i + 1]!;
      if (since > 0) sum += Math.max(0, at - since);
    }
    return sum;
  }
}

/**
 * Steps a probe of the other way of running lasts (see {@linkcode SoloChoice}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PROBE_STEPS, SoloChoice } from "./wait.ts";
 * const c = new SoloChoice();
 * // the main thread waits half of each step for the others: a probe follows
 * for (let i = 0; i < 16; i++) c.record(1, 0.5, false);
 * let alone = 0;
 * while (c.next()) {
 *   alone++;
 *   c.record(2, 0, false); // slower alone
 * }
 * assert.equal(alone, PROBE_STEPS);
 * assert.equal(c.solo, false);
 * assert.equal(c.probes, 1);
 * ```
 */
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

// with the host's spare cores known (HostLoad): on the threads, spare cores at least the threads
// less this mean a quiet host (other processes use under a quarter of a core; measured on this
// project's 2-vCPU VM: 0 ± 0.1 quiet, 0.5-0.9 with one `yes` beside 2 threads), and no probe of
// the main thread alone is worth its cost
const QUIET_SLACK = 0.25;
// alone, spare cores at least the threads less this mean a free core (one `yes` beside the main
// thread alone: about 1.0 of 2 used by others, 1 spare); the threads are probed at once
const FREE_SLACK = 0.5;
// alone with no free core, the gap between probes of the threads is this many times the plain
// one (64 .. 1024 steps): beside one `yes` each probe cost its 4 steps at about 1.6× the step
// (lecture CNN batch 64: +59 ms over 1,400 steps, 1.4% of the run)
const BUSY_GAP_FACTOR = 4;

/**
 * Steps after which a probe may end early (see {@linkcode WaitPolicy.probeEarlyEnd}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { EARLY_STEPS, PROBE_STEPS } from "./wait.ts";
 * assert.ok(EARLY_STEPS < PROBE_STEPS);
 * ```
 */
export const EARLY_STEPS = 2;
/**
 * How many times the recent steps' median per sample each of a probe's
 * first {@linkcode EARLY_STEPS} steps must take for the probe to end early.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { EARLY_END, EARLY_STEPS, SoloChoice } from "./wait.ts";
 * const c = new SoloChoice(false, { earlyEnd: true });
 * // the main thread waits half of each step; alone it is faster: it stays alone
 * for (let i = 0; i < 20; i++) c.record(c.next() ? 0.8 : 1, 0.5, false);
 * assert.equal(c.solo, true);
 * while (c.next()) c.record(0.8, 0, false); // alone until the next probe
 * let threads = 0;
 * while (!c.next()) {
 *   threads++;
 *   c.record(0.8 * EARLY_END * 1.2, 0.5, false); // clearly slower on the threads
 * }
 * assert.equal(threads, EARLY_STEPS);
 * assert.equal(c.earlyEnds, 1);
 * ```
 */
export const EARLY_END = 1.25;

/**
 * What a {@linkcode SoloChoice} may know of the host: how many cores other
 * processes leave to this one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type HostLoad, SoloChoice } from "./wait.ts";
 * let spare = 1; // another process busy on one of 2 cores
 * const host: HostLoad = { spare: () => spare };
 * const c = new SoloChoice(false, { host, threads: 2 });
 * assert.equal(host.spare(0), 1);
 * assert.equal(c.next(), false);
 * ```
 */
export interface HostLoad {
  /**
   * The cores' worth of CPU time other processes left over a recent period
   * (the host's cores less theirs; this process's own time counts as
   * spare), NaN while unknown. Called between steps with the time now
   * (`performance.now()`); cheap when called often.
   */
  spare(now: number): number;
}

/**
 * How often (ms) {@linkcode CpuTimesLoad} reads the cores' times; a window
 * over 4 times this (the caller paused, e.g. another runner's turn) is
 * dropped, the last value kept.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CpuTimesLoad, HOST_PERIOD_MS } from "./wait.ts";
 * let reads = 0;
 * const host = new CpuTimesLoad(() => (reads++, false), () => 0, 2);
 * host.spare(0);
 * host.spare(HOST_PERIOD_MS / 2); // too soon: not read
 * assert.equal(reads, 1);
 * host.spare(HOST_PERIOD_MS);
 * assert.equal(reads, 2);
 * ```
 */
export const HOST_PERIOD_MS = 100;

/**
 * The host's spare cores from the time all its cores spent busy and in
 * all (Node's `os.cpus()`, which Deno reads from Linux's `/proc/stat`, 10
 * ms ticks) and this process's CPU time: over each period of
 * {@linkcode HOST_PERIOD_MS} ms or more, the cores less the busy cores'
 * worth that was not this process's. `times` writes the cores' busy time
 * and total time so far (any one unit) into its array's slots 0 and 1 and
 * returns false where it could not; `cpu` gives the process's CPU time in
 * ms. Read once a period, not per step: a few hundred bytes of garbage,
 * and `os.cpus()` took 78 µs a call on a quiet host of this project's
 * 2-vCPU VM but 0.34 ms at the median (4.4 ms at most in 50) beside one
 * `yes`: ~0.4% of the main thread's time at one read per 100 ms.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CpuTimesLoad, HOST_PERIOD_MS } from "./wait.ts";
 * // the cores' busy and total ms so far (2 cores)
 * const seen = [[1000, 2000], [1100, 2200]];
 * let at = 0;
 * const times = (out: Float64Array) => (out.set(seen[at++]!), true);
 * let ms = 0;
 * const host = new CpuTimesLoad(times, () => ms, 2);
 * assert.ok(Number.isNaN(host.spare(0)));
 * ms = 50; // this process: half a core over 100 ms
 * // 100 of 200 ms busy: 1 core, 0.5 of it this process's: 1.5 cores spare
 * assert.equal(host.spare(HOST_PERIOD_MS), 1.5);
 * ```
 */
export class CpuTimesLoad implements HostLoad {
  private readonly times: (out: Float64Array) => boolean;
  private readonly cpu: () => number | null;
  private readonly cores: number;
  private readonly now = new Float64Array(2);
  private lastAt = -Infinity;
  /** Whether the last read succeeded (a baseline for the next). */
  private based = false;
  private lastBusy = 0;
  private lastTotal = 0;
  private lastCpu = 0;
  private value = NaN;

  /** A reader of the cores' times through `times`, with `cpu` the process's CPU time (ms) and `cores` the host's. */
  constructor(
    times: (out: Float64Array) => boolean,
    cpu: () => number | null,
    cores: number,
  ) {
    this.times = times;
    this.cpu = cpu;
    this.cores = cores;
  }

  /** See {@linkcode HostLoad.spare}. */
  spare(now: number): number {
    if (now - this.lastAt < HOST_PERIOD_MS) return this.value;
    const wall = now - this.lastAt;
    this.lastAt = now;
    const cpu = this.cpu();
    if (cpu === null || !this.times(this.now)) {
      this.based = false;
      return this.value;
    }
    const busy = this.now[0]!, total = this.now[1]!;
    // a long window spans a pause of the caller: what ran meanwhile is no sign of now
    if (this.based && wall <= 4 * HOST_PERIOD_MS && total > this.lastTotal) {
      const busyCores = ((busy - this.lastBusy) / (total - this.lastTotal)) * this.cores;
      const mine = (cpu - this.lastCpu) / wall;
      this.value = Math.min(this.cores, Math.max(0, this.cores - (busyCores - mine)));
    }
    this.based = true;
    this.lastBusy = busy;
    this.lastTotal = total;
    this.lastCpu = cpu;
    return this.value;
  }
}

/** Node's `os.cpus()` times, as Deno and Node give them. */
type CpuTimes = { times: { user: number; nice: number; sys: number; idle: number; irq: number } };

/**
 * A {@linkcode CpuTimesLoad} over `os.cpus()` where the runtime has it
 * (Deno, Node: `process.getBuiltinModule("node:os")`) and may read it
 * (Deno: `--allow-sys`, asked without a prompt), else null (a web page, no
 * permission).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hostLoad } from "./wait.ts";
 * const host = hostLoad();
 * if (host !== null) {
 *   host.spare(performance.now());
 *   const t0 = performance.now();
 *   while (performance.now() - t0 < 120); // busy over a period
 *   const spare = host.spare(performance.now());
 *   assert.ok(spare >= 0 && spare <= navigator.hardwareConcurrency, `${spare}`);
 * }
 * ```
 */
export function hostLoad(): HostLoad | null {
  // read from the global object: a web page has neither (tests/web/deno_free_test.ts)
  const deno = (globalThis as { Deno?: typeof Deno }).Deno;
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } })
    .process;
  if (typeof proc?.getBuiltinModule !== "function" || processCpuMs() === null) return null;
  try {
    if (deno && deno.permissions.querySync({ name: "sys", kind: "cpus" }).state !== "granted") {
      return null;
    }
    const os = proc.getBuiltinModule("node:os") as { cpus?: () => CpuTimes[] } | undefined;
    if (typeof os?.cpus !== "function") return null;
    const cpus = () => os.cpus!();
    const times = (out: Float64Array) => {
      let busy = 0, idle = 0;
      for (const c of cpus()) {
        const t = c.times;
        busy += t.user + t.nice + t.sys + t.irq;
        idle += t.idle;
      }
      out[0] = busy;
      out[1] = busy + idle;
      return busy + idle > 0;
    };
    const cores = cpus().length;
    if (cores === 0 || !times(new Float64Array(2))) return null;
    return new CpuTimesLoad(times, processCpuMs, cores);
  } catch {
    return null;
  }
}

/** What a {@linkcode SoloChoice} goes by besides its steps' times. */
export interface SoloOptions {
  /** The host's spare cores, or null (default): the steps' times alone. */
  host?: HostLoad | null;
  /** The threads a step runs on when not alone (default 2). */
  threads?: number;
  /** End a probe early when clearly slower (see {@linkcode WaitPolicy.probeEarlyEnd}); default false. */
  earlyEnd?: boolean;
}

/** The median of values `from` to `n - 1` of `a`, 0 for none (an insertion sort in `scratch`: short arrays, no allocation). */
function medianOf(a: Float64Array, n: number, scratch: Float64Array, from = 0): number {
  n -= from;
  if (n <= 0) return 0;
  for (let i = 0; i < n; i++) scratch[i] = a[from + i]!;
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
 * held up (the main thread waits for them, or backs up their
 * micro-batches, more than a quarter of the step on average; with
 * {@linkcode WaitPolicy.slowProbes} also a recent slow step: the calm
 * counter is set), then runs {@linkcode PROBE_STEPS} steps on
 * the main thread alone and compares the median time per sample of all but
 * the first (which pays for the change) with the
 * recent steps'; the faster way is kept, and the other is probed again
 * after a gap that starts at 16 steps (8 times that when the only sign is
 * a slow step, often a passing hiccup of the host) and doubles each time a probe loses,
 * to 1024 steps on the threads and to 256 alone (a probe of the threads that
 * lost to a passing disturbance must not keep a quiet machine on one
 * thread for long). A quiet machine, where two threads are faster, sees no probe or a
 * rare one. The result of a step is the same bits either way.
 *
 * Given the host's spare cores ({@linkcode SoloOptions.host}, e.g.
 * {@linkcode hostLoad}), a pool on its threads probes the main thread
 * alone only while other processes use a quarter of a core or more, and
 * a pool alone probes the threads at once when it sees a core free, and
 * with 4 times the gap while none is. With `earlyEnd` a probe of the
 * threads ends after {@linkcode EARLY_STEPS} clearly slower steps.
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
  /** Probes ended early, clearly slower (for a report). */
  earlyEnds = 0;
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
  /** Whether the last reading alone saw a free core (a new sight probes at once). */
  private free = false;
  private readonly slowProbes: boolean;
  private readonly host: HostLoad | null;
  private readonly threads: number;
  private readonly earlyEnd: boolean;

  /**
   * A choice that starts on all threads; `slowProbes`: a slow step alone
   * (the calm counter) sets off a probe too (see
   * {@linkcode WaitPolicy.slowProbes}), default false; `opts`: the host's
   * spare cores and early ends (see {@linkcode SoloOptions}).
   */
  constructor(slowProbes = false, opts: SoloOptions = {}) {
    this.slowProbes = slowProbes;
    this.host = opts.host ?? null;
    this.threads = opts.threads ?? 2;
    this.earlyEnd = opts.earlyEnd ?? false;
    if (!(Number.isInteger(this.threads) && this.threads >= 2)) {
      throw new Error(`SoloChoice: threads must be a whole number ≥ 2, got ${this.threads}`);
    }
  }

  /** Whether the coming step runs on the main thread alone. */
  next(): boolean {
    return this.probing ? !this.solo : this.solo;
  }

  /**
   * Records the step just run as {@linkcode SoloChoice.next} said: `ms`
   * per sample, the share of it the main thread waited for other threads,
   * and whether the pool's calm counter is set (a recent slow step); `now`
   * is the time the host's load is read at (`performance.now()`).
   */
  record(ms: number, waitShare: number, calm: boolean, now: number = performance.now()): void {
    if (this.probing) {
      this.probe[this.probeN++] = ms;
      if (this.probeN < PROBE_STEPS) {
        // only a probe of the threads ends early: the first steps of the main thread alone pay
        // for the workers' spin after the last step on all threads (seen: a probe ended on
        // 0.053 ms a sample that the next probe's steps beat at 0.048)
        if (!this.earlyEnd || !this.solo || this.probeN !== EARLY_STEPS) return;
        // each step so far clearly slower: the probe has lost, no need to run it out
        const mine = medianOf(this.recent, this.recentN, this.scratch);
        for (let i = 0; i < EARLY_STEPS; i++) if (this.probe[i]! <= EARLY_END * mine) return;
        this.earlyEnds++;
        this.lost();
        return;
      }
      // its first step is left out: it pays for the change (workers waking up, or still
      // spinning beside the main thread alone: seen 8.2 ms against 2.8 for the next ones)
      const other = medianOf(this.probe, PROBE_STEPS, this.scratch, 1);
      const mine = medianOf(this.recent, this.recentN, this.scratch);
      if (other < mine * (1 - SWITCH_MARGIN)) {
        this.probing = false;
        this.sinceProbe = 0;
        this.solo = !this.solo;
        this.gap = MIN_GAP;
        this.waitShare = 0;
        this.free = false;
        this.recent.set(this.probe);
        this.recentN = PROBE_STEPS;
        this.recentAt = PROBE_STEPS;
      } else this.lost();
      return;
    }
    this.recent[this.recentAt] = ms;
    this.recentAt = (this.recentAt + 1) % this.recent.length;
    if (this.recentN < this.recent.length) this.recentN++;
    this.sinceProbe++;
    // NaN (unknown) fails every comparison below: the steps' times alone decide
    const spare = this.host === null ? NaN : this.host.spare(now);
    let due: boolean;
    if (this.solo) {
      if (spare >= this.threads - FREE_SLACK) {
        // a core came free: probe the threads at once; while it stays free, by the gap
        due = !this.free || this.sinceProbe >= this.gap;
        this.free = true;
      } else {
        this.free = false;
        // no core free: a probe of the threads would mostly pay for a busy process's share
        due = this.sinceProbe >= (spare >= 0 ? BUSY_GAP_FACTOR : 1) * this.gap;
      }
    } else {
      this.waitShare = 0.9 * this.waitShare + 0.1 * waitShare;
      if (spare >= this.threads - QUIET_SLACK) {
        // a quiet host: the main thread's waits are the host's hiccups, not a busy process
        due = false;
      } else {
        // a main thread that waits for the others is a strong sign; a slow step alone (the calm
        // counter) is often a passing hiccup of the host, so it waits 8 times longer between probes
        const strong = this.waitShare > SUSPECT_WAIT;
        const gap = strong ? this.gap : Math.min(MAX_GAP, CALM_GAP_FACTOR * this.gap);
        due = (strong || (calm && this.slowProbes)) && this.sinceProbe >= gap;
      }
    }
    if (due && this.recentN >= 4) {
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
    this.free = false;
  }

  /** A probe lost: the way stays, the next probe comes after twice the gap. */
  private lost(): void {
    this.probing = false;
    this.sinceProbe = 0;
    this.gap = Math.min(this.solo ? MAX_SOLO_GAP : MAX_GAP, 2 * this.gap);
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
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Spinner, waitChange } from "./wait.ts";
 * const slot = new Int32Array(new SharedArrayBuffer(4));
 * const s = new Spinner(1e9);
 * const t0 = performance.now();
 * assert.equal(waitChange(slot, 0, 0, s, 2), false); // nobody changed it: timed out
 * assert.ok(performance.now() - t0 >= 1.9);
 * slot[0] = 7;
 * assert.equal(waitChange(slot, 0, 0, s, 1000), true); // another value already there
 * ```
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
    spinner.sleep();
    Atomics.wait(arr, at, value, timeoutMs);
    spinner.wake();
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
