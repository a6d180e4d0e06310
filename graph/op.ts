/**
 * The op interface: what every op declares (name, inputs, shape rule,
 * forward, VJP), and the registry that rebuilds graphs from JSON by op name.
 *
 * @module
 */
import type { Node } from "./graph.ts";

/** A float buffer: float32 for training, float64 for gradient checks. */
export type FloatArray = Float32Array | Float64Array;

/** A tensor shape. In a graph, `-1` in the first axis stands for the batch size. */
export type Shape = readonly number[];

/** Attributes of a node: plain JSON data. */
export type Attrs = Record<string, unknown>;

/** Which kernels an executor runs: naive references, blocked TypeScript, or WebAssembly SIMD. */
export type Tier = "ref" | "ts" | "wasm";

/** What a forward kernel call sees besides its input and output buffers. */
export interface ForwardContext<A = Attrs> {
  /** The node's attributes. */
  attrs: A;
  /** Concrete shapes of the inputs. */
  inShapes: Shape[];
  /** Concrete shape of the output. */
  outShape: Shape;
  /** Training mode (dropout drops) or evaluation (dropout is the identity). */
  training: boolean;
  /** The optimisation step: with the sample index, it seeds stochastic ops. */
  step: number;
  /** Index of the first sample of this batch shard in the whole mini-batch. */
  sampleOffset: number;
  /** Kernel tier for float32 buffers, undefined for the process-wide default (float64 always uses references). */
  tier: Tier | undefined;
}

/** What a VJP rule sees: the node's inputs and output as graph nodes, and the output cotangent. */
export interface VjpContext<A = Attrs> {
  /** The node's inputs. */
  inputs: Node[];
  /** The node itself (its output). */
  out: Node;
  /** The cotangent of the output, a node of the same shape. */
  dy: Node;
  /** The node's attributes. */
  attrs: A;
  /** Which inputs need a cotangent; a rule may return `null` for the others. */
  needs: boolean[];
}

/**
 * An op: plain data plus three rules. Inputs whose name ends in `?` are
 * optional (only trailing ones); a last input named `xs...` takes any number
 * of nodes (at least one).
 */
export interface OpDef<A = Attrs> {
  /** Unique name, used to rebuild a graph from JSON. */
  name: string;
  /** Input names, e.g. `["x", "w", "b?"]`. */
  inputs: readonly string[];
  /** Output shape from input shapes; throws a message naming the offending shapes. */
  shape(shapes: Shape[], attrs: A): Shape;
  /** Writes the output into the caller-owned `out`. */
  forward(ins: FloatArray[], out: FloatArray, ctx: ForwardContext<A>): void;
  /** Cotangents of the inputs as graph nodes, `null` where an input has no gradient. */
  vjp?(ctx: VjpContext<A>): (Node | null)[];
  /**
   * Floats of kernel scratch the float32 forward may use in the arena's
   * memory besides its buffers (im2col columns, a GEMM's packing space),
   * from the concrete shapes. A plan reserves the largest over its nodes
   * (`Plan.scratchLength`) past the arena; a kernel must still work,
   * copying, where it finds less (a plain `ArrayBuffer` arena).
   */
  scratch?(shapes: Shape[], attrs: A, outShape: Shape): number;
  /** Set when the output depends on the step and sample index (dropout). */
  stochastic?: boolean;
  /**
   * Set for a collective op (`batch_sum`): its value is a sum over every
   * micro-batch and shard of a training step, which the runner computes (see
   * `RunOptions.collective`); `forward` gives the value for a run over the
   * whole batch at once.
   */
  collective?: boolean;
}

const registry = new Map<string, OpDef<any>>();

/**
 * Registers an op under its name so graphs can be rebuilt from JSON; returns it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lookupOp, registerOp } from "@denograd/denograd";
 * const relu = lookupOp("relu");
 * assert.equal(registerOp(relu), relu); // the same op again: nothing changes
 * assert.throws(() => registerOp({ ...relu }), { message: 'Cannot register op "relu": the name is taken' });
 * ```
 */
export function registerOp<A>(op: OpDef<A>): OpDef<A> {
  const known = registry.get(op.name);
  if (known && known !== op) throw new Error(`Cannot register op "${op.name}": the name is taken`);
  registry.set(op.name, op);
  return op;
}

/**
 * Every registered op, in registration order (tests walk it to find ops
 * without a VJP test).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { registeredOps } from "@denograd/denograd";
 * assert.ok(registeredOps().some((op) => op.name === "conv2d"));
 * ```
 */
export function registeredOps(): OpDef<any>[] {
  return [...registry.values()];
}

/**
 * The op registered under `name`; throws when there is none.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lookupOp } from "@denograd/denograd";
 * assert.equal(lookupOp("conv2d").name, "conv2d");
 * assert.throws(() => lookupOp("conv3d"), /^Error: Unknown op "conv3d": it is not in the op registry/);
 * ```
 */
export function lookupOp(name: string): OpDef<any> {
  const op = registry.get(name);
  if (!op) {
    throw new Error(
      `Unknown op "${name}": it is not in the op registry (import the module that registers it; ops/mod.ts registers every built-in op)`,
    );
  }
  return op;
}

/**
 * Number of elements of a concrete shape.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { numel } from "./op.ts";
 * assert.equal(numel([32, 1, 3, 3]), 288);
 * assert.equal(numel([]), 1); // a scalar
 * ```
 */
export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Formats a shape for error messages: `[64,1,28,28]`, with `N` for the batch axis.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fmtShape } from "./op.ts";
 * assert.equal(fmtShape([-1, 1, 28, 28]), "[N,1,28,28]");
 * ```
 */
export function fmtShape(shape: Shape): string {
  return `[${shape.map((d) => (d < 0 ? "N" : String(d))).join(",")}]`;
}
