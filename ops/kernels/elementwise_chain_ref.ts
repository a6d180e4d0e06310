// A program of elementwise steps (see ops/elementwise_chain.ts) and its
// reference interpreter: per output element, every step computed in float64
// from its operands exactly as the unfused op's kernel computes it, then
// rounded to float32 when the output is float32, as storing each unfused
// op's output in its own float32 buffer does. This is the specification the
// generated kernel (elementwise_chain_fast.ts) is tested against.
import type { FloatArray, Shape } from "../../graph/op.ts";
import { hash4 } from "../../graph/hash.ts";
import { cdfApprox, INV_SQRT_2PI } from "./activation_fast.ts";
import { normalCdf, normalPdf } from "./erf.ts";

/**
 * One step of a chain program: the op it stands for, its operands and its
 * numeric attributes. An operand `k` below the node's input count is input
 * `k`; from there on it is step `k - inputs` (an earlier step).
 */
export interface ChainStep {
  /** A key of {@linkcode CHAIN_STEPS}, e.g. `"add"`. */
  op: string;
  /** Operand references (see above). */
  args: number[];
  /** The op's numeric attributes (`factor`, `exponent`, `slope`, `p`, `seed`, `value`). */
  attrs?: Record<string, number>;
}

/** What a step kind takes: its operand count and its numeric attributes. */
export interface ChainStepSpec {
  /** Number of operands. */
  arity: number;
  /** Names of its numeric attributes, all required. */
  attrs: readonly string[];
}

/**
 * The step kinds a chain may hold: the elementwise ops of the same names
 * (with the same attributes), and `const` (a scalar, as a `fill` of shape
 * `[]` gives).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CHAIN_STEPS } from "./elementwise_chain_ref.ts";
 * assert.deepEqual(CHAIN_STEPS.scale, { arity: 1, attrs: ["factor"] });
 * ```
 */
export const CHAIN_STEPS: Readonly<Record<string, ChainStepSpec>> = {
  const: { arity: 0, attrs: ["value"] },
  add: { arity: 2, attrs: [] },
  sub: { arity: 2, attrs: [] },
  mul: { arity: 2, attrs: [] },
  div: { arity: 2, attrs: [] },
  scale: { arity: 1, attrs: ["factor"] },
  pow: { arity: 1, attrs: ["exponent"] },
  exp: { arity: 1, attrs: [] },
  log: { arity: 1, attrs: [] },
  tanh: { arity: 1, attrs: [] },
  sigmoid: { arity: 1, attrs: [] },
  relu: { arity: 1, attrs: [] },
  leaky_relu: { arity: 1, attrs: ["slope"] },
  gelu: { arity: 1, attrs: [] },
  relu_backward: { arity: 2, attrs: [] },
  leaky_relu_backward: { arity: 2, attrs: ["slope"] },
  sigmoid_backward: { arity: 2, attrs: [] },
  tanh_backward: { arity: 2, attrs: [] },
  gelu_backward: { arity: 2, attrs: [] },
  dropout: { arity: 1, attrs: ["p", "seed"] },
};

/** What dropout steps see of the run: the training flag, the step and the shard's first sample. */
export interface ChainRunInfo {
  /** Training (dropout drops) or evaluation (identity). */
  training: boolean;
  /** The optimisation step. */
  step: number;
  /** Index of the shard's first sample in the batch. */
  sampleOffset: number;
}

/**
 * One step's value from its operands, in float64, the way the unfused op's
 * kernel computes it: `fast` picks the float32 tier's formulas where they
 * differ from the reference's (GELU's CDF). Dropout is not computed here
 * (it needs the element's position).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stepValue } from "./elementwise_chain_ref.ts";
 * assert.equal(stepValue({ op: "scale", args: [0], attrs: { factor: 3 } }, 2, 0, false), 6);
 * assert.equal(stepValue({ op: "relu_backward", args: [0, 1] }, -1, 5, false), 0);
 * ```
 */
