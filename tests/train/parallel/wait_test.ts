import assert from "node:assert/strict";
import {
  BACKUP_AFTER,
  CALM_STEPS,
  CoreShare,
  cpuShare,
  IDLE_GAP_MS,
  MAX_SPIN_MS,
  MEDIAN_WAITS,
  OWNED,
  OWNED_SHARE,
  OWNED_SPIN_MS,
  PROBE_STEPS,
  processCpuMs,
  SHARE_PERIOD_MS,
  SLOW_STEP,
  SoloChoice,
  Spinner,
  StepClock,
  waitChange,
  waitPolicyOf,
  Yielder,
} from "../../../train/parallel/wait.ts";

Deno.test("a spinner spins about twice the typical short wait, and not at all when waits are long", () => {
  const s = new Spinner(1e9); // so many cores that the load never counts
  assert.equal(s.budget(0), 0, "nothing learned yet");
  for (let i = 0; i < 50; i++) s.record(0.1);
  assert.ok(Math.abs(s.budget(0) - 0.2) < 1e-3, `budget ${s.budget(0)}`);
  for (let i = 0; i < 50; i++) s.record(0.4);
  assert.equal(s.budget(0), MAX_SPIN_MS);
  for (let i = 0; i < 50; i++) s.record(20);
  assert.equal(s.budget(0), 0);
});

Deno.test("a spinner does not spin on an oversubscribed machine", () => {
  const s = new Spinner(0); // any load is more than 0 cores, where the load can be read
  for (let i = 0; i < 50; i++) s.record(0.1);
  const load = Deno.loadavg()[0]!;
  assert.equal(s.budget(performance.now()) === 0, load > 0);
  assert.equal(s.oversubscribed, load > 0);
});

Deno.test("waitChange returns at once for a changed value and times out for an unchanged one", () => {
  const a = new Int32Array(new SharedArrayBuffer(4));
  const s = new Spinner(1e9);
  assert.equal(waitChange(a, 0, 1, s, 1000), true);
  const t0 = performance.now();
  assert.equal(waitChange(a, 0, 0, s, 30), false);
  assert.ok(performance.now() - t0 >= 25);
});

for (const timer of [false, true]) {
  const how = timer ? "a zero-delay timer" : "setImmediate";
  Deno.test(`a yielder (${how}) lets a due timer run before settle resolves`, async () => {
    const y = new Yielder(timer);
    // a timer set before the step starts (one set during a step runs at the next step's turn)
    let ran = false;
    setTimeout(() => (ran = true), 0);
    y.arm();
    const t0 = performance.now();
    while (performance.now() - t0 < 5); // a step's work
    await y.settle();
    assert.ok(ran);
  });

  // a microtask-only "turn" would never let it run; the turn it runs at varies with the
  // signal's delivery (usually the first, sometimes later on a busy machine)
  Deno.test(`a yielder (${how}) lets a signal listener run between steps`, async () => {
    const y = new Yielder(timer);
    let seen = 0;
    const listener = () => seen++;
    Deno.addSignalListener("SIGUSR2", listener);
    try {
      // the listener's op is polled from the event loop: settle once so it is waiting
      await y.settle();
      for (let i = 1; i <= 3; i++) {
        Deno.kill(Deno.pid, "SIGUSR2");
        // steps of 1 ms of work, each followed by the turn
        for (let step = 0; step < 200 && seen < i; step++) {
          y.arm();
          const t0 = performance.now();
          while (performance.now() - t0 < 1);
          await y.settle();
        }
        assert.equal(seen, i, `signal ${i} seen within 200 steps`);
      }
    } finally {
      Deno.removeSignalListener("SIGUSR2", listener);
    }
  });
}

Deno.test("spins that keep running out before the wait ends stop spinning for a while, then it tries again", () => {
  const s = new Spinner(1e9);
  for (let i = 0; i < 50; i++) s.record(0.1, 0.2);
  assert.ok(s.budget(0) > 0, "short waits that a spin covers keep it spinning");
  // waits longer than the spin (a thread descheduled mid-step): the spin timed out every time
  let stopped = -1;
  for (let i = 0; i < 20 && stopped < 0; i++) {
    s.record(0.3, 0.2);
    if (s.budget(0) === 0) stopped = i;
  }
  assert.ok(stopped >= 0 && stopped < 10, `stopped after ${stopped} timed-out spins`);
  let zeros = 1;
  while (s.budget(0) === 0 && zeros < 1000) zeros++;
  assert.ok(zeros > 30 && zeros < 1000, `${zeros} waits without a spin`);
});

