import type { Node } from "../graph/graph.ts";
import { fmtShape } from "../graph/op.ts";
import { mean } from "./mean.ts";
import type { Reduction } from "./nll_loss.ts";
import { square } from "./pow.ts";
import { sub } from "./sub.ts";
import { sum } from "./sum.ts";

/**
 * Mean squared error, like `torch.nn.functional.mse_loss`: `mean((a - b)^2)`
 * by default, `sum` with `reduction: "sum"`, the elementwise squares with
 * `"none"`. Composed of `sub`, `square` and `mean`/`sum`, so it needs no VJP
 * of its own. `a` and `b` must have the same shape: a broadcast here (a
 * `[N, 1]` prediction against an `[N]` target) would silently compare every
 * prediction with every target.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, mseLoss } from "@denograd/denograd";
 * const g = new Graph();
 * const loss = mseLoss(g.input("pred", [-1, 1]), g.input("y", [-1, 1]));
 * assert.deepEqual(loss.shape, []);
 * ```
 */
export function mseLoss(
  a: Node,
  b: Node,
  opts: { reduction?: Reduction; name?: string } = {},
): Node {
  const reduction = opts.reduction ?? "mean";
  const what = `mse_loss "${opts.name ?? "mse_loss"}"`;
  if (a.shape.join() !== b.shape.join()) {
    throw new Error(
      `${what}: a "${a.name}" has shape ${fmtShape(a.shape)} but b "${b.name}" has ${
        fmtShape(b.shape)
      }; they must match`,
    );
  }
  if (reduction !== "mean" && reduction !== "sum" && reduction !== "none") {
    throw new Error(
      `${what}: reduction must be "mean", "sum" or "none", got ${JSON.stringify(reduction)}`,
    );
  }
  const sq = square(sub(a, b), reduction === "none" ? { name: opts.name } : {});
  if (reduction === "none") return sq;
  return (reduction === "sum" ? sum : mean)(sq, { name: opts.name });
}
