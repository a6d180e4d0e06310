// Reference ReLU kernels, generic over the float width: the specification
// the branch-free float32 kernels (relu_fast.ts) are tested against.
import type { FloatArray } from "../../graph/op.ts";

// x: (n) -> y: (n); NaN passes through, as in PyTorch
/**
 * `y = max(x, 0)` elementwise, NaN kept.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reluRef } from "./relu_ref.ts";
 * const y = new Float64Array(3);
 * reluRef(new Float64Array([-1, 2, NaN]), y);
 * assert.deepEqual([...y], [0, 2, NaN]);
 * ```
 */
export function reluRef(x: FloatArray, y: FloatArray): void {
  for (let i = 0; i < y.length; i++) {
    const v = x[i]!;
    y[i] = v > 0 || v !== v ? v : 0;
  }
}

// x, dy: (n) -> dx: (n)
/**
 * `dx = x > 0 ? dy : 0` elementwise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reluBackwardRef } from "./relu_ref.ts";
 * const dx = new Float64Array(2);
 * reluBackwardRef(new Float64Array([-1, 2]), new Float64Array([3, 3]), dx);
 * assert.deepEqual([...dx], [0, 3]);
 * ```
 */
export function reluBackwardRef(x: FloatArray, dy: FloatArray, dx: FloatArray): void {
  for (let i = 0; i < dx.length; i++) dx[i] = x[i]! > 0 ? dy[i]! : 0;
}
