/**
 * The reactive topological executor: runs a plan's nodes in order, skipping
 * any node whose inputs have not changed since it last ran and whose buffer
 * still holds its value.
 *
 * @module
 */
import { type ArenaAllocator, arenaAllocator } from "./arena.ts";
import {
  type FloatArray,
  fmtShape,
  type ForwardContext,
  lookupOp,
  numel,
  type OpDef,
  type Tier,
} from "./op.ts";
import type { Node } from "./graph.ts";
import { initParams, type Params } from "./params.ts";
import type { Plan } from "./plan.ts";

/** Options of an {@linkcode Executor}. */
export interface ExecutorOptions {
  /** Parameter buffers by name (e.g. in shared memory); fresh ones from `seed` otherwise. */
  params?: Params;
  /** Seed for fresh parameters. */
  seed?: number;
  /** Kernel tier for float32 (default: the process-wide tier). */
  tier?: Tier;
  /** Put the arena in a SharedArrayBuffer. */
  shared?: boolean;
  /**
   * Where a float32 arena comes from (default: the allocator a kernel tier
   * registered with `setArenaAllocator`, else a plain `ArrayBuffer`). It may
   * give a `SharedArrayBuffer` (e.g. the wasm tier's `sharedWasmArenaBuffer`,
   * an arena other threads can run kernels on).
   */
  allocate?: ArenaAllocator;
}

/** Options of one run. */
export interface RunOptions {
  /** Nodes to compute (default: the plan's outputs). */
  outputs?: readonly (Node | number)[];
  /** Training mode (dropout active); default true. */
  training?: boolean;
  /** Optimisation step, for stochastic ops. */
  step?: number;
  /** Index of this shard's first sample within the mini-batch. */
  sampleOffset?: number;
  /**
   * Computes the value of every collective node (an op with `collective`
   * set, e.g. `batch_sum`) in place of its `forward`, from the node's id and
   * its local input; a runner that splits a step into micro-batches gives
   * one. Collective nodes then rerun on every run.
   */
  collective?: CollectiveHandler;
  /** Called after each kernel with the node and its start and end (`performance.now()`), for a profile. */
  onKernel?: (node: number, start: number, end: number) => void;
  /**
   * Asked before each kernel: when it returns true the run stops there and
   * the outputs hold whatever was last written into them (a caller that
   * stops a run discards them; the executor stays consistent, as after a
   * run of fewer nodes).
   */
  stop?: () => boolean;
}

/** Writes collective node `node`'s value into `out`; `local` is its input in this run. */
export type CollectiveHandler = (node: number, local: FloatArray, out: FloatArray) => void;

/** Feed values: a typed array or plain numbers, with exactly the input's element count. */
export type Feed = ArrayLike<number>;

/**
 * Runs a {@linkcode Plan}. Buffers come from one arena allocated here; a run
 * allocates no typed arrays.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Executor, Graph, makePlan, relu } from "@denograd/denograd";
 * const g = new Graph();
 * const y = relu(g.input("x", [3]));
 * const ex = new Executor(makePlan(g, { outputs: [y] }));
 * assert.deepEqual([...ex.run({ x: [-1, 0, 2] })[0]!], [0, 0, 2]);
 * // nothing changed: the second run reuses the value without running relu again
 * ex.run();
 * assert.equal(ex.kernelRuns[y.id], 1);
 * ```
 */
export class Executor {
  /** The plan being run. */
  readonly plan: Plan;
  /** Parameter buffers by name. */
  readonly params: Params;
  /** The buffer of every node (a view into the arena, or a parameter buffer). */
  readonly values: FloatArray[];
  /**
   * The arena's buffer: what the allocator gave (a `SharedArrayBuffer` for a
   * shared arena), or the plain buffer made in its place.
   */
  readonly arenaBuffer: ArrayBufferLike;
  /** How many times each node's kernel ran. */
  readonly kernelRuns: Uint32Array;
  /** Kernel tier for float32 buffers; undefined means the process-wide default. */
  tier: Tier | undefined;

