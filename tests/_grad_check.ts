// The shared finite-difference checker lives in the library (graph/grad_check.ts);
// this module re-exports it beside the tests' random tensors.
import type { Tensor } from "../graph/tensor.ts";
import { uniformArray } from "./_rng.ts";

export {
  type CheckOptions,
  type CheckReport,
  checkVjp,
  recordVjpCoverage,
} from "../graph/grad_check.ts";
export { rng } from "./_rng.ts";

/** A float64 tensor with uniform values in [lo, hi). */
export function randTensor(shape: number[], seed: number, lo = -1, hi = 1): Tensor<Float64Array> {
  return { shape, data: uniformArray(shape.reduce((a, b) => a * b, 1), seed, lo, hi) };
}
