/**
 * Learning-rate schedules as plain data: step decay, cosine annealing and
 * linear warm-up, composed by multiplying their factors. Being data, a
 * schedule is written into checkpoints and checked on resume, and the step
 * it is at is the run's global step, so a resumed run continues exactly.
 *
 * @module
 */

/** One factor of a learning-rate schedule; `step` counts optimizer steps from 0. */
export type ScheduleSpec =
  /** `gamma ** ⌊step / every⌋`, like `torch.optim.lr_scheduler.StepLR(step_size=every, gamma)`. */
  | { kind: "step"; every: number; gamma: number }
  /** From 1 down to `min` along a half cosine over `steps`, then `min`, like `CosineAnnealingLR(T_max=steps, eta_min=min·lr)`. */
  | { kind: "cosine"; steps: number; min: number }
  /** From `start` up to 1 linearly over `steps`, then 1, like `LinearLR(start_factor=start, total_iters=steps)`. */
  | { kind: "warmup"; steps: number; start: number };

/** The factor one spec applies at `step`. */
function factor(s: ScheduleSpec, step: number): number {
  switch (s.kind) {
    case "step":
      return s.gamma ** Math.floor(step / s.every);
    case "cosine": {
      const t = Math.min(step, s.steps) / s.steps;
      return s.min + ((1 - s.min) * (1 + Math.cos(Math.PI * t))) / 2;
    }
    case "warmup":
      return s.start + ((1 - s.start) * Math.min(step, s.steps)) / s.steps;
  }
}

/**
 * The learning rate at optimizer step `step` (from 0): `base` times the
 * product of every spec's factor, so `warmup` and `cosine` together warm up
 * and then anneal over the whole run.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lrAt } from "@denograd/denograd";
 * const decay = [{ kind: "step", every: 2, gamma: 0.5 }] as const;
 * assert.deepEqual([0, 1, 2, 3, 4].map((t) => lrAt(0.1, decay, t)), [0.1, 0.1, 0.05, 0.05, 0.025]);
 * ```
 */
export function lrAt(base: number, specs: readonly ScheduleSpec[], step: number): number {
  let lr = base;
  for (const s of specs) lr *= factor(s, step);
  return lr;
}

function num(
  text: string | undefined,
  what: string,
  item: string,
  label: string,
  dflt?: number,
): number {
  if (text === undefined || text === "") {
    if (dflt === undefined) throw new Error(`${label} "${item}": ${what} is missing`);
    return dflt;
  }
  const v = Number(text);
  if (!Number.isFinite(v)) {
    throw new Error(`${label} "${item}": ${what} "${text}" is not a number`);
  }
  return v;
}

/**
 * Parses the `--schedule` flag: comma-separated factors `step:EVERY[:GAMMA]`
 * (gamma 0.1 by default), `cosine[:STEPS[:MIN]]` (over the whole run and down
 * to 0 by default) and `warmup:STEPS[:START]` (from 1/3 by default, as
 * PyTorch's LinearLR). `totalSteps` is the run's number of optimizer steps;
 * errors name the text as `label` (`--schedule` when omitted; `train()` and `StepTools` say
 * `schedule`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSchedule } from "@denograd/denograd";
 * assert.deepEqual(parseSchedule("warmup:100:0,cosine", 1000), [
 *   { kind: "warmup", steps: 100, start: 0 },
 *   { kind: "cosine", steps: 1000, min: 0 },
 * ]);
 * ```
 */
export function parseSchedule(
  text: string,
  totalSteps: number,
  label?: string,
): ScheduleSpec[] {
  label ??= "--schedule";
  if (text.trim() === "" || text === "none") return [];
  return text.split(",").map((item) => {
    const [kind, a, b, ...rest] = item.trim().split(":");
    if (rest.length > 0) throw new Error(`${label} "${item}": too many fields`);
    let s: ScheduleSpec;
    if (kind === "step") {
      s = { kind, every: num(a, "EVERY", item, label), gamma: num(b, "GAMMA", item, label, 0.1) };
    } else if (kind === "cosine") {
      s = {
        kind,
        steps: num(a, "STEPS", item, label, totalSteps),
        min: num(b, "MIN", item, label, 0),
      };
    } else if (kind === "warmup") {
      s = { kind, steps: num(a, "STEPS", item, label), start: num(b, "START", item, label, 1 / 3) };
    } else {
      throw new Error(
        `${label} "${item}": unknown schedule "${kind}" (expected step, cosine or warmup)`,
      );
    }
    checkSchedule([s]);
    return s;
  });
}

/**
 * Throws an error naming the bad field unless every spec is well-formed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkSchedule } from "@denograd/denograd";
 * checkSchedule([{ kind: "step", every: 10, gamma: 0.5 }]);
 * assert.throws(
 *   () => checkSchedule([{ kind: "step", every: 0, gamma: 0.5 }]),
 *   { message: 'Schedule {"kind":"step","every":0,"gamma":0.5}: every must be a whole number ≥ 1' },
 * );
 * ```
 */
export function checkSchedule(specs: readonly ScheduleSpec[]): void {
  for (const s of specs) {
    const bad = (why: string) => new Error(`Schedule ${JSON.stringify(s)}: ${why}`);
    if (s.kind === "step") {
      if (!(Number.isInteger(s.every) && s.every >= 1)) {
        throw bad("every must be a whole number ≥ 1");
      }
      if (!(s.gamma > 0 && Number.isFinite(s.gamma))) throw bad("gamma must be a number above 0");
    } else if (s.kind === "cosine" || s.kind === "warmup") {
      if (!(Number.isInteger(s.steps) && s.steps >= 1)) {
        throw bad("steps must be a whole number ≥ 1");
      }
      const v = s.kind === "cosine" ? s.min : s.start;
      if (!(v >= 0 && Number.isFinite(v))) {
        throw bad(`${s.kind === "cosine" ? "min" : "start"} must be a number ≥ 0`);
      }
    } else throw bad("unknown kind (expected step, cosine or warmup)");
  }
}
