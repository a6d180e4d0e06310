/**
 * The fusion pass: a plan-time rewrite of a whole training graph (forward
 * and backward, after `grad`) into one with fewer, fused kernels. The
 * unfused graph stays the specification: every fused op is tested against
 * the composition of reference ops it replaces, and `fuse: false` (`--no-fuse`)
 * runs the original.
 *
 * Rewrites (each only where the replaced nodes feed nothing else and are not
 * outputs the caller keeps):
 * - a first layer's `max_pool2d(relu(conv2d(x, w, b)))` (one input channel,
 *   stride 1, no padding, 2×2 pool) becomes `conv2d_relu_pool(x, w, b)`,
 *   whose packed output holds the pooled values (read by `packed_first`
 *   under the pool's name) and which element of each window takes the
 *   gradient; its backward — max-pool backward, ReLU backward, the
 *   bias-gradient sum and the filter gradient — becomes one
 *   `conv2d_relu_pool_backward` node whose packed `[dw, db]` two `take`
 *   nodes split under the gradients' names.
 * - any other `max_pool2d(relu(conv2d(x, w, b)))` (2×2 pool; the convolution
 *   of any size, on its own kernels) becomes `conv2d(x, w)` without its bias
 *   and `bias_relu_pool(z, b)`, whose packed output holds the pooled values
 *   and the gradient codes in one pass over z; its backward — max-pool
 *   backward and ReLU backward — becomes one `bias_relu_pool_backward` node
 *   under the ReLU backward's name, whose dz the convolution's backward ops
 *   read as before, and the bias-gradient sum one `relu_pool_bias_grad`
 *   that adds the same values from the codes and the pooled gradient;
 * - any other `relu(conv2d(x, w, b))` becomes `conv2d(x, w)` and
 *   `bias_relu(z, b)` under the ReLU's name, and its ReLU backward reads the
 *   ReLU's output instead of the convolution's (mnist-net's conv1).
 *
 * The pass finds the fused ops in the op registry by name (graph/ imports no
 * op module); when they are not registered it returns the graph unchanged.
 *
 * @module
 */
import { Graph, type Init, type Node, type NodeRecord } from "../graph.ts";
import { lookupOp, numel, type OpDef } from "../op.ts";

function registered(name: string): OpDef | null {
  try {
    return lookupOp(name);
  } catch {
    return null;
  }
}

/** How one node of the original graph is emitted in the fused one. */
type Emit = (g: Graph, map: (Node | undefined)[]) => Node;

interface Rewrite {
  /** Nodes that disappear. */
  drop: number[];
  /** Nodes emitted differently, by id. */
  replace: Map<number, Emit>;
  /** Replaced nodes whose value changes (a convolution that loses its bias): never kept ones. */
  changed?: number[];
}