Deno.test("a median spinner keeps spinning through a few long waits (steps sat out) and never backs off", () => {
  const ema = new Spinner(1e9);
  const med = new Spinner(1e9, null, { median: true });
  for (const s of [ema, med]) for (let i = 0; i < 50; i++) s.record(0.1, 0.2);
  // a probe of the main thread alone (this worker sits out its 4 steps of 8 ms in one wait),
  // then the caller's own work between steps twice: three spins ran out
  for (const s of [ema, med]) for (const ms of [PROBE_STEPS * 8, 5, 5]) s.record(ms, 0.2);
  assert.equal(ema.budget(0), 0, "a moving average stops spinning");
  assert.ok(Math.abs(med.budget(0) - 0.2) < 1e-9, `median budget ${med.budget(0)}`);
  assert.equal(med.backoff, 0);
  // waits that stay long: the median follows them, and a long typical wait is not spun for
  for (let i = 0; i < MEDIAN_WAITS; i++) med.record(8, 0.2);
  assert.equal(med.budget(0), 0);
});

Deno.test("a spinner given the pool's calm counter does not spin while it is set", () => {
  const calm = new Int32Array(new SharedArrayBuffer(4));
  const s = new Spinner(1e9, calm);
  for (let i = 0; i < 50; i++) s.record(0.1);
  assert.ok(s.budget(0) > 0);
  calm[0] = 3;
  assert.equal(s.budget(0), 0);
  calm[0] = 0;
  assert.ok(s.budget(0) > 0);
});

Deno.test("a step slower than the recent median makes every thread wait without spinning for some steps", () => {
  const calm = new Int32Array(new SharedArrayBuffer(4));
  const clock = new StepClock(calm);
  const times = [10, 11, 9, 10.5, 10, 9.5, 10.2, 10.1];
  for (const t of times) clock.record(t);
  assert.equal(calm[0], 0, "steady steps");
  assert.equal(clock.median(), 10.1);
  clock.record(SLOW_STEP * 10.1 * 0.99);
  assert.equal(calm[0], 0, "a little slower is not slow");
  clock.record(SLOW_STEP * 10.1 * 1.5);
  assert.equal(calm[0], CALM_STEPS);
  clock.record(10);
  clock.record(10);
  assert.equal(calm[0], CALM_STEPS - 2, "counted down by each step that is not slow");
  // a new batch size: its first steps are compared with nothing
  clock.reset();
  calm[0] = 0;
  clock.record(100);
  clock.record(1000);
  assert.equal(calm[0], 0);
});

/** Runs `steps` steps through `c`: `ms(solo)` per sample, the main thread's wait share `wait(solo)`. */
function drive(
  c: SoloChoice,
  steps: number,
  ms: (solo: boolean) => number,
  wait: (solo: boolean) => number,
  calm = false,
): number {
  let alone = 0;
  for (let i = 0; i < steps; i++) {
    const solo = c.next();
    if (solo) alone++;
    c.record(ms(solo), solo ? 0 : wait(solo), calm);
  }
  return alone;
}

Deno.test("a quiet pool (threads faster, the main thread seldom waiting) never probes the main thread alone", () => {
  const c = new SoloChoice();
  assert.equal(drive(c, 5000, (solo) => (solo ? 1.6 : 1), () => 0.1), 0);
  assert.equal(c.probes, 0);
});

Deno.test("probes that lose come ever further apart; the threads stay chosen", () => {
  const c = new SoloChoice();
  // the main thread waits a lot, but alone it would be slower still
  const alone = drive(c, 2000, (solo) => (solo ? 1.6 : 1), () => 0.5);
  assert.equal(c.solo, false);
  // gaps 16, 32, ..., 1024 after each losing probe: 7 probes in 2000 steps, not 2000 / 16
  assert.ok(c.probes >= 5 && c.probes <= 8, `${c.probes} probes`);
  assert.equal(alone, c.probes * PROBE_STEPS);
});

