/**
 * The elementwise update rules of the built-in optimizers, over an index
 * range: one optimizer step is a few per-step numbers (the learning rate,
 * Adam's bias corrections, ...) and then the same arithmetic on every
 * element, so a step split over threads by ranges gives the very bits of
 * the whole-array step. An optimizer's `step` and the worker pool's parallel
 * update both call {@linkcode applyRule}.
 *
 * @module
 */
import type { Optimizer, ParamMap } from "./optimizer.ts";

/** The update rules: SGD (with momentum and Nesterov), Adam/AdamW and AdaDelta. */
export type Rule = "sgd" | "adam" | "adadelta";

/**
 * Length of the per-step numbers of a rule (see {@linkcode RangeOptimizer.begin}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Adam } from "../../mod.ts";
 * import { RULE_SCALARS } from "./rules.ts";
 * const s = new Float64Array(RULE_SCALARS);
 * new Adam(1e-3).begin(s); // fills the step's numbers (lr, bias corrections, ...)
 * assert.ok(s.some((v) => v !== 0));
 * ```
 */
export const RULE_SCALARS = 8;

/**
 * Elements per chunk of a gradient norm: the sum of squares runs in float64
 * over each chunk of each gradient, and the chunk sums are added in order,
 * so threads that sum chunks give the same norm as one thread.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NORM_CHUNK } from "./rules.ts";
 * assert.equal(NORM_CHUNK, 2 ** 14); // the parallel update's unit of 16,384 values
 * ```
 */
export const NORM_CHUNK = 16384;

const NONE = new Float32Array(0);

/** An optimizer whose step is {@linkcode applyRule} over every parameter: it can be split by ranges. */
export interface RangeOptimizer extends Optimizer {
  /** Its rule. */
  readonly rule: Rule;
  /**
   * Starts a step: advances the per-step state (Adam's step count) and
   * writes the numbers {@linkcode applyRule} reads into `s` (at least
   * {@linkcode RULE_SCALARS} long), from the current `lr`.
   */
  begin(s: Float64Array): void;
  /**
   * The two state buffers of parameter `name` (`n` values) the rule reads
   * and writes (empty arrays where it keeps none), created when missing; with
   * `shared`, moved into SharedArrayBuffers (values kept) so other threads
   * update them in place.
   */
  buffers(name: string, n: number, shared?: boolean): [Float32Array, Float32Array];
}

/**
 * Whether `o` can be split by ranges (every built-in optimizer).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { makeOptimizer, OPTIMIZERS } from "../../mod.ts";
 * import { isRangeOptimizer } from "./rules.ts";
 * assert.ok(OPTIMIZERS.every((n) => isRangeOptimizer(makeOptimizer(n, 0.1))));
 * // one of your own, without the rule, steps on one thread
 * const own = { name: "own", lr: 0.1, step() {}, state: () => ({}), loadState() {} };
 * assert.equal(isRangeOptimizer(own), false);
 * ```
 */
export function isRangeOptimizer(o: Optimizer): o is RangeOptimizer {
  const r = o as Partial<RangeOptimizer>;
  return typeof r.rule === "string" && typeof r.begin === "function" &&
    typeof r.buffers === "function";
}

/**
 * Applies `rule` with the per-step numbers `s` to elements `lo..hi-1` of the
 * parameter `p` with gradient `g` (same indices) and state buffers `a`, `b`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { applyRule } from "./rules.ts";
 * const p = new Float32Array([1, 1]);
 * // plain SGD at lr 0.5 on the second element only
 * applyRule("sgd", new Float64Array([0.5, 0, 0, 0, 0, 0, 0, 0]), p, new Float32Array([2, 2]), p, p, 1, 2);
 * assert.deepEqual([...p], [1, 0]);
 * ```
 */
export function applyRule(
  rule: Rule,
  s: Float64Array,
  p: Float32Array,
  g: Float32Array,
  a: Float32Array,
  b: Float32Array,
  lo: number,
  hi: number,
): void {
  applyRuleAt(rule, s, p, g, 0, a, b, lo, hi);
}

/**
 * {@linkcode applyRule} with the gradient of element `i` at `g[i - go]`
 * (a unit's gradient in a buffer of its own, `go` its first element).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { applyRuleAt } from "./rules.ts";
 * const p = new Float32Array([1, 1, 1]);
 * // plain SGD at lr 0.5 on elements 1 and 2, their gradients at g[0] and g[1]
 * applyRuleAt("sgd", new Float64Array(8).fill(0.5, 0, 1), p, new Float32Array([2, 4]), 1, p, p, 1, 3);
 * assert.deepEqual([...p], [1, 0, -1]);
 * ```
 */
