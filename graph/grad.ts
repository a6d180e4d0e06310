/**
 * Reverse-mode autodiff over a static graph: appends the backward nodes that
 * each op's VJP rule emits, so the backward pass is itself a dataflow graph.
 * The seed, fan-out sums and un-broadcasting use the ops registered as
 * `fill`, `add`, `sum` and `reshape` (found by name, so the core imports no op).
 *
 * @module
 */
import type { Graph, Node } from "./graph.ts";
import { fmtShape, lookupOp } from "./op.ts";

/** Options of {@linkcode grad}. */
export interface GradOptions {
  /** Cotangent of `loss`; required unless `loss` has one element (then it is 1). */
  cotangent?: Node;
}

/**
 * Appends to the graph the nodes computing d(loss)/d(w) for each `w` in `wrt`.
 * Fan-out is summed here, in a fixed order, not by the rules; broadcasts are
 * undone here too. An entry is `null` when that node does not reach `loss`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, grad, mean, mul } from "@denograd/denograd";
 * const g = new Graph();
 * const x = g.input("x", [3]);
 * const [dx] = grad(mean(mul(x, x)), [x]);
 * assert.deepEqual(dx!.shape, [3]);
 * ```
 */
export function grad(loss: Node, wrt: readonly Node[], options: GradOptions = {}): (Node | null)[] {
  const g = loss.graph;
  let seed = options.cotangent;
  if (seed === undefined) {
    if (loss.shape.some((d) => d !== 1)) {
      throw new Error(
        `grad: loss "${loss.name}" has shape ${
          fmtShape(loss.shape)
        }; pass a cotangent for a loss that is not a scalar`,
      );
    }
    seed = g.apply(lookupOp("fill"), [], { shape: [...loss.shape], value: 1 });
  } else if (seed.shape.join() !== loss.shape.join()) {
    throw new Error(
      `grad: cotangent "${seed.name}" has shape ${
        fmtShape(seed.shape)
      } but loss "${loss.name}" has ${fmtShape(loss.shape)}`,
    );
  }

  // Only nodes on a path from some wrt to the loss get cotangents.
  const n = loss.id + 1;
  const fromWrt = new Uint8Array(n);
  for (const w of wrt) {
    if (w.graph !== g) throw new Error(`grad: "${w.name}" belongs to another graph`);
    if (w.id < n) fromWrt[w.id] = 1;
  }
  for (let i = 0; i < n; i++) {
    if (!fromWrt[i] && g.nodes[i]!.inputs.some((j) => fromWrt[j])) fromWrt[i] = 1;
  }
  const toLoss = new Uint8Array(n);
  toLoss[loss.id] = 1;
  for (let i = n - 1; i >= 0; i--) {
    if (!toLoss[i]) continue;
    for (const j of g.nodes[i]!.inputs) toLoss[j] = 1;
  }

  const parts = new Map<number, Node[]>([[loss.id, [seed]]]);
  const total = new Map<number, Node>();
  for (let i = n - 1; i >= 0; i--) {
    const contributions = parts.get(i);
    if (!contributions || !fromWrt[i] || !toLoss[i]) continue;
    // Summed in the order they were produced, so the graph is deterministic.
    const dy = contributions.reduce((acc, c) => g.apply(lookupOp("add"), [acc, c], {}));
    total.set(i, dy);
    const rec = g.nodes[i]!;
    if (rec.op === "input" || rec.op === "param") continue;
    const op = lookupOp(rec.op);
    const inputs = rec.inputs.map((j) => g.node(j));
    const needs = rec.inputs.some((j) => fromWrt[j] && toLoss[j]);
    if (!needs) continue;
    if (!op.vjp) throw new Error(`grad: op ${rec.op} "${rec.name}" has no VJP rule`);
    const cots = op.vjp({
      inputs,
      out: g.node(i),
      dy,
      attrs: rec.attrs,
      needs: rec.inputs.map((j) => !!(fromWrt[j] && toLoss[j])),
    });
    checkCotangents(rec.op, rec.name, cots, rec.inputs.length, g);
    rec.inputs.forEach((j, k) => {
      const c = cots[k];
      if (!c || !fromWrt[j] || !toLoss[j]) return;
      const fixed = unbroadcast(c, inputs[k]!.shape);
      if (fixed.shape.join() !== inputs[k]!.shape.join()) {
        throw new Error(
          `grad: the VJP of ${rec.op} "${rec.name}" gave input ${k} a cotangent of shape ${
            fmtShape(fixed.shape)
          } but the input has ${fmtShape(inputs[k]!.shape)}`,
        );
      }
      const list = parts.get(j);
      if (list) list.push(fixed);
      else parts.set(j, [fixed]);
    });
  }
  return wrt.map((w) => total.get(w.id) ?? null);
}

/**
 * Throws, naming the op and the node, unless a VJP rule returned an array of
 * one node of this graph or `null` per input.
 */
function checkCotangents(
  op: string,
  name: string,
  cots: unknown,
  count: number,
  g: Graph,
): void {
  const what = `grad: the VJP of ${op} "${name}"`;
  if (!Array.isArray(cots)) {
    throw new Error(
      `${what} returned ${describe(cots)}; expected an array of ${count} cotangent${
        count === 1 ? "" : "s"
      } (a node or null per input)`,
    );
  }
  // Entries past the inputs may be null: a rule for `x, w, b?` may return
  // `[dx, dw, null]` for a node without `b`.
  if (cots.length < count || cots.slice(count).some((c) => c !== null && c !== undefined)) {
    throw new Error(
      `${what} returned ${cots.length} cotangent${
        cots.length === 1 ? "" : "s"
      } but the op has ${count} input${count === 1 ? "" : "s"} (a node or null per input)`,
    );
  }
  cots.forEach((c, k) => {
    if (c === null || c === undefined) return;
    const isNode = typeof c === "object" && "graph" in c && "shape" in c && "id" in c;
    if (!isNode) {
      throw new Error(
        `${what} gave input ${k} ${describe(c)}; expected a node of the graph or null`,
      );
    }
    if ((c as Node).graph !== g) {
      throw new Error(`${what} gave input ${k} a node of another graph`);
    }
  });
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (v === undefined) return "undefined";
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === "object") return `an object (${v.constructor?.name ?? "Object"})`;
  if (typeof v === "string") return `the string ${JSON.stringify(v)}`;
  return `the ${typeof v} ${String(v)}`;
}

/** Sums a cotangent over the axes that broadcasting expanded, back to `shape`. */
function unbroadcast(c: Node, shape: readonly number[]): Node {
  const cs = c.shape;
  if (cs.join() === shape.join()) return c;
  const lead = cs.length - shape.length;
  if (lead < 0) return c; // leave it to the shape check to report
  const axes: number[] = [];
  for (let a = 0; a < cs.length; a++) {
    if (a < lead || (shape[a - lead] === 1 && cs[a] !== 1)) axes.push(a);
  }
  if (axes.length === 0) return c;
  const g: Graph = c.graph;
  const summed = g.apply(lookupOp("sum"), [c], { axes });
  return g.apply(lookupOp("reshape"), [summed], { shape: [...shape] });
}
