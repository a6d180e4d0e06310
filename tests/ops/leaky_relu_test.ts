import assert from "node:assert/strict";
import fc from "npm:fast-check@3.23.2";
import { Graph } from "../../graph/graph.ts";
import { vjp } from "../../graph/vjp.ts";
import { tensor } from "../../graph/tensor.ts";
import { leakyRelu } from "../../ops/leaky_relu.ts";
import { checkVjp, randTensor } from "../_grad_check.ts";
import { smallShape, testUnary } from "./_unary_check.ts";

// no values at the kink 0, where the derivative jumps
testUnary({
  name: "leakyRelu (default slope 0.01)",
  f: (x) => leakyRelu(x),
  direct: (v) => (v > 0 ? v : 0.01 * v),
  lo: -2,
  hi: 2,
  avoid: 0,
  second: true,
});

Deno.test("leakyRelu vjp matches finite differences for random slopes", () => {
  fc.assert(
    fc.property(
      smallShape,
      fc.double({ min: -2, max: 2, noNaN: true }),
      fc.integer(),
      (s, k, seed) => {
        const x = randTensor(s, seed, -2, 2);
        for (let i = 0; i < x.data.length; i++) if (Math.abs(x.data[i]!) < 0.05) x.data[i] = 0.05;
        checkVjp((v) => leakyRelu(v, { slope: k }), [x], { seed, full: x.data.length <= 12 });
      },
    ),
    { numRuns: 40 },
  );
});

Deno.test("leakyRelu routes slope * dy below zero and dy above, NaN passes", () => {
  const { out, backward } = vjp((x) => leakyRelu(x, { slope: 0.2 }), tensor([-5, 0, 3, NaN]));
  assert.deepEqual([...out.data], [-1, 0, 3, NaN]);
  assert.deepEqual([...backward([1, 1, 1, 1])[0]!.data], [
    Math.fround(0.2),
    Math.fround(0.2),
    1,
    Math.fround(0.2),
  ]);
});

Deno.test("leakyRelu rejects a slope that is not a finite number, naming the node", () => {
  const g = new Graph();
  assert.throws(
    () => leakyRelu(g.input("x", [-1, 2]), { slope: Infinity, name: "act" }),
    /leaky_relu "act": slope must be a finite number, got Infinity \(x \[N,2\]\)/,
  );
});
