import type { Node } from "../graph/graph.ts";
import { lookupOp, type OpDef, registerOp, type Shape } from "../graph/op.ts";
import { broadcastShape } from "./_broadcast.ts";
import { chainF32 } from "./kernels/elementwise_chain_fast.ts";
import { chainWasm } from "./kernels/elementwise_chain_wasm.ts";
import { CHAIN_STEPS, chainRef, type ChainStep } from "./kernels/elementwise_chain_ref.ts";
import { runKernel } from "./kernels/tier.ts";

export type { ChainStep };

/** Attributes of `elementwise_chain`: the program, plain JSON. */
export interface ElementwiseChainAttrs {
  /** The steps in order; the last one is the output. */
  steps: ChainStep[];
}

// Checks the program against the inputs' shapes; returns every step's shape.
function stepShapes(shapes: Shape[], { steps }: ElementwiseChainAttrs): Shape[] {
  if (!Array.isArray(steps) || steps.length === 0) {
    throw new Error("steps must be a non-empty list of steps");
  }
  const all: Shape[] = [...shapes];
  steps.forEach((s, k) => {
    const where = `step ${k} (${JSON.stringify(s?.op)})`;
    const spec = CHAIN_STEPS[s?.op];
    if (!spec || !Object.hasOwn(CHAIN_STEPS, s.op)) {
      throw new Error(`${where}: unknown step (expected one of ${Object.keys(CHAIN_STEPS)})`);
    }
    if (!Array.isArray(s.args) || s.args.length !== spec.arity) {
      throw new Error(`${where}: expected ${spec.arity} operand(s), got ${JSON.stringify(s.args)}`);
    }
    for (const a of s.args) {
      if (!Number.isInteger(a) || a < 0 || a >= all.length) {
        throw new Error(
          `${where}: operand ${a} is neither an input (0..${
            shapes.length - 1
          }) nor an earlier step`,
        );
      }
    }
    for (const name of spec.attrs) {
      const v = s.attrs?.[name];
      if (typeof v !== "number" || !Number.isFinite(v)) {
        throw new Error(`${where}: attribute ${name} must be a finite number, got ${v}`);
      }
    }
    if (s.op === "dropout" && !(s.attrs!.p! >= 0 && s.attrs!.p! <= 1)) {
      throw new Error(`${where}: p must be a probability in [0, 1], got ${s.attrs!.p}`);
    }
    if (s.op === "dropout" && !Number.isInteger(s.attrs!.seed)) {
      throw new Error(`${where}: seed must be a whole number, got ${s.attrs!.seed}`);
    }
    // each step's shape as its op's own rule gives it (broadcasting or not)
    const ins = s.args.map((a) => all[a]!);
    try {
      all.push(s.op === "const" ? [] : lookupOp(s.op).shape(ins, s.attrs ?? {}));
    } catch (e) {
      throw new Error(`${where}: ${(e as Error).message}`);
    }
  });
  const out = all.at(-1)!;
  // every input reaches the output by broadcasting; a dropout step draws its
  // mask by position, so it must have the output's shape
  for (const s of shapes) broadcastShape(s, out);
  const sh = all.slice(shapes.length);
  steps.forEach((s, k) => {
    if (s.op === "dropout" && sh[k]!.join() !== out.join()) {
      throw new Error(`step ${k} ("dropout") must have the output's shape`);
    }
  });
  if (broadcastShape(out, shapes.reduce((x, y) => broadcastShape(x, y))).join() !== out.join()) {
    throw new Error("the inputs broadcast beyond the output's shape");
  }
  return sh;
}

/**
 * A fused chain of elementwise ops: the program `steps` (each step one of
 * the ops add, sub, mul, div, scale, pow, exp, log, tanh, sigmoid, relu,
 * leaky_relu, gelu, their backwards, dropout, or a scalar constant) over the
 * inputs with NumPy broadcasting, in one pass over the output, written by
 * the fusion pass `fuseChains`. Each step is rounded to the output's float
 * type as the unfused op's output buffer rounds it, so the result equals the
 * unfused composition: bit for bit on each tier (the float32 tiers run a
 * function compiled from the program; see `kernels/elementwise_chain_fast.ts`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { elementwiseChainOp } from "@denograd/denograd";
 * // relu then dropout as one pass
 * assert.deepEqual(elementwiseChainOp.shape([[-1, 128]], { steps: [{ op: "relu", args: [0] }, { op: "dropout", args: [1], attrs: { p: 0.5, seed: 2 } }] }), [-1, 128]);
 * ```
 */
export const elementwiseChainOp: OpDef<ElementwiseChainAttrs> = registerOp<
  ElementwiseChainAttrs
