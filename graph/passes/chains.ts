/**
 * The elementwise-chain pass: a plan-time rewrite of a training graph (after
 * `grad`, after `fuseGraph`) that replaces each maximal connected group of
 * elementwise ops of one shape — add, sub, mul, div, scale, pow, exp, log,
 * tanh, sigmoid, relu, leaky_relu, gelu, their backwards, dropout — whose
 * intermediate values feed nothing outside the group and are not kept, by
 * one `elementwise_chain` node: a small program in its attributes (the
 * graph stays JSON) that its kernel runs in one pass over the output.
 *
 * A group's operands from outside are its inputs; they may broadcast (a
 * [N, 1] statistic, a [C] bias, a scalar) when their axes are one
 * contiguous run of the output's. Scalar `fill` constants are copied into
 * the program. A group holds no dropout together with a step the wasm tier
 * leaves to JavaScript (exp, log, tanh, sigmoid, GELU, their backwards, pow
 * but for squares): there the dropout op's own wasm kernel is faster. The fused node takes the name of the group's last op, so
 * every node the rest of the graph reads survives under its name.
 *
 * The pass finds `elementwise_chain` in the op registry by name (graph/
 * imports no op module); when it is not registered the graph is returned
 * unchanged.
 *
 * @module
 */
import { Graph, type Init, type Node, type NodeRecord } from "../graph.ts";
import { lookupOp, type OpDef } from "../op.ts";

/**
 * The ops the pass fuses (each a step kind of `elementwise_chain` of the
 * same name), with the numeric attributes they carry into the program.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CHAIN_OPS } from "./chains.ts";
 * assert.deepEqual(CHAIN_OPS.scale, ["factor"]);
 * ```
 */
export const CHAIN_OPS: Readonly<Record<string, readonly string[]>> = {
  add: [],
  sub: [],
  mul: [],
  div: [],
  scale: ["factor"],
  pow: ["exponent"],
  exp: [],
  log: [],
  tanh: [],
  sigmoid: [],
  relu: [],
  leaky_relu: ["slope"],
  gelu: [],
  relu_backward: [],
  leaky_relu_backward: ["slope"],
  sigmoid_backward: [],
  tanh_backward: [],
  gelu_backward: [],
  dropout: ["p", "seed"],
};

// Steps the wasm tier of elementwise_chain computes in JavaScript only
// (transcendentals, and pow but for squares). Dropout's mask hash costs far
// more there than in the wasm tier's integer lanes, so a group never mixes
// dropout with these: such a chain would run entirely in JavaScript.
const JS_ONLY = new Set([
  "exp",
  "log",
  "tanh",
  "sigmoid",
  "gelu",
  "sigmoid_backward",
  "tanh_backward",
  "gelu_backward",
]);

function jsOnly(r: NodeRecord): boolean {
  return JS_ONLY.has(r.op) || (r.op === "pow" && r.attrs.exponent !== 1 && r.attrs.exponent !== 2);
}

function registered(name: string): OpDef | null {
  try {
    return lookupOp(name);
  } catch {
    return null;
  }
}

/**
 * Whether `inShape` broadcasts to `outShape` with its own axes (those not
 * broadcast, ignoring axes of size 1) one contiguous run: the fused kernel
 * reads such an input directly, once a row or at a row base.
 */
function contiguousBroadcast(inShape: readonly number[], outShape: readonly number[]): boolean {
  const r = outShape.length, lead = r - inShape.length;
  if (lead < 0) return false;
  let seen = false, broken = false;
  for (let ax = 0; ax < r; ax++) {
    const o = outShape[ax]!, d = ax < lead ? 1 : inShape[ax - lead]!;
    if (o === 1) {
      if (d !== 1) return false;
      continue;
    }
    if (d === o) {
      if (broken) return false;
      seen = true;
    } else if (d === 1) {
      if (seen) broken = true;
    } else return false;
  }
  return true;
}

