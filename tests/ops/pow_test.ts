// every op registers itself on import; grad finds fill, add, sum, reshape by name
import "../../ops/mod.ts";
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { Graph } from "../../graph/graph.ts";
import { grad } from "../../graph/grad.ts";
import { tensor } from "../../graph/tensor.ts";
import { vjp } from "../../graph/vjp.ts";
import { pow, square } from "../../ops/pow.ts";
import { sum } from "../../ops/sum.ts";
import { checkVjp, randTensor } from "../_grad_check.ts";

const RUNS = 50;
const shape = fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 0, maxLength: 3 });

/** Keeps values at least 0.2 from zero, where negative powers blow up. */
function awayFromZero(t: { data: Float64Array }): void {
  for (let i = 0; i < t.data.length; i++) if (Math.abs(t.data[i]!) < 0.2) t.data[i] = 0.2;
}

Deno.test("pow vjp matches finite differences for integer exponents on any sign", () => {
  fc.assert(
    fc.property(shape, fc.integer({ min: -3, max: 4 }), fc.integer(), (s, p, seed) => {
      const x = randTensor(s, seed, -2, 2);
      awayFromZero(x);
      checkVjp((v) => pow(v, p), [x], { seed, full: x.data.length <= 12 });
    }),
    { numRuns: RUNS },
  );
});

Deno.test("pow vjp matches finite differences for fractional exponents on positives", () => {
  fc.assert(
    fc.property(
      shape,
      fc.double({ min: -2.5, max: 2.5, noNaN: true }),
      fc.integer(),
      (s, p, seed) => {
        const x = randTensor(s, seed, 0.3, 3);
        checkVjp((v) => pow(v, p), [x], { seed, full: x.data.length <= 12 });
      },
    ),
    { numRuns: RUNS },
  );
});

Deno.test("pow forward is x ** p and square is x * x", () => {
  fc.assert(
    fc.property(
      shape,
      fc.constantFrom(0, 1, 2, 3, -1, 0.5, 1.5, -2.25),
      fc.integer(),
      (s, p, seed) => {
        const x = randTensor(s, seed, 0.1, 3);
        const y = vjp((v) => pow(v, p), x).out.data;
        const y2 = vjp((v) => square(v), x).out.data;
        for (let i = 0; i < y.length; i++) {
          assert.equal(y[i], Math.pow(x.data[i]!, p));
          assert.equal(y2[i], x.data[i]! * x.data[i]!);
        }
      },
    ),
    { numRuns: 40 },
  );
});

Deno.test("pow has a second derivative p (p-1) x^(p-2)", () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 4 }), fc.integer(), (p, seed) => {
      // d/dx of Σ (dpow/dx): differentiate the backward graph once more
      const x = randTensor([3], seed, 0.5, 2);
      checkVjp(
        (v) => {
          const [dv] = grad(sum(pow(v, p)), [v]);
          return dv!;
        },
        [x],
        { seed, full: true },
      );
      const g = vjp((v) => grad(sum(pow(v, p)), [v])[0]!, x).backward([1, 1, 1])[0]!.data;
      for (let i = 0; i < 3; i++) {
        const want = p * (p - 1) * x.data[i]! ** (p - 2);
        assert.ok(Math.abs(g[i]! - want) <= 1e-12 * (1 + Math.abs(want)), `${g[i]} vs ${want}`);
      }
    }),
    { numRuns: 30 },
  );
});

Deno.test("square of float32 values and its gradient 2x", () => {
  const { out, backward } = vjp((v) => square(v), tensor([-3, 0, 0.5, 2]));
  assert.deepEqual([...out.data], [9, 0, 0.25, 4]);
  assert.deepEqual([...backward([1, 1, 1, 1])[0]!.data], [-6, 0, 1, 4]);
  // exponent 0: gradient 0 even at x = 0, not NaN from 0 * 0^-1
  assert.deepEqual([...vjp((v) => pow(v, 0), tensor([0, 2])).backward([1, 1])[0]!.data], [0, 0]);
});

Deno.test("pow rejects an exponent that is not a finite number, naming the node", () => {
  const g = new Graph();
  const x = g.input("x", [-1, 2]);
  assert.deepEqual(pow(x, 3).shape, [-1, 2]);
  assert.throws(
    () => pow(x, NaN, { name: "cube" }),
    /pow "cube": exponent must be a finite number, got NaN \(x \[N,2\]\)/,
  );
});
