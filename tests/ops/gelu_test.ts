import assert from "node:assert/strict";
import { vjp } from "../../graph/vjp.ts";
import { tensor } from "../../graph/tensor.ts";
import { gelu } from "../../ops/gelu.ts";
import { erf, erfc } from "../../ops/kernels/erf.ts";
import { testUnary } from "./_unary_check.ts";

testUnary({
  name: "gelu",
  f: (x) => gelu(x),
  direct: (v) => 0.5 * v * erfc(-v / Math.SQRT2),
  lo: -4,
  hi: 4,
  second: true,
});

Deno.test("erf and erfc match tabulated values to a few ulps, the tail included", () => {
  // values from Abramowitz & Stegun / mpmath, 16 digits
  const table: [number, number][] = [
    [0.01, 0.011283415555849618],
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [2, 0.9953222650189527],
    [3, 0.9999779095030014],
  ];
  for (const [x, v] of table) {
    assert.ok(Math.abs(erf(x) - v) <= 4e-16 * v, `erf(${x}) = ${erf(x)}, expected ${v}`);
    assert.equal(erf(-x), -erf(x));
  }
  const tails: [number, number][] = [[3, 2.209049699858544e-5], [4, 1.541725790028002e-8], [
    6,
    2.151973671249892e-17,
  ]];
  for (const [x, v] of tails) {
    assert.ok(Math.abs(erfc(x) - v) <= 1e-14 * v, `erfc(${x}) = ${erfc(x)}, expected ${v}`);
  }
});

Deno.test("gelu is the exact erf form, not the tanh approximation", () => {
  // torch.nn.functional.gelu(torch.tensor([1., -1., 3.], dtype=torch.float64))
  const want = [0.841344746068543, -0.15865525393145702, 2.99595030590511];
  const { out } = vjp((x) => gelu(x), { shape: [3], data: Float64Array.from([1, -1, 3]) });
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(out.data[i]! - want[i]!) < 1e-15 * 4);
  // the tanh form gives 0.8411919906082768 at 1: far from the exact value
  const f32 = vjp((x) => gelu(x), tensor([1, -1, 3])).out.data;
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(f32[i]! - want[i]!) < 1e-6);
});
