/**
 * Waiting that yields: a thread waiting for another spins only while
 * spinning pays, then sleeps (`Atomics.wait`, or `Atomics.waitAsync` on the
 * main thread). A {@linkcode Spinner} learns how long waits last: it spins
 * up to twice the recent typical wait, capped, and not at all once waits
 * are long (the other thread is computing, so a spin would only burn a core)
 * or the machine is oversubscribed (more runnable processes than cores: a
 * spinning thread would take the core a computing thread needs).
 *
 * @module
 */

/** Longest spin, in milliseconds. */
export const MAX_SPIN_MS = 0.5;
// how often the load average is read
const LOAD_CHECK_MS = 1000;

/** Adaptive spin budget of one thread. */
export class Spinner {
  /** Recent typical wait (ms), an exponential moving average. */
  typical = 0;
  /** Set while the machine looks oversubscribed: no spinning at all. */
  oversubscribed = false;
  private checkedAt = -Infinity;
  private readonly cores: number;

  /** A spinner for a machine of `cores` cores (default: `navigator.hardwareConcurrency`). */
  constructor(cores = navigator.hardwareConcurrency ?? 1) {
    this.cores = cores;
  }

  /** How long to spin before sleeping, in milliseconds. */
  budget(now: number): number {
    if (now - this.checkedAt > LOAD_CHECK_MS) {
      this.checkedAt = now;
      this.oversubscribed = loadAverage() > this.cores;
    }
    // a long typical wait: the other thread is computing, a spin would only burn a core
    if (this.oversubscribed || this.typical > MAX_SPIN_MS) return 0;
    return Math.min(MAX_SPIN_MS, 2 * this.typical);
  }

  /** Records how long a wait lasted (ms). */
  record(ms: number): void {
    this.typical = this.typical * 0.8 + Math.min(ms, 10 * MAX_SPIN_MS) * 0.2;
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
  const until = t0 + spinner.budget(t0);
  let changed = Atomics.load(arr, at) !== value;
  while (!changed && performance.now() < until) changed = Atomics.load(arr, at) !== value;
  if (!changed) {
    Atomics.wait(arr, at, value, timeoutMs);
    changed = Atomics.load(arr, at) !== value;
  }
  spinner.record(performance.now() - t0);
  return changed;
}

/**
 * A turn of the event loop each step at almost no cost: {@linkcode Yielder.arm}
 * starts a zero-delay timer when a step starts, {@linkcode Yielder.settle}
 * awaits it when the step ends, by when it is due, so signals (Ctrl-C) and
 * timers run between steps. (A timer, not a message: in Deno a
 * MessageChannel hop does not let signal handlers run; a timer armed only at
 * the end would add the timer's 1–4 ms granularity to every step.)
 */
export class Yielder {
  private due: Promise<void> | null = null;

  /** Starts the turn's timer (idempotent until settled). */
  arm(): void {
    this.due ??= new Promise<void>((resolve) => setTimeout(resolve, 0));
  }

  /** Waits for the turn (arming it first if needed). */
  async settle(): Promise<void> {
    this.arm();
    const due = this.due;
    this.due = null;
    await due;
  }
}
