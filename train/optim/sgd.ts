import { gradFor, loadSlots, type Optimizer, type ParamMap, slot } from "./optimizer.ts";

/**
 * Stochastic gradient descent, with optional momentum as in PyTorch:
 * `buf = momentum·buf + g; p -= lr·buf`.
 *
 * @example
 * ```ts
 * import { Sgd } from "@denograd/denograd";
 * const p = new Map([["w", new Float32Array([1])]]);
 * new Sgd(0.1).step(p, new Map([["w", new Float32Array([2])]]));
 * console.log(p.get("w")![0]); // ≈ 0.8
 * ```
 */
export class Sgd implements Optimizer {
  /** Name as given to `--optimizer`. */
  readonly name: string;
  /** Learning rate. */
  lr: number;
  /** Momentum factor (0: plain SGD). */
  readonly momentum: number;
  private bufs = new Map<string, Float32Array>();

  /** Plain SGD at learning rate `lr`, or with momentum when `opts.momentum` is not 0 (default 0). */
  constructor(lr: number, opts: { momentum?: number } = {}) {
    this.lr = lr;
    this.momentum = opts.momentum ?? 0;
    this.name = this.momentum ? "momentum" : "sgd";
  }

  /** One update. */
  step(params: ParamMap, grads: ParamMap): void {
    for (const [name, p] of params) {
      const g = gradFor(grads, name, p.length);
      if (this.momentum === 0) {
        for (let i = 0; i < p.length; i++) p[i] = p[i]! - this.lr * g[i]!;
        continue;
      }
      const fresh = !this.bufs.has(`${name}.momentum`);
      const b = slot(this.bufs, `${name}.momentum`, p.length);
      for (let i = 0; i < p.length; i++) {
        // PyTorch starts the buffer at the first gradient, not at zero
        b[i] = fresh ? g[i]! : this.momentum * b[i]! + g[i]!;
        p[i] = p[i]! - this.lr * b[i]!;
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
