/**
 * `vjp(fn, ...primals)`: trace a function of symbolic nodes into a static
 * graph, run it, and return its output with a backward function.
 *
 * @module
 */
import type { FloatArray } from "./op.ts";
import { Executor } from "./executor.ts";
import { Graph, type Node } from "./graph.ts";
import { grad } from "./grad.ts";
import { makePlan } from "./plan.ts";
import type { Tensor } from "./tensor.ts";

/** What {@linkcode vjp} returns. */
export interface VjpResult<T extends FloatArray> {
  /** The function's value at the primals. */
  out: Tensor<T>;
  /** Cotangents of the primals for a cotangent of the output (zeros where a primal is unused). */
  backward(cotangent: Tensor<T> | ArrayLike<number>): Tensor<T>[];
  /** The traced graph, forward and backward. */
  graph: Graph;
  /** The node of `fn`'s result in that graph. */
  outNode: Node;
  /** The executor, e.g. to count kernel runs. */
  executor: Executor;
}

/** Options of {@linkcode vjpWith}. */
export interface VjpOptions {
  /** Training mode for stochastic ops (default true). */
  training?: boolean;
  /** Step passed to stochastic ops (default 0). */
  step?: number;
}

/**
 * Traces `fn` over inputs shaped like `primals` into a static graph, adds its
 * backward nodes, runs the forward pass, and returns `{ out, backward }`.
 * Primals in float64 run the whole graph in float64 on the reference kernels.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mul, sum, tensor, vjp } from "@denograd/denograd";
 * const { out, backward } = vjp((x) => sum(mul(x, x)), tensor([1, 2, 3]));
 * assert.equal(out.data[0], 14);
 * assert.deepEqual([...backward([1])[0]!.data], [2, 4, 6]);
 * ```
 */
export function vjp<T extends FloatArray>(
  fn: (...xs: Node[]) => Node,
  ...primals: Tensor<T>[]
): VjpResult<T> {
  return vjpWith({}, fn, ...primals);
}

/**
 * {@linkcode vjp} with options for stochastic ops.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dropout, sum, tensor, vjpWith } from "@denograd/denograd";
 * // in evaluation mode dropout passes its input through, and so does its gradient
 * const { out, backward } = vjpWith({ training: false }, (x) => sum(dropout(x, { p: 0.5 })), tensor([1, 2, 3]));
 * assert.equal(out.data[0], 6);
 * assert.deepEqual([...backward([1])[0]!.data], [1, 1, 1]);
 * ```
 */
export function vjpWith<T extends FloatArray>(
  opts: VjpOptions,
  fn: (...xs: Node[]) => Node,
  ...primals: Tensor<T>[]
): VjpResult<T> {
  const dtype = primals.some((p) => p.data instanceof Float64Array) ? "float64" : "float32";
  const g = new Graph();
  const xs = primals.map((p, i) => g.input(`x${i}`, p.shape));
  const y = fn(...xs);
  if (!y || y.graph !== g) throw new Error("vjp: fn must return a node built from its arguments");
  const ct = g.input("cotangent", y.shape);
  const gs = grad(y, xs, { cotangent: ct });
  const live = gs.filter((d): d is Node => d !== null);
  const ex = new Executor(makePlan(g, { dtype, outputs: [y, ...live] }));
  const run = { training: opts.training ?? true, step: opts.step ?? 0 };
  const feeds = Object.fromEntries(primals.map((p, i) => [`x${i}`, p.data]));
  const [yv] = ex.run(feeds, { ...run, outputs: [y] });
  const make = (shape: readonly number[], data: FloatArray) =>
    ({ shape: [...shape], data: data.slice() as T }) as Tensor<T>;
  return {
    out: make(y.shape, yv!),
    backward(cotangent) {
      const data = "data" in cotangent ? cotangent.data : cotangent;
      const vals = live.length ? ex.run({ cotangent: data }, { ...run, outputs: live }) : [];
      let k = 0;
      return gs.map((d, i) => {
        if (d === null) {
          const z = dtype === "float64"
            ? new Float64Array(primals[i]!.data.length)
            : new Float32Array(primals[i]!.data.length);
          return make(primals[i]!.shape, z);
        }
        return make(primals[i]!.shape, vals[k++]!);
      });
    },
    graph: g,
    outNode: y,
    executor: ex,
  };
}
