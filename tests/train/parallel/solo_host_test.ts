// SoloChoice with the host's spare cores (a fake HostLoad) and early ends of
// probes, and CpuTimesLoad's spare cores from the cores' times (fake ones).
import assert from "node:assert/strict";
import {
  CpuTimesLoad,
  EARLY_END,
  EARLY_STEPS,
  HOST_PERIOD_MS,
  type HostLoad,
  hostLoad,
  PROBE_STEPS,
  SoloChoice,
} from "../../../train/parallel/wait.ts";

/** A host whose spare cores the test sets; counts its readings. */
function fakeHost(spare: number): HostLoad & { value: number; reads: number } {
  return {
    value: spare,
    reads: 0,
    spare() {
      this.reads++;
      return this.value;
    },
  };
}

/** Runs `steps` steps of `c`; `ms(solo)` per sample, the main thread waiting `wait` of each step on the threads. Steps alone. */
function drive(
  c: SoloChoice,
  steps: number,
  ms: (solo: boolean) => number,
  wait: number,
): number {
  let alone = 0;
  for (let i = 0; i < steps; i++) {
    const solo = c.next();
    if (solo) alone++;
    c.record(ms(solo), solo ? 0 : wait, false);
  }
  return alone;
}

// beside a busy process: alone 0.8 ms a sample, the threads 1 (the main thread waits half a step)
const busyMs = (solo: boolean) => (solo ? 0.8 : 1);
// a quiet host: the threads 0.6 ms a sample, alone 1
const quietMs = (solo: boolean) => (solo ? 1 : 0.6);

Deno.test("on a quiet host (a core spare for each thread) the main thread's waits set off no probe", () => {
  const host = fakeHost(2);
  const c = new SoloChoice(false, { host, threads: 2 });
  // hiccups: the main thread waits half of each step, and alone happens to look faster
  assert.equal(drive(c, 2000, busyMs, 0.5), 0);
  assert.equal(c.probes, 0);
  assert.ok(host.reads >= 2000, "the host is read each step (it keeps its own period)");
  // without the host the same steps go alone
  const blind = new SoloChoice();
  drive(blind, 100, busyMs, 0.5);
  assert.equal(blind.solo, true);
});

Deno.test("beside a busy process (no core spare) the pool still goes alone, and probes the threads 4 times less often", () => {
  const host = fakeHost(1.05);
  const c = new SoloChoice(false, { host, threads: 2 });
  drive(c, 40, busyMs, 0.5);
  assert.equal(c.solo, true, "alone once the first probe won");
  const before = c.probes;
  const alone = drive(c, 5000, busyMs, 0.5);
  assert.equal(c.solo, true);
  // gaps 64, 128, 256, 512, 1024, 1024, ...: 5-6 probes in 5000 steps (16, 32, ..., 256, 256: 21)
  const withHost = c.probes - before;
  assert.ok(withHost >= 4 && withHost <= 7, `${withHost} probes of the threads`);
  assert.equal(alone, 5000 - withHost * PROBE_STEPS);
  const blind = new SoloChoice();
  drive(blind, 40, busyMs, 0.5);
  const b0 = blind.probes;
  drive(blind, 5000, busyMs, 0.5);
  assert.ok(blind.probes - b0 >= 3 * withHost, `${blind.probes - b0} against ${withHost}`);
});

Deno.test("alone, a core seen free sets off a probe of the threads at once, and the pool goes back to them", () => {
  const host = fakeHost(1);
  const c = new SoloChoice(false, { host, threads: 2 });
  let quiet = false;
  const ms = (solo: boolean) => (quiet ? quietMs(solo) : busyMs(solo));
  drive(c, 300, ms, 0.5);
  assert.equal(c.solo, true);
  const before = c.probes;
  // the busy process ends: the next reading shows a spare core
  quiet = true;
  host.value = 1.9;
  const steps = (() => {
    for (let i = 1; i <= 100; i++) {
      const solo = c.next();
      c.record(ms(solo), solo ? 0 : 0.05, false);
      if (!c.solo) return i;
    }
    return Infinity;
  })();
  assert.equal(c.probes, before + 1);
  // the probe starts right after the first step that read the free core, and wins
  assert.equal(steps, 1 + PROBE_STEPS, `back on the threads after ${steps} steps`);
  // and stays there on a quiet host
  assert.equal(drive(c, 1000, ms, 0.5), 0);
});

