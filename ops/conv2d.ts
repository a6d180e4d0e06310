import type { Node } from "../graph/graph.ts";
import { conv2dFast, conv2dFastScratch } from "./kernels/conv2d_fast.ts";
import { conv2dRef } from "./kernels/conv2d_ref.ts";
import { conv2dWinogradWasm, winogradScratch } from "./kernels/winograd_wasm.ts";
import { runKernel } from "./kernels/tier.ts";
import { registerAssistOp } from "./kernels/assist.ts";
import { checkGeometry, conv2dDims, convOutSize } from "./_conv.ts";
import { fmtShape, type OpDef, registerOp, type Shape } from "../graph/op.ts";
import { conv2dBackwardFilter } from "./conv2d_backward_filter.ts";
import { conv2dBackwardInput } from "./conv2d_backward_input.ts";
import { sum } from "./sum.ts";

/** Attributes of `conv2d`. */
export interface Conv2dAttrs {
  /** Step between filter positions, in both directions (at least 1). */
  stride: number;
  /** Zeros added on each side of the input, in both directions. */
  padding: number;
}

function conv2dShape([x, w, b]: Shape[], attrs: Conv2dAttrs): number[] {
  checkGeometry(attrs);
  const { padding } = attrs;
  if (x!.length !== 4) throw new Error(`x must be 4-D [N,C,H,W], got ${fmtShape(x!)}`);
  if (w!.length !== 4) throw new Error(`w must be 4-D [OC,C,KH,KW], got ${fmtShape(w!)}`);
  const [n, c, h, wd] = x as [number, number, number, number];
  const [oc, wc, kh, kw] = w as [number, number, number, number];
  if (c !== wc) throw new Error(`input has ${c} channels but the filter expects ${wc}`);
  if (b && (b.length !== 1 || b[0] !== oc)) {
    throw new Error(`the bias must be [${oc}], one value per output channel, got ${fmtShape(b)}`);
  }
  if (h + 2 * padding < kh || wd + 2 * padding < kw) {
    throw new Error(
      `the ${kh}x${kw} filter does not fit in the ${h}x${wd} input padded by ${padding}`,
    );
  }
  return [n, oc, convOutSize(h, kh, attrs), convOutSize(wd, kw, attrs)];
}

/**
 * 2-D convolution (cross-correlation, like PyTorch) over NCHW input with zero padding.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { conv2dOp } from "@denograd/denograd";
 * // a 3×3 filter without padding: 28 → 26; -1 stays the batch axis
 * assert.deepEqual(conv2dOp.shape([[-1, 1, 28, 28], [32, 1, 3, 3], [32]], { stride: 1, padding: 0 }), [-1, 32, 26, 26]);
 * ```
 */
export const conv2dOp: OpDef<Conv2dAttrs> = registerOp<Conv2dAttrs>({
  name: "conv2d",
  inputs: ["x", "w", "b?"],
  shape: conv2dShape,
  // im2col columns and GEMM workspace, or Winograd's buffers, in the arena
  scratch: ([x, w], attrs, y) => {
    const d = conv2dDims(x!, w!, y, attrs);
    return Math.max(conv2dFastScratch(d, "forward"), winogradScratch(d, "forward"));
  },
  // x: (N, C, H, W), w: (OC, C, KH, KW), b: (OC) -> y: (N, OC, OH, OW)
  forward([x, w, b], y, c) {
    const d = conv2dDims(c.inShapes[0]!, c.inShapes[1]!, c.outShape, c.attrs);
    const [x32, w32, b32, y32] = [x, w, b ?? null, y] as Float32Array[];
    runKernel(y, c.tier, {
      ref: () => conv2dRef(x!, w!, b ?? null, y, d),
      ts: () => conv2dFast(x32!, w32!, b32!, y32!, d, "ts"),
      // Winograd for 3×3 stride-1 layers with enough channels, else im2col + GEMM
      wasm: () =>
        conv2dWinogradWasm(x32!, w32!, b32 ?? null, y32!, d) ||
        conv2dFast(x32!, w32!, b32!, y32!, d, "wasm"),
    });
  },
  // dx = conv2dBackwardInput(dy, w), dw = conv2dBackwardFilter(x, dy), db = Σ_{n,oh,ow} dy
  vjp: ({ inputs: [x, w, b], dy, attrs: { stride, padding }, needs }) => [
    // the first layer's input is data: no backprop-to-input node for it
    needs[0]
      ? conv2dBackwardInput(dy, w!, { stride, padding, inputSize: [x!.shape[2]!, x!.shape[3]!] })
      : null,
    conv2dBackwardFilter(x!, dy, { stride, padding, kernelSize: [w!.shape[2]!, w!.shape[3]!] }),
    b ? sum(dy, { axes: [0, 2, 3] }) : null,
  ],
});

// its Winograd kernel opens a job per call on a pool thread's shared arena (images are chunks),
// where Winograd serves the sizes
registerAssistOp(
  conv2dOp.name,
  ([x, w], attrs, y) => winogradScratch(conv2dDims(x!, w!, y, attrs), "forward") > 0,
);

/** Options of {@linkcode conv2d}. */
export interface Conv2dOptions {
  /** Step between filter positions, in both directions (default 1). */
  stride?: number;
  /** Zeros added on each side of the input, in both directions (default 0). */
  padding?: number;
  /** Node name. */
  name?: string;
}

/**
 * 2-D convolution, like `torch.nn.functional.conv2d`: `x [N, C, H, W]`,
 * `w [OC, C, KH, KW]`, optional `b [OC]`, zero padding; the output is
 * `[N, OC, ⌊(H + 2p − KH)/s⌋ + 1, ⌊(W + 2p − KW)/s⌋ + 1]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { conv2d, Graph } from "@denograd/denograd";
 * const g = new Graph();
 * const x = g.input("x", [-1, 1, 28, 28]);
 * const w = g.param("conv1.weight", [32, 1, 3, 3], { kind: "uniform", bound: 0.3 });
 * const b = g.param("conv1.bias", [32], { kind: "uniform", bound: 0.3 });
 * assert.deepEqual(conv2d(x, w, b).shape, [-1, 32, 26, 26]);
 * assert.deepEqual(conv2d(x, w, b, { stride: 2, padding: 1 }).shape, [-1, 32, 14, 14]);
 * ```
 */
export function conv2d(x: Node, w: Node, b?: Node | null, opts: Conv2dOptions = {}): Node {
  const attrs: Conv2dAttrs = { stride: opts.stride ?? 1, padding: opts.padding ?? 0 };
  return x.graph.apply(conv2dOp, b ? [x, w, b] : [x, w], attrs, opts.name);
}
