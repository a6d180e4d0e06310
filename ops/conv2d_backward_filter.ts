import type { Node } from "../graph/graph.ts";
import { conv2dBackwardFilterFast, conv2dFastScratch } from "./kernels/conv2d_fast.ts";
import { conv2dBackwardFilterRef } from "./kernels/conv2d_ref.ts";
import { registerAssistOp } from "./kernels/assist.ts";
import { runKernel } from "./kernels/tier.ts";
import {
  winogradBackwardFilterWasm,
  winogradFilterScratch,
} from "./kernels/winograd_filter_wasm.ts";
import { winogradEnabled } from "./kernels/winograd_wasm.ts";
import { fmtShape, type OpDef, registerOp, type Shape } from "../graph/op.ts";
import { applyConvOp, checkGeometry, checkOutputSize, conv2dDims } from "./_conv.ts";

/** Attributes of `conv2d_backward_filter`: the forward convolution's geometry. */
export interface Conv2dBackwardFilterAttrs {
  /** The forward convolution's stride. */
  stride: number;
  /** The forward convolution's zero padding on each side. */
  padding: number;
  /** `[KH, KW]` of the filter: with stride > 1, x's and dy's sizes do not determine it. */
  kernelSize: [number, number];
  /**
   * `false` keeps the wasm tier on the direct (im2col + GEMM) kernel for
   * this node; by default 3×3 stride-1 filters with ≥ 4 channels each way
   * go through Winograd unless it is switched off for the process
   * (`--no-winograd`), see `kernels/winograd_filter_wasm.ts`.
   */
  winograd?: boolean;
}

function backwardFilterShape([x, dy]: Shape[], attrs: Conv2dBackwardFilterAttrs): number[] {
  checkGeometry(attrs);
  const { kernelSize } = attrs;
  const [kh, kw] = kernelSize ?? [];
  if (!Number.isInteger(kh) || !Number.isInteger(kw) || kh! < 1 || kw! < 1) {
    throw new Error(
      `kernelSize must be [KH, KW] with positive sizes, got ${JSON.stringify(kernelSize)}`,
    );
  }
  if (x!.length !== 4) throw new Error(`x must be 4-D [N,C,H,W], got ${fmtShape(x!)}`);
  if (dy!.length !== 4) throw new Error(`dy must be 4-D [N,OC,OH,OW], got ${fmtShape(dy!)}`);
  const [n, c, h, w] = x as [number, number, number, number];
  const [dn, oc, oh, ow] = dy as [number, number, number, number];
  // the builder appends both shapes, which show the two batch sizes
  if (n !== dn) throw new Error("x and dy must have the same batch size");
  checkOutputSize([h, w], [kh!, kw!], [oh, ow], attrs);
  return [oc, c, kh!, kw!];
}

/**
 * The VJP of {@linkcode conv2dOp} in its filter: `dw` from the input and `dy`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { conv2dBackwardFilterOp } from "@denograd/denograd";
 * // the filter shape: summed over the batch
 * assert.deepEqual(conv2dBackwardFilterOp.shape([[-1, 1, 28, 28], [-1, 32, 26, 26]], { stride: 1, padding: 0, kernelSize: [3, 3] }), [32, 1, 3, 3]);
 * ```
 */
export const conv2dBackwardFilterOp: OpDef<Conv2dBackwardFilterAttrs> = registerOp<
  Conv2dBackwardFilterAttrs