Deno.test("a free core that stays free while the threads keep losing is probed by the doubling gap, not every step", () => {
  // a reading that says free though the threads lose (e.g. another process of low priority)
  const c = new SoloChoice(false, { host: fakeHost(2), threads: 2 });
  const solo = new SoloChoice(false, { host: fakeHost(1), threads: 2 });
  drive(solo, 40, busyMs, 0.5);
  assert.equal(solo.solo, true);
  // the same on a host that reads free from the start: threads never probed against solo
  drive(c, 40, busyMs, 0.5);
  assert.equal(c.solo, false, "on the threads, a quiet reading never probes alone");
  const host = fakeHost(1);
  const d = new SoloChoice(false, { host, threads: 2 });
  drive(d, 40, busyMs, 0.5);
  assert.equal(d.solo, true);
  host.value = 2;
  const before = d.probes;
  drive(d, 1000, busyMs, 0.5);
  assert.equal(d.solo, true);
  // at once, then by gaps 32, 64, 128, 256, 256, ...: under 10 in 1000 steps
  const n = d.probes - before;
  assert.ok(n >= 4 && n <= 9, `${n} probes`);
});

Deno.test("a host reading of NaN (unknown) leaves the choice to the steps' times, as without a host", () => {
  const a = new SoloChoice(false, { host: fakeHost(NaN), threads: 2 });
  const b = new SoloChoice();
  const runs = [a, b].map((c) => {
    const alone = drive(c, 1500, busyMs, 0.5);
    return [alone, c.probes, c.solo];
  });
  assert.deepEqual(runs[0], runs[1]);
});

Deno.test("with earlyEnd a clearly slower probe of the threads ends after its first steps, a close one runs out", () => {
  const c = new SoloChoice(false, { earlyEnd: true });
  drive(c, 40, busyMs, 0.5);
  assert.equal(c.solo, true);
  const before = c.probes;
  // alone 0.8 ms a sample, the threads 1.6: every probe of the threads ends after EARLY_STEPS
  const alone = drive(c, 2000, (solo) => (solo ? 0.8 : 1.6), 0.5);
  assert.equal(c.solo, true);
  const n = c.probes - before;
  assert.ok(n >= 5, `${n} probes`);
  assert.equal(c.earlyEnds, n);
  assert.equal(alone, 2000 - n * EARLY_STEPS);
  // within EARLY_END of the steps alone: the probe runs its PROBE_STEPS
  const d = new SoloChoice(false, { earlyEnd: true });
  drive(d, 40, busyMs, 0.5);
  const d0 = d.probes;
  const close = drive(d, 2000, (solo) => (solo ? 0.8 : 0.8 * EARLY_END * 0.95), 0.5);
  assert.equal(d.earlyEnds, 0);
  assert.equal(close, 2000 - (d.probes - d0) * PROBE_STEPS);
  // one fast step among the first is enough to run it out
  const e = new SoloChoice(false, { earlyEnd: true });
  drive(e, 40, busyMs, 0.5);
  while (e.next()) e.record(0.8, 0, false);
  let k = 0;
  const ran = drive(e, PROBE_STEPS, (solo) => (solo ? 0.8 : k++ === 0 ? 0.7 : 2), 0.5);
  assert.equal(ran, 0, "the whole probe on the threads");
  assert.equal(e.earlyEnds, 0);
});

Deno.test("a probe of the main thread alone always runs out (its first steps pay for the workers' spin)", () => {
  // on the threads, waiting: a probe alone that is clearly slower (1.6 against 1)
  const c = new SoloChoice(false, { earlyEnd: true });
  const alone = drive(c, 2000, (solo) => (solo ? 1.6 : 1), 0.5);
  assert.equal(c.solo, false);
  assert.ok(c.probes >= 5, `${c.probes} probes`);
  assert.equal(c.earlyEnds, 0);
  assert.equal(alone, c.probes * PROBE_STEPS);
  // without earlyEnd (the class's default) a probe of the threads runs out too
  const f = new SoloChoice();
  drive(f, 40, busyMs, 0.5);
  const f0 = f.probes;
  const all = drive(f, 2000, (solo) => (solo ? 0.8 : 1.6), 0.5);
  assert.equal(f.earlyEnds, 0);
  assert.equal(all, 2000 - (f.probes - f0) * PROBE_STEPS);
});