function sameAttrs(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

// max_pool2d(relu(conv2d(x, w, b))) of a first layer, with its backward.
function convReluPool(nodes: NodeRecord[], users: number[][], p: number): Rewrite | null {
  const pool = nodes[p]!;
  if (pool.op !== "max_pool2d" || !sameAttrs(pool.attrs, { size: 2, stride: 2 })) return null;
  const rl = pool.inputs[0]!, cv = nodes[rl]!.inputs[0]!;
  if (nodes[rl]!.op !== "relu" || nodes[cv]!.op !== "conv2d") return null;
  const conv = nodes[cv]!;
  if (conv.inputs.length !== 3 || !sameAttrs(conv.attrs, { stride: 1, padding: 0 })) return null;
  const [x, w, b] = conv.inputs as [number, number, number];
  if (nodes[w]!.shape[1] !== 1 || nodes[w]!.op !== "param" || nodes[b]!.op !== "param") {
    return null;
  }
  // the conv feeds the ReLU and its backward; the ReLU the pool and its backward
  const rb = users[cv]!.filter((u) => u !== rl);
  const pb = users[rl]!.filter((u) => u !== p);
  if (rb.length > 1 || pb.length > 1 || rb.length !== pb.length) return null;
  if (users[p]!.filter((u) => u === pb[0]).length !== pb.length) return null;
  const rewrite: Rewrite = { drop: [cv, rl], replace: new Map() };
  let packedNode: Node | undefined;
  rewrite.replace.set(p, (g, map) => {
    packedNode = g.apply(
      lookupOp("conv2d_relu_pool"),
      [map[x]!, map[w]!, map[b]!],
      {},
      `${pool.name}/fused`,
    );
    return g.apply(lookupOp("packed_first"), [packedNode], {}, pool.name);
  });
  if (rb.length === 0) return rewrite;
  const pbr = nodes[pb[0]!]!, rbr = nodes[rb[0]!]!;
  if (pbr.op !== "max_pool2d_backward" || !sameAttrs(pbr.attrs, pool.attrs)) return null;
  if (pbr.inputs[0] !== rl || pbr.inputs[2] !== p || pbr.inputs.length !== 3) return null;
  if (rbr.op !== "relu_backward" || rbr.inputs[0] !== cv || rbr.inputs[1] !== pb[0]) return null;
  if (users[pb[0]!]!.some((u) => u !== rb[0])) return null;
  // the ReLU backward feeds exactly the filter gradient and the bias sum: no input gradient
  const grads = users[rb[0]!]!;
  const dw = grads.find((u) => nodes[u]!.op === "conv2d_backward_filter");
  const db = grads.find((u) => nodes[u]!.op === "sum");
  if (grads.length !== 2 || dw === undefined || db === undefined) return null;
  const dwr = nodes[dw]!, dbr = nodes[db]!;
  const wShape = nodes[w]!.shape;
  const geometry = { stride: 1, padding: 0, kernelSize: [wShape[2], wShape[3]] };
  if (dwr.inputs[0] !== x || !sameAttrs(dwr.attrs, geometry)) return null;
  if (!sameAttrs(dbr.attrs, { axes: [0, 2, 3] })) return null;
  const dy = pbr.inputs[1]!;
  rewrite.drop.push(pb[0]!, rb[0]!);
  let packed: Node | undefined;
  const fused = (g: Graph, map: (Node | undefined)[]): Node =>
    packed ??= g.apply(
      lookupOp("conv2d_relu_pool_backward"),
      [map[x]!, packedNode!, map[dy]!],
      { kernelSize: [wShape[2], wShape[3]] },
      `${pool.name}/backward`,
    );
  rewrite.replace.set(
    dw,
    (g, map) =>
      g.apply(lookupOp("take"), [fused(g, map)], { offset: 0, shape: [...wShape] }, dwr.name),
  );
  rewrite.replace.set(db, (g, map) =>
    g.apply(
      lookupOp("take"),
      [fused(g, map)],
      { offset: numel(wShape), shape: [wShape[0]!] },
      dbr.name,
    ));
  return rewrite;
}

// max_pool2d(relu(conv2d(x, w, b))) of any convolution, with its backward:
// the conv loses its bias to a bias_relu_pool after it, the pool's and
// ReLU's backward become one bias_relu_pool_backward whose dz takes the ReLU
// backward's name (the conv's backward ops read it as before), and the bias
// sum over dz a relu_pool_bias_grad over the codes and dy.
function biasReluPool(nodes: NodeRecord[], users: number[][], p: number): Rewrite | null {
  const pool = nodes[p]!;
  if (pool.op !== "max_pool2d" || !sameAttrs(pool.attrs, { size: 2, stride: 2 })) return null;
  const rl = pool.inputs[0]!, cv = nodes[rl]!.inputs[0]!;
  if (nodes[rl]!.op !== "relu" || nodes[cv]!.op !== "conv2d") return null;
  const conv = nodes[cv]!;
  if (conv.inputs.length !== 3 || conv.shape.length !== 4) return null;
  const [x, w, b] = conv.inputs as [number, number, number];
  // the conv feeds the ReLU and its backward; the ReLU the pool and its backward
  const rb = users[cv]!.filter((u) => u !== rl);
  const pb = users[rl]!.filter((u) => u !== p);
  if (rb.length > 1 || pb.length > 1 || rb.length !== pb.length) return null;
  const rewrite: Rewrite = { drop: [rl], replace: new Map(), changed: [cv] };
  let packedNode: Node | undefined;
  rewrite.replace.set(
    cv,
    (g, map) => g.apply(lookupOp("conv2d"), [map[x]!, map[w]!], conv.attrs, conv.name),
  );
  rewrite.replace.set(p, (g, map) => {
    packedNode = g.apply(
      lookupOp("bias_relu_pool"),
      [map[cv]!, map[b]!],
      {},
      `${pool.name}/fused`,
    );
    return g.apply(lookupOp("packed_first"), [packedNode], {}, pool.name);
  });
  if (rb.length === 0) return rewrite;
  const pbr = nodes[pb[0]!]!, rbr = nodes[rb[0]!]!;
  if (pbr.op !== "max_pool2d_backward" || !sameAttrs(pbr.attrs, pool.attrs)) return null;
  if (pbr.inputs[0] !== rl || pbr.inputs[2] !== p || pbr.inputs.length !== 3) return null;
  if (rbr.op !== "relu_backward" || rbr.inputs[0] !== cv || rbr.inputs[1] !== pb[0]) return null;
  if (users[pb[0]!]!.some((u) => u !== rb[0])) return null;
  const dy = pbr.inputs[1]!;
  const size = [conv.shape[2]!, conv.shape[3]!];
  rewrite.drop.push(pb[0]!);
  rewrite.replace.set(rb[0]!, (g, map) =>
    g.apply(
      lookupOp("bias_relu_pool_backward"),
      [packedNode!, map[dy]!],
      { size },
      rbr.name,
    ));
  // the bias gradient from the codes and dy, a quarter of dz's size each
  const db = users[rb[0]!]!.find((u) =>
    nodes[u]!.op === "sum" && sameAttrs(nodes[u]!.attrs, { axes: [0, 2, 3] })
  );
  if (db !== undefined && registered("relu_pool_bias_grad")) {
    const dbr = nodes[db]!;
    rewrite.replace.set(
      db,
      (g, map) =>
        g.apply(lookupOp("relu_pool_bias_grad"), [packedNode!, map[dy]!], { size }, dbr.name),
    );
  }
  return rewrite;
}

// relu(conv2d(x, w, b)) of any convolution not followed by a fused pool:
// the conv loses its bias to a bias_relu after it (under the ReLU's name),
// and the ReLU backward reads the ReLU's output instead of the conv's, which
// is positive exactly where the conv's output is (so the conv's output need
// not live until the backward).
function biasRelu(nodes: NodeRecord[], users: number[][], rl: number): Rewrite | null {
  const relu = nodes[rl]!;
  if (relu.op !== "relu") return null;
  const cv = relu.inputs[0]!, conv = nodes[cv]!;
  if (conv.op !== "conv2d" || conv.inputs.length !== 3 || conv.shape.length !== 4) return null;
  const [x, w, b] = conv.inputs as [number, number, number];
  const rb = users[cv]!.filter((u) => u !== rl);
  if (rb.length > 1) return null;
  const rewrite: Rewrite = { drop: [], replace: new Map(), changed: [cv] };
  rewrite.replace.set(
    cv,
    (g, map) => g.apply(lookupOp("conv2d"), [map[x]!, map[w]!], conv.attrs, conv.name),
  );
  rewrite.replace.set(
    rl,
    (g, map) => g.apply(lookupOp("bias_relu"), [map[cv]!, map[b]!], {}, relu.name),
  );
  if (rb.length === 0) return rewrite;
  const rbr = nodes[rb[0]!]!;
  if (rbr.op !== "relu_backward" || rbr.inputs[0] !== cv || rbr.inputs.length !== 2) return null;
  const dr = rbr.inputs[1]!;
  rewrite.replace.set(
    rb[0]!,
    (g, map) => g.apply(lookupOp("relu_backward"), [map[rl]!, map[dr]!], {}, rbr.name),
  );
  return rewrite;
}

const REWRITES: [
  string[],
  (nodes: NodeRecord[], users: number[][], p: number) => Rewrite | null,
][] = [
  [["conv2d_relu_pool", "conv2d_relu_pool_backward", "packed_first", "take"], convReluPool],
  [["bias_relu_pool", "bias_relu_pool_backward", "packed_first"], biasReluPool],
  [["bias_relu"], biasRelu],
];

/**
 * A copy of `graph` with the fusions above applied. Nodes named in `keep`
 * (the loss, the gradients, whatever the caller reads) survive under their
 * names, as do the inputs and parameters; a match that would remove one of
 * them is left unfused.
 *
 * @example
 * ```ts
 * import { fuseGraph, lectureCnn } from "@denograd/denograd";
 * import { ok } from "node:assert/strict";
 * const m = lectureCnn();
 * const fused = fuseGraph(m.built, [m.loss, ...Object.values(m.grads)]);
 * ok(fused.nodes.length < m.built.nodes.length);
 * ok(fused.nodes.some((r) => r.op === "conv2d_relu_pool"));
 * ```
 */
export function fuseGraph(graph: Graph, keep: readonly string[]): Graph {
  const rewrites = REWRITES.filter(([needed]) => needed.every(registered)).map(([, r]) => r);
  if (rewrites.length === 0) return graph;
  const nodes = graph.nodes;
  const users: number[][] = nodes.map(() => []);
  nodes.forEach((r, i) => new Set(r.inputs).forEach((j) => users[j]!.push(i)));
  const kept = new Set(keep.map((name) => graph.node(name).id));
  const drop = new Set<number>();
  const replace = new Map<number, Emit>();
  const taken = (id: number) => drop.has(id) || replace.has(id);
  // each rewrite in turn over the whole graph, so an earlier one (a pooled
  // layer) has the first pick; a match must touch nothing kept or rewritten
  for (const match of rewrites) {
    for (let i = 0; i < nodes.length; i++) {
      const rw = match(nodes, users, i);
      if (!rw || rw.drop.some((d) => kept.has(d) || taken(d))) continue;
      if ((rw.changed ?? []).some((d) => kept.has(d)) || [...rw.replace.keys()].some(taken)) {
        continue;
      }
      rw.drop.forEach((d) => drop.add(d));
      rw.replace.forEach((e, id) => replace.set(id, e));
    }
  }
  if (replace.size === 0) return graph;
  const g = new Graph();
  const map: (Node | undefined)[] = [];
  for (let i = 0; i < nodes.length; i++) {
    const r = nodes[i]!;
    if (drop.has(i)) continue;
    const emit = replace.get(i);
    if (emit) map[i] = emit(g, map);
    else if (r.op === "input") map[i] = g.input(r.name, r.shape);
    else if (r.op === "param") map[i] = g.param(r.name, r.shape, r.attrs.init as Init);
    else map[i] = g.apply(lookupOp(r.op), r.inputs.map((j) => map[j]!), r.attrs, r.name);
  }
  return g;
}
