import type { Node } from "../graph/graph.ts";
import { type OpDef, registerOp } from "../graph/op.ts";
import {
  keptShape,
  type ReduceAttrs,
  reduceAxes,
  reduceShape,
  runsOf,
  sumKernel,
} from "./_reduce.ts";
import { elementwiseWasm } from "./kernels/elementwise_wasm.ts";
import { runKernel } from "./kernels/tier.ts";
import { expandAs } from "./expand_as.ts";
import { reshape } from "./reshape.ts";

/**
 * Sum over axes (all by default).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sumOp } from "@denograd/denograd";
 * // summed over the batch axis
 * assert.deepEqual(sumOp.shape([[-1, 10]], { axes: [0] }), [10]);
 * ```
 */
export const sumOp: OpDef<ReduceAttrs> = registerOp<ReduceAttrs>({
  name: "sum",
  inputs: ["x"],
  shape: ([x], attrs) => reduceShape(x!, attrs),
  forward([x], out, c) {
    const axes = reduceAxes(c.inShapes[0]!, c.attrs.axes);
    runKernel(out, c.tier, {
      ref: () => sumKernel(x!, c.inShapes[0]!, axes, out),
      wasm: () => {
        // a bias gradient: runs of at least 8 summed with float32 SIMD partial sums
        const runs = runsOf(c.inShapes[0]!, axes);
        const [x32, out32] = [x, out] as Float32Array[];
        const k = runs && runs[2] >= 8 ? elementwiseWasm(x32!, out32!) : null;
        if (!k) return false;
        // float32 partial sums, in a fixed order: the same bits every run
        out.fill(0);
        k.sum_runs(x32!.byteOffset, out32!.byteOffset, ...runs!);
      },
    });
  },
  // dx = dy broadcast back over the summed axes
  vjp: ({ inputs: [x], dy, attrs }) => [expandAs(reshape(dy, keptShape(x!.shape, attrs)), x!)],
});

/**
 * Sums `x` over `axes` (every axis by default), like `torch.sum`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, sum } from "@denograd/denograd";
 * const g = new Graph();
 * assert.deepEqual(sum(g.input("x", [-1, 10]), { axes: [1] }).shape, [-1]);
 * ```
 */
export function sum(x: Node, opts: ReduceAttrs & { name?: string } = {}): Node {
  const { name, ...attrs } = opts;
  return x.graph.apply(sumOp, [x], attrs, name);
}
