// ONNX Runtime (its CPU build ships inside the npm package) and the helpers the
// ONNX tests share: run a file there, run a graph here, compare the two.
import * as ort from "npm:onnxruntime-node@1.30.0";
import assert from "node:assert/strict";
import { Executor } from "../../../graph/executor.ts";
import type { Graph, Node } from "../../../graph/graph.ts";
import type { Params } from "../../../graph/params.ts";
import { makePlan } from "../../../graph/plan.ts";

/** Runs ONNX bytes in ONNX Runtime on one float input; returns the first output. */
export async function runOrt(
  bytes: Uint8Array,
  input: string,
  data: Float32Array,
  shape: number[],
): Promise<{ data: Float32Array; dims: number[] }> {
  const s = await ort.InferenceSession.create(bytes);
  try {
    const out = await s.run({ [input]: new ort.Tensor("float32", data, shape) });
    const t = out[s.outputNames[0]!]!;
    return { data: t.data as Float32Array, dims: [...t.dims] };
  } finally {
    await s.release();
  }
}

/** Evaluates `output` of `graph` (evaluation mode) for a batch fed to `input`. */
export function runHere(
  graph: Graph,
  output: Node,
  params: Params,
  input: string,
  data: ArrayLike<number>,
  batch: number,
): Float32Array {
  const ex = new Executor(makePlan(graph, { batch, outputs: [output], prune: true }), { params });
  return Float32Array.from(ex.run({ [input]: data }, { training: false })[0]!);
}

/** Largest absolute difference of two equally long arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, "compared arrays differ in length");
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

/** Index of the largest value in each row of `cols` values. */
export function argmaxRows(a: ArrayLike<number>, cols: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < a.length / cols; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (a[r * cols + c]! > a[r * cols + best]!) best = c;
    out.push(best);
  }
  return out;
}

/** Deterministic inputs in [0, 1): a smooth pattern with some structure per sample. */
export function pattern(n: number, seed = 1): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => 0.5 + 0.5 * Math.sin(i * 0.731 + seed * 1.37));
}