>({
  name: "elementwise_chain",
  inputs: ["xs..."],
  // the program may hold a dropout step, whose value depends on the step
  stochastic: true,
  shape: (shapes, attrs) => stepShapes(shapes, attrs).at(-1)!,
  forward(ins, out, c) {
    const run = c;
    runKernel(out, c.tier, {
      ref: () => chainRef(c.attrs.steps, ins, c.inShapes, out, c.outShape, run),
      wasm: (out) => chainWasm(c.attrs, ins as Float32Array[], c.inShapes, out, c.outShape, run),
      ts: (out) => {
        const ins32 = ins as Float32Array[];
        if (!chainF32(c.attrs, ins32, c.inShapes, out, c.outShape, run)) {
          chainRef(c.attrs.steps, ins, c.inShapes, out, c.outShape, run, true);
        }
      },
    });
  },
  // the program expanded back into its ops, and their VJP rules run backward
  // over it (its inputs are independent here even when one feeds another in
  // the graph, so this is not `grad`, which would follow such a path)
  vjp: ({ inputs, dy, attrs, needs }) => {
    const g = dy.graph;
    const nIn = inputs.length;
    const nodes: Node[] = [...inputs];
    const { steps } = attrs;
    for (const s of steps) {
      if (s.op === "const") {
        nodes.push(g.apply(lookupOp("fill"), [], { shape: [], value: s.attrs!.value! }));
      } else {
        nodes.push(g.apply(lookupOp(s.op), s.args.map((a) => nodes[a]!), s.attrs ?? {}));
      }
    }
    // which values depend on an input that needs a cotangent
    const live = nodes.map((_, k) => k < nIn && needs[k] === true);
    steps.forEach((s, k) => live[nIn + k] = s.args.some((a) => live[a]));
    const parts: Node[][] = nodes.map(() => []);
    parts[nodes.length - 1]!.push(dy);
    for (let k = steps.length - 1; k >= 0; k--) {
      const s = steps[k]!, at = nIn + k;
      if (!live[at] || parts[at]!.length === 0) continue;
      const cot = sumAll(parts[at]!);
      const ops = s.args.map((a) => nodes[a]!);
      const cots = lookupOp(s.op).vjp!({
        inputs: ops,
        out: nodes[at]!,
        dy: cot,
        attrs: s.attrs ?? {},
        needs: s.args.map((a) => live[a]!),
      });
      s.args.forEach((a, j) => {
        const c = cots[j];
        if (c && live[a]) parts[a]!.push(unbroadcast(c, nodes[a]!.shape));
      });
    }
    return inputs.map((_, k) => (parts[k]!.length ? sumAll(parts[k]!) : null));
  },
});

function sumAll(list: Node[]): Node {
  return list.reduce((acc, c) => acc.graph.apply(lookupOp("add"), [acc, c], {}));
}

// c summed over the axes it broadcasts `shape` along (as `grad` does)
function unbroadcast(c: Node, shape: readonly number[]): Node {
  const cs = c.shape;
  if (cs.join() === shape.join()) return c;
  const lead = cs.length - shape.length;
  const axes: number[] = [];
  for (let a = 0; a < cs.length; a++) {
    if (a < lead || (shape[a - lead] === 1 && cs[a] !== 1)) axes.push(a);
  }
  const g = c.graph;
  const summed = axes.length ? g.apply(lookupOp("sum"), [c], { axes }) : c;
  return g.apply(lookupOp("reshape"), [summed], { shape: [...shape] });
}

/**
 * Applies the chain program `steps` to `inputs` as one node (see
 * {@linkcode elementwiseChainOp}); operand `k` of a step is input `k` below
 * `inputs.length`, else step `k - inputs.length`. The fusion pass
 * `fuseChains` writes these; by hand they are mostly for tests.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { elementwiseChain, tensor, vjp } from "@denograd/denograd";
 * // relu(a * b + 1)
 * const { out, backward } = vjp(
 *   (a, b) =>
 *     elementwiseChain([a, b], [
 *       { op: "mul", args: [0, 1] },
 *       { op: "const", args: [], attrs: { value: 1 } },
 *       { op: "add", args: [2, 3] },
 *       { op: "relu", args: [4] },
 *     ]),
 *   tensor([1, -2]),
 *   tensor([3, 4]),
 * );
 * assert.deepEqual([...out.data], [4, 0]);
 * assert.deepEqual([...backward([1, 1])[0]!.data], [3, 0]);
 * ```
 */
export function elementwiseChain(
  inputs: readonly Node[],
  steps: ChainStep[],
  opts: { name?: string } = {},
): Node {
  if (inputs.length === 0) throw new Error("elementwiseChain: needs at least one input");
  return inputs[0]!.graph.apply(elementwiseChainOp, inputs, { steps }, opts.name);
}
