import assert from "node:assert/strict";
import { AdaDelta } from "../../../train/optim/adadelta.ts";
import { assertSteps, twoSteps } from "./_two_steps.ts";

Deno.test("AdaDelta, first two steps by hand (lr 1, ρ 0.9, ε 1e-6)", () => {
  // p [1, -2], g₁ [0.5, -1], g₂ [2, 0.25]; v = ρv + (1-ρ)g², d = √(u+ε)/√(v+ε)·g,
  // u = ρu + (1-ρ)d², p -= lr·d.
  // t = 1: v = [0.025, 0.1], d = 0.001/√[0.025001, 0.100001]·g = [0.0031622, -0.0031623],
  //   u = 0.1·d² = [9.9996e-7, 9.9999e-7] -> p [0.9968378, -1.9968377]
  // t = 2: v = [0.4225, 0.09625], d = √(u+ε)/√(v+ε)·g₂ = [0.0043514, 0.0011396]
  //   -> p [0.9924864, -1.9979773]
  assertSteps(twoSteps(new AdaDelta(1.0)), [[0.9968378, -1.9968377], [0.9924864, -1.9979773]]);
});

Deno.test("AdaDelta's constructor names a bad lr, rho or eps", () => {
  assert.throws(() => new AdaDelta(1, { rho: 2 }), {
    message: "AdaDelta: rho must be a finite number in [0, 1], got 2",
  });
  assert.throws(() => new AdaDelta(-1), {
    message: "AdaDelta: lr must be a finite number ≥ 0, got -1",
  });
  assert.throws(() => new AdaDelta(1, { eps: NaN }), {
    message: "AdaDelta: eps must be a finite number ≥ 0, got NaN",
  });
});
