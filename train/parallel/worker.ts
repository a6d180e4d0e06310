/**
 * The worker's serve loop: loaded as a module worker by `WorkerPool`, it
 * rebuilds the training graph once ({@linkcode workerApi.init}) and then
 * serves steps from a shared control block ({@linkcode workerApi.serve}),
 * running each shard with `GradientShard`. Comlink carries the two calls.
 *
 * @module
 */
// full specifier: an import map is ignored when the library is loaded from a URL
// deno-lint-ignore no-import-prefix
import * as Comlink from "npm:comlink@4.4.2";
import { GradientShard, type ShardInit } from "./shard.ts";
import { CTRL, CTRL_STEP_BYTE } from "./control.ts";
import { loadHook, type TestSeam, type ThreadHook, type ThreadId } from "./seam.ts";

// a worker spins this long for the next step before sleeping: the main thread
// reduces and updates between steps in far less, and waking is slow
const SPIN_MS = 2;
let shard: GradientShard | null = null;
let hook: ThreadHook | null = null;

/** What a worker exposes through Comlink. */
export const workerApi = {
  /**
   * Imports `modules` (extra ops register themselves), rebuilds the graph and
   * binds the shared buffers; throws what the graph checks throw. A test
   * `seam` installs its hook for this thread.
   */
  async init(
    init: ShardInit,
    modules: string[] = [],
    thread: ThreadId = { worker: 0, generation: 0 },
    seam?: TestSeam,
  ): Promise<void> {
    for (const m of modules) await import(m);
    shard = new GradientShard(init);
    hook = await loadHook(seam, thread);
  },
  /**
   * Serves steps from the control block `ctrl` (see `CTRL`) until the pool
   * sets `QUIT`, starting after step number `from` (the pool may post a step
   * before this call arrives); this worker's event loop is blocked meanwhile.
   * A shard that throws ends the call with its error.
   */
  serve(ctrl: Int32Array, from: number): Promise<void> {
    if (!shard) throw new Error("Worker: serve before init");
    const stepOf = new Float64Array(ctrl.buffer, CTRL_STEP_BYTE, 1);
    let seen = from;
    for (;;) {
      let go = Atomics.load(ctrl, CTRL.GO);
      if (go === seen) {
        const until = performance.now() + SPIN_MS;
        while (go === seen && performance.now() < until) go = Atomics.load(ctrl, CTRL.GO);
        while (go === seen) {
          Atomics.wait(ctrl, CTRL.GO, seen, 1000);
          go = Atomics.load(ctrl, CTRL.GO);
        }
      }
      seen = go;
      if (Atomics.load(ctrl, CTRL.QUIT)) return Promise.resolve();
      const step = stepOf[0]!;
      // a simulated fault: back to the event loop, never answering
      if (hook?.(step, -1)) return new Promise<never>(() => {});
      shard.run(step, ctrl[CTRL.START]!, ctrl[CTRL.END]!);
      Atomics.store(ctrl, CTRL.DONE, go);
      Atomics.notify(ctrl, CTRL.DONE);
    }
  },
};

/** The Comlink interface of a worker. */
export type WorkerApi = typeof workerApi;

// only inside a worker: imported elsewhere (for its types) this module exposes nothing
const scope = (globalThis as { WorkerGlobalScope?: abstract new () => unknown }).WorkerGlobalScope;
if (scope && globalThis instanceof scope) Comlink.expose(workerApi);
