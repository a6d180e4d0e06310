import type { Node } from "../graph/graph.ts";
import { fmtShape, type OpDef, registerOp } from "../graph/op.ts";

/** Attributes of `batch_sum`. */
export interface BatchSumAttrs {
  /**
   * Set on the node a `batch_sum`'s VJP makes: it sums the cotangents of the
   * micro-batches weighted as their losses are (see {@linkcode batchSum}).
   */
  cotangent?: boolean;
}

/**
 * The collective sum (JAX's `psum` under `pmap`): see {@linkcode batchSum}.
 * Over one batch run at once it is the identity.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { batchSumOp } from "@denograd/denograd";
 * // the same shape: the sum runs over every micro-batch of a step
 * assert.deepEqual(batchSumOp.shape([[3]], {}), [3]);
 * ```
 */
export const batchSumOp: OpDef<BatchSumAttrs> = registerOp<BatchSumAttrs>({
  name: "batch_sum",
  inputs: ["x"],
  shape: ([x]) => {
    if (x!.includes(-1)) {
      throw new Error(
        `batch_sum sums a value that has no batch axis, got ${
          fmtShape(x!)
        } (sum over the batch axis first, e.g. sum(x, { axes: [0] }))`,
      );
    }
    return x!;
  },
  forward([x], y) {
    y.set(x!);
  },
  collective: true,
  // each micro-batch's value feeds every micro-batch's loss: the cotangent of
  // its input is the (loss-weighted) sum of every micro-batch's cotangent
  vjp: ({ dy, attrs }) => {
    if (attrs.cotangent) {
      throw new Error("batch_sum: second derivatives through a batch_sum are not supported");
    }
    return [dy.graph.apply(batchSumOp, [dy], { cotangent: true })];
  },
});

/**
 * The sum of `x` over every micro-batch and shard of a training step, the
 * same value in each: the collective that batch statistics need (as JAX's
 * `psum` under `pmap`). `x` has no batch axis (sum over it first). A plain
 * executor run over a whole batch sees one micro-batch, so there it is the
 * identity; `LocalRunner` and `WorkerPool` split a step into micro-batches,
 * run the graph up to the collectives, sum the partial values in micro-batch
 * order and run the rest, so the result does not depend on the thread count.
 *
 * Its VJP is the collective of the cotangent: micro-batch `k`'s loss is the
 * mean over its `m_k` of the batch's `n` samples and its gradients are
 * weighted `w_k = m_k / n`, so the cotangent node gives micro-batch `k` the
 * value `(Σ_j w_j · dy_j) / w_k`.
 *
 * @example
 * ```ts
 * import { batchSum, Executor, Graph, makePlan, sum } from "@denograd/denograd";
 * import assert from "node:assert/strict";
 * const g = new Graph();
 * const x = g.input("x", [-1, 2]);
 * const total = batchSum(sum(x, { axes: [0] }));
 * const ex = new Executor(makePlan(g, { batch: 3, outputs: [total] }));
 * // one run over the whole batch: the plain sum over the batch axis
 * assert.deepEqual([...ex.run({ x: [1, 2, 3, 4, 5, 6] })[0]!], [9, 12]);
 * ```
 */
export function batchSum(x: Node, opts: { name?: string } = {}): Node {
  return x.graph.apply(batchSumOp, [x], {}, opts.name);
}
