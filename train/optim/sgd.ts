import { gradFor, loadSlots, type Optimizer, type ParamMap, slot } from "./optimizer.ts";

/** Options of {@linkcode Sgd}. */
export interface SgdOptions {
  /** Momentum factor (default 0: plain SGD). */
  momentum?: number;
  /** L2 penalty: `weightDecay·p` is added to each gradient (default 0). */
  weightDecay?: number;
  /** Nesterov momentum: step along `g + momentum·buf` instead of `buf` (needs momentum). */
  nesterov?: boolean;
}

/**
 * Stochastic gradient descent, with optional momentum, Nesterov momentum and
 * L2 weight decay, as PyTorch's `torch.optim.SGD` (no dampening):
 * `g += wd·p; buf = momentum·buf + g; p -= lr·(nesterov ? g + momentum·buf : buf)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Sgd } from "@denograd/denograd";
 * const p = new Map([["w", new Float32Array([1])]]);
 * new Sgd(0.1, { weightDecay: 0.5 }).step(p, new Map([["w", new Float32Array([2])]]));
 * assert.equal(p.get("w")![0], Math.fround(1 - 0.1 * (2 + 0.5 * 1)));
 * ```
 */
export class Sgd implements Optimizer {
  /** Name as given to `--optimizer`. */
  readonly name: string;
  /** Learning rate. */
  lr: number;
  /** Momentum factor (0: plain SGD). */
  readonly momentum: number;
  /** L2 penalty factor. */
  readonly weightDecay: number;
  /** Whether the momentum is Nesterov's. */
  readonly nesterov: boolean;
  private bufs = new Map<string, Float32Array>();

  /** SGD at learning rate `lr`; momentum, weight decay and Nesterov from `opts` (all off by default). */
  constructor(lr: number, opts: SgdOptions = {}) {
    this.lr = lr;
    this.momentum = opts.momentum ?? 0;
    this.weightDecay = opts.weightDecay ?? 0;
    this.nesterov = opts.nesterov ?? false;
    if (this.nesterov && this.momentum <= 0) {
      throw new Error(`Sgd: Nesterov momentum needs a momentum above 0, got ${this.momentum}`);
    }
    this.name = this.momentum ? "momentum" : "sgd";
  }

  /** One update. */
  step(params: ParamMap, grads: ParamMap): void {
    const { lr, momentum: mu, weightDecay: wd, nesterov } = this;
    for (const [name, p] of params) {
      const g = gradFor(grads, name, p.length);
      if (mu === 0) {
        for (let i = 0; i < p.length; i++) p[i] = p[i]! - lr * (g[i]! + wd * p[i]!);
        continue;
      }
      const fresh = !this.bufs.has(`${name}.momentum`);
      const b = slot(this.bufs, `${name}.momentum`, p.length);
      for (let i = 0; i < p.length; i++) {
        const gi = g[i]! + wd * p[i]!;
        // PyTorch starts the buffer at the first gradient, not at zero
        b[i] = fresh ? gi : mu * b[i]! + gi;
        p[i] = p[i]! - lr * (nesterov ? gi + mu * b[i]! : b[i]!);
      }
    }
  }

  /** Momentum buffers. */
  state(): Record<string, Float32Array> {
    return Object.fromEntries(this.bufs);
  }

  /** Restores momentum buffers. */
  loadState(state: Record<string, Float32Array>): void {
    loadSlots(this.bufs, state);
  }
}
