// Floating-point operations of one training step, counted from a plan's
// concrete shapes: the multiply-adds of the GEMM-like ops (each counted as 2),
// which dominate; elementwise work is left out, so GFLOP/s compare with the
// anchors' figures, which count the same way.
import type { Plan } from "../graph/plan.ts";

/** FLOPs of one run of every node of `plan` that is a convolution or a matrix product. */
export function stepFlops(plan: Plan): number {
  let total = 0;
  const g = plan.graph;
  g.nodes.forEach((r, i) => {
    const out = plan.shapes[i]!;
    const ins = r.inputs.map((j) => plan.shapes[j]!);
    switch (r.op) {
      case "conv2d": {
        const [, c, kh, kw] = ins[1]!;
        total += 2 * out.reduce((a, b) => a * b, 1) * c! * kh! * kw!;
        break;
      }
      case "conv2d_backward_input": {
        // dy: (N, OC, OH, OW), w: (OC, C, KH, KW)
        const dy = ins[0]!, w = ins[1]!;
        total += 2 * dy.reduce((a, b) => a * b, 1) * w[1]! * w[2]! * w[3]!;
        break;
      }
      case "conv2d_backward_filter": {
        // x: (N, C, H, W), dy: (N, OC, OH, OW) -> dw: (OC, C, KH, KW)
        const dy = ins[1]!;
        total += 2 * dy.reduce((a, b) => a * b, 1) * out[1]! * out[2]! * out[3]!;
        break;
      }
      case "linear":
        total += 2 * out[0]! * out[1]! * ins[0]![1]!;
        break;
      case "matmul": {
        const a = ins[0]!;
        const k = r.attrs.transA ? a[0]! : a[1]!;
        total += 2 * out[0]! * out[1]! * k;
        break;
      }
    }
  });
  return total;
}