>({
  name: "conv2d_backward_filter",
  inputs: ["x", "dy"],
  shape: backwardFilterShape,
  // im2col columns and GEMM workspace in the arena (see conv2dFastScratch), or
  // the Winograd kernel's staged tiles and accumulators (winogradFilterScratch)
  scratch: ([x, dy], attrs, dw) => {
    const d = conv2dDims(x!, dw, dy!, attrs);
    const wino = attrs.winograd === false ? 0 : winogradFilterScratch(d);
    return Math.max(conv2dFastScratch(d, "filter"), wino);
  },
  // x: (N, C, H, W), dy: (N, OC, OH, OW) -> dw: (OC, C, KH, KW),
  // dw[oc,c,i',j'] = Σ_{s,i,j} dy[s,oc,i,j] · x[s,c,i·stride+i'−p, j·stride+j'−p]
  forward([x, dy], dw, c) {
    const d = conv2dDims(c.inShapes[0]!, c.outShape, c.inShapes[1]!, c.attrs);
    const [x32, dy32, dw32] = [x, dy, dw] as Float32Array[];
    runKernel(dw, c.tier, {
      ref: () => conv2dBackwardFilterRef(x!, dy!, dw, d),
      ts: () => conv2dBackwardFilterFast(x32!, dy32!, dw32!, d, "ts"),
      wasm: () => {
        // off by attribute, or for the whole thread (--no-winograd, see setWinogradEnabled)
        const on = c.attrs.winograd !== false && winogradEnabled();
        if (on && winogradBackwardFilterWasm(x32!, dy32!, dw32!, d)) return;
        conv2dBackwardFilterFast(x32!, dy32!, dw32!, d, "wasm");
      },
    });
  },
  // bilinear in (x, dy), the adjoint of conv2d in w:
  // dx = conv2dBackwardInput(dy, ddw), d(dy) = conv2d(x, ddw)
  vjp: ({ inputs: [x, dy], dy: ddw, attrs: { stride, padding } }) => [
    applyConvOp("conv2d_backward_input", [dy!, ddw], {
      stride,
      padding,
      inputSize: [x!.shape[2]!, x!.shape[3]!],
    }),
    applyConvOp("conv2d", [x!, ddw], { stride, padding }),
  ],
});

// its Winograd kernel's image groups are jobs other threads of a pool may help with, where the
// Winograd filter gradient serves the sizes
registerAssistOp(
  "conv2d_backward_filter",
  ([x, dy], attrs, dw) =>
    attrs.winograd !== false && winogradFilterScratch(conv2dDims(x!, dw, dy!, attrs)) > 0,
);

/** Options of {@linkcode conv2dBackwardFilter}. */
export interface Conv2dBackwardFilterOptions {
  /** `[KH, KW]` of the forward convolution's filter. */
  kernelSize: [number, number];
  /** The forward convolution's stride (default 1). */
  stride?: number;
  /** The forward convolution's zero padding (default 0). */
  padding?: number;
  /** `false` keeps the wasm tier off Winograd (see {@linkcode Conv2dBackwardFilterAttrs}). */
  winograd?: boolean;
  /** Node name. */
  name?: string;
}

/**
 * The gradient of {@linkcode conv2d} with respect to its filter: from
 * `x [N, C, H, W]` and `dy [N, OC, OH, OW]`, `dw [OC, C, KH, KW]`, summed
 * over the batch. `kernelSize` gives `[KH, KW]`, which a strided
 * convolution's sizes do not determine.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { conv2dBackwardFilter, Graph } from "@denograd/denograd";
 * const g = new Graph();
 * const x = g.input("x", [-1, 1, 28, 28]);
 * const dy = g.input("dy", [-1, 32, 26, 26]);
 * assert.deepEqual(conv2dBackwardFilter(x, dy, { kernelSize: [3, 3] }).shape, [32, 1, 3, 3]);
 * ```
 */
export function conv2dBackwardFilter(
  x: Node,
  dy: Node,
  opts: Conv2dBackwardFilterOptions,
): Node {
  const attrs: Conv2dBackwardFilterAttrs = {
    stride: opts.stride ?? 1,
    padding: opts.padding ?? 0,
    kernelSize: opts.kernelSize && [opts.kernelSize[0], opts.kernelSize[1]],
  };
  if (opts.winograd === false) attrs.winograd = false;
  return x.graph.apply(conv2dBackwardFilterOp, [x, dy], attrs, opts.name);
}