Deno.test("a held-up pool goes to the main thread alone, and back to every thread once that is faster again", () => {
  const c = new SoloChoice();
  let busy = true;
  // busy: alone 0.8 ms a sample against 1 on the threads; later the threads get 0.6
  const ms = (solo: boolean) => (solo ? 0.8 : busy ? 1 : 0.6);
  drive(c, 40, ms, () => 0.5);
  assert.equal(c.solo, true, "alone once the first probe won");
  const before = c.probes;
  const alone = drive(c, 400, ms, () => 0.5);
  assert.equal(c.solo, true);
  assert.ok(c.probes > before, "the threads are probed again while alone");
  assert.ok(alone > 300, `${alone} of 400 steps alone`);
  // probes of the threads at most 256 steps apart while alone (16, 32, 64, 128, 256, 256, ...)
  assert.ok(c.probes - before >= 3, `${c.probes - before} probes of the threads in 400 steps`);
  busy = false;
  drive(c, 600, ms, () => 0.1);
  assert.equal(c.solo, false, "back on the threads");
  c.reset();
  assert.equal(c.next(), false);
});

Deno.test("with slowProbes a slow step (the calm counter) is enough suspicion to probe, after a longer gap", () => {
  const c = new SoloChoice(true);
  // 8 × 16 steps: a slow step alone is often a passing hiccup of the host
  drive(c, 100, (solo) => (solo ? 0.8 : 1), () => 0, true);
  assert.equal(c.probes, 0);
  drive(c, 40, (solo) => (solo ? 0.8 : 1), () => 0, true);
  assert.equal(c.solo, true);
});

Deno.test("by default a slow step alone never probes, the main thread's waits still do", () => {
  const c = new SoloChoice();
  assert.equal(drive(c, 2000, (solo) => (solo ? 0.8 : 1), () => 0, true), 0);
  assert.equal(c.probes, 0);
  drive(c, 40, (solo) => (solo ? 0.8 : 1), () => 0.5, true);
  assert.equal(c.solo, true, "a main thread that waits half of each step is still probed");
});

Deno.test("a worker's shortest spin between steps (a median spinner's minSpinMs) holds through long waits", () => {
  const s = new Spinner(1e9, null, { median: true, minSpinMs: 0.3 });
  for (let i = 0; i < 8; i++) s.record(0.05);
  assert.equal(s.budget(0), 0.3, "the floor over twice the median");
  for (let i = 0; i < 8; i++) s.record(0.2);
  assert.ok(Math.abs(s.budget(0) - 0.4) < 1e-9, "twice the median when longer");
  for (let i = 0; i < 8; i++) s.record(5);
  assert.equal(s.budget(0), 0.3);
});

Deno.test("with slowProbes hiccups on a quiet host (slow steps, threads faster) cost few probes", () => {
  const c = new SoloChoice(true);
  const alone = drive(c, 720, (solo) => (solo ? 1.6 : 1), () => 0.1, true);
  assert.equal(c.solo, false);
  // gaps 128, 256, 512: 2 probes in 720 steps (with the plain gaps 16, 32, ... it was 5)
  assert.ok(c.probes <= 2, `${c.probes} probes`);
  assert.equal(alone, c.probes * PROBE_STEPS);
});

Deno.test("a shortest spin holds through the calm counter, long waits and backoff, but not on an oversubscribed machine", () => {
  const calm = new Int32Array(new SharedArrayBuffer(4));
  const s = new Spinner(1e9, calm, { minSpinMs: 0.15 });
  assert.equal(s.budget(0), 0.15, "nothing learned yet");
  for (let i = 0; i < 50; i++) s.record(0.2);
  assert.ok(Math.abs(s.budget(0) - 0.4) < 1e-3, "the learned spin when longer");
  calm[0] = 3;
  assert.equal(s.budget(0), 0.15, "calm");
  calm[0] = 0;
  for (let i = 0; i < 50; i++) s.record(20);
  assert.equal(s.budget(0), 0.15, "long waits");
  s.backoff = 5;
  assert.equal(s.budget(0), 0.15, "backing off");
  const busy = new Spinner(0, null, { minSpinMs: 0.15 });
  assert.equal(busy.budget(performance.now()), Deno.loadavg()[0]! > 0 ? 0 : 0.15);
});

