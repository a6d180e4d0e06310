// Branch-free float32 kernels for 2×2 stride-2 max-pooling: on activations
// which element of a window wins is a coin flip, so compare-and-branch loops
// mispredict; these use arithmetic and 0/1 masks instead. Each is tested
// against its reference (max_pool2d_ref.ts).

// The maximum of a window in window order, NaN winning, with branches: the
// fallback for the rare windows where the branch-free formula cancels.
function exactMax(a: number, b: number, e: number, f: number): number {
  let m = a;
  if (b > m || b !== b) m = b;
  if (e > m || e !== e) m = e;
  if (f > m || f !== f) m = f;
  return m;
}

// x: (P, H, W) -> y: (P, H/2, W/2) over 2×2 windows; max(a, b) =
// (a + b + |a - b|) / 2 rounded to float32 is exact unless a large value
// cancels against the sum, which is detected and redone
/**
 * 2×2, stride-2 max-pooling of `planes` planes without branches.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { maxPool2x2F32 } from "./max_pool2d_fast.ts";
 * import { poolDims } from "./pool_dims.ts";
 * // one 2×4 plane, two 2×2 windows
 * const d = poolDims([1, 1, 2, 4], [1, 1, 1, 2], { size: 2, stride: 2 });
 * const x = new Float32Array([1, 5, 2, 0, 3, 4, 8, 6]);
 * const y = new Float32Array(2);
 * maxPool2x2F32(x, y, d);
 * assert.deepEqual([...y], [5, 8]);
 * ```
 */
export function maxPool2x2F32(
  x: Float32Array,
  y: Float32Array,
  d: { planes: number; h: number; w: number; oh: number; ow: number },
): void {
  const { planes, h, w, oh, ow } = d;
  for (let p = 0; p < planes; p++) {
    const xb = p * h * w, yb = p * oh * ow;
    for (let r = 0; r < oh; r++) {
      const top = xb + 2 * r * w, bot = top + w, yr = yb + r * ow;
      for (let c = 0; c < ow; c++) {
        const a = x[top + 2 * c]!, b = x[top + 2 * c + 1]!;
        const e = x[bot + 2 * c]!, f = x[bot + 2 * c + 1]!;
        const m1 = (a + b + Math.abs(a - b)) * 0.5, m2 = (e + f + Math.abs(e - f)) * 0.5;
        let m = Math.fround((m1 + m2 + Math.abs(m1 - m2)) * 0.5);
        // zero exactly when m is one of the four (float32 gaps are ≥ 1.4e-45, so the
        // product cannot underflow); otherwise cancellation spoiled it: rare, predictable
        if (Math.abs(m - a) * Math.abs(m - b) * Math.abs(m - e) * Math.abs(m - f) !== 0) {
          m = exactMax(a, b, e, f);
        }
        y[yr + c] = m;
      }
    }
  }
}

// x: (P, H, W), y: (P, H/2, W/2) the forward's maxima, dy: like y -> dx:
// (P, H, W); dy goes to the first element of each window equal to its
// maximum (the last NaN when the maximum is NaN). The comparisons become
// 0/1 integers, so there are no branches to mispredict.
/**
 * Backward of {@linkcode maxPool2x2F32} from its output `y`, without branches.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { maxPool2x2BackwardF32 } from "./max_pool2d_fast.ts";
 * import { poolDims } from "./pool_dims.ts";
 * // one 2×4 plane, two 2×2 windows
 * const d = poolDims([1, 1, 2, 4], [1, 1, 1, 2], { size: 2, stride: 2 });
 * const x = new Float32Array([1, 5, 2, 0, 3, 4, 8, 6]);
 * const dx = new Float32Array(8);
 * maxPool2x2BackwardF32(x, new Float32Array([5, 8]), new Float32Array([10, 20]), dx, d);
 * assert.deepEqual([...dx], [0, 10, 0, 0, 0, 0, 20, 0]);
 * ```
 */
export function maxPool2x2BackwardF32(
  x: Float32Array,
  y: Float32Array,
  dy: Float32Array,
  dx: Float32Array,
  d: { planes: number; h: number; w: number; oh: number; ow: number },
): void {
  const { planes, h, w, oh, ow } = d;
  if (oh * 2 !== h || ow * 2 !== w) dx.fill(0); // odd sizes leave a last row or column out
  for (let p = 0; p < planes; p++) {
    const xb = p * h * w, yb = p * oh * ow;
    for (let r = 0; r < oh; r++) {
      const top = xb + 2 * r * w, bot = top + w, yr = yb + r * ow;
      for (let c = 0; c < ow; c++) {
        const i0 = top + 2 * c, i2 = bot + 2 * c;
        const a = x[i0]!, b = x[i0 + 1]!, e = x[i2]!, f = x[i2 + 1]!;
        const m = y[yr + c]!, g = dy[yr + c]!;
        let qa = +(a === m), qb = +(b === m), qe = +(e === m);
        if (m !== m) {
          // nothing equals NaN: the last NaN takes the gradient, as PyTorch's
          // `> max || isnan` scan does (rare, so this branch predicts well)
          const nb = +(b !== b), ne = +(e !== e), nf = +(f !== f);
          qa = +(a !== a) & ((nb | ne | nf) ^ 1);
          qb = nb & ((ne | nf) ^ 1);
          qe = ne & (nf ^ 1);
        }
        const ka = qa, kb = qb & (qa ^ 1), ke = qe & ((qa | qb) ^ 1);
        // + 0 turns the -0 of a negative g times 0 into 0
        dx[i0] = g * ka + 0;
        dx[i0 + 1] = g * kb + 0;
        dx[i2] = g * ke + 0;
        dx[i2 + 1] = g * ((ka | kb | ke) ^ 1) + 0;
      }
    }
  }
}
