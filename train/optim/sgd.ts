import { loadSlots, type ParamMap } from "./optimizer.ts";
import {
  checkOption,
  NO_STATE,
  type RangeOptimizer,
  type Rule,
  stateBuffer,
  stepByRule,
} from "./rules.ts";

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
export class Sgd implements RangeOptimizer {
  /** Its elementwise rule (see `rules.ts`). */
  readonly rule: Rule = "sgd";
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
  /** Whether the momentum buffers hold a step (PyTorch starts them at the first gradient). */
  private started = false;
  private scalars = new Float64Array(8);

  /** SGD at learning rate `lr`; momentum, weight decay and Nesterov from `opts` (all off by default). */
  constructor(lr: number, opts: SgdOptions = {}) {
    this.lr = lr;
    this.momentum = opts.momentum ?? 0;
    this.weightDecay = opts.weightDecay ?? 0;
    this.nesterov = opts.nesterov ?? false;
    checkOption("Sgd", "lr", lr, 0);
    checkOption("Sgd", "momentum", this.momentum, 0, 1, true);
    checkOption("Sgd", "weightDecay", this.weightDecay, 0);
    if (this.nesterov && this.momentum <= 0) {
      throw new Error(`Sgd: Nesterov momentum needs a momentum above 0, got ${this.momentum}`);
    }
    this.name = this.momentum ? "momentum" : "sgd";
  }

  /** One update. */
  step(params: ParamMap, grads: ParamMap): void {
    stepByRule(this, params, grads, this.scalars);
  }

  /** Writes lr, momentum, weight decay, Nesterov and whether the buffers start now into `s`. */
  begin(s: Float64Array): void {
    s[0] = this.lr;
    s[1] = this.momentum;
    s[2] = this.weightDecay;
    s[3] = this.nesterov ? 1 : 0;
    s[4] = this.started ? 0 : 1;
    if (this.momentum !== 0) this.started = true;
  }

  /** The momentum buffer of `name` (none for plain SGD). */
  buffers(name: string, n: number, shared = false): [Float32Array, Float32Array] {
    if (this.momentum === 0) return NO_STATE;
    const b = stateBuffer(this.bufs, `${name}.momentum`, n, shared);
    return [b, b];
  }

  /** Momentum buffers. */
  state(): Record<string, Float32Array> {
    // buffers made ahead of the first step (a parallel update's) hold nothing yet
    return this.started ? Object.fromEntries(this.bufs) : {};
  }

  /** Restores momentum buffers. */
  loadState(state: Record<string, Float32Array>): void {
    loadSlots(this.bufs, state);
    this.started = Object.keys(state).some((k) => k.endsWith(".momentum"));
  }
}
