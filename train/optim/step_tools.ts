import { clipGradNorm } from "./clip.ts";
import type { Optimizer, ParamMap } from "./optimizer.ts";
import { checkSchedule, lrAt, parseSchedule, type ScheduleSpec } from "./schedule.ts";

/** What a training run applies around each optimizer step (the `train()` options of the same names). */
export interface StepToolOptions {
  /** Learning-rate schedule: specs, or the `--schedule` text (e.g. `"warmup:100,cosine"`). */
  schedule?: string | ScheduleSpec[];
  /** Clip the gradients to this global L2 norm before each step. */
  clipGradNorm?: number;
  /** Weight decay: L2 for sgd, momentum and adam, decoupled for adamw (recorded in checkpoints). */
  weightDecay?: number;
  /** Nesterov momentum, with the momentum optimizer (recorded in checkpoints). */
  nesterov?: boolean;
}

/**
 * The per-step tools of a run: gradient clipping, then the learning rate of
 * the schedule at the global step, before the optimizer's update. The step is
 * the schedule's position, and {@linkcode StepTools.metadata} records the
 * rest in checkpoints, so a resumed run continues the same schedule exactly
 * and {@linkcode StepTools.mismatch} refuses one that changed it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Sgd, StepTools } from "@denograd/denograd";
 * const tools = new StepTools(0.1, { schedule: "step:1:0.5", clipGradNorm: 1 }, 10);
 * const opt = new Sgd(0.1);
 * const p = new Map([["w", new Float32Array([0])]]);
 * const g = new Map([["w", new Float32Array([4])]]);
 * tools.beforeStep(opt, g, 1); // the gradient clipped to norm 1, lr 0.1 · 0.5
 * opt.step(p, g);
 * assert.ok(Math.abs(p.get("w")![0]! + 0.05) < 1e-6);
 * ```
 */
export class StepTools {
  /** The learning rate the schedule multiplies (`--lr`). */
  readonly baseLr: number;
  /** The schedule's factors, resolved (a cosine's length filled in). */
  readonly schedule: ScheduleSpec[];
  /** The global-norm limit, or undefined for none. */
  readonly clip: number | undefined;
  private readonly opts: StepToolOptions;

  /** Tools for a run at `baseLr` lasting `totalSteps` optimizer steps (a cosine's default length). */
  constructor(baseLr: number, opts: StepToolOptions, totalSteps: number) {
    this.baseLr = baseLr;
    this.opts = opts;
    const s = opts.schedule ?? [];
    this.schedule = typeof s === "string"
      ? parseSchedule(s, Math.max(1, totalSteps), "schedule")
      : [...s];
    checkSchedule(this.schedule);
    this.clip = opts.clipGradNorm;
    if (this.clip !== undefined && !(this.clip > 0 && Number.isFinite(this.clip))) {
      throw new Error(`clipGradNorm must be a finite number above 0, got ${this.clip}`);
    }
  }

  /** Clips `grads` and sets the optimizer's learning rate for global step `step`; returns the gradient norm when clipping. */
  beforeStep(optimizer: Optimizer, grads: ParamMap, step: number): number | undefined {
    const norm = this.clip === undefined ? undefined : clipGradNorm(grads, this.clip);
    optimizer.lr = lrAt(this.baseLr, this.schedule, step);
    return norm;
  }

  /**
   * Sets the optimizer's learning rate for global step `step` without
   * touching gradients: for an update that clips by itself (the worker
   * pool's parallel update, given {@linkcode StepTools.clip}).
   */
  setLr(optimizer: Optimizer, step: number): void {
    optimizer.lr = lrAt(this.baseLr, this.schedule, step);
  }

  /** Checkpoint metadata fields describing the tools. */
  metadata(): Record<string, string> {
    return {
      schedule: JSON.stringify(this.schedule),
      clip_grad_norm: String(this.clip ?? "none"),
      weight_decay: String(this.opts.weightDecay ?? "default"),
      nesterov: String(this.opts.nesterov ?? false),
    };
  }

  /**
   * Why a checkpoint with `metadata` cannot be resumed exactly with these
   * tools (a field that differs, named with both values), or null. Fields a
   * checkpoint lacks (older files) count as the defaults.
   */
  mismatch(metadata: Record<string, string>): string | null {
    const mine = this.metadata();
    const defaults: Record<string, string> = {
      schedule: "[]",
      clip_grad_norm: "none",
      weight_decay: "default",
      nesterov: "false",
    };
    const flags: Record<string, string> = {
      schedule: "schedule (--schedule)",
      clip_grad_norm: "clipGradNorm (--clip-grad-norm)",
      weight_decay: "weightDecay (--weight-decay)",
      nesterov: "nesterov (--nesterov)",
    };
    for (const [k, v] of Object.entries(mine)) {
      const theirs = metadata[k] ?? defaults[k]!;
      if (theirs !== v) {
        return `it was trained with ${flags[k]} ${theirs}; resume with the same, not ${v}`;
      }
    }
    return null;
  }
}