  // The reactive state. A node's value is current when (a) the versions of
  // its inputs are the ones it last ran with, and (b) its buffer, which the
  // plan may share with other nodes, was last written by it. `version` and
  // `seen` track (a), `owner` and `slot` track (b); `schedule` derives from
  // them which nodes to run.
  private ops: (OpDef | null)[]; // null for inputs, parameters and pruned nodes
  private version: Uint32Array; // bumped each time a node's value changes (feed, invalidate, run)
  private seen: Uint32Array[]; // input versions each node last ran with
  private owner: Int32Array; // which node last wrote each arena offset
  private slot: Int32Array; // arena offset index of each node
  // training/step/sampleOffset each stochastic node last ran with (NaN step:
  // never ran): it reruns when a run's differ (per node: a run that does not
  // need it leaves it as is)
  private ranTraining: Uint8Array;
  private ranStep: Float64Array;
  private ranOffset: Float64Array;
  private ins: FloatArray[][]; // per-node argument lists, made once
  private ctxs: (ForwardContext | null)[];
  // scratch of `schedule`, kept so that a run allocates nothing
  private stale: Uint8Array; // an input changed since the node last ran
  private lost: Uint8Array; // the node's buffer holds another node's value
  private runSet: Uint8Array;
  private demanded: Uint8Array; // an output or a node that runs reads it
  private ownerSim: Int32Array; // `owner` as it will be after the run set runs
  private needed = new Map<string, Uint8Array>(); // output list -> nodes they depend on
  // per output list given to `run` (by identity): its node ids, what they
  // need and the array of their buffers run returns, so a run allocates nothing
  private outLists = new WeakMap<readonly (Node | number)[], OutList>();
  private fedNames: Map<string, number>;

