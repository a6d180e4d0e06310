// Shared by conv2d and its two backward ops: geometry checks, the output-size
// formula, the kernel dims from the three shapes, and applying a sibling op.
import type { Conv2dDims } from "./kernels/conv2d_ref.ts";
import type { Node } from "../graph/graph.ts";
import { lookupOp, type Shape } from "../graph/op.ts";

/** The geometry every conv op carries: the forward convolution's stride and padding. */
export interface ConvGeometry {
  /** Step between filter positions, in both directions (at least 1). */
  stride: number;
  /** Zeros added on each side of the input, in both directions. */
  padding: number;
}

/** Throws unless stride is a positive and padding a non-negative whole number. */
export function checkGeometry({ stride, padding }: ConvGeometry): void {
  if (!Number.isInteger(stride) || stride < 1) {
    throw new Error(`stride must be a positive whole number, got ${stride}`);
  }
  if (!Number.isInteger(padding) || padding < 0) {
    throw new Error(`padding must be a non-negative whole number, got ${padding}`);
  }
}

/** Output side of a convolution: ⌊(size + 2·padding − k) / stride⌋ + 1. */
export function convOutSize(size: number, k: number, { stride, padding }: ConvGeometry): number {
  return Math.floor((size + 2 * padding - k) / stride) + 1;
}

/**
 * Throws unless an `h`×`w` input and a `kh`×`kw` filter give the `oh`×`ow`
 * output `dy` has (the backward ops get both sides from their inputs and attrs).
 */
export function checkOutputSize(
  [h, w]: readonly [number, number],
  [kh, kw]: readonly [number, number],
  [oh, ow]: readonly [number, number],
  g: ConvGeometry,
): void {
  const eh = convOutSize(h, kh, g), ew = convOutSize(w, kw, g);
  if (eh < 1 || ew < 1 || eh !== oh || ew !== ow) {
    throw new Error(
      `dy is ${oh}x${ow} but a ${h}x${w} input gives ${eh}x${ew} outputs with a ${kh}x${kw} filter, stride ${g.stride}, padding ${g.padding}`,
    );
  }
}

/** Kernel dims from the concrete shapes of x `[N,C,H,W]`, w `[OC,C,KH,KW]` and y `[N,OC,OH,OW]`. */
export function conv2dDims(x: Shape, w: Shape, y: Shape, g: ConvGeometry): Conv2dDims {
  // index reads, not destructuring: it runs every step, and unoptimised
  // destructuring makes an iterator per array
  return {
    n: x[0]!,
    c: x[1]!,
    h: x[2]!,
    w: x[3]!,
    oc: w[0]!,
    kh: w[2]!,
    kw: w[3]!,
    oh: y[2]!,
    ow: y[3]!,
    stride: g.stride,
    padding: g.padding,
  };
}

/**
 * Applies the conv op registered as `name` to `inputs`. The backward ops'
 * VJPs reach their sibling ops this way rather than by import, so that
 * conv2d.ts imports the two backward files and neither imports back.
 */
export function applyConvOp(
  name: "conv2d" | "conv2d_backward_input" | "conv2d_backward_filter",
  inputs: Node[],
  attrs: ConvGeometry & { inputSize?: [number, number]; kernelSize?: [number, number] },
): Node {
  return inputs[0]!.graph.apply(lookupOp(name), inputs, attrs);
}
