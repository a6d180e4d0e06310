import assert from "node:assert/strict";
import { vjp } from "../../graph/vjp.ts";
import { tensor } from "../../graph/tensor.ts";
import { tanh } from "../../ops/tanh.ts";
import { testUnary } from "./_unary_check.ts";

testUnary({ name: "tanh", f: (x) => tanh(x), direct: Math.tanh, lo: -3, hi: 3, second: true });

Deno.test("tanh saturates to ±1 with zero gradient and is odd", () => {
  const { out, backward } = vjp((x) => tanh(x), tensor([-100, 100, 0.5, -0.5]));
  assert.deepEqual([...out.data.slice(0, 2)], [-1, 1]);
  assert.equal(out.data[2], -out.data[3]!);
  assert.deepEqual([...backward([1, 1, 0, 0])[0]!.data.slice(0, 2)], [0, 0]);
});
