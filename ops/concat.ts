import type { Node } from "../graph/graph.ts";
import { fmtShape, numel, type OpDef, registerOp, type Shape } from "../graph/op.ts";
import { reduceAxes } from "./_reduce.ts";
import { reshape } from "./reshape.ts";

/** Attributes of `concat`. */
export interface ConcatAttrs {
  /** The axis to join along; negative counts from the end. */
  axis: number;
}

/** Attributes of `slice`. */
export interface SliceAttrs {
  /** The sliced axis; negative counts from the end. */
  axis: number;
  /** First index kept. */
  start: number;
  /** Number of indices kept. */
  size: number;
}

/** Attributes of `pad_axis`. */
export interface PadAttrs {
  /** The padded axis; negative counts from the end. */
  axis: number;
  /** Zeros before the data. */
  before: number;
  /** Zeros after the data. */
  after: number;
}

function whole(name: string, v: unknown): number {
  if (!(Number.isInteger(v) && (v as number) >= 0)) {
    throw new Error(`${name} must be a whole number, got ${v}`);
  }
  return v as number;
}

/** The axis as a non-negative index; a batch-sized axis is refused, its extent being unknown. */
function concreteAxis(shape: Shape, axis: number, what: string): number {
  const a = reduceAxes(shape, [axis])[0]!;
  if (shape[a]! < 0) throw new Error(`cannot ${what} along the batch axis`);
  return a;
}

/**
 * Joins tensors along one axis; their other axes must agree.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { concatOp } from "@denograd/denograd";
 * assert.deepEqual(concatOp.shape([[-1, 3], [-1, 3]], { axis: 1 }), [-1, 6]);
 * ```
 */
export const concatOp: OpDef<ConcatAttrs> = registerOp<ConcatAttrs>({
  name: "concat",
  inputs: ["xs..."],
  shape: (shapes, { axis }) => {
    const first = shapes[0]!;
    let total = 0;
    for (const [k, s] of shapes.entries()) {
      if (s.length !== first.length) {
        throw new Error(`input ${k} has rank ${s.length} but input 0 has ${first.length}`);
      }
      const a = concreteAxis(s, axis, "concatenate");
      for (let d = 0; d < s.length; d++) {
        if (d !== a && s[d] !== first[d]) {
          throw new Error(
            `input ${k} ${fmtShape(s)} differs from input 0 ${fmtShape(first)} at axis ${d}`,
          );
        }
      }
      total += s[a]!;
    }
    const a = concreteAxis(first, axis, "concatenate");
    return first.map((d, i) => (i === a ? total : d));
  },
  // xs[k]: (..., n_k, ...) -> out: (..., Σ n_k, ...), block by block of the leading axes
  forward(xs, out, c) {
    const shape0 = c.inShapes[0]!;
    const a = reduceAxes(shape0, [c.attrs.axis])[0]!;
    const outer = numel(shape0.slice(0, a));
    const inner = numel(shape0.slice(a + 1));
    const lens = c.inShapes.map((s) => s[a]! * inner);
    let o = 0;
    for (let b = 0; b < outer; b++) {
      for (let k = 0; k < xs.length; k++) {
        const len = lens[k]!;
        out.set(xs[k]!.subarray(b * len, b * len + len), o);
        o += len;
      }
    }
  },
  // dxs[k] = the slice of dy along the axis where xs[k] was placed
  vjp: ({ inputs, dy, attrs }) => {
    if (inputs.length === 1) return [dy];
    const a = reduceAxes(dy.shape, [attrs.axis])[0]!;
    let start = 0;
    return inputs.map((x) => {
      const size = x.shape[a]!;
      const d = slice(dy, { axis: a, start, size });
      start += size;
      return d;
    });
  },
});

/**
 * `size` elements along `axis` from `start`: the backward of concat.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sliceOp } from "@denograd/denograd";
 * assert.deepEqual(sliceOp.shape([[-1, 6]], { axis: 1, start: 1, size: 3 }), [-1, 3]);
 * ```
 */
export const sliceOp: OpDef<SliceAttrs> = registerOp<SliceAttrs>({
  name: "slice",
  inputs: ["x"],
  shape: ([x], { axis, start, size }) => {
    const a = concreteAxis(x!, axis, "slice");
    whole("start", start);
    whole("size", size);
    if (start + size > x![a]!) {
      throw new Error(`slice ${start}..${start + size} runs past axis ${a} of size ${x![a]}`);
    }
    return x!.map((d, i) => (i === a ? size : d));
  },
  // x: (outer, n, inner) -> y: (outer, size, inner)
  forward([x], y, c) {
    const shape = c.inShapes[0]!;
    const a = reduceAxes(shape, [c.attrs.axis])[0]!;
    const inner = numel(shape.slice(a + 1));
    const outer = numel(shape.slice(0, a));
    const src = shape[a]! * inner, len = c.attrs.size * inner, skip = c.attrs.start * inner;
    for (let b = 0; b < outer; b++) {
      y.set(x!.subarray(b * src + skip, b * src + skip + len), b * len);
    }
  },
  // dx = dy padded with zeros back to x's extent along the axis
  vjp: ({ inputs: [x], dy, attrs: { axis, start, size } }) => {
    const a = reduceAxes(x!.shape, [axis])[0]!;
    return [padAxis(dy, { axis: a, before: start, after: x!.shape[a]! - start - size })];
  },
});

