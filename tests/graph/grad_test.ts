// every op registers itself on import; grad finds fill, add, sum, reshape by name
import "../../ops/mod.ts";
import assert from "node:assert/strict";
import { Graph } from "../../graph/graph.ts";
import { grad } from "../../graph/grad.ts";
import { tensor } from "../../graph/tensor.ts";
import { vjp } from "../../graph/vjp.ts";
import { add } from "../../ops/add.ts";
import { linear } from "../../ops/linear.ts";
import { mean } from "../../ops/mean.ts";
import { mul } from "../../ops/mul.ts";
import { sum } from "../../ops/sum.ts";

Deno.test("grad sums fan-out: d/dx (x*x + x) = 2x + 1", () => {
  const { backward } = vjp((x) => sum(add(mul(x, x), x)), tensor([1, -2, 0.5]));
  assert.deepEqual([...backward([1])[0]!.data], [3, -3, 2]);
});

Deno.test("an input that does not reach the loss gets no gradient node", () => {
  const g = new Graph();
  const x = g.input("x", [3]);
  const z = g.input("z", [3]);
  mul(z, z); // used, but not by the loss
  const [dx, dz] = grad(mean(mul(x, x)), [x, z]);
  assert.ok(dx !== null);
  assert.equal(dz, null);
  const { backward } = vjp((a, _b) => sum(a), tensor([1, 2]), tensor([3]));
  assert.deepEqual([...backward([1])[1]!.data], [0]);
});

Deno.test("grad of a non-scalar loss needs a cotangent", () => {
  const g = new Graph();
  const x = g.input("x", [3]);
  assert.throws(() => grad(mul(x, x), [x]), /pass a cotangent/);
});

Deno.test("shape errors name the op, the node and the shapes", () => {
  const g = new Graph();
  const x = g.input("x", [-1, 784]);
  const w = g.param("fc1.weight", [128, 9216], { kind: "uniform", bound: 0.01 });
  assert.throws(
    () => linear(x, w, null, { name: "fc1" }),
    (e: Error) => {
      assert.match(
        e.message,
        /^linear "fc1": x has 784 features but w expects 9216 \(x \[N,784\], w \[128,9216\]\)$/,
      );
      return true;
    },
  );
});
