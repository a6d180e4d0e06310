import { maxPool2x2BackwardF32, maxPool2x2F32 } from "./kernels/max_pool2d_fast.ts";
import {
  maxPool2dBackwardRef,
  maxPool2dGatherRef,
  maxPool2dRef,
} from "./kernels/max_pool2d_ref.ts";
import { poolDims } from "./kernels/pool_dims.ts";
import { elementwiseWasm } from "./kernels/elementwise_wasm.ts";
import { runKernel } from "./kernels/tier.ts";
import type { Node } from "../graph/graph.ts";
import { fmtShape, type OpDef, registerOp, type Shape } from "../graph/op.ts";

/** Attributes of `max_pool2d` and its backward ops. */
export interface MaxPool2dAttrs {
  /** Side of the square window. */
  size: number;
  /** Step between windows, in both directions. */
  stride: number;
  /** Cells added on every side that never win (at most `size / 2`; absent for 0). */
  padding?: number;
}

function pooledShape(x: Shape, { size, stride, padding = 0 }: MaxPool2dAttrs): number[] {
  if (!Number.isInteger(size) || size < 1) {
    throw new Error(`size must be a positive whole number, got ${size}`);
  }
  if (!Number.isInteger(stride) || stride < 1) {
    throw new Error(`stride must be a positive whole number, got ${stride}`);
  }
  if (!Number.isInteger(padding) || padding < 0 || padding > size / 2) {
    throw new Error(
      `padding must be a whole number from 0 to half the window size ${size}, got ${padding}`,
    );
  }
  if (x.length !== 4) throw new Error(`x must be 4-D [N,C,H,W], got ${fmtShape(x)}`);
  const [n, c, h, w] = x as [number, number, number, number];
  const hp = h + 2 * padding, wp = w + 2 * padding;
  if (hp < size || wp < size) {
    throw new Error(`the ${size}x${size} window does not fit in the ${h}x${w} input`);
  }
  return [n, c, Math.floor((hp - size) / stride) + 1, Math.floor((wp - size) / stride) + 1];
}

/**
 * Max pooling over `size`×`size` windows every `stride` pixels, NCHW.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { maxPool2dOp } from "@denograd/denograd";
 * assert.deepEqual(maxPool2dOp.shape([[-1, 32, 26, 26]], { size: 2, stride: 2 }), [-1, 32, 13, 13]);
 * ```
 */
export const maxPool2dOp: OpDef<MaxPool2dAttrs> = registerOp<MaxPool2dAttrs>({
  name: "max_pool2d",
  inputs: ["x"],
  shape: ([x], attrs) => pooledShape(x!, attrs),
  forward([x], y, c) {
    const d = poolDims(c.inShapes[0]!, c.outShape, c.attrs);
    const x32 = x as Float32Array;
    // the fast kernels serve the lecture's 2×2 stride-2 pooling without padding
    const pool2 = d.size === 2 && d.stride === 2 && d.padding === 0;
    runKernel(y, c.tier, {
      ref: () => maxPool2dRef(x!, y, d),
      ts: pool2 ? (y) => maxPool2x2F32(x32, y, d) : undefined,
      wasm: (y) => {
        const k = pool2 && d.ow >= 4 ? elementwiseWasm(x32, y) : null;
        k?.pool2(x32.byteOffset, y.byteOffset, d.planes, d.h, d.w, d.oh, d.ow);
        return k !== null;
      },
    });
  },
  // dx = dy routed to the argmax of each window
  vjp: ({ inputs: [x], out, dy, attrs }) => [maxPool2dBackward(x!, dy, { ...attrs, y: out })],
});

/**
 * The VJP of max pooling: `dy` scattered to each window's first maximum of
 * `x`. The optional `y`, the forward's output, spares the fast 2×2 kernel
 * from finding each maximum again.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { maxPool2dBackwardOp } from "@denograd/denograd";
 * assert.deepEqual(maxPool2dBackwardOp.shape([[-1, 32, 26, 26], [-1, 32, 13, 13], [-1, 32, 13, 13]], { size: 2, stride: 2 }), [-1, 32, 26, 26]);
 * ```
 */
export const maxPool2dBackwardOp: OpDef<MaxPool2dAttrs> = registerOp<MaxPool2dAttrs>({
  name: "max_pool2d_backward",
  inputs: ["x", "dy", "y?"],
  shape: ([x, dy, y], attrs) => {
    const pooled = pooledShape(x!, attrs);
    for (const [name, s] of [["dy", dy], ["y", y]] as const) {
      if (s && s.join() !== pooled.join()) {
        throw new Error(
          `${name} must have the pooled shape ${fmtShape(pooled)}, got ${fmtShape(s)}`,
        );
      }
    }
    return x!;
  },
  forward([x, dy, y], dx, c) {
    const d = poolDims(c.inShapes[0]!, c.inShapes[1]!, c.attrs);
    const [x32, y32, dy32] = [x, y, dy] as Float32Array[];
    // the fast kernels read each maximum from the forward's output y
    const pool2 = y !== undefined && d.size === 2 && d.stride === 2 && d.padding === 0;
    runKernel(dx, c.tier, {
      ref: () => maxPool2dBackwardRef(x!, dy!, dx, d),
      ts: pool2 ? (dx) => maxPool2x2BackwardF32(x32!, y32!, dy32!, dx, d) : undefined,
      wasm: (dx) => {
        const k = pool2 && d.ow >= 4 ? elementwiseWasm(x32!, y32!, dy32!, dx) : null;
        if (!k) return false;
        if (d.oh * 2 !== d.h || d.ow * 2 !== d.w) dx.fill(0); // the odd last row or column
        const { planes, h, w, oh, ow } = d;
        const at = [x32!, y32!, dy32!, dx].map((a) => a.byteOffset);
        // a NaN maximum equals nothing: the scalar kernel routes it
        return k.pool2_backward(...at, planes, h, w, oh, ow) === 0;
      },
    });
  },
  // linear in dy, piecewise constant in x (and y): d(dy) = ddx gathered at the argmax
  vjp: ({ inputs: [x, , y], dy, attrs }) =>
    y ? [null, maxPool2dGather(x!, dy, attrs), null] : [null, maxPool2dGather(x!, dy, attrs)],
});

