import type { Node } from "../graph/graph.ts";
import { fmtShape, type OpDef, registerOp, type Shape } from "../graph/op.ts";
import { arenaSet } from "./kernels/elementwise_wasm.ts";

/** Attributes of `reshape`. */
export interface ReshapeAttrs {
  /** Target shape; at most one `-1`, which is inferred. */
  shape: number[];
}

/**
 * Output shape of a reshape; `-1` in `target` is inferred, and a symbolic batch stays one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reshapeShape } from "@denograd/denograd";
 * assert.deepEqual(reshapeShape([2, 3, 4], [-1, 4]), [6, 4]);
 * assert.deepEqual(reshapeShape([-1, 1, 28, 28], [-1, 784]), [-1, 784]); // still a batch
 * assert.throws(() => reshapeShape([2, 3], [4, -1]), /cannot infer the -1 axis of \[4,-1\] from 6 elements/);
 * ```
 */
export function reshapeShape(input: Shape, target: readonly number[]): number[] {
  const infer = target.filter((d) => d === -1).length;
  if (infer > 1 || target.some((d) => d < -1 || !Number.isInteger(d))) {
    throw new Error(`target shape [${target}] may hold at most one -1 and whole sizes`);
  }
  const symbolic = input.includes(-1);
  let known = 1;
  for (const d of input) if (d !== -1) known *= d;
  let rest = 1;
  for (const d of target) if (d !== -1) rest *= d;
  if (symbolic) {
    // a batch-sized input can only keep the batch axis whole: N*known = (-1)*rest
    if (infer !== 1 || known !== rest) {
      throw new Error(`cannot reshape a batch of ${known}-element samples to [${target}]`);
    }
    return [...target];
  }
  if (infer === 1) {
    if (rest === 0 || known % rest !== 0) {
      throw new Error(`cannot infer the -1 axis of [${target}] from ${known} elements`);
    }
    return target.map((d) => (d === -1 ? known / rest : d));
  }
  if (known !== rest) throw new Error(`${known} elements cannot take the shape [${target}]`);
  return [...target];
}

/**
 * The same elements under a new shape (row-major, like `torch.reshape`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reshapeOp } from "@denograd/denograd";
 * assert.deepEqual(reshapeOp.shape([[-1, 32, 13, 13]], { shape: [-1, 5408] }), [-1, 5408]);
 * ```
 */
export const reshapeOp: OpDef<ReshapeAttrs> = registerOp<ReshapeAttrs>({
  name: "reshape",
  inputs: ["x"],
  shape: ([x], { shape }) => reshapeShape(x!, shape),
  forward([x], out) {
    // a wasm copy on a shared arena, where TypedArray.set is slow
    arenaSet(out, x!);
  },
  // dx = reshape(dy, shape of x)
  vjp: ({ inputs: [x], dy }) => [reshape(dy, x!.shape)],
});

/**
 * Reshapes `x`; one axis may be `-1` and is inferred (with a batch-sized
 * input, the `-1` is the batch axis).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, reshape } from "@denograd/denograd";
 * const g = new Graph();
 * assert.deepEqual(reshape(g.input("x", [-1, 2, 3]), [-1, 6]).shape, [-1, 6]);
 * ```
 */
export function reshape(x: Node, shape: readonly number[], opts: { name?: string } = {}): Node {
  return x.graph.apply(reshapeOp, [x], { shape: [...shape] }, opts.name);
}

/**
 * Flattens every axis from `startAxis` (default 1, keeping the batch axis) into one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { flatten, Graph } from "@denograd/denograd";
 * const g = new Graph();
 * assert.deepEqual(flatten(g.input("x", [-1, 32, 13, 13])).shape, [-1, 5408]);
 * ```
 */
export function flatten(x: Node, opts: { startAxis?: number; name?: string } = {}): Node {
  const s = opts.startAxis ?? 1;
  const head = x.shape.slice(0, s);
  let tail = 1;
  for (const d of x.shape.slice(s)) tail *= d;
  if (x.shape.slice(s).includes(-1)) {
    throw new Error(
      `flatten "${opts.name ?? "flatten"}": cannot flatten the batch axis of ${
        fmtShape(x.shape)
      } (startAxis ${s})`,
    );
  }
  const target = head.includes(-1) ? [...head, tail] : [...head, -1];
  return reshape(x, target, opts);
}
