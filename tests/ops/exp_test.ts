import assert from "node:assert/strict";
import { vjp } from "../../graph/vjp.ts";
import { tensor } from "../../graph/tensor.ts";
import { exp } from "../../ops/exp.ts";
import { testUnary } from "./_unary_check.ts";

testUnary({ name: "exp", f: (x) => exp(x), direct: Math.exp, lo: -3, hi: 3, second: true });

Deno.test("exp overflows to Infinity and underflows to 0 in float32, as torch.exp", () => {
  const { out } = vjp((x) => exp(x), tensor([100, -120, 0]));
  assert.deepEqual([...out.data], [Infinity, 0, 1]);
});