  /**
   * Allocates the arena and binds every node's buffer; parameters are
   * `opts.params` or fresh ones drawn from `opts.seed`.
   */
  constructor(plan: Plan, opts: ExecutorOptions = {}) {
    this.plan = plan;
    if (opts.tier !== undefined && !TIERS.includes(opts.tier)) {
      throw new Error(
        `Executor: unknown tier ${JSON.stringify(opts.tier)} (expected ${
          TIERS.map((t) => `"${t}"`).join(", ")
        })`,
      );
    }
    this.tier = opts.tier;
    const g = plan.graph;
    const n = g.nodes.length;
    const f64 = plan.dtype === "float64";
    const bytes = plan.arenaLength * (f64 ? 8 : 4);
    // a float32 arena lives in a WebAssembly memory of its own where the wasm
    // tier provides one, so its kernels run on it in place, with the plan's
    // kernel scratch past the buffers
    const allocate = opts.allocate ?? arenaAllocator();
    let buf: ArrayBufferLike;
    try {
      buf = opts.shared
        ? new SharedArrayBuffer(bytes)
        : (!f64 && allocate?.(bytes, plan.scratchLength * 4)) || new ArrayBuffer(bytes);
    } catch (e) {
      throw new Error(`Executor: cannot allocate the arena: ${arenaReport(plan, bytes)}`, {
        cause: e,
      });
    }
    this.arenaBuffer = buf;
    const arena = f64
      ? new Float64Array(buf, 0, plan.arenaLength)
      : new Float32Array(buf, 0, plan.arenaLength);
    this.params = opts.params ?? initParams(g, { seed: opts.seed, dtype: plan.dtype });
    this.values = [];
    this.ops = [];
    this.fedNames = new Map();
    const slots = new Map<number, number>();
    this.slot = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const r = g.nodes[i]!;
      const size = numel(plan.shapes[i]!);
      if (r.op === "param") {
        const p = this.params.get(r.name);
        if (!p) throw new Error(`Executor: no buffer for parameter "${r.name}"`);
        if (p.length !== size || (p instanceof Float64Array) !== f64) {
          throw new Error(
            `Executor: parameter "${r.name}" needs ${size} ${plan.dtype} values for shape ${
              fmtShape(plan.shapes[i]!)
            } but its buffer holds ${p.length} ${
              p instanceof Float64Array ? "float64" : "float32"
            }`,
          );
        }
        this.values.push(p);
        this.ops.push(null);
        this.slot[i] = -1;
        continue;
      }
      const off = plan.offsets[i]!;
      if (off < 0) {
        // pruned from the plan: never computed
        this.values.push(arena.subarray(0, 0));
        this.ops.push(null);
        this.slot[i] = -1;
        continue;
      }
      this.values.push(arena.subarray(off, off + size));
      this.ops.push(r.op === "input" ? null : lookupOp(r.op));
      if (!slots.has(off)) slots.set(off, slots.size);
      this.slot[i] = slots.get(off)!;
      if (r.op === "input") this.fedNames.set(r.name, i);
    }
    this.owner = new Int32Array(slots.size).fill(-1);
    this.version = new Uint32Array(n);
    this.seen = g.nodes.map((r) => new Uint32Array(r.inputs.length).fill(0xffffffff));
    this.kernelRuns = new Uint32Array(n);
    this.ranTraining = new Uint8Array(n);
    this.ranStep = new Float64Array(n).fill(NaN);
    this.ranOffset = new Float64Array(n);
    this.ownerSim = new Int32Array(slots.size);
    this.stale = new Uint8Array(n);
    this.lost = new Uint8Array(n);
    this.runSet = new Uint8Array(n);
    this.demanded = new Uint8Array(n);
    // per-node argument lists, made once so a run allocates nothing
    this.ins = g.nodes.map((r) => r.inputs.map((j) => this.values[j]!));
    this.ctxs = g.nodes.map((r, i) =>
      this.ops[i]
        ? {
          attrs: r.attrs,
          inShapes: r.inputs.map((j) => plan.shapes[j]!),
          outShape: plan.shapes[i]!,
          training: true,
          step: 0,
          sampleOffset: 0,
          tier: this.tier,
        }
        : null
    );
    // what the plan's own outputs depend on, worked out now so that the first
    // run allocates nothing either (a runner may first run this executor late)
    this.outList(plan.outputs);
  }

  /**
   * The buffer of input `name`, to write its values in place; call
   * {@linkcode Executor.changed} after writing. Unlike {@linkcode Executor.feed}
   * nothing is copied.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Executor, Graph, makePlan, relu } from "@denograd/denograd";
   * const g = new Graph();
   * const y = relu(g.input("x", [2]));
   * const ex = new Executor(makePlan(g, { outputs: [y] }));
   * ex.input("x").set([-1, 3]);
   * ex.changed("x");
   * assert.deepEqual([...ex.run()[0]!], [0, 3]);
   * ```
   */
  input(name: string): FloatArray {
    return this.values[this.inputId(name)]!;
  }

  /** Marks input `name` changed after its buffer ({@linkcode Executor.input}) was written. */
  changed(name: string): void {
    this.version[this.inputId(name)]!++;
  }

  /** The node id of input `name`; throws naming the inputs there are. */
  private inputId(name: string): number {
    const id = this.fedNames.get(name);
    if (id === undefined) {
      const known = [...this.fedNames.keys()].join(", ");
      throw new Error(`Executor: the graph has no input "${name}" (inputs: ${known})`);
    }
    return id;
  }

  /** Copies `value` into input `name` and marks it changed. */
  feed(name: string, value: Feed): void {
    const id = this.inputId(name);
    const dst = this.values[id]!;
    if (
      value === null || typeof value !== "object" || typeof value.length !== "number" ||
      (Array.isArray(value) && !value.every((v) => typeof v === "number"))
    ) {
      throw new Error(
        `Executor: input "${name}" of shape ${
          fmtShape(this.plan.shapes[id]!)
        } needs an array of ${dst.length} numbers, got ${describe(value)}`,
      );
    }
    if (value.length !== dst.length) {
      throw new Error(
        `Executor: input "${name}" of shape ${
          fmtShape(this.plan.shapes[id]!)
        } needs ${dst.length} values, got ${value.length}`,
      );
    }
    dst.set(value);
    this.version[id]!++;
  }

  /** Marks parameters as changed (all by default) after they were updated in place. */
  invalidate(names?: readonly string[]): void {
    const g = this.plan.graph;
    for (let i = 0; i < g.nodes.length; i++) {
      const r = g.nodes[i]!;
      if (r.op === "param" && (!names || names.includes(r.name))) this.version[i]!++;
    }
  }

  /**
   * Feeds the inputs given, computes what the outputs need, and returns the
   * output buffers (views valid until the next run). Given the same
   * `outputs` array again (or none) and no feeds (inputs written in place,
   * see {@linkcode Executor.input}), a run allocates nothing, and returns
   * the same array of buffers as the last run with those outputs.
   */
  run(feeds?: Record<string, Feed>, opts: RunOptions = NO_OPTIONS): FloatArray[] {
    if (feeds !== undefined) {
      if (feeds === null || typeof feeds !== "object") {
        throw new Error(
          `Executor: run's feeds must be an object of input arrays, got ${describe(feeds)}`,
        );
      }
      for (const [name, v] of Object.entries(feeds)) this.feed(name, v);
    }
    const list = this.outList(opts.outputs ?? this.plan.outputs);
    const outs = list.ids;
    const training = opts.training ?? true;
    const step = opts.step ?? 0;
    const sampleOffset = opts.sampleOffset ?? 0;
    const need = list.need;
    // an input never fed would be computed on as zeros
    for (const [name, id] of this.fedNames) {
      if (need[id] && this.version[id] === 0) {
        throw new Error(
          `Executor: input "${name}" (shape ${
            fmtShape(this.plan.shapes[id]!)
          }) was never fed; pass it to run({ ${name}: ... }) or feed()`,
        );
      }
    }
    const collective = opts.collective;
    const onKernel = opts.onKernel;
    const stop = opts.stop;
    const run = this.schedule(need, outs, training, step, sampleOffset, collective !== undefined);
    const g = this.plan.graph;
    const tier: Tier | undefined = this.plan.dtype === "float64" ? "ref" : this.tier;
    for (let i = 0; i < run.length; i++) {
      if (!run[i]) continue;
      if (stop !== undefined && stop()) break;
      const op = this.ops[i]!;
      const r = g.nodes[i]!;
      const ctx = this.ctxs[i]!;
      ctx.training = training;
      ctx.step = step;
      ctx.sampleOffset = sampleOffset;
      ctx.tier = tier;
      const t0 = onKernel ? performance.now() : 0;
      try {
        if (collective && op.collective) collective(i, this.ins[i]![0]!, this.values[i]!);
        else op.forward(this.ins[i]!, this.values[i]!, ctx);
      } catch (e) {
        const msg = (e as Error).message;
        throw new Error(msg.includes(`"${r.name}"`) ? msg : `${r.op} "${r.name}": ${msg}`, {
          cause: e,
        });
      }
      const seen = this.seen[i]!;
      for (let k = 0; k < r.inputs.length; k++) seen[k] = this.version[r.inputs[k]!]!;
      this.owner[this.slot[i]!] = i;
      this.version[i]!++;
      this.kernelRuns[i]!++;
      if (onKernel) onKernel(i, t0, performance.now());
      this.ranTraining[i] = training ? 1 : 0;
      this.ranStep[i] = step;
      this.ranOffset[i] = sampleOffset;
    }
    return list.buffers;
  }

  /** The ids, needs and buffers of an output list, cached by the list's identity while its contents stay. */
  private outList(given: readonly (Node | number)[]): OutList {
    let list = this.outLists.get(given);
    if (list !== undefined && list.ids.length === given.length) {
      let same = true;
      for (let k = 0; k < given.length && same; k++) {
        const o = given[k]!;
        same = (typeof o === "number" ? o : o.id) === list.ids[k];
      }
      if (same) return list;
    }
    list = this.makeOutList(given);
    this.outLists.set(given, list);
    return list;
  }

  /** A new output list for `run` (apart from outList, whose closures would make it allocate a context per call). */
  private makeOutList(given: readonly (Node | number)[]): OutList {
    const ids = given.map((o) => (typeof o === "number" ? o : o.id));
    return { ids, need: this.neededFor(ids), buffers: ids.map((o) => this.values[o]!) };
  }

  /**
   * Which nodes must run: those the outputs need that are stale (an input
   * changed) or whose shared buffer no longer holds their value when a
   * consumer reads it. Buffer ownership is simulated in order and the set
   * grows until it is consistent.
   */
  private schedule(
    need: Uint8Array,
    outs: number[],
    training: boolean,
    step: number,
    sampleOffset: number,
    collective: boolean,
  ): Uint8Array {
    const g = this.plan.graph;
    const n = need.length;
    const stale = this.stale.fill(0);
    for (let i = 0; i < n; i++) {
      const op = this.ops[i];
      if (!need[i] || !op) continue;
      const r = g.nodes[i]!;
      // a collective's value depends on other micro-batches: always recomputed
      let s = (op.stochastic === true &&
        (this.ranTraining[i] !== (training ? 1 : 0) || this.ranStep[i] !== step ||
          this.ranOffset[i] !== sampleOffset)) ||
        (collective && op.collective === true);
      for (let k = 0; k < r.inputs.length && !s; k++) {
        const j = r.inputs[k]!;
        s = stale[j] === 1 || this.seen[i]![k] !== this.version[j];
      }
      stale[i] = s ? 1 : 0;
    }
    const lost = this.lost;
    for (let i = 0; i < n; i++) lost[i] = this.ops[i] && this.owner[this.slot[i]!] !== i ? 1 : 0;
    const run = this.runSet;
    const demanded = this.demanded;
    for (;;) {
      run.fill(0);
      demanded.fill(0);
      for (let k = 0; k < outs.length; k++) demanded[outs[k]!] = 1;
      for (let i = n - 1; i >= 0; i--) {
        if (!need[i] || !this.ops[i] || !demanded[i]) continue;
        if (stale[i] || lost[i]) {
          run[i] = 1;
          const ins = g.nodes[i]!.inputs;
          for (let k = 0; k < ins.length; k++) demanded[ins[k]!] = 1;
        }
      }
      // a node that runs overwrites whatever shared its buffer before
      const owner = this.ownerSim;
      owner.set(this.owner);
      let grew = false;
      for (let i = 0; i < n; i++) {
        if (!this.ops[i]) continue;
        if (run[i]) owner[this.slot[i]!] = i;
        else if (demanded[i] && owner[this.slot[i]!] !== i && !lost[i]) {
          lost[i] = 1;
          grew = true;
        }
      }
      if (!grew) return run;
    }
  }

  /**
   * Marks the nodes `outs` depend on, cached per output list; throws for an
   * output whose buffer the plan may reuse.
   */
  private neededFor(outs: number[]): Uint8Array {
    const key = outs.join(",");
    let need = this.needed.get(key);
    if (need) return need;
    const g = this.plan.graph;
    need = new Uint8Array(g.nodes.length);
    for (const o of outs) {
      if (!this.plan.persistent[o]) {
        throw new Error(
          `Executor: node "${
            g.nodes[o]!.name
          }" is not an output of the plan, so its buffer may be reused; list it in makePlan's outputs`,
        );
      }
      need[o] = 1;
    }
    for (let i = need.length - 1; i >= 0; i--) {
      if (need[i]) { for (const j of g.nodes[i]!.inputs) need[j] = 1; }
    }
    this.needed.set(key, need);
    return need;
  }
}

