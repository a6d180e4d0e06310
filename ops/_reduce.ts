// Shared by sum and mean: axis normalisation, the reduced shape, and the
// reduction kernel.
import type { FloatArray, Shape } from "../graph/op.ts";

/** Reduction attributes: `axes` (default all) and `keepdims`. */
export interface ReduceAttrs {
  /** Axes to reduce, negative counting from the end (default: every axis). */
  axes?: number[];
  /** Keep each reduced axis with size 1 (default false). */
  keepdims?: boolean;
}

/** The reduced axes as sorted non-negative indices. */
export function reduceAxes(shape: Shape, axes: readonly number[] | undefined): number[] {
  const r = shape.length;
  if (axes === undefined) return [...Array(r).keys()];
  const out = axes.map((a) => {
    if (!Number.isInteger(a) || a < -r || a >= r) throw new Error(`axis ${a} is out of range`);
    return a < 0 ? a + r : a;
  });
  if (new Set(out).size !== out.length) throw new Error(`axes [${axes}] repeat an axis`);
  return out.sort((x, y) => x - y);
}

/** Output shape of a reduction. */
export function reduceShape(shape: Shape, attrs: ReduceAttrs): number[] {
  const axes = reduceAxes(shape, attrs.axes);
  const out: number[] = [];
  shape.forEach((d, i) => {
    if (!axes.includes(i)) out.push(d);
    else if (attrs.keepdims) out.push(1);
  });
  return out;
}

/** `x` with the reduced axes kept as size 1: the shape to broadcast a cotangent from. */
export function keptShape(shape: Shape, attrs: ReduceAttrs): number[] {
  const axes = reduceAxes(shape, attrs.axes);
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

/**
 * `shape` with neighbouring axes that are both reduced or both kept merged
 * into one: a bias gradient over [N, C, H, W] becomes [N, C, H·W] with
 * reduced [true, false, true].
 */
export function mergeAxes(
  shape: Shape,
  axes: readonly number[],
): { dims: number[]; red: boolean[] } {
  const dims: number[] = [];
  const red: boolean[] = [];
  shape.forEach((d, i) => {
    const ri = axes.includes(i);
    if (dims.length > 0 && red[red.length - 1] === ri) dims[dims.length - 1]! *= d;
    else dims.push(d), red.push(ri);
  });
  return { dims, red };
}

/**
 * `[outer, mid, inner]` when the reduction sums contiguous runs of `inner`
 * values into `mid` outputs, `outer` times over (reduced, kept, reduced
 * once merged, either end possibly absent but the last reduced); else null.
 */
export function runsOf(shape: Shape, axes: readonly number[]): [number, number, number] | null {
  const { dims, red } = mergeAxes(shape, axes);
  const key = red.map((r) => (r ? "r" : "k")).join("");
  if (key === "r") return [1, 1, dims[0]!];
  if (key === "kr") return [1, dims[0]!, dims[1]!];
  if (key === "rkr") return [dims[0]!, dims[1]!, dims[2]!];
  return null;
}

// x: shape -> out: shape with `axes` summed away
/** Sums `x` over `axes` into `out`. */
export function sumKernel(
  x: FloatArray,
  shape: Shape,
  axes: readonly number[],
  out: FloatArray,
): void {
  out.fill(0);
  if (shape.length === 0) {
    out[0] = x[0]!;
    return;
  }
  const { dims, red } = mergeAxes(shape, axes);
  const r = dims.length;
  // output strides, 0 on reduced axes, so a walk over x adds into the right slot
  const so = new Array<number>(r).fill(0);
  let stride = 1;
  for (let i = r - 1; i >= 0; i--) {
    if (red[i]) continue;
    so[i] = stride;
    stride *= dims[i]!;
  }
  const inner = dims[r - 1]!;
  const si = so[r - 1]!;
  const idx = new Array<number>(r).fill(0);
  let o = 0;
  for (let p = 0; p < x.length; p += inner) {
    if (si === 0) {
      // four chains of additions, so the loop is not bound by one add's latency
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0, j = 0;
      for (; j + 3 < inner; j += 4) {
        a0 += x[p + j]!;
        a1 += x[p + j + 1]!;
        a2 += x[p + j + 2]!;
        a3 += x[p + j + 3]!;
      }
      for (; j < inner; j++) a0 += x[p + j]!;
      out[o] = out[o]! + ((a0 + a1) + (a2 + a3));
    } else {
      for (let j = 0; j < inner; j++) out[o + j] = out[o + j]! + x[p + j]!;
    }
    for (let ax = r - 2; ax >= 0; ax--) {
      idx[ax]!++;
      o += so[ax]!;
      if (idx[ax]! < dims[ax]!) break;
      o -= so[ax]! * dims[ax]!;
      idx[ax] = 0;
    }
  }
}
