// Reference ReLU kernels, generic over the float width: the specification
// the branch-free float32 kernels (relu_fast.ts) are tested against.
import type { FloatArray } from "../../graph/op.ts";

// x: (n) -> y: (n); NaN passes through, as in PyTorch
/** `y = max(x, 0)` elementwise, NaN kept. */
export function reluRef(x: FloatArray, y: FloatArray): void {
  for (let i = 0; i < y.length; i++) {
    const v = x[i]!;
    y[i] = v > 0 || v !== v ? v : 0;
  }
}

// x, dy: (n) -> dx: (n)
/** `dx = x > 0 ? dy : 0` elementwise. */
export function reluBackwardRef(x: FloatArray, dy: FloatArray, dx: FloatArray): void {
  for (let i = 0; i < dx.length; i++) dx[i] = x[i]! > 0 ? dy[i]! : 0;
}
