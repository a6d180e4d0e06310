import type { Node } from "../graph/graph.ts";
import { type ForwardContext, type OpDef, registerOp, type Shape } from "../graph/op.ts";
import {
  keptShape,
  type ReduceAttrs,
  reduceAxes,
  reduceShape,
  runsOf,
  sumKernel,
} from "./_reduce.ts";
import { elementwiseWasm } from "./kernels/elementwise_wasm.ts";
import { kernelTier } from "./kernels/tier.ts";
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
    const p = prepare(c);
    // a bias gradient: runs of at least 8 summed with float32 SIMD partial sums
    // (no closures or arrays made per call: this runs every step)
    const runs = p.runs;
    if (kernelTier(out, c.tier) === "wasm" && runs !== null && runs[2] >= 8) {
      const k = elementwiseWasm(x as Float32Array, out as Float32Array);
      if (k !== null) {
        // float32 partial sums, in a fixed order: the same bits every run
        out.fill(0);
        k.sum_runs(x!.byteOffset, out.byteOffset, runs[0], runs[1], runs[2]);
        return;
      }
    }
    sumKernel(x!, p.shape, p.axes, out);
  },
  // dx = dy broadcast back over the summed axes
  vjp: ({ inputs: [x], dy, attrs }) => [expandAs(reshape(dy, keptShape(x!.shape, attrs)), x!)],
});

/** What a sum node's forward derives from its shape and attributes, once per node. */
interface SumPrep {
  shape: Shape;
  attrs: ReduceAttrs;
  axes: number[];
  runs: [number, number, number] | null;
}

// by forward context (one per node of an executor), so a run reuses them
const prepared = new WeakMap<ForwardContext<ReduceAttrs>, SumPrep>();

/** The sorted axes and the SIMD runs of `c`'s node, made on its first run. */
function prepare(c: ForwardContext<ReduceAttrs>): SumPrep {
  const shape = c.inShapes[0]!;
  let p = prepared.get(c);
  if (p === undefined || p.shape !== shape || p.attrs !== c.attrs) {
    const axes = reduceAxes(shape, c.attrs.axes);
    p = { shape, attrs: c.attrs, axes, runs: runsOf(shape, axes) };
    prepared.set(c, p);
  }
  return p;
}

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
