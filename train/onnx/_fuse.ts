// Batch norm and layer norm are compositions of ops in denograd (ops/batch_norm.ts,
// ops/layer_norm.ts); ONNX has one node for each. This finds their evaluation
// form in a graph so the exporter writes BatchNormalization and
// LayerNormalization; anything that does not match exactly is written op by op.
import type { Graph, NodeRecord } from "../../graph/graph.ts";

/** One normalisation found: the nodes it covers and what its ONNX node needs. */
export interface Fusion {
  /** `BatchNormalization` or `LayerNormalization`. */
  opType: "BatchNormalization" | "LayerNormalization";
  /** Node ids: the input x, then scale, bias (null: absent), and for batch norm the running mean and variance. */
  x: number;
  scale: number | null;
  bias: number | null;
  mean: number | null;
  var: number | null;
  /** Added to the variance. */
  eps: number;
  /** First normalised axis (layer norm). */
  axis: number;
  /** The id whose value the fused node produces. */
  end: number;
  /** Ids of the nodes the fused node replaces (`end` among them). */
  covered: number[];
}

/** Every batch norm and layer norm (evaluation form) among the `needed` nodes of `graph`. */
export function findFusions(graph: Graph, needed: Uint8Array): Fusion[] {
  const g = graph.nodes;
  const uses: number[][] = g.map(() => []);
  g.forEach((r, i) => {
    if (needed[i]) { for (const j of r.inputs) uses[j]!.push(i); }
  });
  const rec = (i: number | undefined): NodeRecord | null => (i === undefined ? null : g[i]!);
  const is = (i: number | undefined, op: string): i is number => rec(i)?.op === op;
  const out: Fusion[] = [];
  const taken = new Set<number>();
  for (let i = 0; i < g.length; i++) {
    if (!needed[i] || g[i]!.op !== "mul" || taken.has(i)) continue;
    const f = matchBatchNorm(g, i, is) ?? matchLayerNorm(g, i, is);
    if (!f) continue;
    extendAffine(g, f, uses, is);
    // fuse only when nothing outside reads an inner value
    const inner = new Set(f.covered);
    const leaks = f.covered.some((c) => c !== f.end && uses[c]!.some((u) => !inner.has(u)));
    if (leaks || f.covered.some((c) => taken.has(c))) continue;
    f.covered.forEach((c) => taken.add(c));
    out.push(f);
  }
  return out;
}

type Is = (i: number | undefined, op: string) => i is number;

// inv = pow(add(v, fill([], eps)), -0.5); returns [v, eps, covered] or null
function invSqrt(g: NodeRecord[], i: number, is: Is): [number, number, number[]] | null {
  const p = g[i]!;
  if (!is(i, "pow") || p.attrs.exponent !== -0.5) return null;
  const a = p.inputs[0];
  if (!is(a, "add")) return null;
  const [v, e] = g[a]!.inputs;
  if (!is(e, "fill") || (g[e]!.attrs.shape as number[]).length !== 0) return null;
  return [v!, g[e]!.attrs.value as number, [i, a, e]];
}

// y = mul(sub(x, select(_, reshape(mean))), inv(select(_, reshape(var))))
function matchBatchNorm(g: NodeRecord[], y: number, is: Is): Fusion | null {
  const [xc, inv] = g[y]!.inputs;
  if (!is(xc, "sub") || inv === undefined) return null;
  const [x, s1] = g[xc]!.inputs;
  const iv = invSqrt(g, inv, is);
  if (!iv || !is(s1, "training_select") || !is(iv[0], "training_select")) return null;
  const r1 = g[s1]!.inputs[1], r2 = g[iv[0]]!.inputs[1];
  if (!is(r1, "reshape") || !is(r2, "reshape")) return null;
  const m = g[r1]!.inputs[0], v = g[r2]!.inputs[0];
  const c = g[x!]!.shape[1];
  const perChannel = (k: number | undefined) => is(k, "param") && g[k]!.shape.join() === String(c);
  if (!perChannel(m) || !perChannel(v) || g[x!]!.shape.length < 2) return null;
  return {
    opType: "BatchNormalization",
    x: x!,
    scale: null,
    bias: null,
    mean: m!,
    var: v!,
    eps: iv[1],
    axis: 1,
    end: y,
    covered: [y, xc, s1, r1, iv[0], r2, ...iv[2]],
  };
}

// y = mul(xc, inv(mean(mul(xc, xc)))) with xc = sub(x, mean(x)) over the same trailing axes
function matchLayerNorm(g: NodeRecord[], y: number, is: Is): Fusion | null {
  const [xc, inv] = g[y]!.inputs;
  if (!is(xc, "sub") || inv === undefined) return null;
  const [x, mu] = g[xc]!.inputs;
  const iv = invSqrt(g, inv, is);
  if (!iv || !is(mu, "mean") || !is(iv[0], "mean") || g[mu]!.inputs[0] !== x) return null;
  const sq = g[iv[0]]!.inputs[0];
  if (!is(sq, "mul") || g[sq]!.inputs.some((k) => k !== xc)) return null;
  const r = g[x!]!.shape.length;
  const axesOf = (k: number) => {
    const a = g[k]!.attrs;
    if (!a.keepdims || !Array.isArray(a.axes)) return null;
    return (a.axes as number[]).map((d) => (d < 0 ? d + r : d)).sort((p, q) => p - q).join();
  };
  const axes = axesOf(mu);
  if (!axes || axes !== axesOf(iv[0])) return null;
  const list = axes.split(",").map(Number);
  if (list.some((d, i) => d !== r - list.length + i)) return null;
  return {
    opType: "LayerNormalization",
    x: x!,
    scale: null,
    bias: null,
    mean: null,
    var: null,
    eps: iv[1],
    axis: list[0]!,
    end: y,
    covered: [y, xc, mu, iv[0], sq, ...iv[2]],
  };
}

// a following mul by the weight and add of the bias (reshaped per channel for batch norm)
function extendAffine(g: NodeRecord[], f: Fusion, uses: number[][], is: Is): void {
  const norm = f.opType === "LayerNormalization"
    ? g[f.x]!.shape.slice(f.axis).join()
    : String(g[f.x]!.shape[1]);
  const paramOf = (k: number | undefined): [number, number[]] | null => {
    if (f.opType === "LayerNormalization") {
      return is(k, "param") && g[k]!.shape.join() === norm ? [k, []] : null;
    }
    if (!is(k, "reshape")) return null;
    const p = g[k]!.inputs[0];
    return is(p, "param") && g[p]!.shape.join() === norm ? [p, [k]] : null;
  };
  for (const [op, slot] of [["mul", "scale"], ["add", "bias"]] as const) {
    const next = uses[f.end]!;
    const n = next.length === 1 && is(next[0], op) ? next[0] : undefined;
    const p = n === undefined || g[n]!.inputs[0] !== f.end ? null : paramOf(g[n]!.inputs[1]);
    if (!p) continue; // a batch norm without weight may still have a bias
    f[slot] = p[0];
    f.covered.push(n!, ...p[1]);
    f.end = n!;
  }
}
