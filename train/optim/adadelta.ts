import { loadSlots, type ParamMap } from "./optimizer.ts";
import { checkOption, type RangeOptimizer, type Rule, stateBuffer, stepByRule } from "./rules.ts";

/**
 * AdaDelta (Zeiler 2012) as in PyTorch:
 * `v = ρv + (1-ρ)g²; d = √(u+ε)/√(v+ε)·g; u = ρu + (1-ρ)d²; p -= lr·d`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AdaDelta } from "@denograd/denograd";
 * const p = new Map([["w", new Float32Array([1])]]);
 * new AdaDelta(1.0).step(p, new Map([["w", new Float32Array([2])]]));
 * // v = 0.1·2² = 0.4, d = √(0 + ε)/√(v + ε)·2
 * const d = (Math.sqrt(1e-6) / Math.sqrt(0.4 + 1e-6)) * 2;
 * assert.ok(Math.abs(p.get("w")![0]! - (1 - d)) < 1e-6);
 * ```
 */
export class AdaDelta implements RangeOptimizer {
  /** Its elementwise rule (see `rules.ts`). */
  readonly rule: Rule = "adadelta";
  /** Name as given to `--optimizer`. */
  readonly name = "adadelta";
  /** Learning rate (1.0 in the course code). */
  lr: number;
  /** Decay of the running averages. */
  readonly rho: number;
  /** Added inside the square roots. */
  readonly eps: number;
  private bufs = new Map<string, Float32Array>();
  private scalars = new Float64Array(8);

  /** AdaDelta at learning rate `lr` (default 1.0); rho 0.9 and eps 1e-6 unless given. */
  constructor(lr = 1.0, opts: { rho?: number; eps?: number } = {}) {
    this.lr = lr;
    this.rho = opts.rho ?? 0.9;
    this.eps = opts.eps ?? 1e-6;
    checkOption("AdaDelta", "lr", lr, 0);
    checkOption("AdaDelta", "rho", this.rho, 0, 1);
    checkOption("AdaDelta", "eps", this.eps, 0);
  }

  /** One update. */
  step(params: ParamMap, grads: ParamMap): void {
    stepByRule(this, params, grads, this.scalars);
  }

  /** Writes lr, rho and eps into `s`. */
  begin(s: Float64Array): void {
    s[0] = this.lr;
    s[1] = this.rho;
    s[2] = this.eps;
  }

  /** The running averages of `name`: squared gradients and squared updates. */
  buffers(name: string, n: number, shared = false): [Float32Array, Float32Array] {
    return [
      stateBuffer(this.bufs, `${name}.square_avg`, n, shared),
      stateBuffer(this.bufs, `${name}.acc_delta`, n, shared),
    ];
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