Deno.test("a clock with a higher slow-step factor lets a step twice the median pass", () => {
  const calm = new Int32Array(new SharedArrayBuffer(4));
  const clock = new StepClock(calm, 3);
  for (let i = 0; i < 8; i++) clock.record(10);
  clock.record(25);
  assert.equal(calm[0], 0, "2.5x the median is not slow at 3");
  clock.record(31);
  assert.equal(calm[0], CALM_STEPS);
});

Deno.test("waitPolicyOf fills the defaults and refuses bad values, naming them", () => {
  assert.deepEqual(waitPolicyOf({ pause: true }), {
    minSpinMs: 0,
    slowStep: SLOW_STEP,
    pause: true,
    ownCores: false,
    speculate: true,
    backupAfter: BACKUP_AFTER,
    betweenSpinMs: 0,
    slowProbes: false,
    hostLoad: true,
    probeEarlyEnd: true,
  });
  assert.deepEqual(waitPolicyOf({ ownCores: true }), {
    minSpinMs: OWNED_SPIN_MS,
    slowStep: SLOW_STEP,
    pause: false,
    ownCores: true,
    speculate: true,
    backupAfter: BACKUP_AFTER,
    betweenSpinMs: 0,
    slowProbes: false,
    hostLoad: true,
    probeEarlyEnd: true,
  });
  assert.equal(waitPolicyOf({ ownCores: true, minSpinMs: 0.1 }).minSpinMs, 0.1);
  assert.throws(() => waitPolicyOf({ minSpinMs: -1 }), /minSpinMs .* got -1/);
  assert.throws(() => waitPolicyOf({ minSpinMs: MAX_SPIN_MS * 2 }), /minSpinMs .* got 1/);
  assert.throws(() => waitPolicyOf({ slowStep: 1 }), /slowStep .* got 1/);
  assert.throws(() => waitPolicyOf({ slowStep: NaN }), /slowStep .* got NaN/);
  assert.equal(waitPolicyOf({ speculate: false }).speculate, false);
  assert.throws(() => waitPolicyOf({ backupAfter: 0 }), /backupAfter .* got 0/);
  assert.equal(waitPolicyOf({ betweenSpinMs: 0.3 }).betweenSpinMs, 0.3);
  assert.throws(() => waitPolicyOf({ betweenSpinMs: -0.1 }), /betweenSpinMs .* got -0.1/);
  assert.throws(() => waitPolicyOf({ betweenSpinMs: 1 }), /betweenSpinMs .* got 1/);
  assert.equal(waitPolicyOf({ slowProbes: true }).slowProbes, true);
  assert.equal(waitPolicyOf({ hostLoad: false }).hostLoad, false);
  assert.equal(waitPolicyOf({ probeEarlyEnd: false }).probeEarlyEnd, false);
});

Deno.test("waitChange with Atomics.pause in its spin sees a change made during the spin", async () => {
  const a = new Int32Array(new SharedArrayBuffer(4));
  const s = new Spinner(1e9, null, { minSpinMs: MAX_SPIN_MS, pause: true });
  assert.equal(waitChange(a, 0, 1, s, 1000), true);
  const t0 = performance.now();
  assert.equal(waitChange(a, 0, 0, s, 30), false);
  assert.ok(performance.now() - t0 >= 25);
  const w = new Worker(
    `data:application/javascript,onmessage=(e)=>{const a=new Int32Array(e.data);setTimeout(()=>{Atomics.store(a,0,7);Atomics.notify(a,0)},5)}`,
    { type: "module" },
  );
  try {
    w.postMessage(a.buffer);
    assert.equal(waitChange(a, 0, 0, s, 5000), true);
    assert.equal(a[0], 7);
  } finally {
    w.terminate();
  }
  await Promise.resolve();
});

