import assert from "node:assert/strict";
import { vjp } from "../../graph/vjp.ts";
import { tensor } from "../../graph/tensor.ts";
import { log } from "../../ops/log.ts";
import { testUnary } from "./_unary_check.ts";

// positives only, away from 0 where 1/x blows up
testUnary({ name: "log", f: (x) => log(x), direct: Math.log, lo: 0.2, hi: 5, second: true });

Deno.test("log is -Infinity at 0 and NaN for negatives, as torch.log", () => {
  const { out } = vjp((x) => log(x), tensor([0, -1, 1]));
  assert.deepEqual([...out.data], [-Infinity, NaN, 0]);
});
