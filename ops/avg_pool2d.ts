import type { Node } from "../graph/graph.ts";
import { fmtShape, type OpDef, registerOp, type Shape } from "../graph/op.ts";
import { avgPool2dBackwardRef, avgPool2dRef } from "./kernels/avg_pool2d_ref.ts";
import { poolDims } from "./kernels/pool_dims.ts";

/** Attributes of `avg_pool2d`. */
export interface AvgPool2dAttrs {
  /** Side of the square window. */
  size: number;
  /** Step between windows, in both directions. */
  stride: number;
  /** Zeros added on every side (at most `size / 2`). */
  padding: number;
}

/** Attributes of `avg_pool2d_backward`: the pooling plus the input's height and width. */
export interface AvgPool2dBackwardAttrs extends AvgPool2dAttrs {
  /** Input height. */
  h: number;
  /** Input width. */
  w: number;
}

/** Output shape of average pooling, or an error naming the bad attribute. */
function avgPooledShape(x: Shape, { size, stride, padding }: AvgPool2dAttrs): number[] {
  for (const [k, v, min] of [["size", size, 1], ["stride", stride, 1], ["padding", padding, 0]]) {
    if (!Number.isInteger(v) || (v as number) < (min as number)) {
      throw new Error(`${k} must be a whole number ≥ ${min}, got ${v}`);
    }
  }
  if (padding > size / 2) {
    throw new Error(`padding ${padding} must be at most half the window size ${size}`);
  }
  if (x.length !== 4) throw new Error(`x must be 4-D [N,C,H,W], got ${fmtShape(x)}`);
  const [n, c, h, w] = x as [number, number, number, number];
  if (h + 2 * padding < size || w + 2 * padding < size) {
    throw new Error(`the ${size}x${size} window does not fit in the padded ${h}x${w} input`);
  }
  return [
    n,
    c,
    Math.floor((h + 2 * padding - size) / stride) + 1,
    Math.floor((w + 2 * padding - size) / stride) + 1,
  ];
}

function poolOnly({ size, stride, padding }: AvgPool2dAttrs): AvgPool2dAttrs {
  return { size, stride, padding };
}

/**
 * Average pooling over `size`×`size` windows every `stride` pixels with zero padding, NCHW.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { avgPool2dOp } from "@denograd/denograd";
 * assert.deepEqual(avgPool2dOp.shape([[-1, 4, 6, 6]], { size: 2, stride: 2, padding: 0 }), [-1, 4, 3, 3]);
 * ```
 */
export const avgPool2dOp: OpDef<AvgPool2dAttrs> = registerOp<AvgPool2dAttrs>({
  name: "avg_pool2d",
  inputs: ["x"],
  shape: ([x], attrs) => avgPooledShape(x!, attrs),
  forward([x], y, c) {
    avgPool2dRef(x!, y, poolDims(c.inShapes[0]!, c.outShape, c.attrs));
  },
  // dx = dy / size² spread over each window
  vjp: ({ inputs: [x], dy, attrs }) => [
    avgPool2dBackward(dy, { ...poolOnly(attrs), h: x!.shape[2]!, w: x!.shape[3]! }),
  ],
});

/**
 * The VJP of average pooling: each `dy / size²` added to its window's cells.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { avgPool2dBackwardOp } from "@denograd/denograd";
 * // back to the input size h × w the attributes keep
 * assert.deepEqual(avgPool2dBackwardOp.shape([[-1, 4, 3, 3]], { size: 2, stride: 2, padding: 0, h: 6, w: 6 }), [-1, 4, 6, 6]);
 * ```
 */
export const avgPool2dBackwardOp: OpDef<AvgPool2dBackwardAttrs> = registerOp<
  AvgPool2dBackwardAttrs
>({
  name: "avg_pool2d_backward",
  inputs: ["dy"],
  shape: ([dy], attrs) => {
    if (dy!.length !== 4) throw new Error(`dy must be 4-D [N,C,OH,OW], got ${fmtShape(dy!)}`);
    const x = [dy![0]!, dy![1]!, attrs.h, attrs.w];
    const pooled = avgPooledShape(x, attrs);
    if (pooled.join() !== dy!.join()) {
      throw new Error(
        `dy must have the pooled shape ${fmtShape(pooled)} of a ${attrs.h}x${attrs.w} input`,
      );
    }
    return x;
  },
  forward([dy], dx, c) {
    avgPool2dBackwardRef(dy!, dx, poolDims(c.outShape, c.inShapes[0]!, c.attrs));
  },
  // linear, and its transpose is the pooling itself
  vjp: ({ dy: g, attrs }) => [avgPool2d(g, poolOnly(attrs))],
});

/** Options of {@linkcode avgPool2d}. */
export interface AvgPool2dOptions {
  /** Window side (default 2). */
  size?: number;
  /** Step between windows (default `size`). */
  stride?: number;
  /** Zeros added on each side (default 0, at most `size / 2`). */
  padding?: number;
  /** Node name. */
  name?: string;
}

/**
 * Average pooling over NCHW input, like `torch.nn.functional.avg_pool2d`
 * with its default `count_include_pad=True` (padded zeros count in the
 * average): `[N, C, H, W]` → `[N, C, ⌊(H + 2·padding − size)/stride⌋ + 1, …]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { avgPool2d, tensor, vjp } from "@denograd/denograd";
 * const x = tensor([[[[1, 2], [3, 6]]]]);
 * const { out, backward } = vjp((v) => avgPool2d(v, { size: 2 }), x);
 * assert.deepEqual([...out.data], [3]);
 * assert.deepEqual([...backward([4])[0]!.data], [1, 1, 1, 1]);
 * ```
 */
export function avgPool2d(x: Node, opts: AvgPool2dOptions = {}): Node {
  const size = opts.size ?? 2;
  const attrs = { size, stride: opts.stride ?? size, padding: opts.padding ?? 0 };
  return x.graph.apply(avgPool2dOp, [x], attrs, opts.name);
}

/**
 * The backward of {@linkcode avgPool2d} for an `h`×`w` input: each element of
 * `dy` divided by `size²` and added to the cells of its window.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { avgPool2dBackward, Graph } from "@denograd/denograd";
 * const g = new Graph();
 * const dx = avgPool2dBackward(g.input("dy", [-1, 3, 2, 2]), {
 *   size: 2,
 *   stride: 2,
 *   padding: 0,
 *   h: 5,
 *   w: 4,
 * });
 * assert.deepEqual(dx.shape, [-1, 3, 5, 4]);
 * ```
 */
export function avgPool2dBackward(
  dy: Node,
  opts: AvgPool2dBackwardAttrs & { name?: string },
): Node {
  const { name, ...attrs } = opts;
  return dy.graph.apply(avgPool2dBackwardOp, [dy], attrs, name);
}
