import type { Node } from "../graph/graph.ts";
import { gemm } from "./kernels/gemm.ts";
import { gemmScratch } from "./kernels/gemm_wasm.ts";
import { numel, type OpDef, registerOp } from "../graph/op.ts";

/** Attributes of `matmul` (both default to false). */
export interface MatmulAttrs {
  /** Use `a` transposed: `a` is stored as `[K, M]`. */
  transA?: boolean;
  /** Use `b` transposed: `b` is stored as `[N, K]`. */
  transB?: boolean;
}

/**
 * 2-D matrix product `op(a) · op(b)`, `op` transposing when asked.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { matmulOp } from "@denograd/denograd";
 * assert.deepEqual(matmulOp.shape([[-1, 10], [10, 5408]], {}), [-1, 5408]);
 * ```
 */
export const matmulOp: OpDef<MatmulAttrs> = registerOp<MatmulAttrs>({
  name: "matmul",
  inputs: ["a", "b"],
  shape: ([a, b], { transA, transB }) => {
    if (a!.length !== 2 || b!.length !== 2) throw new Error("both operands must be 2-D");
    const [m, ka] = transA ? [a![1]!, a![0]!] : [a![0]!, a![1]!];
    const [kb, n] = transB ? [b![1]!, b![0]!] : [b![0]!, b![1]!];
    if (ka !== kb) throw new Error(`inner sizes differ (${ka} and ${kb})`);
    return [m, n];
  },
  // GEMM workspace and room to copy a or b into the arena (see gemmScratch)
  scratch: ([a, b]) => gemmScratch([numel(a!), numel(b!)]),
  // a: (M, K) or (K, M), b: (K, N) or (N, K) -> out: (M, N)
  forward([a, b], out, c) {
    const { transA, transB } = c.attrs;
    const [m, n] = c.outShape as [number, number];
    const k = transA ? c.inShapes[0]![0]! : c.inShapes[0]![1]!;
    gemm(a!, b!, out, { m, n, k, transA, transB }, c.tier);
  },
  // dA = dY·op(B)ᵀ, dB = op(A)ᵀ·dY, written for each stored layout
  vjp: ({ inputs: [a, b], dy, attrs: { transA = false, transB = false } }) => [
    transA ? matmul(b!, dy, { transA: transB, transB: true }) : matmul(dy, b!, { transB: !transB }),
    transB ? matmul(dy, a!, { transA: true, transB: transA }) : matmul(a!, dy, { transA: !transA }),
  ],
});

/**
 * Matrix product of 2-D nodes, optionally transposing either operand.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, matmul } from "@denograd/denograd";
 * const g = new Graph();
 * const y = matmul(g.input("a", [-1, 3]), g.input("b", [4, 3]), { transB: true });
 * assert.deepEqual(y.shape, [-1, 4]);
 * ```
 */
export function matmul(a: Node, b: Node, opts: MatmulAttrs & { name?: string } = {}): Node {
  const attrs: MatmulAttrs = {};
  if (opts.transA) attrs.transA = true;
  if (opts.transB) attrs.transB = true;
  return a.graph.apply(matmulOp, [a, b], attrs, opts.name);
}
