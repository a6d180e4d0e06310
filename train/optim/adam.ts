import { gradFor, loadSlots, type Optimizer, type ParamMap, slot } from "./optimizer.ts";

/**
 * Adam (Kingma & Ba 2015) with bias correction, as in PyTorch.
 *
 * @example
 * ```ts
 * import { Adam } from "@denograd/denograd";
 * const p = new Map([["w", new Float32Array([1])]]);
 * new Adam(0.1).step(p, new Map([["w", new Float32Array([2])]]));
 * console.log(p.get("w")![0]); // ≈ 0.9
 * ```
 */
export class Adam implements Optimizer {
  /** Name as given to `--optimizer`. */
  readonly name = "adam";
  /** Learning rate. */
  lr: number;
  /** Decay of the first moment. */
  readonly beta1: number;
  /** Decay of the second moment. */
  readonly beta2: number;
  /** Added to the denominator. */
  readonly eps: number;
  private bufs = new Map<string, Float32Array>();
  private t = 0;

  /** Adam at learning rate `lr` (default 1e-3); betas 0.9 and 0.999 and eps 1e-8 unless given. */
  constructor(lr = 1e-3, opts: { beta1?: number; beta2?: number; eps?: number } = {}) {
    this.lr = lr;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
  }

  /** One update. */
  step(params: ParamMap, grads: ParamMap): void {
    this.t++;
    const { beta1, beta2, eps, lr, t } = this;
    const c1 = 1 - beta1 ** t;
    const c2 = 1 - beta2 ** t;
    for (const [name, p] of params) {
      const g = gradFor(grads, name, p.length);
      const m = slot(this.bufs, `${name}.exp_avg`, p.length);
      const v = slot(this.bufs, `${name}.exp_avg_sq`, p.length);
      for (let i = 0; i < p.length; i++) {
        const gi = g[i]!;
        m[i] = beta1 * m[i]! + (1 - beta1) * gi;
        v[i] = beta2 * v[i]! + (1 - beta2) * gi * gi;
        p[i] = p[i]! - (lr * (m[i]! / c1)) / (Math.sqrt(v[i]! / c2) + eps);
      }
    }
  }

  /** Moments and the step count. */
  state(): Record<string, Float32Array> {
    return { ...Object.fromEntries(this.bufs), "__adam.t": new Float32Array([this.t]) };
  }

  /** Restores moments and the step count. */
  loadState(state: Record<string, Float32Array>): void {
    const { "__adam.t": t, ...rest } = state;
    loadSlots(this.bufs, rest);
    this.t = t ? t[0]! : 0;
  }
}
