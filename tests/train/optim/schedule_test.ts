import assert from "node:assert/strict";
import { lrAt, parseSchedule } from "../../../train/optim/schedule.ts";
import { train } from "../../../train/train.ts";

function close(got: number[], want: number[]): void {
  assert.equal(got.length, want.length);
  got.forEach((v, i) =>
    assert.ok(Math.abs(v - want[i]!) < 1e-12, `step ${i}: ${v}, expected ${want[i]}`)
  );
}

const steps = (n: number) => Array.from({ length: n }, (_, t) => t);

Deno.test("step decay multiplies by gamma every EVERY steps (StepLR)", () => {
  const s = parseSchedule("step:3:0.5", 100);
  close(steps(8).map((t) => lrAt(1, s, t)), [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25]);
  // gamma defaults to 0.1, as StepLR's
  close([0, 1, 2].map((t) => lrAt(2, parseSchedule("step:1", 9), t)), [2, 0.2, 0.02]);
});

Deno.test("cosine anneals from lr to min·lr over STEPS, then stays (CosineAnnealingLR)", () => {
  // (1 + cos(πt/4))/2 for t = 0..4: 1, (2+√2)/4, 1/2, (2-√2)/4, 0
  const r = Math.SQRT2;
  close(steps(6).map((t) => lrAt(1, parseSchedule("cosine:4", 0), t)), [
    1,
    (2 + r) / 4,
    0.5,
    (2 - r) / 4,
    0,
    0,
  ]);
  // with min 0.2: 0.2 + 0.8·that; STEPS defaults to the run's total
  close(steps(3).map((t) => lrAt(10, parseSchedule("cosine::0.2", 2), t)), [10, 6, 2]);
});

Deno.test("linear warm-up from START·lr to lr over STEPS (LinearLR)", () => {
  close(steps(6).map((t) => lrAt(1, parseSchedule("warmup:4:0", 0), t)), [
    0,
    0.25,
    0.5,
    0.75,
    1,
    1,
  ]);
  // START defaults to 1/3, as LinearLR's start_factor
  close([0, 2].map((t) => lrAt(3, parseSchedule("warmup:2", 0), t)), [1, 3]);
});

Deno.test("schedules compose by multiplying: warm-up, then cosine over the whole run", () => {
  const s = parseSchedule("warmup:2:0.5, cosine:4", 0);
  // warm-up 0.5, 0.75, 1, 1, 1 times cosine 1, (2+√2)/4, 1/2, (2-√2)/4, 0
  const r = Math.SQRT2;
  close(steps(5).map((t) => lrAt(0.1, s, t)), [
    0.05,
    (0.075 * (2 + r)) / 4,
    0.05,
    (0.1 * (2 - r)) / 4,
    0,
  ]);
});

Deno.test("parseSchedule names the bad item and field", () => {
  assert.deepEqual(parseSchedule("none", 5), []);
  assert.throws(
    () => parseSchedule("linear:3", 5),
    /--schedule "linear:3": unknown schedule "linear"/,
  );
  assert.throws(() => parseSchedule("step", 5), /--schedule "step": EVERY is missing/);
  assert.throws(
    () => parseSchedule("warmup:x", 5),
    /--schedule "warmup:x": STEPS "x" is not a number/,
  );
  assert.throws(() => parseSchedule("step:0", 5), /every must be a whole number ≥ 1/);
  assert.throws(() => parseSchedule("cosine:5:-1", 5), /min must be a number ≥ 0/);
  assert.throws(() => parseSchedule("cosine:1:2:3", 5), /too many fields/);
});

Deno.test("train()'s schedule errors name the option, not the command line's flag", async () => {
  assert.throws(() => parseSchedule("step", 5, "schedule"), /^Error: schedule "step": EVERY/);
  await assert.rejects(
    train({ model: "poly", epochs: 2, schedule: "cosin" }),
    /^TrainError: schedule "cosin": unknown schedule "cosin" \(expected step, cosine or warmup\)$/,
  );
});
