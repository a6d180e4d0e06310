import type { Node } from "../graph/graph.ts";
import { conv2dBackwardInputFast, conv2dFastScratch } from "./kernels/conv2d_fast.ts";
import { conv2dBackwardInputRef } from "./kernels/conv2d_ref.ts";
import { conv2dBackwardInputWinogradWasm, winogradScratch } from "./kernels/winograd_wasm.ts";
import { runKernel } from "./kernels/tier.ts";
import { registerAssistOp } from "./kernels/assist.ts";
import { fmtShape, type OpDef, registerOp, type Shape } from "../graph/op.ts";
import { applyConvOp, checkGeometry, checkOutputSize, conv2dDims } from "./_conv.ts";

/** Attributes of `conv2d_backward_input`: the forward convolution's geometry. */
export interface Conv2dBackwardInputAttrs {
  /** The forward convolution's stride. */
  stride: number;
  /** The forward convolution's zero padding on each side. */
  padding: number;
  /** `[H, W]` of the convolution's input: with stride > 1, dy's size does not determine it. */
  inputSize: [number, number];
}

function backwardInputShape([dy, w]: Shape[], attrs: Conv2dBackwardInputAttrs): number[] {
  checkGeometry(attrs);
  const { inputSize } = attrs;
  const [h, wd] = inputSize ?? [];
  if (!Number.isInteger(h) || !Number.isInteger(wd) || h! < 1 || wd! < 1) {
    throw new Error(
      `inputSize must be [H, W] with positive sizes, got ${JSON.stringify(inputSize)}`,
    );
  }
  if (dy!.length !== 4) throw new Error(`dy must be 4-D [N,OC,OH,OW], got ${fmtShape(dy!)}`);
  if (w!.length !== 4) throw new Error(`w must be 4-D [OC,C,KH,KW], got ${fmtShape(w!)}`);
  const [n, oc, oh, ow] = dy as [number, number, number, number];
  const [woc, c, kh, kw] = w as [number, number, number, number];
  if (oc !== woc) throw new Error(`dy has ${oc} channels but the filter has ${woc} outputs`);
  checkOutputSize([h!, wd!], [kh, kw], [oh, ow], attrs);
  return [n, c, h!, wd!];
}

/**
 * The VJP of {@linkcode conv2dOp} in its input: `dx` from `dy` and the filter.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { conv2dBackwardInputOp } from "@denograd/denograd";
 * // back to the input size the attribute keeps
 * assert.deepEqual(conv2dBackwardInputOp.shape([[-1, 64, 24, 24], [64, 32, 3, 3]], { stride: 1, padding: 0, inputSize: [26, 26] }), [-1, 32, 26, 26]);
 * ```
 */
export const conv2dBackwardInputOp: OpDef<Conv2dBackwardInputAttrs> = registerOp<
  Conv2dBackwardInputAttrs
>({
  name: "conv2d_backward_input",
  inputs: ["dy", "w"],
  shape: backwardInputShape,
  // column gradients and GEMM workspace in the arena (see conv2dFastScratch)
  scratch: ([dy, w], attrs, dx) => {
    const d = conv2dDims(dx, w!, dy!, attrs);
    return Math.max(conv2dFastScratch(d, "input"), winogradScratch(d, "input"));
  },
  // dy: (N, OC, OH, OW), w: (OC, C, KH, KW) -> dx: (N, C, H, W),
  // dx[s,c,i·stride+i'−p, j·stride+j'−p] += Σ_oc dy[s,oc,i,j] · w[oc,c,i',j']
  forward([dy, w], dx, c) {
    const d = conv2dDims(c.outShape, c.inShapes[1]!, c.inShapes[0]!, c.attrs);
    const [dy32, w32, dx32] = [dy, w, dx] as Float32Array[];
    runKernel(dx, c.tier, {
      ref: () => conv2dBackwardInputRef(dy!, w!, dx, d),
      ts: () => conv2dBackwardInputFast(dy32!, w32!, dx32!, d, "ts"),
      // Winograd for 3×3 stride-1 layers with enough channels, else col2im + GEMM
      wasm: () =>
        conv2dBackwardInputWinogradWasm(dy32!, w32!, dx32!, d) ||
        conv2dBackwardInputFast(dy32!, w32!, dx32!, d, "wasm"),
    });
  },
  // bilinear in (dy, w), the adjoint of conv2d in x:
  // d(dy) = conv2d(ddx, w), dw = conv2dBackwardFilter(ddx, dy)
  vjp: ({ inputs: [dy, w], dy: ddx, attrs: { stride, padding } }) => [
    applyConvOp("conv2d", [ddx, w!], { stride, padding }),
    applyConvOp("conv2d_backward_filter", [ddx, dy!], {
      stride,
      padding,
      kernelSize: [w!.shape[2]!, w!.shape[3]!],
    }),
  ],
});

// its Winograd kernel opens a job per call on a pool thread's shared arena (images are chunks),
// where Winograd serves the sizes
registerAssistOp(
  conv2dBackwardInputOp.name,
  ([dy, w], attrs, dx) => winogradScratch(conv2dDims(dx, w!, dy!, attrs), "input") > 0,
);

/** Options of {@linkcode conv2dBackwardInput}. */
export interface Conv2dBackwardInputOptions {
  /** `[H, W]` of the forward convolution's input. */
  inputSize: [number, number];
  /** The forward convolution's stride (default 1). */
  stride?: number;
  /** The forward convolution's zero padding (default 0). */
  padding?: number;
  /** Node name. */
  name?: string;
}

/**
 * The gradient of {@linkcode conv2d} with respect to its input: from
 * `dy [N, OC, OH, OW]` and `w [OC, C, KH, KW]`, `dx [N, C, H, W]` (a
 * transposed convolution). `inputSize` gives `[H, W]`, which a strided
 * convolution's output size does not determine.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { conv2dBackwardInput, Graph } from "@denograd/denograd";
 * const g = new Graph();
 * const dy = g.input("dy", [-1, 32, 14, 14]);
 * const w = g.param("w", [32, 3, 3, 3], { kind: "uniform", bound: 0.2 });
 * const dx = conv2dBackwardInput(dy, w, { inputSize: [28, 28], stride: 2, padding: 1 });
 * assert.deepEqual(dx.shape, [-1, 3, 28, 28]);
 * ```
 */
export function conv2dBackwardInput(
  dy: Node,
  w: Node,
  opts: Conv2dBackwardInputOptions,
): Node {
  const attrs: Conv2dBackwardInputAttrs = {
    stride: opts.stride ?? 1,
    padding: opts.padding ?? 0,
    inputSize: opts.inputSize && [opts.inputSize[0], opts.inputSize[1]],
  };
  return dy.graph.apply(conv2dBackwardInputOp, [dy, w], attrs, opts.name);
}
