import assert from "node:assert/strict";
import { makeOptimizer } from "../../../train/optim/optimizer.ts";
import { Sgd } from "../../../train/optim/sgd.ts";
import { assertSteps, assertUnitSteps, twoSteps, unitSteps } from "./_two_steps.ts";

// lr 0.1, weight decay 0.1, momentum 0.9; by hand (PyTorch's torch.optim.SGD gives the same):
Deno.test("SGD with L2 weight decay: p -= lr (g + wd p)", () => {
  // 1 - 0.1·1.1 = 0.89; 0.89 - 0.1·(1 + 0.089) = 0.7811
  assertUnitSteps(unitSteps(new Sgd(0.1, { weightDecay: 0.1 })), [0.89, 0.7811]);
});

Deno.test("momentum with L2 weight decay: the buffer starts at the first decayed gradient", () => {
  // buf 1.1, w 0.89; g 1.089, buf 0.99 + 1.089 = 2.079, w 0.89 - 0.2079 = 0.6821
  assertUnitSteps(unitSteps(new Sgd(0.1, { momentum: 0.9, weightDecay: 0.1 })), [0.89, 0.6821]);
});

Deno.test("Nesterov momentum steps along g + momentum·buf", () => {
  // buf 1.1, step 1.1 + 0.99 = 2.09, w 0.791; g 1.0791, buf 2.0691,
  // step 1.0791 + 1.86219 = 2.94129, w 0.496871
  assertUnitSteps(unitSteps(new Sgd(0.1, { momentum: 0.9, weightDecay: 0.1, nesterov: true })), [
    0.791,
    0.496871,
  ]);
  assertUnitSteps(unitSteps(makeOptimizer("momentum", 0.1, { weightDecay: 0.1, nesterov: true })), [
    0.791,
    0.496871,
  ]);
});

Deno.test("Nesterov without momentum and bad weight decays are refused with the value", () => {
  assert.throws(
    () => new Sgd(0.1, { nesterov: true }),
    /Nesterov momentum needs a momentum above 0, got 0/,
  );
  assert.throws(
    () => makeOptimizer("adam", 0.1, { nesterov: true }),
    /needs the momentum optimizer, not "adam"/,
  );
  assert.throws(
    () => makeOptimizer("sgd", 0.1, { weightDecay: -1 }),
    /weight decay must be a finite number ≥ 0, got -1/,
  );
});

Deno.test("plain SGD, first two steps by hand: p -= lr·g", () => {
  // lr 0.1: [1 - 0.05, -2 + 0.1] = [0.95, -1.9]; [0.95 - 0.2, -1.9 - 0.025] = [0.75, -1.925]
  assertSteps(twoSteps(new Sgd(0.1)), [[0.95, -1.9], [0.75, -1.925]]);
});

Deno.test("momentum SGD, first two steps by hand: buf = μ·buf + g from buf = g₁", () => {
  // μ 0.9, lr 0.1: buf₁ = g₁ = [0.5, -1], p₁ = [0.95, -1.9];
  // buf₂ = 0.9·[0.5, -1] + [2, 0.25] = [2.45, -0.65], p₂ = [0.95 - 0.245, -1.9 + 0.065]
  assertSteps(twoSteps(new Sgd(0.1, { momentum: 0.9 })), [[0.95, -1.9], [0.705, -1.835]]);
});

Deno.test("Sgd's constructor names a bad lr, momentum or weight decay", () => {
  assert.throws(() => new Sgd(NaN), { message: "Sgd: lr must be a finite number ≥ 0, got NaN" });
  assert.throws(() => new Sgd(-1), { message: "Sgd: lr must be a finite number ≥ 0, got -1" });
  assert.throws(() => new Sgd(0.1, { momentum: 1 }), {
    message: "Sgd: momentum must be a finite number in [0, 1), got 1",
  });
  assert.throws(() => new Sgd(0.1, { weightDecay: -1 }), {
    message: "Sgd: weightDecay must be a finite number ≥ 0, got -1",
  });
  assert.equal(new Sgd(0, { momentum: 0.9 }).momentum, 0.9); // lr 0 is allowed, as in PyTorch
});

Deno.test("a gradient of the wrong length says what was given", () => {
  const p = new Map([["w", new Float32Array(2)]]);
  assert.throws(() => new Sgd(0.1).step(p, new Map([["w", new Float32Array(1)]])), {
    message: 'Optimizer: parameter "w" has 2 values but its gradient has 1',
  });
  assert.throws(() => new Sgd(0.1).step(p, new Map()), {
    message: 'Optimizer: parameter "w" has 2 values but no gradient was given',
  });
});
