// Shared by the elementwise binary ops (add, sub, mul, div): the broadcasting
// shape rule and one strided kernel, so each op file holds only its own rule.
import type { FloatArray, Shape } from "../graph/op.ts";
import type { Node } from "../graph/graph.ts";
import { fill } from "./fill.ts";

/** Output shape of broadcasting `a` with `b` (NumPy rules; `-1` is the batch axis). */
export function broadcastShape(a: Shape, b: Shape): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1;
    const y = b[b.length - r + i] ?? 1;
    if (x === y || y === 1) out.push(x);
    else if (x === 1) out.push(y);
    else throw new Error(`shapes cannot be broadcast together at axis ${i}`);
  }
  return out;
}

/** Elementwise binary op codes understood by {@linkcode binaryKernel}. */
export const enum Bin {
  Add,
  Sub,
  Mul,
  Div,
  /** `a`, broadcast to the output shape (`b` only lends its shape). */
  First,
}

function apply(code: Bin, x: number, y: number): number {
  switch (code) {
    case Bin.Add:
      return x + y;
    case Bin.Sub:
      return x - y;
    case Bin.Mul:
      return x * y;
    case Bin.Div:
      return x / y;
    default:
      return x;
  }
}

// a: aShape, b: bShape -> out: broadcast(aShape, bShape)
/** Writes `out = a (op) b` with broadcasting. */
export function binaryKernel(
  code: Bin,
  a: FloatArray,
  b: FloatArray,
  out: FloatArray,
  shapes: { a: Shape; b: Shape; out: Shape },
): void {
  const n = out.length;
  if (a.length === n && b.length === n) {
    // the common case: same shapes, no index arithmetic
    switch (code) {
      case Bin.Add:
        for (let i = 0; i < n; i++) out[i] = a[i]! + b[i]!;
        return;
      case Bin.Sub:
        for (let i = 0; i < n; i++) out[i] = a[i]! - b[i]!;
        return;
      case Bin.Mul:
        for (let i = 0; i < n; i++) out[i] = a[i]! * b[i]!;
        return;
      case Bin.Div:
        for (let i = 0; i < n; i++) out[i] = a[i]! / b[i]!;
        return;
      default:
        out.set(a);
        return;
    }
  }
  const r = shapes.out.length;
  const sa = broadcastStrides(shapes.a, r);
  const sb = broadcastStrides(shapes.b, r);
  const dims = shapes.out;
  const inner = r === 0 ? 1 : dims[r - 1]!;
  const ia = r === 0 ? 0 : sa[r - 1]!;
  const ib = r === 0 ? 0 : sb[r - 1]!;
  const idx = new Array<number>(r).fill(0);
  let oa = 0, ob = 0;
  for (let o = 0; o < n; o += inner) {
    for (let j = 0; j < inner; j++) out[o + j] = apply(code, a[oa + j * ia]!, b[ob + j * ib]!);
    // odometer over the outer axes
    for (let ax = r - 2; ax >= 0; ax--) {
      idx[ax]!++;
      oa += sa[ax]!;
      ob += sb[ax]!;
      if (idx[ax]! < dims[ax]!) break;
      oa -= sa[ax]! * dims[ax]!;
      ob -= sb[ax]! * dims[ax]!;
      idx[ax] = 0;
    }
  }
}

/** Strides of `shape` aligned right to rank `r`, 0 on broadcast axes. */
function broadcastStrides(shape: Shape, r: number): number[] {
  const s = new Array<number>(r).fill(0);
  let stride = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const ax = r - shape.length + i;
    s[ax] = shape[i] === 1 ? 0 : stride;
    stride *= shape[i]!;
  }
  return s;
}

/**
 * The two operands of a binary op as nodes: a plain number becomes a scalar
 * constant (`fill([], value)`) in the other operand's graph, which then
 * broadcasts; at least one operand must be a node.
 */
export function operands(op: string, a: Node | number, b: Node | number): [Node, Node] {
  if (typeof a === "number" && typeof b === "number") {
    throw new Error(`${op}: at least one operand must be a node, got the numbers ${a} and ${b}`);
  }
  for (const v of [a, b]) {
    if (typeof v !== "number" && !v?.graph) {
      throw new Error(`${op}: operands must be nodes or numbers, got ${String(v)}`);
    }
  }
  const g = (typeof a === "number" ? b as Node : a).graph;
  const node = (v: Node | number) => typeof v === "number" ? fill([], v, g) : v;
  return [node(a), node(b)];
}
