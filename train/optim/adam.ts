import { loadSlots, type ParamMap } from "./optimizer.ts";
import { checkOption, type RangeOptimizer, type Rule, stateBuffer, stepByRule } from "./rules.ts";

/** Options of {@linkcode Adam} and {@linkcode AdamW}. */
export interface AdamOptions {
  /** Decay of the first moment (default 0.9). */
  beta1?: number;
  /** Decay of the second moment (default 0.999). */
  beta2?: number;
  /** Added to the denominator (default 1e-8). */
  eps?: number;
  /** Weight decay: an L2 term `wd·p` in the gradient for Adam, decoupled `p -= lr·wd·p` for AdamW. */
  weightDecay?: number;
}

/**
 * Adam (Kingma & Ba 2015) with bias correction, as in PyTorch; its
 * `weightDecay` is PyTorch Adam's L2 term added to the gradient.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Adam } from "@denograd/denograd";
 * const p = new Map([["w", new Float32Array([1])]]);
 * new Adam(0.1).step(p, new Map([["w", new Float32Array([2])]]));
 * // the first step moves each weight by lr, whatever the gradient's size
 * assert.ok(Math.abs(p.get("w")![0]! - 0.9) < 1e-6);
 * ```
 */
export class Adam implements RangeOptimizer {
  /** Its elementwise rule (see `rules.ts`). */
  readonly rule: Rule = "adam";
  /** Name as given to `--optimizer`. */
  readonly name: string = "adam";
  /** Learning rate. */
  lr: number;
  /** Decay of the first moment. */
  readonly beta1: number;
  /** Decay of the second moment. */
  readonly beta2: number;
  /** Added to the denominator. */
  readonly eps: number;
  /** Weight decay factor (see {@linkcode AdamOptions.weightDecay}). */
  readonly weightDecay: number;
  /** Whether the weight decay is decoupled from the gradient (AdamW). */
  protected decoupled = false;
  private bufs = new Map<string, Float32Array>();
  private t = 0;
  private scalars = new Float64Array(8);

  /** Adam at learning rate `lr` (default 1e-3); betas 0.9 and 0.999 and eps 1e-8 unless given. */
  constructor(lr = 1e-3, opts: AdamOptions = {}) {
    this.lr = lr;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    const who = new.target === Adam ? "Adam" : "AdamW";
    checkOption(who, "lr", lr, 0);
    checkOption(who, "beta1", this.beta1, 0, 1, true);
    checkOption(who, "beta2", this.beta2, 0, 1, true);
    checkOption(who, "eps", this.eps, 0);
    checkOption(who, "weightDecay", this.weightDecay, 0);
  }

  /** One update. */
  step(params: ParamMap, grads: ParamMap): void {
    stepByRule(this, params, grads, this.scalars);
  }

  /** Counts the step; writes lr, betas, eps, the bias corrections, the L2 factor and the shrink into `s`. */
  begin(s: Float64Array): void {
    this.t++;
    const { beta1, beta2, lr, t } = this;
    s[0] = lr;
    s[1] = beta1;
    s[2] = beta2;
    s[3] = this.eps;
    s[4] = 1 - beta1 ** t;
    s[5] = 1 - beta2 ** t;
    s[6] = this.decoupled ? 0 : this.weightDecay;
    s[7] = this.decoupled ? 1 - lr * this.weightDecay : 1;
  }

  /** The first and second moments of `name`. */
  buffers(name: string, n: number, shared = false): [Float32Array, Float32Array] {
    return [
      stateBuffer(this.bufs, `${name}.exp_avg`, n, shared),
      stateBuffer(this.bufs, `${name}.exp_avg_sq`, n, shared),
    ];
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

/**
 * AdamW (Loshchilov & Hutter 2019), as PyTorch's `torch.optim.AdamW`: Adam
 * with the weight decay decoupled from the gradient, `p -= lr·wd·p` before
 * each update (default weight decay 0.01, PyTorch's).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AdamW } from "@denograd/denograd";
 * const p = new Map([["w", new Float32Array([2])]]);
 * new AdamW(0.1, { weightDecay: 0.5 }).step(p, new Map([["w", new Float32Array([0])]]));
 * // a zero gradient moves nothing but the decay: 2 · (1 - 0.1 · 0.5)
 * assert.equal(p.get("w")![0], Math.fround(1.9));
 * ```
 */
export class AdamW extends Adam {
  /** Name as given to `--optimizer`. */
  override readonly name: string = "adamw";

  /** AdamW at learning rate `lr` (default 1e-3), weight decay 0.01 unless given. */
  constructor(lr = 1e-3, opts: AdamOptions = {}) {
    super(lr, { ...opts, weightDecay: opts.weightDecay ?? 0.01 });
    this.decoupled = true;
  }
}