/**
 * `g` read at the argmax of each window of `x`: the VJP of {@linkcode maxPool2dBackwardOp}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { maxPool2dGatherOp } from "@denograd/denograd";
 * assert.deepEqual(maxPool2dGatherOp.shape([[-1, 4, 6, 6], [-1, 4, 6, 6]], { size: 2, stride: 2 }), [-1, 4, 3, 3]);
 * ```
 */
export const maxPool2dGatherOp: OpDef<MaxPool2dAttrs> = registerOp<MaxPool2dAttrs>({
  name: "max_pool2d_gather",
  inputs: ["x", "g"],
  shape: ([x, g], attrs) => {
    if (x!.join() !== g!.join()) throw new Error("x and g must have the same shape");
    return pooledShape(x!, attrs);
  },
  forward([x, g], out, c) {
    maxPool2dGatherRef(x!, g!, out, poolDims(c.inShapes[0]!, c.outShape, c.attrs));
  },
  // linear in g: dg = dy scattered back to the argmax
  vjp: ({ inputs: [x], dy, attrs }) => [null, maxPool2dBackward(x!, dy, attrs)],
});

/** Options of {@linkcode maxPool2d} and its backward ops. */
export interface MaxPool2dOptions {
  /** Window side (default 2). */
  size?: number;
  /** Step between windows (default `size`). */
  stride?: number;
  /** Cells added on each side that never win, like PyTorch's `-inf` padding (default 0, at most `size / 2`). */
  padding?: number;
  /** Node name. */
  name?: string;
}

function poolAttrs(opts: MaxPool2dOptions): MaxPool2dAttrs {
  const size = opts.size ?? 2;
  const attrs: MaxPool2dAttrs = { size, stride: opts.stride ?? size };
  // no padding attribute for 0, so graphs built before padding existed hash the same
  if (opts.padding) attrs.padding = opts.padding;
  return attrs;
}

/**
 * Max pooling over NCHW input, like `torch.nn.functional.max_pool2d`:
 * `[N, C, H, W]` → `[N, C, ⌊(H + 2·padding − size)/stride⌋ + 1, ⌊(W + 2·padding − size)/stride⌋ + 1]`;
 * padded cells never win (PyTorch pads with `-inf`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, maxPool2d, tensor, vjp } from "@denograd/denograd";
 * const g = new Graph();
 * assert.deepEqual(maxPool2d(g.input("x", [-1, 32, 26, 26])).shape, [-1, 32, 13, 13]);
 * // padding 1 around a 2x2 input: four 2x2 windows, each holding one real cell
 * const { out } = vjp((v) => maxPool2d(v, { padding: 1 }), tensor([[[[-1, -2], [-3, -4]]]]));
 * assert.deepEqual([...out.data], [-1, -2, -3, -4]);
 * ```
 */
export function maxPool2d(x: Node, opts: MaxPool2dOptions = {}): Node {
  return x.graph.apply(maxPool2dOp, [x], poolAttrs(opts), opts.name);
}

/**
 * The backward of {@linkcode maxPool2d}: each element of `dy` added to the
 * first maximum of its window in `x`. Pass the forward's output as `y` (the
 * VJP of `maxPool2d` does) and the 2×2 float32 kernel reads each maximum from
 * it instead of finding it again.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, maxPool2dBackward } from "@denograd/denograd";
 * const g = new Graph();
 * const x = g.input("x", [-1, 1, 4, 4]);
 * const dy = g.input("dy", [-1, 1, 2, 2]);
 * assert.deepEqual(maxPool2dBackward(x, dy).shape, [-1, 1, 4, 4]);
 * ```
 */
export function maxPool2dBackward(
  x: Node,
  dy: Node,
  opts: MaxPool2dOptions & { y?: Node } = {},
): Node {
  const ins = opts.y ? [x, dy, opts.y] : [x, dy];
  return x.graph.apply(maxPool2dBackwardOp, ins, poolAttrs(opts), opts.name);
}

/**
 * `g` read at the first maximum of each pooling window of `x`: the adjoint of
 * {@linkcode maxPool2dBackward} in `dy`, used for second derivatives.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, maxPool2dGather } from "@denograd/denograd";
 * const g = new Graph();
 * const x = g.input("x", [-1, 1, 4, 4]);
 * assert.deepEqual(maxPool2dGather(x, g.input("g", [-1, 1, 4, 4])).shape, [-1, 1, 2, 2]);
 * ```
 */
export function maxPool2dGather(x: Node, g: Node, opts: MaxPool2dOptions = {}): Node {
  return x.graph.apply(maxPool2dGatherOp, [x, g], poolAttrs(opts), opts.name);
}
