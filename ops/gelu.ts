import type { Node } from "../graph/graph.ts";
import { runKernel } from "./kernels/tier.ts";
import { type OpDef, registerOp, type Shape } from "../graph/op.ts";
import { exp } from "./exp.ts";
import { fill } from "./fill.ts";
import { geluBackwardF32, geluF32 } from "./kernels/activation_fast.ts";
import { normalCdf, normalPdf } from "./kernels/erf.ts";
import { mul } from "./mul.ts";
import { scale } from "./scale.ts";
import { sub } from "./sub.ts";

function sameShape([x, dy]: Shape[]): Shape {
  if (x!.join() !== dy!.join()) throw new Error("x and dy must have the same shape");
  return x!;
}

/**
 * The Gaussian error linear unit `x Φ(x)` elementwise (the exact, erf form).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { geluOp } from "@denograd/denograd";
 * assert.deepEqual(geluOp.shape([[-1, 64]], {}), [-1, 64]);
 * assert.equal(typeof geluOp.vjp, "function");
 * ```
 */
export const geluOp: OpDef = registerOp({
  name: "gelu",
  inputs: ["x"],
  shape: ([x]) => x!,
  forward([x], y, { tier }) {
    runKernel(y, tier, {
      ref: () => {
        for (let i = 0; i < y.length; i++) y[i] = x![i]! * normalCdf(x![i]!);
      },
      ts: (y) => geluF32(x as Float32Array, y),
    });
  },
  // dx = dy * (Φ(x) + x φ(x))
  vjp: ({ inputs: [x], dy }) => [geluBackward(x!, dy)],
});

/**
 * The VJP of GELU: `dy * (Φ(x) + x φ(x))`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { geluBackwardOp } from "@denograd/denograd";
 * assert.deepEqual(geluBackwardOp.shape([[-1, 64], [-1, 64]], {}), [-1, 64]);
 * assert.throws(() => geluBackwardOp.shape([[64], [32]], {}), /x and dy must have the same shape/);
 * ```
 */
export const geluBackwardOp: OpDef = registerOp({
  name: "gelu_backward",
  inputs: ["x", "dy"],
  shape: sameShape,
  forward([x, dy], dx, { tier }) {
    runKernel(dx, tier, {
      ref: () => {
        for (let i = 0; i < dx.length; i++) {
          const v = x![i]!;
          dx[i] = dy![i]! * (normalCdf(v) + v * normalPdf(v));
        }
      },
      ts: (dx) => geluBackwardF32(x as Float32Array, dy as Float32Array, dx),
    });
  },
  // gelu''(x) = φ(x) (2 - x²): dx = g dy φ(x) (2 - x²); d(dy) = g gelu'(x)
  vjp: ({ inputs: [x, dy], dy: g }) => {
    const x2 = mul(x!, x!);
    const pdf = scale(exp(scale(x2, -0.5)), 1 / Math.sqrt(2 * Math.PI));
    const curvature = mul(pdf, sub(fill([], 2, x!.graph), x2));
    return [mul(mul(g, dy!), curvature), geluBackward(x!, g)];
  },
});

/**
 * GELU, `x Φ(x)` with `Φ` the standard normal CDF, like
 * `torch.nn.functional.gelu` (its default, exact form, not the tanh
 * approximation).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gelu, tensor, vjp } from "@denograd/denograd";
 * const { out, backward } = vjp((x) => gelu(x), tensor([0, 1]));
 * assert.equal(out.data[0], 0);
 * assert.ok(Math.abs(out.data[1]! - 0.8413447) < 1e-6);
 * assert.equal(backward([1, 1])[0]!.data[0], 0.5);
 * ```
 */
export function gelu(x: Node, opts: { name?: string } = {}): Node {
  return x.graph.apply(geluOp, [x], {}, opts.name);
}

/**
 * `dy * (Φ(x) + x φ(x))`: the backward of {@linkcode gelu}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { geluBackward, Graph } from "@denograd/denograd";
 * const g = new Graph();
 * assert.deepEqual(geluBackward(g.input("x", [-1, 3]), g.input("dy", [-1, 3])).shape, [-1, 3]);
 * ```
 */
export function geluBackward(x: Node, dy: Node, opts: { name?: string } = {}): Node {
  return x.graph.apply(geluBackwardOp, [x, dy], {}, opts.name);
}
