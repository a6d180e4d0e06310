import assert from "node:assert/strict";
import { vjp } from "../../graph/vjp.ts";
import { tensor } from "../../graph/tensor.ts";
import { sigmoid } from "../../ops/sigmoid.ts";
import { testUnary } from "./_unary_check.ts";

testUnary({
  name: "sigmoid",
  f: (x) => sigmoid(x),
  direct: (v) => 1 / (1 + Math.exp(-v)),
  lo: -6,
  hi: 6,
  second: true,
});

Deno.test("sigmoid saturates to exactly 0 and 1 without NaN, and is symmetric", () => {
  const { out, backward } = vjp((x) => sigmoid(x), tensor([-1000, 1000, 2, -2]));
  assert.deepEqual([...out.data.slice(0, 2)], [0, 1]);
  assert.ok(Math.abs(out.data[2]! + out.data[3]! - 1) < 1e-7);
  assert.deepEqual([...backward([1, 1, 0, 0])[0]!.data.slice(0, 2)], [0, 0]);
});
