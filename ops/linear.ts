import type { Node } from "../graph/graph.ts";
import { gemm } from "./kernels/gemm.ts";
import { gemmScratch } from "./kernels/gemm_wasm.ts";
import { numel, type OpDef, registerOp } from "../graph/op.ts";
import { matmul } from "./matmul.ts";
import { sum } from "./sum.ts";

/**
 * Fully connected layer `y = x·Wᵀ + b` with PyTorch's weight layout `[out, in]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { linearOp } from "@denograd/denograd";
 * assert.deepEqual(linearOp.shape([[-1, 5408], [10, 5408], [10]], {}), [-1, 10]);
 * ```
 */
export const linearOp: OpDef = registerOp({
  name: "linear",
  inputs: ["x", "w", "b?"],
  shape: ([x, w, b]) => {
    if (x!.length !== 2) throw new Error("x must be 2-D [batch, in]");
    if (w!.length !== 2) throw new Error("w must be 2-D [out, in]");
    if (x![1] !== w![1]) throw new Error(`x has ${x![1]} features but w expects ${w![1]}`);
    if (b && (b.length !== 1 || b[0] !== w![0])) throw new Error(`b must be [${w![0]}]`);
    return [x![0]!, w![0]!];
  },
  // GEMM workspace and room to copy x or w into the arena (see gemmScratch)
  scratch: ([x, w]) => gemmScratch([numel(x!), numel(w!)]),
  // x: (N, IN), w: (OUT, IN), b: (OUT) -> y: (N, OUT)
  forward([x, w, b], y, c) {
    const [n, out] = c.outShape as [number, number];
    const k = c.inShapes[0]![1]!;
    gemm(x!, w!, y, { m: n, n: out, k, transB: true }, c.tier);
    if (b) {
      for (let i = 0; i < n; i++) {
        const row = i * out;
        for (let j = 0; j < out; j++) y[row + j] = y[row + j]! + b[j]!;
      }
    }
  },
  // dx = dy·W, dW = dyᵀ·x, db = Σ_n dy
  vjp: ({ inputs: [x, w, b], dy, needs }) => [
    needs[0] ? matmul(dy, w!) : null,
    matmul(dy, x!, { transA: true }),
    b ? sum(dy, { axes: [0] }) : null,
  ],
});

/**
 * Fully connected layer, like `torch.nn.functional.linear`: `x [N, in]`,
 * `w [out, in]`, optional `b [out]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, linear } from "@denograd/denograd";
 * const g = new Graph();
 * const x = g.input("x", [-1, 5408]);
 * const w = g.param("fc.weight", [10, 5408], { kind: "uniform", bound: 0.01 });
 * const b = g.param("fc.bias", [10], { kind: "uniform", bound: 0.01 });
 * assert.deepEqual(linear(x, w, b).shape, [-1, 10]);
 * ```
 */
export function linear(x: Node, w: Node, b?: Node | null, opts: { name?: string } = {}): Node {
  return x.graph.apply(linearOp, b ? [x, w, b] : [x, w], {}, opts.name);
}
