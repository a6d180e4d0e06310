import type { Node } from "../graph/graph.ts";
import { reluBackwardF32, reluF32 } from "./kernels/relu_fast.ts";
import { reluBackwardRef, reluRef } from "./kernels/relu_ref.ts";
import { elementwiseWasm } from "./kernels/elementwise_wasm.ts";
import { runKernel } from "./kernels/tier.ts";
import { type OpDef, registerOp, type Shape } from "../graph/op.ts";

function sameShape([x, dy]: Shape[]): Shape {
  if (x!.join() !== dy!.join()) throw new Error("x and dy must have the same shape");
  return x!;
}

/**
 * `max(x, 0)` elementwise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reluOp } from "@denograd/denograd";
 * assert.deepEqual(reluOp.shape([[-1, 32, 26, 26]], {}), [-1, 32, 26, 26]);
 * assert.equal(typeof reluOp.vjp, "function");
 * ```
 */
export const reluOp: OpDef = registerOp({
  name: "relu",
  inputs: ["x"],
  shape: ([x]) => x!,
  forward([x], y, { tier }) {
    const [x32, y32] = [x, y] as Float32Array[];
    runKernel(y, tier, {
      ref: () => reluRef(x!, y),
      ts: () => reluF32(x32!, y32!),
      wasm: () => {
        const k = elementwiseWasm(x32!, y32!);
        k?.relu(x32!.byteOffset, y32!.byteOffset, y.length);
        return k !== null;
      },
    });
  },
  // dx = dy * (x > 0)
  vjp: ({ inputs: [x], dy }) => [reluBackward(x!, dy)],
});

/**
 * The VJP of ReLU: `dy` where `x > 0`, else 0.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reluBackwardOp } from "@denograd/denograd";
 * assert.deepEqual(reluBackwardOp.shape([[-1, 3], [-1, 3]], {}), [-1, 3]);
 * assert.throws(() => reluBackwardOp.shape([[2], [3]], {}), /x and dy must have the same shape/);
 * ```
 */
export const reluBackwardOp: OpDef = registerOp({
  name: "relu_backward",
  inputs: ["x", "dy"],
  shape: sameShape,
  forward([x, dy], dx, { tier }) {
    const [x32, dy32, dx32] = [x, dy, dx] as Float32Array[];
    runKernel(dx, tier, {
      ref: () => reluBackwardRef(x!, dy!, dx),
      ts: () => reluBackwardF32(x32!, dy32!, dx32!),
      wasm: () => {
        const k = elementwiseWasm(x32!, dy32!, dx32!);
        k?.relu_backward(x32!.byteOffset, dy32!.byteOffset, dx32!.byteOffset, dx.length);
        return k !== null;
      },
    });
  },
  // piecewise linear in dy: d(dy) = ddx * (x > 0); no gradient flows to x
  vjp: ({ inputs: [x], dy }) => [null, reluBackward(x!, dy)],
});

/**
 * Rectified linear unit, `max(x, 0)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, relu } from "@denograd/denograd";
 * const g = new Graph();
 * assert.deepEqual(relu(g.input("x", [-1, 8])).shape, [-1, 8]);
 * ```
 */
export function relu(x: Node, opts: { name?: string } = {}): Node {
  return x.graph.apply(reluOp, [x], {}, opts.name);
}

/**
 * `dy * (x > 0)`, the backward of {@linkcode relu}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, reluBackward } from "@denograd/denograd";
 * const g = new Graph();
 * assert.deepEqual(reluBackward(g.input("x", [4]), g.input("dy", [4])).shape, [4]);
 * ```
 */
export function reluBackward(x: Node, dy: Node, opts: { name?: string } = {}): Node {
  return x.graph.apply(reluBackwardOp, [x, dy], {}, opts.name);
}
