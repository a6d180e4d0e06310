import type { Node } from "../graph/graph.ts";
import { fmtShape, type OpDef, registerOp } from "../graph/op.ts";

/**
 * `train` in training mode, `evaluate` in evaluation mode: how batch norm
 * switches from the batch's statistics to its running estimates.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { trainingSelectOp } from "@denograd/denograd";
 * assert.deepEqual(trainingSelectOp.shape([[-1, 3], [-1, 3]], {}), [-1, 3]);
 * ```
 */
export const trainingSelectOp: OpDef = registerOp({
  name: "training_select",
  inputs: ["train", "evaluate"],
  shape: ([a, b]) => {
    if (a!.join() !== b!.join()) {
      throw new Error(
        `train and evaluate must have the same shape, got ${fmtShape(a!)} and ${fmtShape(b!)}`,
      );
    }
    return a!;
  },
  forward([a, b], out, { training }) {
    out.set(training ? a! : b!);
  },
  // gradients exist only in training, where the output is `train`
  vjp: ({ dy }) => [dy, null],
  // the output changes with the mode: the executor must not reuse a value from the other mode
  stochastic: true,
});

/**
 * Selects `train` when the graph runs in training mode and `evaluate` in
 * evaluation mode (`Executor.run(feeds, { training: false })`); the
 * gradient flows to `train` only.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Executor, Graph, makePlan, trainingSelect } from "@denograd/denograd";
 * const g = new Graph();
 * const y = trainingSelect(g.input("a", [2]), g.input("b", [2]));
 * const ex = new Executor(makePlan(g, { outputs: [y] }));
 * const feeds = { a: [1, 2], b: [3, 4] };
 * assert.deepEqual([...ex.run(feeds)[0]!], [1, 2]);
 * assert.deepEqual([...ex.run(feeds, { training: false })[0]!], [3, 4]);
 * ```
 */
export function trainingSelect(train: Node, evaluate: Node, opts: { name?: string } = {}): Node {
  return train.graph.apply(trainingSelectOp, [train, evaluate], {}, opts.name);
}
