// Random elementwise-chain programs for the property tests of
// elementwise_chain (op and kernels): an output shape, inputs that are the
// whole shape or broadcast (a row statistic, trailing axes, a scalar, and a
// broadcast the fast kernel does not serve), and steps over them, with
// values that include zeros of both signs, NaN and infinities.
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import type { ChainStep } from "../../ops/kernels/elementwise_chain_ref.ts";

/** A program with its input shapes and values (float32-representable). */
export interface ChainCase {
  outShape: number[];
  inShapes: number[][];
  values: number[][];
  steps: ChainStep[];
}

const UNARY: [string, (r: () => number) => Record<string, number> | undefined][] = [
  ["scale", (r) => ({ factor: [0.5, -3, 1 / 3, 0][Math.floor(r() * 4)]! })],
  ["pow", () => ({ exponent: 2 })],
  ["exp", () => undefined],
  ["log", () => undefined],
  ["tanh", () => undefined],
  ["sigmoid", () => undefined],
  ["relu", () => undefined],
  ["leaky_relu", () => ({ slope: 0.1 })],
  ["gelu", () => undefined],
  ["dropout", (r) => ({ p: [0.25, 0.5, 0, 1][Math.floor(r() * 4)]!, seed: 3 })],
];
const BINARY: [string, (r: () => number) => Record<string, number> | undefined][] = [
  ["add", () => undefined],
  ["sub", () => undefined],
  ["mul", () => undefined],
  ["div", () => undefined],
  ["relu_backward", () => undefined],
  ["leaky_relu_backward", () => ({ slope: -0.5 })],
  ["sigmoid_backward", () => undefined],
  ["tanh_backward", () => undefined],
  ["gelu_backward", () => undefined],
];

const SPECIAL = [0, -0, NaN, Infinity, -Infinity, 1, -1, 0.5, 2];

/** Float32 values, a quarter of them special. */
export function valueArb(): fc.Arbitrary<number> {
  return fc.oneof(
    { weight: 1, arbitrary: fc.constantFrom(...SPECIAL) },
    { weight: 3, arbitrary: fc.double({ min: -5, max: 5, noNaN: true }).map(Math.fround) },
  );
}

/** Options of {@linkcode chainCaseArb}. */
export interface ChainCaseOptions {
  /** Step kinds left out. */
  exclude?: readonly string[];
  /** Broadcasts of the inputs after the first (default: all five). */
  kinds?: readonly ("full" | "row" | "col" | "scalar" | "odd")[];
  /** Make the last axis a multiple of four long. */
  width4?: boolean;
  /** Exponents of pow steps (default 2, 1, 0.5, -1.5, 3). */
  powers?: readonly number[];
}

/** A random chain case. */
export function chainCaseArb(opts: ChainCaseOptions = {}): fc.Arbitrary<ChainCase> {
  const exclude = opts.exclude ?? [];
  const powers = opts.powers ?? [2, 1, 0.5, -1.5, 3];
  const unary = UNARY.filter(([op]) => !exclude.includes(op));
  const binary = BINARY.filter(([op]) => !exclude.includes(op));
  return fc.record({
    n: fc.integer({ min: 1, max: 4 }),
    c: fc.integer({ min: 1, max: 3 }),
    w: fc.integer({ min: 1, max: 6 }),
    rank3: fc.boolean(),
    extra: fc.array(fc.constantFrom(...(opts.kinds ?? ["full", "row", "col", "scalar", "odd"])), {
      minLength: 0,
      maxLength: 3,
    }),
    nSteps: fc.integer({ min: 1, max: 7 }),
    seed: fc.integer({ min: 1, max: 1 << 30 }),
    pool: fc.array(valueArb(), { minLength: 64, maxLength: 64 }),
  }).map(({ n, c, w: w0, rank3, extra, nSteps, seed, pool }) => {
    let s = seed;
    const r = () => {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      return s / 4294967296;
    };
    const w = opts.width4 ? w0 * 4 : w0;
    const outShape = rank3 ? [n, c, w] : [n, w];
    const shapeOf = (kind: string): number[] => {
      switch (kind) {
        case "row":
          return rank3 ? [n, c, 1] : [n, 1];
        case "col":
          return rank3 ? [c, w] : [w];
        case "scalar":
          return [];
        case "odd":
          return rank3 ? [n, 1, w] : [1, w];
        default:
          return outShape;
      }
    };
    const inShapes = [outShape, ...extra.map(shapeOf)];
    const shapes = inShapes.map((sh) => sh.join());
    const outKey = outShape.join();
    const values = inShapes.map((sh, k) =>
      Array.from({ length: sh.reduce((a, b) => a * b, 1) }, (_, i) => pool[(k * 17 + i) % 64]!)
    );
    const steps: ChainStep[] = [];
    const pick = (pred: (k: number) => boolean): number => {
      const ok = shapes.map((_, k) => k).filter(pred);
      return ok[Math.floor(r() * ok.length)]!;
    };
    // right-aligned broadcast of two shapes given as keys (they always broadcast here)
    const widest = (a: string, b: string): string => {
      const x = a === "" ? [] : a.split(",").map(Number);
      const y = b === "" ? [] : b.split(",").map(Number);
      const rank = Math.max(x.length, y.length);
      return Array.from({ length: rank }, (_, i) => {
        const u = x[x.length - rank + i] ?? 1, v = y[y.length - rank + i] ?? 1;
        return u === 1 ? v : u;
      }).join();
    };
    for (let k = 0; k < nSteps; k++) {
      if (r() < 0.15) {
        steps.push({ op: "const", args: [], attrs: { value: [1.5, -2, 0][Math.floor(r() * 3)]! } });
        shapes.push("");
        continue;
      }
      if (r() < 0.5 && unary.length) {
        const [op, attrs] = unary[Math.floor(r() * unary.length)]!;
        // dropout draws by position: its operand must have the output's shape
        const a = op === "dropout" ? pick((j) => shapes[j] === outKey) : pick(() => true);
        const st: ChainStep = { op, args: [a] };
        const at = attrs(r);
        if (at) st.attrs = at;
        if (op === "pow") st.attrs = { exponent: powers[Math.floor(r() * powers.length)]! };
        steps.push(st);
        shapes.push(shapes[a]!);
      } else {
        const [op, attrs] = binary[Math.floor(r() * binary.length)]!;
        const a = pick(() => true);
        // the backward ops take operands of one shape; add, sub, mul, div broadcast
        const b = op.includes("_") ? pick((j) => shapes[j] === shapes[a]) : pick(() => true);
        const st: ChainStep = { op, args: [a, b] };
        const at = attrs(r);
        if (at) st.attrs = at;
        steps.push(st);
        shapes.push(widest(shapes[a]!, shapes[b]!));
      }
    }
    // the program's output has the output's shape and reads the last step
    const last = shapes.length - 1;
    if (shapes[last] !== outKey) steps.push({ op: "add", args: [last, 0] });
    return { outShape, inShapes, values, steps };
  });
}

/** Same float32 value, NaN equal to any NaN (payloads may differ between tiers). */
export function sameValue(a: number, b: number): boolean {
  return Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));
}