export function applyRuleAt(
  rule: Rule,
  s: Float64Array,
  p: Float32Array,
  g: Float32Array,
  go: number,
  a: Float32Array,
  b: Float32Array,
  lo: number,
  hi: number,
): void {
  if (rule === "sgd") sgdRange(s, p, g, go, a, lo, hi);
  else if (rule === "adam") adamRange(s, p, g, go, a, b, lo, hi);
  else adadeltaRange(s, p, g, go, a, b, lo, hi);
}

// s: lr, momentum, weight decay, nesterov (0/1), fresh (0/1: the buffer starts at the gradient)
function sgdRange(
  s: Float64Array,
  p: Float32Array,
  g: Float32Array,
  go: number,
  buf: Float32Array,
  lo: number,
  hi: number,
): void {
  const lr = s[0]!, mu = s[1]!, wd = s[2]!, nesterov = s[3]! !== 0, fresh = s[4]! !== 0;
  if (mu === 0) {
    for (let i = lo; i < hi; i++) p[i] = p[i]! - lr * (g[i - go]! + wd * p[i]!);
    return;
  }
  for (let i = lo; i < hi; i++) {
    const gi = g[i - go]! + wd * p[i]!;
    // PyTorch starts the buffer at the first gradient, not at zero
    buf[i] = fresh ? gi : mu * buf[i]! + gi;
    p[i] = p[i]! - lr * (nesterov ? gi + mu * buf[i]! : buf[i]!);
  }
}

// s: lr, beta1, beta2, eps, c1, c2, l2, shrink
function adamRange(
  s: Float64Array,
  p: Float32Array,
  g: Float32Array,
  go: number,
  m: Float32Array,
  v: Float32Array,
  lo: number,
  hi: number,
): void {
  const lr = s[0]!, beta1 = s[1]!, beta2 = s[2]!, eps = s[3]!;
  const c1 = s[4]!, c2 = s[5]!, l2 = s[6]!, shrink = s[7]!;
  for (let i = lo; i < hi; i++) {
    // AdamW shrinks the weight before the update, as PyTorch does
    if (shrink !== 1) p[i] = p[i]! * shrink;
    const gi = g[i - go]! + l2 * p[i]!;
    m[i] = beta1 * m[i]! + (1 - beta1) * gi;
    v[i] = beta2 * v[i]! + (1 - beta2) * gi * gi;
    p[i] = p[i]! - (lr * (m[i]! / c1)) / (Math.sqrt(v[i]! / c2) + eps);
  }
}

// s: lr, rho, eps
function adadeltaRange(
  s: Float64Array,
  p: Float32Array,
  g: Float32Array,
  go: number,
  v: Float32Array,
  u: Float32Array,
  lo: number,
  hi: number,
): void {
  const lr = s[0]!, rho = s[1]!, eps = s[2]!;
  for (let i = lo; i < hi; i++) {
    const gi = g[i - go]!;
    v[i] = rho * v[i]! + (1 - rho) * gi * gi;
    const d = (Math.sqrt(u[i]! + eps) / Math.sqrt(v[i]! + eps)) * gi;
    u[i] = rho * u[i]! + (1 - rho) * d * d;
    p[i] = p[i]! - lr * d;
  }
}

/** Float32 elements per 64-byte cache line. */
const LINE = 16;

/**
 * Takes the cache lines of `a[lo..hi-1]` for writing before a dense loop
 * writes them: stores every 16th element's own value back (the values do
 * not change). Lines another core holds (parameters every thread read in the
 * forward pass, a gradient region another thread read) must be taken from
 * it; a dense loop's stores wait for them one line after another, while
 * these sparse stores have dozens of lines in flight at once. In the worker
 * pool this made the first write pass over 4096 parameters 2.5x faster
 * (15.5 µs to 3 µs for the lines plus 3.3 µs for the rule).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ownLines } from "./rules.ts";
 * const a = new Float32Array([1, 2, 3]);
 * ownLines(a, 0, 3);
 * assert.deepEqual([...a], [1, 2, 3]);
 * ```
 */
export function ownLines(a: Float32Array, lo: number, hi: number): void {
  for (let i = lo; i < hi; i += LINE) a[i] = a[i]!;
}

/**
 * The float64 sum of squares of `g[lo..hi-1]`, one chunk of a gradient norm
 * (see {@linkcode NORM_CHUNK}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sumSquares } from "./rules.ts";
 * assert.equal(sumSquares(new Float32Array([3, 4, 12]), 0, 2), 25);
 * ```
 */
