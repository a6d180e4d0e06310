import type { Node } from "../graph/graph.ts";
import { conv2dFast } from "./kernels/conv2d_fast.ts";
import { type Conv2dDims, conv2dRef } from "./kernels/conv2d_ref.ts";
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

/** Throws unless stride is a positive and padding a non-negative whole number. */
function checkGeometry(stride: number, padding: number): void {
  if (!Number.isInteger(stride) || stride < 1) {
    throw new Error(`stride must be a positive whole number, got ${stride}`);
  }
  if (!Number.isInteger(padding) || padding < 0) {
    throw new Error(`padding must be a non-negative whole number, got ${padding}`);
  }
}

/** Output side of a convolution: ⌊(size + 2·padding − k) / stride⌋ + 1. */
function outSize(size: number, k: number, stride: number, padding: number): number {
  return Math.floor((size + 2 * padding - k) / stride) + 1;
}

function conv2dShape([x, w, b]: Shape[], { stride, padding }: Conv2dAttrs): number[] {
  checkGeometry(stride, padding);
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
  return [n, oc, outSize(h, kh, stride, padding), outSize(wd, kw, stride, padding)];
}

/** 2-D convolution (cross-correlation, like PyTorch) over NCHW input with zero padding. */
export const conv2dOp: OpDef<Conv2dAttrs> = registerOp<Conv2dAttrs>({
  name: "conv2d",
  inputs: ["x", "w", "b?"],
  shape: conv2dShape,
  // x: (N, C, H, W), w: (OC, C, KH, KW), b: (OC) -> y: (N, OC, OH, OW)
  forward([x, w, b], y, c) {
    const [n, ch, h, wd] = c.inShapes[0]!;
    const [oc, , kh, kw] = c.inShapes[1]!;
    const d: Conv2dDims = {
      n: n!,
      c: ch!,
      h: h!,
      w: wd!,
      oc: oc!,
      kh: kh!,
      kw: kw!,
      oh: c.outShape[2]!,
      ow: c.outShape[3]!,
      stride: c.attrs.stride,
      padding: c.attrs.padding,
    };
    // float64 (gradient checks) and the "ref" tier run the naive loops
    if (y instanceof Float64Array || c.tier === "ref") conv2dRef(x!, w!, b ?? null, y, d);
    else {
      conv2dFast(
        x as Float32Array,
        w as Float32Array,
        (b ?? null) as Float32Array | null,
        y,
        d,
        c.tier,
      );
    }
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
 * import { conv2d, Graph } from "@denograd/denograd";
 * const g = new Graph();
 * const x = g.input("x", [-1, 1, 28, 28]);
 * const w = g.param("conv1.weight", [32, 1, 3, 3], { kind: "uniform", bound: 0.3 });
 * const b = g.param("conv1.bias", [32], { kind: "uniform", bound: 0.3 });
 * console.log(conv2d(x, w, b).shape); // [-1, 32, 26, 26]
 * console.log(conv2d(x, w, b, { stride: 2, padding: 1 }).shape); // [-1, 32, 14, 14]
 * ```
 */
export function conv2d(x: Node, w: Node, b?: Node | null, opts: Conv2dOptions = {}): Node {
  const attrs: Conv2dAttrs = { stride: opts.stride ?? 1, padding: opts.padding ?? 0 };
  return x.graph.apply(conv2dOp, b ? [x, w, b] : [x, w], attrs, opts.name);
}
