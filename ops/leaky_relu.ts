import type { Node } from "../graph/graph.ts";
import { runKernel } from "./kernels/tier.ts";
import { type OpDef, registerOp } from "../graph/op.ts";
import { leakyReluBackwardF32, leakyReluF32 } from "./kernels/activation_fast.ts";

/** Attributes of `leaky_relu` and its backward. */
export interface LeakyReluAttrs {
  /** The slope for negative inputs (PyTorch's `negative_slope`). */
  slope: number;
}

function checkSlope(slope: unknown): void {
  if (typeof slope !== "number" || !Number.isFinite(slope)) {
    throw new Error(`slope must be a finite number, got ${slope}`);
  }
}

/**
 * `x > 0 ? x : slope * x` elementwise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { leakyReluOp } from "@denograd/denograd";
 * assert.deepEqual(leakyReluOp.shape([[-1, 16]], { slope: 0.01 }), [-1, 16]);
 * assert.throws(() => leakyReluOp.shape([[16]], { slope: NaN }));
 * ```
 */
export const leakyReluOp: OpDef<LeakyReluAttrs> = registerOp<LeakyReluAttrs>({
  name: "leaky_relu",
  inputs: ["x"],
  shape: ([x], { slope }) => {
    checkSlope(slope);
    return x!;
  },
  forward([x], y, { attrs: { slope }, tier }) {
    runKernel(y, tier, {
      ref: () => {
        for (let i = 0; i < y.length; i++) {
          const v = x![i]!;
          y[i] = v > 0 ? v : v * slope;
        }
      },
      ts: (y) => leakyReluF32(x as Float32Array, y, slope),
    });
  },
  // dx = dy * (x > 0 ? 1 : slope)
  vjp: ({ inputs: [x], dy, attrs }) => [leakyReluBackward(x!, dy, attrs)],
});

/**
 * The VJP of leaky ReLU: `dy` where `x > 0`, else `slope * dy`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { leakyReluBackwardOp } from "@denograd/denograd";
 * assert.deepEqual(leakyReluBackwardOp.shape([[2, 3], [2, 3]], { slope: 0.1 }), [2, 3]);
 * assert.throws(() => leakyReluBackwardOp.shape([[2, 3], [3, 2]], { slope: 0.1 }), /same shape/);
 * ```
 */
export const leakyReluBackwardOp: OpDef<LeakyReluAttrs> = registerOp<LeakyReluAttrs>({
  name: "leaky_relu_backward",
  inputs: ["x", "dy"],
  shape: ([x, dy], { slope }) => {
    checkSlope(slope);
    if (x!.join() !== dy!.join()) throw new Error("x and dy must have the same shape");
    return x!;
  },
  forward([x, dy], dx, { attrs: { slope }, tier }) {
    runKernel(dx, tier, {
      ref: () => {
        for (let i = 0; i < dx.length; i++) dx[i] = x![i]! > 0 ? dy![i]! : dy![i]! * slope;
      },
      ts: (dx) => leakyReluBackwardF32(x as Float32Array, dy as Float32Array, dx, slope),
    });
  },
  // linear in dy, piecewise constant in x: d(dy) = the same masked scaling of g
  vjp: ({ inputs: [x], dy: g, attrs }) => [null, leakyReluBackward(x!, g, attrs)],
});

/** Options of {@linkcode leakyRelu}. */
export interface LeakyReluOptions {
  /** Slope for negative inputs (default 0.01, PyTorch's). */
  slope?: number;
  /** Node name. */
  name?: string;
}

/**
 * Leaky ReLU, `x > 0 ? x : slope * x`, like `torch.nn.functional.leaky_relu`
 * with `negative_slope = slope` (default 0.01).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { leakyRelu, tensor, vjp } from "@denograd/denograd";
 * const { out, backward } = vjp((x) => leakyRelu(x, { slope: 0.5 }), tensor([-2, 3]));
 * assert.deepEqual([...out.data], [-1, 3]);
 * assert.deepEqual([...backward([1, 1])[0]!.data], [0.5, 1]);
 * ```
 */
export function leakyRelu(x: Node, opts: LeakyReluOptions = {}): Node {
  return x.graph.apply(leakyReluOp, [x], { slope: opts.slope ?? 0.01 }, opts.name);
}

/**
 * `x > 0 ? dy : slope * dy`: the backward of {@linkcode leakyRelu}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, leakyReluBackward } from "@denograd/denograd";
 * const g = new Graph();
 * const dx = leakyReluBackward(g.input("x", [2]), g.input("dy", [2]), { slope: 0.1 });
 * assert.deepEqual(dx.shape, [2]);
 * ```
 */
export function leakyReluBackward(x: Node, dy: Node, opts: LeakyReluOptions = {}): Node {
  return x.graph.apply(leakyReluBackwardOp, [x, dy], { slope: opts.slope ?? 0.01 }, opts.name);
}