Deno.test("cpuShare: CPU time over the threads' runnable time, NaN when they all slept", () => {
  // a busy loop alone on its core, 2 threads: 100 ms of CPU in 50 ms
  assert.equal(cpuShare(100, 50, 2, 0), 1);
  // 3 runnable on 2 cores (one `yes` beside 2 threads): each gets 2/3
  assert.ok(Math.abs(cpuShare(200 / 3, 50, 2, 0) - 2 / 3) < 1e-12);
  // time asleep is not runnable: 40 ms of CPU for 2 × 50 − 60 = 40 ms runnable
  assert.equal(cpuShare(40, 50, 2, 60), 1);
  assert.ok(cpuShare(40, 50, 2, 0) < OWNED_SHARE, "the same CPU time, never asleep: not owned");
  assert.ok(Number.isNaN(cpuShare(0, 50, 2, 99)));
  assert.ok(Number.isNaN(cpuShare(0, 0, 2, 0)));
});

Deno.test("CoreShare sets the owned slot by the share each period, keeps it when all slept, and clears it after an idle gap", () => {
  const calm = new Int32Array(new SharedArrayBuffer(8));
  // 3 slots (the main thread's, an unused one, a worker's): [sum, start of a sleep under way]
  const asleep = new Float64Array(6);
  let cpu = 1000;
  const w = new CoreShare(calm, asleep, 2, () => cpu, 0, 0);
  w.begin(0);
  // steps end before a period has passed: nothing measured
  cpu += 40;
  w.check(SHARE_PERIOD_MS / 2);
  assert.equal(calm[OWNED], 0);
  assert.equal(w.periods, 0);
  // 50 ms, one thread asleep 10 ms of it (another slot, the other worker, never): 90 ms runnable, 88 on a core
  cpu += 48;
  asleep[4] = 10;
  w.check(SHARE_PERIOD_MS);
  assert.equal(calm[OWNED], 1);
  assert.ok(Math.abs(w.share - 88 / 90) < 1e-12);
  // a period at 0.85: not ours
  cpu += 85;
  w.check(2 * SHARE_PERIOD_MS);
  assert.equal(calm[OWNED], 0);
  assert.equal(w.ownedPeriods, 1);
  // measured while owned (spinning): held one period, then back to owned, then a period
  // where every thread slept: the verdict stands
  cpu += 100;
  w.check(3 * SHARE_PERIOD_MS);
  assert.equal(calm[OWNED], 0);
  cpu += 100;
  w.check(4 * SHARE_PERIOD_MS);
  assert.equal(calm[OWNED], 1);
  asleep[0] += SHARE_PERIOD_MS;
  asleep[4] += SHARE_PERIOD_MS;
  w.check(5 * SHARE_PERIOD_MS);
  assert.equal(calm[OWNED], 1);
  assert.equal(w.periods, 4);
  // the next step starts soon after: no change
  w.begin(5 * SHARE_PERIOD_MS + IDLE_GAP_MS / 2);
  assert.equal(calm[OWNED], 1);
  // unless it runs on other threads (the main thread alone, or all after it)
  w.begin(5 * SHARE_PERIOD_MS + IDLE_GAP_MS / 2, true);
  assert.equal(calm[OWNED], 0);
  calm[OWNED] = 1;
  // a pause while other work of the process ran (2 cores' worth): a new period, not owned
  const t = 5 * SHARE_PERIOD_MS + 200;
  cpu += 400;
  w.begin(t);
  assert.equal(calm[OWNED], 0);
  // that other work does not count in the next period: 2 threads at 0.67
  cpu += 67;
  w.check(t + SHARE_PERIOD_MS);
  assert.equal(calm[OWNED], 0);
  assert.ok(Math.abs(w.share - 0.67) < 1e-12);
  // the worker sleeps through the next period and beyond (its sum not yet grown): its sleep
  // under way counts, so the main thread's 50 ms alone on its core are a share of 1
  asleep[5] = t + SHARE_PERIOD_MS;
  cpu += SHARE_PERIOD_MS + 1;
  w.check(t + 2 * SHARE_PERIOD_MS + 1);
  assert.equal(calm[OWNED], 1);
  assert.ok(Math.abs(w.share - 1) < 1e-12, `share ${w.share}`);
});

Deno.test("CoreShare without the process's CPU time never says owned", () => {
  const calm = new Int32Array(new SharedArrayBuffer(8));
  const w = new CoreShare(calm, new Float64Array(4), 2, () => null, 0);
  w.begin(0);
  w.check(10 * SHARE_PERIOD_MS);
  assert.equal(calm[OWNED], 0);
  assert.equal(w.periods, 0);
  assert.throws(() => new CoreShare(new Int32Array(1), new Float64Array(4), 2), /calm .* got 1/);
});

