/**
 * The optimizer interface and the factory behind `--optimizer`.
 *
 * @module
 */
import { AdaDelta } from "./adadelta.ts";
import { Adam, AdamW } from "./adam.ts";
import { Sgd } from "./sgd.ts";

/** Parameters or gradients by parameter name. */
export type ParamMap = Map<string, Float32Array>;

/** Updates parameters in place from their gradients; its state can be checkpointed. */
export interface Optimizer {
  /** Name as given to `--optimizer`. */
  readonly name: string;
  /** Learning rate (may be changed between steps). */
  lr: number;
  /** One update of every parameter from the gradient of the same name. */
  step(params: ParamMap, grads: ParamMap): void;
  /** State buffers by `${param}.${slot}` name, for checkpoints. */
  state(): Record<string, Float32Array>;
  /** Restores buffers saved by {@linkcode Optimizer.state}. */
  loadState(state: Record<string, Float32Array>): void;
}

/**
 * Optimizer names understood by {@linkcode makeOptimizer} and `--optimizer`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { makeOptimizer, OPTIMIZERS } from "@denograd/denograd";
 * assert.deepEqual(OPTIMIZERS.map((n) => makeOptimizer(n, 0.1).name), [...OPTIMIZERS]);
 * ```
 */
export const OPTIMIZERS = ["sgd", "momentum", "adadelta", "adam", "adamw"] as const;

/** One of {@linkcode OPTIMIZERS}. */
export type OptimizerName = typeof OPTIMIZERS[number];

/** Options of {@linkcode makeOptimizer} beyond the learning rate. */
export interface OptimizerOptions {
  /** Weight decay: L2 for sgd, momentum and adam (0 by default), decoupled for adamw (0.01 by default). */
  weightDecay?: number;
  /** Nesterov momentum (momentum only). */
  nesterov?: boolean;
}

/**
 * Makes an optimizer by name with PyTorch's defaults for the rest
 * (momentum 0.9; AdaDelta rho 0.9, eps 1e-6; Adam betas 0.9/0.999, eps 1e-8;
 * AdamW weight decay 0.01).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { makeOptimizer } from "@denograd/denograd";
 * const opt = makeOptimizer("adam", 1e-3);
 * const p = new Map([["w", new Float32Array([1])]]);
 * opt.step(p, new Map([["w", new Float32Array([0.5])]]));
 * // Adam's first step moves each value by about lr, whatever the gradient's size
 * assert.ok(Math.abs(p.get("w")![0]! - 0.999) < 1e-6);
 * assert.throws(() => makeOptimizer("adam", 1e-3, { nesterov: true }), /not "adam"/);
 * ```
 */
export function makeOptimizer(
  name: OptimizerName,
  lr: number,
  opts: OptimizerOptions = {},
): Optimizer {
  const { weightDecay, nesterov } = opts;
  if (nesterov && name !== "momentum") {
    throw new Error(`Nesterov momentum needs the momentum optimizer, not "${name}"`);
  }
  if (weightDecay !== undefined && !(weightDecay >= 0 && Number.isFinite(weightDecay))) {
    throw new Error(`weight decay must be a finite number ≥ 0, got ${weightDecay}`);
  }
  if (weightDecay && name === "adadelta") {
    throw new Error(
      `weight decay is not implemented for adadelta (use sgd, momentum, adam or adamw)`,
    );
  }
  switch (name) {
    case "sgd":
      return new Sgd(lr, { weightDecay });
    case "momentum":
      return new Sgd(lr, { momentum: 0.9, weightDecay, nesterov });
    case "adadelta":
      return new AdaDelta(lr);
    case "adam":
      return new Adam(lr, { weightDecay });
    case "adamw":
      return new AdamW(lr, { weightDecay });
    default:
      throw new Error(`Unknown optimizer "${name}" (expected one of ${OPTIMIZERS.join(", ")})`);
  }
}

/**
 * Copies saved buffers into `store`: into the buffer of the same name and size where there is one, else a new one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadSlots } from "./optimizer.ts";
 * const mine = new Float32Array(2);
 * const store = new Map([["w.momentum", mine], ["b.momentum", new Float32Array(1)]]);
 * loadSlots(store, { "w.momentum": new Float32Array([1, 2]) });
 * assert.equal(store.get("w.momentum"), mine); // in place: other threads may hold it
 * assert.deepEqual([...mine], [1, 2]);
 * assert.deepEqual([...store.keys()], ["w.momentum"]); // what was not saved is dropped
 * ```
 */
export function loadSlots(
  store: Map<string, Float32Array>,
  saved: Record<string, Float32Array>,
): void {
  for (const k of [...store.keys()]) if (!(k in saved)) store.delete(k);
  for (const [k, v] of Object.entries(saved)) {
    const mine = store.get(k);
    // in place where it fits: other threads may hold the buffer (a parallel update)
    if (mine && mine.length === v.length) mine.set(v);
    else store.set(k, Float32Array.from(v));
  }
}