function isScalarFill(r: NodeRecord): boolean {
  return r.op === "fill" && r.shape.length === 0 && typeof r.attrs.value === "number" &&
    Number.isFinite(r.attrs.value);
}

/** One group: its members in id order (the last is the output). */
interface Group {
  members: number[];
}

/** The groups the pass would fuse in `graph`, as lists of node names (for tests and reports). */
function findGroups(nodes: NodeRecord[], kept: Set<number>): Group[] {
  const users: Set<number>[] = nodes.map(() => new Set());
  nodes.forEach((r, i) => r.inputs.forEach((j) => users[j]!.add(i)));
  const candidate = (i: number): boolean => {
    const r = nodes[i]!;
    const attrs = CHAIN_OPS[r.op];
    if (!attrs || !Object.hasOwn(CHAIN_OPS, r.op)) return false;
    if (Object.keys(r.attrs).some((k) => !attrs.includes(k))) return false;
    if (!attrs.every((k) => typeof r.attrs[k] === "number" && Number.isFinite(r.attrs[k]))) {
      return false;
    }
    return r.inputs.every((j) =>
      isScalarFill(nodes[j]!) || contiguousBroadcast(nodes[j]!.shape, r.shape)
    );
  };
  const assigned = new Uint8Array(nodes.length);
  const groups: Group[] = [];
  for (let root = nodes.length - 1; root >= 0; root--) {
    if (assigned[root] || !candidate(root)) continue;
    const shape = nodes[root]!.shape.join();
    const inGroup = new Set([root]);
    let dropout = nodes[root]!.op === "dropout", js = jsOnly(nodes[root]!);
    const frontier = new Set(nodes[root]!.inputs);
    // largest id first: every user of a node has a larger id, so by the time
    // a node is looked at, each of its users that can join has joined
    while (frontier.size) {
      let u = -1;
      for (const f of frontier) u = Math.max(u, f);
      frontier.delete(u);
      if (inGroup.has(u) || assigned[u] || kept.has(u) || !candidate(u)) continue;
      if (nodes[u]!.shape.join() !== shape) continue;
      if ([...users[u]!].some((v) => !inGroup.has(v))) continue;
      const d = nodes[u]!.op === "dropout", j = jsOnly(nodes[u]!);
      if ((d && js) || (j && dropout)) continue;
      dropout ||= d;
      js ||= j;
      inGroup.add(u);
      nodes[u]!.inputs.forEach((j) => frontier.add(j));
    }
    if (inGroup.size < 2) continue;
    const members = [...inGroup].sort((a, b) => a - b);
    // a group of constants alone has no input to run on: it stays as it is
    if (program(nodes, members).inputs.length === 0) continue;
    members.forEach((m) => assigned[m] = 1);
    groups.push({ members });
  }
  return groups.reverse();
}

/** A step of the program, as `elementwise_chain` reads it. */
interface Step {
  op: string;
  args: number[];
  attrs?: Record<string, number>;
}

function program(nodes: NodeRecord[], members: number[]): { inputs: number[]; steps: Step[] } {
  const inGroup = new Set(members);
  const inputs: number[] = [];
  const consts: number[] = [];
  for (const m of members) {
    for (const j of nodes[m]!.inputs) {
      if (inGroup.has(j)) continue;
      if (isScalarFill(nodes[j]!)) {
        if (!consts.includes(j)) consts.push(j);
      } else if (!inputs.includes(j)) inputs.push(j);
    }
  }
  const ref = new Map<number, number>(inputs.map((j, k) => [j, k]));
  const steps: Step[] = [];
  for (const c of consts) {
    ref.set(c, inputs.length + steps.length);
    steps.push({ op: "const", args: [], attrs: { value: nodes[c]!.attrs.value as number } });
  }
  for (const m of members) {
    const r = nodes[m]!;
    const step: Step = { op: r.op, args: r.inputs.map((j) => ref.get(j)!) };
    if (CHAIN_OPS[r.op]!.length) step.attrs = { ...r.attrs } as Record<string, number>;
    ref.set(m, inputs.length + steps.length);
    steps.push(step);
  }
  return { inputs, steps };
}

