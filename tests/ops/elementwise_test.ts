// every op registers itself on import; grad finds fill, add, sum, reshape by name
import "../../ops/mod.ts";
import assert from "node:assert/strict";
import fc from "npm:fast-check@3.23.2";
import { Graph, type Node } from "../../graph/graph.ts";
import { add } from "../../ops/add.ts";
import { div } from "../../ops/div.ts";
import { mul } from "../../ops/mul.ts";
import { relu, reluBackward } from "../../ops/relu.ts";
import { scale } from "../../ops/scale.ts";
import { sub } from "../../ops/sub.ts";
import { vjp } from "../../graph/vjp.ts";
import { tensor } from "../../graph/tensor.ts";
import { checkVjp, randTensor } from "../_grad_check.ts";

export const RUNS = 40;

/** Two broadcast-compatible shapes: b drops leading axes and sets some to 1. */
const broadcastPair = fc.tuple(
  fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 }),
  fc.integer({ min: 0, max: 3 }),
  fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
).map(([a, drop, ones]) => {
  const b = a.slice(Math.min(drop, a.length - 1)).map((d, i) => (ones[i] ? 1 : d));
  return [a, b] as const;
});

for (
  const [name, f, lo] of [
    ["add", add, -1],
    ["sub", sub, -1],
    ["mul", mul, -1],
    ["div", div, 0.5],
  ] as const
) {
  Deno.test(`${name} vjp matches finite differences with broadcasting`, () => {
    fc.assert(
      fc.property(broadcastPair, fc.boolean(), fc.integer(), ([sa, sb], swap, seed) => {
        const [s0, s1] = swap ? [sb, sa] : [sa, sb];
        // div: keep the divisor away from zero
        const a = randTensor([...s0], seed, -1, 1);
        const b = randTensor([...s1], seed + 1, lo, lo === -1 ? 1 : 2);
        checkVjp((x, y) => f(x, y), [a, b], { seed, full: a.data.length * b.data.length < 40 });
      }),
      { numRuns: RUNS },
    );
  });
}

Deno.test("elementwise forward matches a direct computation with broadcasting", () => {
  const a = tensor([[1, 2, 3], [4, 5, 6]]);
  const b = tensor([10, 20, 30]);
  assert.deepEqual([...vjp((x, y) => add(x, y), a, b).out.data], [11, 22, 33, 14, 25, 36]);
  assert.deepEqual([...vjp((x, y) => sub(x, y), a, b).out.data], [-9, -18, -27, -6, -15, -24]);
  assert.deepEqual([...vjp((x, y) => mul(x, y), a, b).out.data], [10, 40, 90, 40, 100, 180]);
  const q = vjp((x, y) => div(x, y), a, b).out.data;
  assert.ok(Math.abs(q[5]! - 0.2) < 1e-7);
});

Deno.test("relu vjp matches finite differences away from zero", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 4 }),
      fc.integer(),
      (shape, seed) => {
        const x = randTensor(shape, seed);
        // no values near the kink: ReLU is not differentiable at 0
        for (let i = 0; i < x.data.length; i++) if (Math.abs(x.data[i]!) < 0.05) x.data[i] = 0.5;
        checkVjp((v) => relu(v), [x], { seed, full: x.data.length < 30 });
      },
    ),
    { numRuns: RUNS },
  );
});

Deno.test("relu_backward vjp matches finite differences away from zero (second derivatives)", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 3 }),
      fc.integer(),
      (shape, seed) => {
        const x = randTensor(shape, seed);
        for (let i = 0; i < x.data.length; i++) if (Math.abs(x.data[i]!) < 0.05) x.data[i] = -0.5;
        const dy = randTensor(shape, seed + 1);
        // piecewise linear in dy, locally constant in x
        checkVjp((v, g) => reluBackward(v, g), [x, dy], { seed, full: x.data.length < 20 });
      },
    ),
    { numRuns: RUNS },
  );
});

Deno.test("relu forward zeroes negatives and its gradient is the step function", () => {
  const { out, backward } = vjp((v) => relu(v), tensor([-2, -0.5, 0.5, 3]));
  assert.deepEqual([...out.data], [0, 0, 0.5, 3]);
  assert.deepEqual([...backward([1, 1, 1, 1])[0]!.data], [0, 0, 1, 1]);
});

Deno.test("scale vjp matches finite differences", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 20 }),
      fc.double({ min: -3, max: 3, noNaN: true }),
      fc.integer(),
      (n, k, seed) => {
        checkVjp((v) => scale(v, k), [randTensor([n], seed)], { seed });
      },
    ),
    { numRuns: RUNS },
  );
});

Deno.test("broadcasting error names the op, the node and the shapes", () => {
  const g = new Graph();
  assert.throws(
    () => add(g.input("a", [2, 3]), g.input("b", [4]), { name: "bias_add" }),
    /add "bias_add": shapes cannot be broadcast together at axis 1 \(a \[2,3\], b \[4\]\)/,
  );
});

Deno.test("plain numbers are constants on either side of add, sub, mul and div", () => {
  const x = tensor([1, 2, 4]);
  const cases: [string, (v: Node) => Node, number[], number[]][] = [
    ["add(x, 1)", (v) => add(v, 1), [2, 3, 5], [1, 1, 1]],
    ["sub(1, x)", (v) => sub(1, v), [0, -1, -3], [-1, -1, -1]],
    ["mul(x, 2)", (v) => mul(v, 2), [2, 4, 8], [2, 2, 2]],
    ["div(x, 4)", (v) => div(v, 4), [0.25, 0.5, 1], [0.25, 0.25, 0.25]],
    ["div(2, x)", (v) => div(2, v), [2, 1, 0.5], [-2, -0.5, -0.125]],
  ];
  for (const [what, f, value, slope] of cases) {
    const { out, backward } = vjp(f, x);
    assert.deepEqual([...out.data], value, what);
    assert.deepEqual([...backward([1, 1, 1])[0]!.data], slope, what);
  }
  const g = new Graph();
  assert.deepEqual(mul(g.input("x", [-1, 3]), 2).shape, [-1, 3]);
  assert.throws(() => mul(2 as unknown as Node, 3), /mul: at least one operand must be a node/);
});