export function stepValue(s: ChainStep, x: number, y: number, fast: boolean): number {
  const a = s.attrs ?? {};
  switch (s.op) {
    case "const":
      return a.value!;
    case "add":
      return x + y;
    case "sub":
      return x - y;
    case "mul":
      return x * y;
    case "div":
      return x / y;
    case "scale":
      return x * a.factor!;
    case "pow": {
      const p = a.exponent!;
      return p === 2 ? x * x : p === 1 ? x : x ** p;
    }
    case "exp":
      return Math.exp(x);
    case "log":
      return Math.log(x);
    case "tanh":
      return Math.tanh(x);
    case "sigmoid":
      return 1 / (1 + Math.exp(-x));
    case "relu":
      return x > 0 || x !== x ? x : 0;
    case "leaky_relu":
      return x > 0 ? x : x * a.slope!;
    case "gelu":
      return x * (fast ? cdfApprox(x) : normalCdf(x));
    case "relu_backward":
      return x > 0 ? y : 0;
    case "leaky_relu_backward":
      return x > 0 ? y : y * a.slope!;
    case "sigmoid_backward":
      return y * x * (1 - x);
    case "tanh_backward":
      return y * (1 - x * x);
    case "gelu_backward":
      return fast
        ? y * (cdfApprox(x) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x))
        : y * (normalCdf(x) + x * normalPdf(x));
    default:
      throw new Error(`elementwise_chain: step "${s.op}" has no scalar rule`);
  }
}

/** Strides of `shape` right-aligned to rank `r`, 0 on broadcast axes. */
function broadcastStrides(shape: Shape, r: number): number[] {
  const s = new Array<number>(r).fill(0);
  let stride = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[r - shape.length + i] = shape[i] === 1 ? 0 : stride;
    stride *= shape[i]!;
  }
  return s;
}

// the operands' and steps' values of one element, kept between calls (a run allocates no typed arrays)
let scratch = new Float64Array(64);

// ins[k]: inShapes[k], broadcast to outShape -> out: outShape
/**
 * The reference: `out` = the program `steps` over `ins` (NumPy
 * broadcasting), element by element, each step rounded to float32 when
 * `out` is float32. Dropout steps must have the output's shape (the op's
 * shape rule checks it); axis 0 is the sample axis. `fast` as in
 * {@linkcode stepValue}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { chainRef } from "./elementwise_chain_ref.ts";
 * const out = new Float32Array(3);
 * const steps = [{ op: "add", args: [0, 1] }, { op: "scale", args: [2], attrs: { factor: 0.5 } }];
 * const run = { training: true, step: 0, sampleOffset: 0 };
 * chainRef(steps, [Float32Array.of(1, 2, 3), Float32Array.of(1)], [[3], [1]], out, [3], run);
 * assert.deepEqual([...out], [1, 1.5, 2]);
 * ```
 */
export function chainRef(
  steps: readonly ChainStep[],
  ins: readonly FloatArray[],
  inShapes: readonly Shape[],
  out: FloatArray,
  outShape: Shape,
  run: ChainRunInfo,
  fast = false,
): void {
  const round = out instanceof Float32Array ? Math.fround : (v: number) => v;
  const r = outShape.length;
  const n = out.length;
  const nIn = ins.length;
  const strides = inShapes.map((s) => broadcastStrides(s, r));
  const samples = r === 0 ? 1 : outShape[0]!;
  const per = samples === 0 ? 0 : n / samples;
  if (scratch.length < nIn + steps.length) scratch = new Float64Array(2 * (nIn + steps.length));
  const vals = scratch;
  const idx = new Array<number>(r).fill(0);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < nIn; k++) {
      let at = 0;
      for (let ax = 0; ax < r; ax++) at += idx[ax]! * strides[k]![ax]!;
      vals[k] = ins[k]![at]!;
    }
    for (let s = 0; s < steps.length; s++) {
      const st = steps[s]!;
      const x = vals[st.args[0]!] ?? 0, y = vals[st.args[1]!] ?? 0;
      let v: number;
      if (st.op === "dropout") {
        const { p, seed } = st.attrs as { p: number; seed: number };
        if (!run.training || p === 0) v = x;
        else if (p === 1) v = 0;
        else {
          const sample = r === 0 ? 0 : Math.floor(i / per);
          const keep = hash4(seed, run.step, run.sampleOffset + sample, i - sample * per) >=
            p * 4294967296;
          v = keep ? x * (1 / (1 - p)) : 0;
        }
      } else v = stepValue(st, x, y, fast);
      vals[nIn + s] = round(v);
    }
    out[i] = vals[nIn + steps.length - 1]!;
    for (let ax = r - 1; ax >= 0; ax--) {
      if (++idx[ax]! < outShape[ax]!) break;
      idx[ax] = 0;
    }
  }
}