Deno.test("an early end of a probe of the threads while alone keeps the pool alone", () => {
  const c = new SoloChoice(false, { earlyEnd: true, host: fakeHost(1), threads: 2 });
  drive(c, 40, busyMs, 0.5);
  assert.equal(c.solo, true);
  // the threads beside the busy process: twice as slow
  drive(c, 1000, (solo) => (solo ? 0.8 : 2), 0.5);
  assert.equal(c.solo, true);
  assert.ok(c.earlyEnds >= 2, `${c.earlyEnds} early ends`);
});

Deno.test("SoloChoice refuses fewer than 2 threads, naming the value", () => {
  assert.throws(() => new SoloChoice(false, { threads: 1 }), /threads .* got 1/);
  assert.throws(() => new SoloChoice(false, { threads: 2.5 }), /threads .* got 2.5/);
});

/** Fake cores' times: `seen[i]` (busy, total) at the i-th read, the last repeated; false for null. */
function fakeTimes(seen: ([number, number] | null)[]) {
  let at = 0;
  return (out: Float64Array) => {
    const t = seen[Math.min(at++, seen.length - 1)];
    if (!t) return false;
    out.set(t);
    return true;
  };
}

Deno.test("CpuTimesLoad: spare cores from the cores' busy time less this process's CPU time", () => {
  // 2 cores, 100 ms a period: 200 ms of core time
  const times = fakeTimes([[1000, 2000], [1100, 2200], [1300, 2400]]);
  let ms = 0;
  const host = new CpuTimesLoad(times, () => ms, 2);
  assert.ok(Number.isNaN(host.spare(0)), "nothing measured yet");
  ms = 100; // 1 core busy, all of it this process's
  assert.equal(host.spare(100), 2);
  assert.equal(host.spare(150), 2, "within a period: the last value, no read");
  ms = 200; // 2 cores busy, this process 1: another process on the other core
  assert.equal(host.spare(200), 1);
});

Deno.test("CpuTimesLoad drops a window that spans a pause, and keeps its value when a read fails", () => {
  const times = fakeTimes([[0, 0], [100, 200], [2100, 2200], [2200, 2400], null]);
  let ms = 0;
  const host = new CpuTimesLoad(times, () => ms, 2);
  host.spare(0);
  ms = 100;
  assert.equal(host.spare(100), 2);
  // 1 s later (a pause): everything busy, by others; the window is dropped
  assert.equal(host.spare(1100), 2);
  ms = 200;
  assert.equal(host.spare(1200), 2);
  assert.equal(host.spare(1300), 2, "a failed read keeps the value");
  const none = new CpuTimesLoad(fakeTimes([null]), () => 0, 2);
  none.spare(0);
  assert.ok(Number.isNaN(none.spare(HOST_PERIOD_MS)));
  const noCpu = new CpuTimesLoad(fakeTimes([[1, 2]]), () => null, 2);
  noCpu.spare(0);
  assert.ok(Number.isNaN(noCpu.spare(HOST_PERIOD_MS)));
});

Deno.test("hostLoad reads this host's cores' times: a busy loop here leaves the spare cores within 0..cores", () => {
  const host = hostLoad();
  assert.ok(host !== null, "readable with --allow-sys");
  host.spare(performance.now());
  const t0 = performance.now();
  while (performance.now() - t0 < 2 * HOST_PERIOD_MS);
  const spare = host.spare(performance.now());
  const cores = navigator.hardwareConcurrency;
  // this busy loop is this process's own: it counts as spare
  assert.ok(spare >= 0.5 && spare <= cores, `${spare} of ${cores}`);
});

Deno.test("a probe's first step (it pays for the change of threads) is left out of its verdict", () => {
  const c = new SoloChoice();
  // on the threads, 1 ms a sample, the main thread waiting half of each step
  for (let i = 0; i < 16; i++) c.record(1, 0.5, false);
  // the probe alone: its first step slow (the workers still spinning), one more hiccup
  const probe = [8, 0.8, 8, 0.8];
  for (const ms of probe) {
    assert.equal(c.next(), true);
    c.record(ms, 0, false);
  }
  // the median of 0.8, 8, 0.8 is 0.8: alone is faster (all four: 8)
  assert.equal(c.solo, true);
});
