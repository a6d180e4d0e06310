import type { Node } from "../graph/graph.ts";
import { fmtShape, type OpDef, registerOp } from "../graph/op.ts";
import { arenaSet } from "./kernels/elementwise_wasm.ts";

/**
 * The first of the tensors packed along axis 0: `x[0]`, of shape
 * `x.shape.slice(1)`. A fused op that has more than one result (a fused
 * convolution's output and its gradient codes) packs them; this reads the
 * one the rest of the graph uses.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { packedFirstOp } from "@denograd/denograd";
 * // the pooled output of a packed pair
 * assert.deepEqual(packedFirstOp.shape([[2, -1, 32, 13, 13]], {}), [-1, 32, 13, 13]);
 * ```
 */
export const packedFirstOp: OpDef = registerOp({
  name: "packed_first",
  inputs: ["x"],
  shape([x]) {
    if (x!.length < 2 || !(x![0]! >= 1)) {
      throw new Error(`x must pack at least one tensor along axis 0, got ${fmtShape(x!)}`);
    }
    return x!.slice(1);
  },
  forward([x], y) {
    // a wasm copy on a shared arena, where TypedArray.set is slow
    arenaSet(y, x!.subarray(0, y.length));
  },
});

/**
 * `x[0]` for `x` packing tensors along its first axis.
 *
 * @example
 * ```ts
 * import { Executor, Graph, makePlan, packedFirst } from "@denograd/denograd";
 * import { deepStrictEqual } from "node:assert/strict";
 * const g = new Graph();
 * const y = packedFirst(g.input("x", [2, 3]));
 * const ex = new Executor(makePlan(g, { outputs: [y] }));
 * deepStrictEqual([...ex.run({ x: [1, 2, 3, 4, 5, 6] })[0]!], [1, 2, 3]);
 * ```
 */
export function packedFirst(x: Node, opts: { name?: string } = {}): Node {
  return x.graph.apply(packedFirstOp, [x], {}, opts.name);
}
