import { gradFor, loadSlots, type Optimizer, type ParamMap, slot } from "./optimizer.ts";

/**
 * AdaDelta (Zeiler 2012) as in PyTorch:
 * `v = ρv + (1-ρ)g²; d = √(u+ε)/√(v+ε)·g; u = ρu + (1-ρ)d²; p -= lr·d`.
 *
 * @example
 * ```ts
 * import { AdaDelta } from "@denograd/denograd";
 * const p = new Map([["w", new Float32Array([1])]]);
 * new AdaDelta(1.0).step(p, new Map([["w", new Float32Array([2])]]));
 * console.log(p.get("w")![0]! < 1); // true
 * ```
 */
export class AdaDelta implements Optimizer {
  /** Name as given to `--optimizer`. */
  readonly name = "adadelta";
  /** Learning rate (1.0 in the course code). */
  lr: number;
  /** Decay of the running averages. */
  readonly rho: number;
  /** Added inside the square roots. */
  readonly eps: number;
  private bufs = new Map<string, Float32Array>();

  /** AdaDelta at learning rate `lr` (default 1.0); rho 0.9 and eps 1e-6 unless given. */
  constructor(lr = 1.0, opts: { rho?: number; eps?: number } = {}) {
    this.lr = lr;
    this.rho = opts.rho ?? 0.9;
    this.eps = opts.eps ?? 1e-6;
  }

  /** One update. */
  step(params: ParamMap, grads: ParamMap): void {
    const { rho, eps, lr } = this;
    for (const [name, p] of params) {
      const g = gradFor(grads, name, p.length);
      const v = slot(this.bufs, `${name}.square_avg`, p.length);
      const u = slot(this.bufs, `${name}.acc_delta`, p.length);
      for (let i = 0; i < p.length; i++) {
        const gi = g[i]!;
        v[i] = rho * v[i]! + (1 - rho) * gi * gi;
        const d = (Math.sqrt(u[i]! + eps) / Math.sqrt(v[i]! + eps)) * gi;
        u[i] = rho * u[i]! + (1 - rho) * d * d;
        p[i] = p[i]! - lr * d;
      }
    }
  }

  /** Running averages. */
  state(): Record<string, Float32Array> {
    return Object.fromEntries(this.bufs);
  }

  /** Restores running averages. */
  loadState(state: Record<string, Float32Array>): void {
    loadSlots(this.bufs, state);
  }
}
