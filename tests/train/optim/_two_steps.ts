// Two optimizer steps on p = [1, -2] with the gradients [0.5, -1] then
// [2, 0.25]: different signs and sizes per element and per step, so a slip in
// a running average or a bias correction shows in the second step.
import assert from "node:assert/strict";
import type { Optimizer } from "../../../train/optim/optimizer.ts";

/** p after the first and after the second step. */
export function twoSteps(opt: Optimizer): number[][] {
  const p = new Map([["w", new Float32Array([1, -2])]]);
  return [[0.5, -1], [2, 0.25]].map((g) => {
    opt.step(p, new Map([["w", new Float32Array(g)]]));
    return [...p.get("w")!];
  });
}

/** Each value within 2e-6 of the hand-computed one (parameters and state are float32). */
export function assertSteps(got: number[][], want: number[][]): void {
  got.forEach((row, t) =>
    row.forEach((v, i) =>
      assert.ok(
        Math.abs(v - want[t]![i]!) < 2e-6,
        `step ${t + 1}, element ${i}: ${v}, expected ${want[t]![i]}`,
      )
    )
  );
}

/** w after each of two steps from w = 1 with the gradient 1 both times (hand-checkable decay rules). */
export function unitSteps(opt: Pick<Optimizer, "step">): number[] {
  const p = new Map([["w", new Float32Array([1])]]);
  const out: number[] = [];
  for (let t = 0; t < 2; t++) {
    opt.step(p, new Map([["w", new Float32Array([1])]]));
    out.push(p.get("w")![0]!);
  }
  return out;
}

/** Each step's w within 1e-6 of the hand-computed one. */
export function assertUnitSteps(got: number[], want: number[]): void {
  got.forEach((v, i) =>
    assert.ok(Math.abs(v - want[i]!) < 1e-6, `step ${i + 1}: ${v}, expected ${want[i]}`)
  );
}