export function sumSquares(g: Float32Array, lo: number, hi: number): number {
  let sq = 0;
  for (let i = lo; i < hi; i++) sq += g[i]! * g[i]!;
  return sq;
}

/**
 * {@linkcode sumSquares} of the float32 sum `g + h` (each element rounded to
 * float32 first, as if stored), without storing it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sumSquaresOfSum } from "./rules.ts";
 * assert.equal(sumSquaresOfSum(new Float32Array([1, 2]), new Float32Array([2, 2]), 0, 2), 25);
 * ```
 */
export function sumSquaresOfSum(g: Float32Array, h: Float32Array, lo: number, hi: number): number {
  let sq = 0;
  for (let i = lo; i < hi; i++) {
    const x = Math.fround(g[i]! + h[i]!);
    sq += x * x;
  }
  return sq;
}

/**
 * One step of a {@linkcode RangeOptimizer} on one thread: `begin`, then
 * {@linkcode applyRule} over every parameter (what each optimizer's `step` does).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Sgd } from "./sgd.ts";
 * import { stepByRule } from "./rules.ts";
 * const p = new Map([["w", new Float32Array([1])]]);
 * stepByRule(new Sgd(0.5), p, new Map([["w", new Float32Array([2])]]), new Float64Array(8));
 * assert.equal(p.get("w")![0], 0);
 * ```
 */
export function stepByRule(
  opt: RangeOptimizer,
  params: ParamMap,
  grads: ParamMap,
  s: Float64Array,
): void {
  opt.begin(s);
  for (const [name, p] of params) {
    const g = grads.get(name);
    if (!g || g.length !== p.length) {
      throw new Error(
        `Optimizer: parameter "${name}" has ${p.length} values but ${
          g ? `its gradient has ${g.length}` : "no gradient was given"
        }`,
      );
    }
    const [a, b] = opt.buffers(name, p.length);
    applyRule(opt.rule, s, p, g, a, b, 0, p.length);
  }
}

/**
 * The state buffer `key` of `store`, created zeroed when missing, moved into shared memory with `shared`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stateBuffer } from "./rules.ts";
 * const store = new Map<string, Float32Array>();
 * const v = stateBuffer(store, "w.v", 3);
 * v[0] = 5;
 * assert.equal(stateBuffer(store, "w.v", 3), v); // the same buffer next time
 * const shared = stateBuffer(store, "w.v", 3, true);
 * assert.ok(shared.buffer instanceof SharedArrayBuffer);
 * assert.equal(shared[0], 5); // values kept
 * ```
 */
export function stateBuffer(
  store: Map<string, Float32Array>,
  key: string,
  n: number,
  shared = false,
): Float32Array {
  let s = store.get(key);
  if (!s || s.length !== n) {
    s = new Float32Array(shared ? new SharedArrayBuffer(4 * n) : new ArrayBuffer(4 * n));
    store.set(key, s);
  } else if (shared && !(s.buffer instanceof SharedArrayBuffer)) {
    const t = new Float32Array(new SharedArrayBuffer(4 * n));
    t.set(s);
    s = t;
    store.set(key, s);
  }
  return s;
}

/**
 * The empty state of a rule that keeps none.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Sgd } from "../../mod.ts";
 * import { NO_STATE } from "./rules.ts";
 * assert.deepEqual(new Sgd(0.1).buffers("w", 4), NO_STATE); // plain SGD keeps no state
 * assert.deepEqual(NO_STATE.map((b) => b.length), [0, 0]);
 * ```
 */
export const NO_STATE: [Float32Array, Float32Array] = [NONE, NONE];

/**
 * Throws unless `value` is a finite number from `min` to `max` (`max`
 * itself excluded with `maxOpen`); the message names the optimizer, the
 * option, the value and the range. The optimizers' constructors use it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkOption } from "./rules.ts";
 * checkOption("Adam", "beta1", 0.9, 0, 1, true);
 * assert.throws(() => checkOption("Adam", "beta1", 1.5, 0, 1, true), {
 *   message: "Adam: beta1 must be a finite number in [0, 1), got 1.5",
 * });
 * ```
 */
export function checkOption(
  owner: string,
  option: string,
  value: number,
  min: number,
  max = Infinity,
  maxOpen = false,
): void {
  const ok = typeof value === "number" && Number.isFinite(value) && value >= min &&
    (maxOpen ? value < max : value <= max);
  if (ok) return;
  const range = max === Infinity ? `≥ ${min}` : `in [${min}, ${max}${maxOpen ? ")" : "]"}`;
  const got = typeof value === "string" ? JSON.stringify(value) : String(value);
  throw new Error(`${owner}: ${option} must be a finite number ${range}, got ${got}`);
}