Deno.test("processCpuMs reads the process's CPU time, which grows with a busy loop", () => {
  const a = processCpuMs();
  assert.ok(a !== null && a > 0);
  const t0 = performance.now();
  while (performance.now() - t0 < 30);
  assert.ok(processCpuMs()! - a >= 10);
});

Deno.test("with ownCores a spinner spins at least its floor while the cores are owned, whatever calm, backoff and load say, and without a floor otherwise", () => {
  const calm = new Int32Array(new SharedArrayBuffer(8));
  // no core at all: the load average, where readable, says oversubscribed
  const s = new Spinner(0, calm, { ownCores: true });
  for (let i = 0; i < 50; i++) s.record(20);
  calm[0] = CALM_STEPS;
  s.backoff = 5;
  calm[OWNED] = 1;
  assert.equal(s.budget(performance.now()), OWNED_SPIN_MS, "owned: the floor");
  for (let i = 0; i < 50; i++) s.record(0.2);
  assert.ok(
    Math.abs(s.budget(performance.now()) - 0.4) < 1e-3,
    "owned: the learned spin when longer",
  );
  assert.equal(s.backoff, 5, "owned: the backoff is left for later");
  calm[OWNED] = 0;
  assert.equal(s.budget(performance.now()), 0, "not owned: the calm counter (and backoff) stop it");
  const free = new Spinner(1e9, calm, { ownCores: true, minSpinMs: 0.1 });
  for (let i = 0; i < 50; i++) free.record(20);
  assert.equal(free.budget(0), 0, "not owned: no floor");
  calm[OWNED] = 1;
  assert.equal(free.budget(0), 0.1, "owned: the floor given");
  // without ownCores the owned slot is not read
  const plain = new Spinner(1e9, calm);
  for (let i = 0; i < 50; i++) plain.record(20);
  assert.equal(plain.budget(0), 0);
});

Deno.test("waitChange adds the time it slept (not the spin) to its thread's slot, and shows a sleep under way", () => {
  const a = new Int32Array(new SharedArrayBuffer(4));
  const slots = new Float64Array(6);
  const s = new Spinner(1e9, null, { minSpinMs: 0.2, asleep: { at: slots, slot: 2 } });
  waitChange(a, 0, 1, s, 50); // changed already: no sleep
  assert.equal(slots[4], 0);
  const t0 = performance.now();
  waitChange(a, 0, 0, s, 20);
  const took = performance.now() - t0;
  assert.ok(slots[4]! >= 15 && slots[4]! <= took - 0.15, `slept ${slots[4]} of ${took} ms`);
  assert.deepEqual([slots[0], slots[1], slots[2], slots[3], slots[5]], [0, 0, 0, 0, 0]);
  s.sleep();
  const since = slots[5]!;
  assert.ok(Math.abs(since - (performance.timeOrigin + performance.now())) < 5, `since ${since}`);
  s.wake();
  assert.equal(slots[5], 0);
  assert.ok(slots[4]! >= 15);
});

Deno.test("CoreShare: a period spent spinning that finds the cores not owned holds them not owned for 1, 2, 4, ... periods", () => {
  const calm = new Int32Array(new SharedArrayBuffer(8));
  let cpu = 0;
  let t = 0;
  const w = new CoreShare(calm, new Float64Array(4), 2, () => cpu, 0, 0);
  w.begin(0);
  const period = (share: number) => {
    cpu += 2 * SHARE_PERIOD_MS * share;
    t += SHARE_PERIOD_MS;
    w.check(t);
    return calm[OWNED];
  };
  // beside another process: owned while the threads sleep, not once they spin
  const seen: number[] = [];
  for (let i = 0; i < 12; i++) seen.push(period(calm[OWNED] === 1 ? 0.67 : 0.95));
  assert.deepEqual(seen, [1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0]);
  // a quiet machine: owned from the first period after the hold, and 8 owned periods forgive
  for (let i = 0; i < 4; i++) period(0.95);
  assert.equal(calm[OWNED], 1);
  for (let i = 0; i < 8; i++) period(0.95);
  assert.deepEqual([period(0.5), period(0.95), period(0.95)], [0, 0, 1]);
});