function keptIds(graph: Graph, keep: readonly string[]): Set<number> {
  const kept = new Set(keep.map((name) => graph.node(name).id));
  // a buffer's update node is read after each step
  for (const p of graph.params()) {
    const u = p.record.attrs.update;
    if (typeof u === "string" && graph.has(u)) kept.add(graph.node(u).id);
  }
  return kept;
}

/**
 * The groups {@linkcode fuseChains} fuses in `graph`, each as the names of
 * its nodes in order (the last one names the fused node).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { chainGroups, exp, Graph, scale } from "@denograd/denograd";
 * const g = new Graph();
 * const y = exp(scale(g.input("x", [-1, 4]), 2, { name: "s" }), { name: "y" });
 * assert.deepEqual(chainGroups(g, [y.name]), [["s", "y"]]);
 * ```
 */
export function chainGroups(graph: Graph, keep: readonly string[]): string[][] {
  if (!registered("elementwise_chain")) return [];
  return findGroups(graph.nodes, keptIds(graph, keep)).map((gr) =>
    gr.members.map((m) => graph.nodes[m]!.name)
  );
}

/**
 * A copy of `graph` with each group of chained elementwise ops (see the
 * module's notes) replaced by one `elementwise_chain` node under the name of
 * the group's last op. Nodes named in `keep` (the loss, the gradients,
 * whatever the caller reads) and buffers' update nodes survive under their
 * names, as do the inputs and parameters. Returns `graph` itself when there
 * is nothing to fuse.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { add, fuseChains, Graph, relu, scale } from "@denograd/denograd";
 * const g = new Graph();
 * const x = g.input("x", [-1, 4]);
 * const y = relu(add(scale(x, 0.5), g.input("b", [4])), { name: "y" });
 * const fused = fuseChains(g, ["y"]);
 * assert.deepEqual(fused.nodes.map((r) => r.op), ["input", "input", "elementwise_chain"]);
 * assert.equal(fused.nodes[2]!.name, "y");
 * ```
 */
export function fuseChains(graph: Graph, keep: readonly string[]): Graph {
  if (!registered("elementwise_chain")) return graph;
  const nodes = graph.nodes;
  const kept = keptIds(graph, keep);
  const groups = findGroups(nodes, kept);
  if (groups.length === 0) return graph;
  const drop = new Set<number>();
  const fusedAt = new Map<number, { inputs: number[]; steps: Step[] }>();
  const inlined = new Set<number>();
  for (const { members } of groups) {
    members.slice(0, -1).forEach((m) => drop.add(m));
    const p = program(nodes, members);
    fusedAt.set(members.at(-1)!, p);
    for (const m of members) {
      for (const j of nodes[m]!.inputs) if (isScalarFill(nodes[j]!)) inlined.add(j);
    }
  }
  // a constant whose every reader was fused into a program goes
  for (const c of inlined) {
    if (kept.has(c)) continue;
    if (nodes.every((r, i) => !r.inputs.includes(c) || drop.has(i) || fusedAt.has(i))) {
      drop.add(c);
    }
  }
  const chain = lookupOp("elementwise_chain");
  const g = new Graph();
  const map: (Node | undefined)[] = [];
  for (let i = 0; i < nodes.length; i++) {
    const r = nodes[i]!;
    if (drop.has(i)) continue;
    const p = fusedAt.get(i);
    if (p) map[i] = g.apply(chain, p.inputs.map((j) => map[j]!), { steps: p.steps }, r.name);
    else if (r.op === "input") map[i] = g.input(r.name, r.shape);
    else if (r.op === "param") {
      const update = r.attrs.update as string | undefined;
      map[i] = g.param(r.name, r.shape, r.attrs.init as Init, update ? { update } : {});
    } else map[i] = g.apply(lookupOp(r.op), r.inputs.map((j) => map[j]!), r.attrs, r.name);
  }
  return g;
}
