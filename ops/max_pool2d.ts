import { maxPool2x2BackwardF32, maxPool2x2F32 } from "./kernels/pointwise_fast.ts";
import { pointwiseWasm } from "./kernels/pointwise_wasm.ts";
import type { Node } from "../graph/graph.ts";
import { type FloatArray, fmtShape, type OpDef, registerOp, type Shape } from "../graph/op.ts";

/** Attributes of `max_pool2d` and its backward ops. */
export interface MaxPool2dAttrs {
  /** Side of the square window. */
  size: number;
  /** Step between windows, in both directions. */
  stride: number;
  /** Cells added on every side that never win (at most `size / 2`; absent for 0). */
  padding?: number;
}

/** Pooling window geometry of one (N, C) plane. */
interface PoolDims {
  planes: number;
  h: number;
  w: number;
  oh: number;
  ow: number;
  size: number;
  stride: number;
  padding: number;
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

function poolDims(x: Shape, y: Shape, { size, stride, padding = 0 }: MaxPool2dAttrs): PoolDims {
  const [n, c, h, w] = x as [number, number, number, number];
  return { planes: n * c, h, w, oh: y[2]!, ow: y[3]!, size, stride, padding };
}

// The window's first maximum in row-major order (strict `>`), which is the
// element PyTorch routes the gradient to on ties. The window at (r0, c0) in
// padded coordinates is clipped to the input: padded cells never win, and
// padding ≤ size/2 leaves every window at least one real cell.
function argmaxOfWindow(x: FloatArray, base: number, r0: number, c0: number, d: PoolDims): number {
  const i0 = Math.max(r0 - d.padding, 0), i1 = Math.min(r0 - d.padding + d.size, d.h);
  const j0 = Math.max(c0 - d.padding, 0), j1 = Math.min(c0 - d.padding + d.size, d.w);
  let best = base + i0 * d.w + j0;
  let bestV = x[best]!;
  for (let i = i0; i < i1; i++) {
    const row = base + i * d.w;
    for (let j = j0; j < j1; j++) {
      const v = x[row + j]!;
      // NaN wins, as in PyTorch, so a diverging run is not hidden
      if (v > bestV || v !== v) {
        best = row + j;
        bestV = v;
      }
    }
  }
  return best;
}

// x: (N, C, H, W) -> y: (N, C, OH, OW), y = max over each size x size window
function maxPoolKernel(x: FloatArray, y: FloatArray, d: PoolDims): void {
  const { h, w, oh, ow, size, stride } = d;
  if (size === 2 && stride === 2 && d.padding === 0) {
    // the lecture's 2x2 pooling: four loads per output, no inner window loops
    for (let p = 0; p < d.planes; p++) {
      const xb = p * h * w;
      const yb = p * oh * ow;
      for (let r = 0; r < oh; r++) {
        const top = xb + 2 * r * w;
        const bot = top + w;
        const yr = yb + r * ow;
        for (let c = 0; c < ow; c++) {
          const a = x[top + 2 * c]!, b = x[top + 2 * c + 1]!;
          const e = x[bot + 2 * c]!, f = x[bot + 2 * c + 1]!;
          // `x !== x` lets NaN through, as PyTorch does
          const m1 = a >= b || a !== a ? a : b;
          const m2 = e >= f || e !== e ? e : f;
          y[yr + c] = m1 >= m2 || m1 !== m1 ? m1 : m2;
        }
      }
    }
    return;
  }
  const pad = d.padding;
  for (let p = 0; p < d.planes; p++) {
    const xb = p * h * w;
    const yb = p * oh * ow;
    for (let r = 0; r < oh; r++) {
      const i0 = Math.max(r * stride - pad, 0), i1 = Math.min(r * stride - pad + size, h);
      for (let c = 0; c < ow; c++) {
        const j0 = Math.max(c * stride - pad, 0), j1 = Math.min(c * stride - pad + size, w);
        let m = -Infinity;
        for (let i = i0; i < i1; i++) {
          const row = xb + i * w;
          for (let j = j0; j < j1; j++) {
            const v = x[row + j]!;
            if (v > m || v !== v) m = v;
          }
        }
        y[yb + r * ow + c] = m;
      }
    }
  }
}

// x: (N, C, H, W), dy: (N, C, OH, OW) -> dx: (N, C, H, W), dy added at each
// window's argmax (added, because overlapping windows can share an argmax)
function maxPoolBackwardKernel(x: FloatArray, dy: FloatArray, dx: FloatArray, d: PoolDims): void {
  dx.fill(0);
  const { h, w, oh, ow, stride } = d;
  if (d.size === 2 && stride === 2 && d.padding === 0) {
    // windows do not overlap: each dx element is written at most once
    for (let p = 0; p < d.planes; p++) {
      const xb = p * h * w;
      const yb = p * oh * ow;
      for (let r = 0; r < oh; r++) {
        const top = xb + 2 * r * w;
        const bot = top + w;
        for (let c = 0; c < ow; c++) {
          const i0 = top + 2 * c, i2 = bot + 2 * c;
          // same comparisons as the forward's first-max rule, in window order
          let k = i0, m = x[i0]!;
          let v = x[i0 + 1]!;
          if (v > m || v !== v) (k = i0 + 1), (m = v);
          v = x[i2]!;
          if (v > m || v !== v) (k = i2), (m = v);
          v = x[i2 + 1]!;
          if (v > m || v !== v) k = i2 + 1;
          dx[k] = dy[yb + r * ow + c]!;
        }
      }
    }
    return;
  }
  for (let p = 0; p < d.planes; p++) {
    const xb = p * h * w;
    const yb = p * oh * ow;
    for (let r = 0; r < oh; r++) {
      for (let c = 0; c < ow; c++) {
        const k = argmaxOfWindow(x, xb, r * stride, c * stride, d);
        dx[k] = dx[k]! + dy[yb + r * ow + c]!;
      }
    }
  }
}

// x: (N, C, H, W), g: (N, C, H, W) -> out: (N, C, OH, OW), g read at each
// window's argmax: the adjoint of the scatter in maxPoolBackwardKernel
function maxPoolGatherKernel(x: FloatArray, g: FloatArray, out: FloatArray, d: PoolDims): void {
  const { h, w, oh, ow, stride } = d;
  for (let p = 0; p < d.planes; p++) {
    const xb = p * h * w;
    const yb = p * oh * ow;
    for (let r = 0; r < oh; r++) {
      for (let c = 0; c < ow; c++) {
        const k = argmaxOfWindow(x, xb, r * stride, c * stride, d);
        out[yb + r * ow + c] = g[k]!;
      }
    }
  }
}

/** Max pooling over `size`×`size` windows every `stride` pixels, NCHW. */
export const maxPool2dOp: OpDef<MaxPool2dAttrs> = registerOp<MaxPool2dAttrs>({
  name: "max_pool2d",
  inputs: ["x"],
  shape: ([x], attrs) => pooledShape(x!, attrs),
  forward([x], y, c) {
    const d = poolDims(c.inShapes[0]!, c.outShape, c.attrs);
    if (
      y instanceof Float32Array && c.tier !== "ref" && d.size === 2 && d.stride === 2 &&
      d.padding === 0
    ) {
      const x32 = x as Float32Array;
      const k = d.ow >= 4 ? pointwiseWasm(c.tier, x32, y) : null;
      if (k) return k.pool2(x32.byteOffset, y.byteOffset, d.planes, d.h, d.w, d.oh, d.ow);
      return maxPool2x2F32(x32, y, d);
    }
    maxPoolKernel(x!, y, d);
  },
  // dx = dy routed to the argmax of each window
  vjp: ({ inputs: [x], out, dy, attrs }) => [maxPool2dBackward(x!, dy, { ...attrs, y: out })],
});

/**
 * The VJP of max pooling: `dy` scattered to each window's first maximum of
 * `x`. The optional `y`, the forward's output, spares the fast 2×2 kernel
 * from finding each maximum again.
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
    if (
      y && dx instanceof Float32Array && c.tier !== "ref" && d.size === 2 && d.stride === 2 &&
      d.padding === 0
    ) {
      const [x32, y32, dy32] = [x, y, dy] as Float32Array[];
      const k = d.ow >= 4 ? pointwiseWasm(c.tier, x32!, y32!, dy32!, dx) : null;
      if (k) {
        if (d.oh * 2 !== d.h || d.ow * 2 !== d.w) dx.fill(0); // the odd last row or column
        const { planes, h, w, oh, ow } = d;
        const at = [x32!, y32!, dy32!, dx].map((a) => a.byteOffset);
        // a NaN maximum equals nothing: the scalar kernel routes it
        if (k.pool2_backward(...at, planes, h, w, oh, ow) === 0) return;
      }
      return maxPool2x2BackwardF32(x32!, y32!, dy32!, dx, d);
    }
    maxPoolBackwardKernel(x!, dy!, dx, d);
  },
  // linear in dy, piecewise constant in x (and y): d(dy) = ddx gathered at the argmax
  vjp: ({ inputs: [x, , y], dy, attrs }) =>
    y ? [null, maxPool2dGather(x!, dy, attrs), null] : [null, maxPool2dGather(x!, dy, attrs)],
});

/** `g` read at the argmax of each window of `x`: the VJP of {@linkcode maxPool2dBackwardOp}. */
export const maxPool2dGatherOp: OpDef<MaxPool2dAttrs> = registerOp<MaxPool2dAttrs>({
  name: "max_pool2d_gather",
  inputs: ["x", "g"],
  shape: ([x, g], attrs) => {
    if (x!.join() !== g!.join()) throw new Error("x and g must have the same shape");
    return pooledShape(x!, attrs);
  },
  forward([x, g], out, c) {
    maxPoolGatherKernel(x!, g!, out, poolDims(c.inShapes[0]!, c.outShape, c.attrs));
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
 * import { Graph, maxPool2dBackward } from "@denograd/denograd";
 * const g = new Graph();
 * const x = g.input("x", [-1, 1, 4, 4]);
 * const dy = g.input("dy", [-1, 1, 2, 2]);
 * console.log(maxPool2dBackward(x, dy).shape); // [-1, 1, 4, 4]
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
 * import { Graph, maxPool2dGather } from "@denograd/denograd";
 * const g = new Graph();
 * const x = g.input("x", [-1, 1, 4, 4]);
 * console.log(maxPool2dGather(x, g.input("g", [-1, 1, 4, 4])).shape); // [-1, 1, 2, 2]
 * ```
 */
export function maxPool2dGather(x: Node, g: Node, opts: MaxPool2dOptions = {}): Node {
  return x.graph.apply(maxPool2dGatherOp, [x, g], poolAttrs(opts), opts.name);
}