const TIERS: readonly Tier[] = ["ref", "ts", "wasm"];

/** The default of `run`'s options, one object so that a run without options allocates none. */
const NO_OPTIONS: RunOptions = Object.freeze({});

/** An output list as `run` uses it. */
interface OutList {
  ids: number[];
  need: Uint8Array;
  buffers: FloatArray[];
}

/** A value's kind for error messages: `null`, `string "abc"`, `array with a string at 2`. */
function describe(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (Array.isArray(v)) {
    const i = v.findIndex((x) => typeof x !== "number");
    return i < 0
      ? `an array of ${v.length}`
      : `an array with ${typeof v[i]} ${JSON.stringify(v[i])} at index ${i}`;
  }
  if (typeof v === "string") return `the string ${JSON.stringify(v.slice(0, 20))}`;
  return typeof v;
}

/** The arena size and the largest buffer in it, to say why an allocation failed. */
function arenaReport(plan: Plan, bytes: number): string {
  const per = plan.dtype === "float64" ? 8 : 4;
  let big = -1;
  for (let i = 0; i < plan.offsets.length; i++) {
    if (plan.offsets[i]! < 0) continue;
    if (big < 0 || numel(plan.shapes[i]!) > numel(plan.shapes[big]!)) big = i;
  }
  const gb = (b: number) => `${(b / 2 ** 30).toPrecision(3)} GiB`;
  const node = big >= 0 ? plan.graph.nodes[big]! : undefined;
  return `${bytes} bytes (${gb(bytes)}) at batch ${plan.batch}${
    node
      ? `; the largest buffer is ${node.op} "${node.name}" of shape ${
        fmtShape(plan.shapes[big]!)
      }, ${gb(numel(plan.shapes[big]!) * per)}`
      : ""
  }`;
}
