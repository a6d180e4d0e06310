// Shared by the elementwise activation tests (exp, log, sigmoid, tanh,
// leaky ReLU, GELU): the finite-difference VJP property over random shapes in
// each op's own input domain, first and second derivatives, and the forward
// against a direct float64 formula.
import "../../ops/mod.ts";
import assert from "node:assert/strict";
import fc from "npm:fast-check@3.23.2";
import type { Node } from "../../graph/graph.ts";
import { grad } from "../../graph/grad.ts";
import { vjp } from "../../graph/vjp.ts";
import { checkVjp, randTensor } from "../_grad_check.ts";

/** A shape of rank 0..3 with small axes. */
export const smallShape: fc.Arbitrary<number[]> = fc.array(fc.integer({ min: 1, max: 4 }), {
  minLength: 0,
  maxLength: 3,
});

/** What {@linkcode testUnary} checks for one op. */
export interface UnaryCase {
  /** Test-name prefix, e.g. "sigmoid". */
  name: string;
  /** The op applied to a node. */
  f: (x: Node) => Node;
  /** The float64 formula the forward must equal (to 1e-14 relative). */
  direct: (x: number) => number;
  /** Input domain where finite differences are meaningful. */
  lo: number;
  hi: number;
  /** Values kept away from (e.g. 0 for leaky ReLU's kink), by at least 0.05. */
  avoid?: number;
  /** Also check second derivatives (the backward's own VJP). */
  second?: boolean;
}

/** Registers the Deno tests of one elementwise op. */
export function testUnary(c: UnaryCase): void {
  const sample = (s: number[], seed: number) => {
    const x = randTensor(s, seed, c.lo, c.hi);
    if (c.avoid !== undefined) {
      for (let i = 0; i < x.data.length; i++) {
        if (Math.abs(x.data[i]! - c.avoid) < 0.05) x.data[i] = c.avoid + 0.05;
      }
    }
    return x;
  };

  Deno.test(`${c.name} vjp matches finite differences on [${c.lo}, ${c.hi}]`, () => {
    fc.assert(
      fc.property(smallShape, fc.integer(), (s, seed) => {
        const x = sample(s, seed);
        checkVjp((v) => c.f(v), [x], { seed, full: x.data.length <= 12 });
      }),
      { numRuns: 50 },
    );
  });

  if (c.second) {
    Deno.test(`${c.name} second derivative matches finite differences`, () => {
      fc.assert(
        fc.property(smallShape, fc.integer(), (s, seed) => {
          const x = sample(s, seed);
          const dyT = randTensor(s, seed + 5, -1, 1);
          // through both inputs of the backward op: x (or y) and the cotangent
          checkVjp((v, dy) => vjpOfSum(c.f, v, dy), [x, dyT], {
            seed,
            rtol: 1e-5,
            full: x.data.length <= 6,
          });
        }),
        { numRuns: 30 },
      );
    });
  }

  Deno.test(`${c.name} forward in float64 is the direct formula`, () => {
    fc.assert(
      fc.property(smallShape, fc.integer(), (s, seed) => {
        const x = sample(s, seed);
        const y = vjp((v) => c.f(v), x).out.data;
        for (let i = 0; i < y.length; i++) {
          const want = c.direct(x.data[i]!);
          assert.ok(
            Math.abs(y[i]! - want) <= 1e-12 * Math.abs(want) + 1e-300,
            `${c.name}(${x.data[i]}) = ${y[i]}, expected ${want}`,
          );
        }
      }),
      { numRuns: 30 },
    );
  });
}

/** The gradient of Σ f(v) ⊙ dy with respect to v, as a node (f's VJP at cotangent dy). */
function vjpOfSum(f: (x: Node) => Node, v: Node, dy: Node): Node {
  const y = f(v);
  const [dv] = grad(y, [v], { cotangent: dy });
  return dv!;
}