/**
 * Zeros added before and after along one axis: the backward of slice.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { padAxisOp } from "@denograd/denograd";
 * assert.deepEqual(padAxisOp.shape([[-1, 3]], { axis: 1, before: 1, after: 2 }), [-1, 6]);
 * ```
 */
export const padAxisOp: OpDef<PadAttrs> = registerOp<PadAttrs>({
  name: "pad_axis",
  inputs: ["x"],
  shape: ([x], { axis, before, after }) => {
    const a = concreteAxis(x!, axis, "pad");
    const n = whole("before", before) + x![a]! + whole("after", after);
    return x!.map((d, i) => (i === a ? n : d));
  },
  // x: (outer, n, inner) -> y: (outer, before + n + after, inner)
  forward([x], y, c) {
    const shape = c.inShapes[0]!;
    const a = reduceAxes(shape, [c.attrs.axis])[0]!;
    const inner = numel(shape.slice(a + 1));
    const outer = numel(shape.slice(0, a));
    const len = shape[a]! * inner;
    const dst = c.outShape[a]! * inner, skip = c.attrs.before * inner;
    y.fill(0);
    for (let b = 0; b < outer; b++) y.set(x!.subarray(b * len, b * len + len), b * dst + skip);
  },
  // dx = the slice of dy where x was placed
  vjp: ({ inputs: [x], dy, attrs: { axis, before } }) => {
    const a = reduceAxes(x!.shape, [axis])[0]!;
    return [slice(dy, { axis: a, start: before, size: x!.shape[a]! })];
  },
});

/**
 * Concatenates nodes along `axis` (default 0), like `torch.cat`; all other
 * axes must agree. The axis cannot be the batch axis of batch-sized inputs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { concat, Graph } from "@denograd/denograd";
 * const g = new Graph();
 * const x = g.input("x", [-1, 1]);
 * assert.deepEqual(concat([x, x, x], { axis: 1 }).shape, [-1, 3]);
 * ```
 */
export function concat(
  xs: readonly Node[],
  opts: { axis?: number; name?: string } = {},
): Node {
  if (xs.length === 0) throw new Error(`concat "${opts.name ?? "concat"}": no inputs to join`);
  return xs[0]!.graph.apply(concatOp, xs, { axis: opts.axis ?? 0 }, opts.name);
}

/**
 * Stacks nodes of one shape along a new `axis` (default 0), like
 * `torch.stack`: each gets a size-1 axis there, then they are concatenated.
 * Batch-sized inputs keep their batch axis first, so `axis` must be at least 1.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, stack } from "@denograd/denograd";
 * const g = new Graph();
 * const x = g.input("x", [-1, 4]);
 * assert.deepEqual(stack([x, x], { axis: 1 }).shape, [-1, 2, 4]);
 * ```
 */
export function stack(
  xs: readonly Node[],
  opts: { axis?: number; name?: string } = {},
): Node {
  const what = `stack "${opts.name ?? "stack"}"`;
  if (xs.length === 0) throw new Error(`${what}: no inputs to stack`);
  const shape = xs[0]!.shape;
  for (const [k, x] of xs.entries()) {
    if (x.shape.join() !== shape.join()) {
      throw new Error(
        `${what}: input ${k} "${x.name}" has shape ${fmtShape(x.shape)} but input 0 has ${
          fmtShape(shape)
        }`,
      );
    }
  }
  const r = shape.length + 1;
  const axis = opts.axis ?? 0;
  if (!Number.isInteger(axis) || axis < -r || axis >= r) {
    throw new Error(`${what}: axis ${axis} is out of range for ${r}-D output`);
  }
  const a = axis < 0 ? axis + r : axis;
  if (a === 0 && shape[0] === -1) {
    throw new Error(`${what}: axis 0 would move the batch axis of ${fmtShape(shape)}`);
  }
  const target = [...shape.slice(0, a), 1, ...shape.slice(a)];
  return concat(xs.map((x) => reshape(x, target)), { axis: a, name: opts.name });
}

/**
 * `size` elements along `axis` starting at `start`, like `x.narrow(axis, start, size)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, slice } from "@denograd/denograd";
 * const g = new Graph();
 * assert.deepEqual(slice(g.input("x", [-1, 6]), { axis: 1, start: 2, size: 3 }).shape, [-1, 3]);
 * ```
 */
export function slice(
  x: Node,
  opts: { axis: number; start: number; size: number; name?: string },
): Node {
  const { name, ...attrs } = opts;
  return x.graph.apply(sliceOp, [x], attrs, name);
}

/**
 * Pads `x` with `before` zeros and `after` zeros along `axis`: the transpose
 * of {@linkcode slice}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, padAxis } from "@denograd/denograd";
 * const g = new Graph();
 * assert.deepEqual(padAxis(g.input("x", [-1, 3]), { axis: 1, before: 2, after: 1 }).shape, [-1, 6]);
 * ```
 */
export function padAxis(
  x: Node,
  opts: { axis: number; before: number; after: number; name?: string },
): Node {
  const { name, ...attrs } = opts;
  return x.graph.apply(padAxisOp, [x], attrs, name);
}
