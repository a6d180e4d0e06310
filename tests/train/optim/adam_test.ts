import assert from "node:assert/strict";
import { Adam, AdamW } from "../../../train/optim/adam.ts";
import { makeOptimizer } from "../../../train/optim/optimizer.ts";
import { assertSteps, assertUnitSteps, twoSteps, unitSteps } from "./_two_steps.ts";

Deno.test("AdamW decays the weight apart from the gradient: p ← p (1 - lr wd), then Adam", () => {
  // lr 0.1, wd 0.1: a constant gradient makes each bias-corrected Adam step exactly lr,
  // so w = 1·0.99 - 0.1 = 0.89, then 0.89·0.99 - 0.1 = 0.7811 (PyTorch: 0.890000001, 0.78110000199)
  assertUnitSteps(unitSteps(new AdamW(0.1, { weightDecay: 0.1 })), [0.89, 0.7811]);
  assert.equal(makeOptimizer("adamw", 0.1).name, "adamw");
  assert.equal((makeOptimizer("adamw", 0.1) as AdamW).weightDecay, 0.01);
});

Deno.test("Adam's weight decay is an L2 term in the gradient, as torch.optim.Adam's", () => {
  // g1 = 1.1: m̂ = 1.1, v̂ = 1.21, step 0.1 -> 0.9; g2 = 1.09: m = 0.208, v = 0.00239689,
  // m̂ = 0.208/0.19, v̂ = 0.00239689/0.001999, w = 0.9 - 0.1·m̂/√v̂ = 0.80002485
  assertUnitSteps(unitSteps(new Adam(0.1, { weightDecay: 0.1 })), [0.9, 0.80002485]);
  // without decay the two steps are lr each
  assertUnitSteps(unitSteps(new Adam(0.1)), [0.9, 0.8]);
});

Deno.test("Adam, first two steps by hand with bias correction (β 0.9, 0.999, ε 1e-8)", () => {
  // lr 0.1, p [1, -2], g₁ [0.5, -1], g₂ [2, 0.25].
  // t = 1: m = 0.1·g₁, v = 0.001·g₁², m̂ = m/0.1 = g₁, v̂ = v/0.001 = g₁²: each step is
  //   lr·sign(g) (less 2e-9 for ε) -> [0.9, -1.9]
  // t = 2: m = 0.9·m + 0.1·g₂ = [0.245, -0.065], v = 0.999·v + 0.001·g₂² = [0.00424975, 0.0010615];
  //   m̂ = m/0.19 = [1.2894737, -0.3421053], v̂ = v/0.001999 = [2.1259380, 0.5310155];
  //   p -= 0.1·m̂/(√v̂ + ε) = [0.0884376, -0.0469468] -> [0.8115624, -1.8530532]
  const want = [[0.9, -1.9], [0.8115624, -1.8530532]];
  assertSteps(twoSteps(new Adam(0.1)), want);
});

Deno.test("Adam's and AdamW's constructors name a bad option", () => {
  assert.throws(() => new Adam(0.1, { beta1: 1.5 }), {
    message: "Adam: beta1 must be a finite number in [0, 1), got 1.5",
  });
  assert.throws(() => new Adam(0.1, { beta2: -0.1 }), {
    message: "Adam: beta2 must be a finite number in [0, 1), got -0.1",
  });
  assert.throws(() => new Adam(0.1, { weightDecay: -1 }), {
    message: "Adam: weightDecay must be a finite number ≥ 0, got -1",
  });
  assert.throws(() => new AdamW(Infinity), {
    message: "AdamW: lr must be a finite number ≥ 0, got Infinity",
  });
  assert.throws(() => new AdamW(0.1, { eps: -1e-8 }), {
    message: "AdamW: eps must be a finite number ≥ 0, got -1e-8",
  });
  // makeOptimizer's own check of the weight decay still comes first
  assert.throws(() => makeOptimizer("adam", 0.1, { weightDecay: -1 }), /weight decay must be/);
});
