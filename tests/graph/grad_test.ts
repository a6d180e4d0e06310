// every op registers itself on import; grad finds fill, add, sum, reshape by name
import "../../ops/mod.ts";
import assert from "node:assert/strict";
import { Graph, type Node } from "../../graph/graph.ts";
import { type OpDef, registerOp } from "../../graph/op.ts";
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

Deno.test("a VJP rule that returns the wrong number of cotangents or a non-node is named", () => {
  const make = (name: string, vjp: OpDef["vjp"]) => {
    const op: OpDef = registerOp({
      name,
      inputs: ["x"],
      shape: ([x]) => x!,
      forward([x], y) {
        y.set(x!);
      },
      vjp,
    });
    return (x: Node) => x.graph.apply(op, [x], {});
  };
  const none = make("vjp_none", () => []);
  assert.throws(() => vjp((x) => sum(none(x)), tensor([1, 2])), {
    message:
      'grad: the VJP of vjp_none "vjp_none_1" returned 0 cotangents but the op has 1 input (a node or null per input)',
  });
  const two = make("vjp_two", ({ dy }) => [dy, dy]);
  assert.throws(() => vjp((x) => sum(two(x)), tensor([1, 2])), {
    message:
      'grad: the VJP of vjp_two "vjp_two_1" returned 2 cotangents but the op has 1 input (a node or null per input)',
  });
  const num = make("vjp_number", () => [3 as unknown as Node]);
  assert.throws(() => vjp((x) => sum(num(x)), tensor([1, 2])), {
    message:
      'grad: the VJP of vjp_number "vjp_number_1" gave input 0 the number 3; expected a node of the graph or null',
  });
  const notArray = make("vjp_not_array", ({ dy }) => dy as unknown as Node[]);
  assert.throws(() => vjp((x) => sum(notArray(x)), tensor([1, 2])), {
    message:
      'grad: the VJP of vjp_not_array "vjp_not_array_1" returned an object (Node); expected an array of 1 cotangent (a node or null per input)',
  });
  // a trailing null past the inputs stays accepted (linear's `b?`)
  const extra = make("vjp_extra_null", ({ dy }) => [dy, null]);
  const { backward } = vjp((x) => sum(extra(x)), tensor([1, 2]));
  assert.deepEqual([...backward([1])[0]!.data], [1, 1]);
});
