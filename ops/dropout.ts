import type { Node } from "../graph/graph.ts";
import { hash4Finish, hash4Prefix } from "../graph/hash.ts";
import { type FloatArray, type ForwardContext, type OpDef, registerOp } from "../graph/op.ts";
import type { ChainStep } from "./kernels/elementwise_chain_ref.ts";
import { chainWasm } from "./kernels/elementwise_chain_wasm.ts";
import { kernelTier } from "./kernels/tier.ts";

/** Attributes of `dropout`. */
export interface DropoutAttrs {
  /** Probability of zeroing an element in training, in [0, 1]. */
  p: number;
  /** Whole-number seed of the mask (with the step and the sample index). */
  seed: number;
}

/**
 * Dropout, like `torch.nn.functional.dropout`: in training each element is
 * kept with probability `1 - p` and scaled by `1 / (1 - p)`; in evaluation it
 * is the identity. Axis 0 is the sample axis.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dropoutOp } from "@denograd/denograd";
 * assert.deepEqual(dropoutOp.shape([[-1, 64, 12, 12]], { p: 0.25, seed: 1 }), [-1, 64, 12, 12]);
 * ```
 */
export const dropoutOp: OpDef<DropoutAttrs> = registerOp<DropoutAttrs>({
  name: "dropout",
  inputs: ["x"],
  stochastic: true,
  shape: ([x], { p, seed }) => {
    if (typeof p !== "number" || !(p >= 0 && p <= 1)) {
      throw new Error(
        `p must be a probability in [0, 1], got ${
          typeof p === "number" ? p : `${JSON.stringify(p)} (${typeof p})`
        }`,
      );
    }
    if (!Number.isInteger(seed)) throw new Error(`seed must be a whole number, got ${seed}`);
    return x!;
  },
  forward([x], y, c) {
    // the wasm tier: the one-step chain program, its mask hashed four lanes at a time
    if (y instanceof Float32Array && kernelTier(y, c.tier) === "wasm") {
      if (chainWasm(program(c.attrs), [x as Float32Array], c.inShapes, y, c.outShape, c)) return;
    }
    dropoutKernel(x!, y, c);
  },
  // dx = dy * mask / (1 - p): the same op with the same attributes draws the
  // same mask, because the mask is a function of (seed, step, sample, element)
  vjp: ({ dy, attrs }) => [dropout(dy, attrs)],
});

// x: (N, ...) -> y: (N, ...), element (n, e) kept when
// hashUniform(seed, step, sampleOffset + n, e) >= p
const programs = new WeakMap<DropoutAttrs, { steps: ChainStep[] }>();
function program(attrs: DropoutAttrs): { steps: ChainStep[] } {
  let p = programs.get(attrs);
  if (!p) {
    p = { steps: [{ op: "dropout", args: [0], attrs: { p: attrs.p, seed: attrs.seed } }] };
    programs.set(attrs, p);
  }
  return p;
}

function dropoutKernel(x: FloatArray, y: FloatArray, c: ForwardContext<DropoutAttrs>): void {
  const { p, seed } = c.attrs;
  if (!c.training || p === 0) {
    y.set(x);
    return;
  }
  if (p === 1) {
    // nothing survives; 1 / (1 - p) would be infinite and 0 * Infinity is NaN
    y.fill(0);
    return;
  }
  const shape = c.outShape;
  const samples = shape.length === 0 ? 1 : shape[0]!;
  const per = samples === 0 ? 0 : y.length / samples;
  const keepScale = 1 / (1 - p);
  // hashUniform(…) >= p exactly when the uint32 hash >= p·2³² (a power-of-two
  // scaling is exact), and the (seed, step, sample) part is mixed once a sample
  const threshold = p * 4294967296;
  // the global sample index, not the position in this shard, so a batch split
  // across workers draws the same mask as the whole batch
  for (let n = 0, i = 0; n < samples; n++) {
    const prefix = hash4Prefix(seed, c.step, c.sampleOffset + n);
    for (let e = 0; e < per; e++, i++) {
      y[i] = hash4Finish(prefix, e) >= threshold ? x[i]! * keepScale : 0;
    }
  }
}

/**
 * Dropout, like `torch.nn.functional.dropout`: in training, zeroes each
 * element with probability `p` and scales the others by `1 / (1 - p)`; in
 * evaluation, passes `x` through. The mask is drawn from
 * (`seed`, step, sample index, element index), so it is reproducible and does
 * not change when a batch is split across workers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dropout, Graph } from "@denograd/denograd";
 * const g = new Graph();
 * const y = dropout(g.input("x", [-1, 128]), { p: 0.5, seed: 1 });
 * assert.deepEqual(y.shape, [-1, 128]);
 * ```
 */
export function dropout(
  x: Node,
  opts: { p: number; seed?: number; name?: string },
): Node {
  return x.graph.apply(dropoutOp, [x], { p: opts.p, seed: opts.seed ?? 0 }, opts.name);
}
