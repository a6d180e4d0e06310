/**
 * What `bench/alloc_step.ts` and `tests/train/parallel/garbage_test.ts`
 * share: a LocalRunner on made-up digits, and V8's sampling heap profiler
 * (`node:inspector`) around a number of its steps.
 *
 * @module
 */
import { Session } from "node:inspector";
import { initParams } from "../graph/params.ts";
import { LocalRunner } from "../train/parallel/local.ts";
import type { Classifier } from "../train/models.ts";

/** A node of V8's sampling heap profile: a call site and the bytes it allocated itself. */
export interface ProfNode {
  /** The function, its script and line (0-based). */
  callFrame: { functionName: string; url: string; lineNumber: number };
  /** Bytes allocated by this site itself. */
  selfSize: number;
  /** The sites it called. */
  children: ProfNode[];
}

/**
 * Steps `from` to `from + n` of a wasm-tier LocalRunner of `spec` on `count`
 * made-up digits, batches of `batch` taken in turn from 4; `steps` runs them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lectureCnn } from "../train/models.ts";
 * import { digitSteps } from "./_heap.ts";
 * const s = digitSteps(lectureCnn({ channels: 2 }), 64, 8);
 * await s.steps(0, 2);
 * await s.runner.close();
 * assert.equal(s.batches.length, 4);
 * ```
 */
export function digitSteps(spec: Classifier, count: number, batch: number) {
  const images = new Float32Array(count * 784).map((_, i) => ((i * 7919) % 251) / 251);
  const labels = new Uint8Array(count).map((_, i) => i % 10);
  const params = initParams(spec.built, { seed: 3 }) as Map<string, Float32Array>;
  const grads = new Map<string, Float32Array>();
  const runner = new LocalRunner(spec, {
    params,
    data: { images, labels, sampleSize: 784 },
    maxBatch: batch,
    tier: "wasm",
  });
  const batches = Array.from(
    { length: 4 },
    (_, b) => new Uint32Array(batch).map((_, i) => (b * 61 + i * 7) % count),
  );
  const steps = async (from: number, n: number) => {
    for (let s = from; s < from + n; s++) await runner.step(batches[s % 4]!, s, grads);
  };
  return { runner, batches, steps };
}

/**
 * The root of V8's sampling heap profile over `body` (a sample every
 * `interval` bytes on average, objects collected since included).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { heapSample } from "./_heap.ts";
 * let keep: number[][] = [];
 * const head = await heapSample(64, () => {
 *   for (let i = 0; i < 1000; i++) keep.push([i, i + 1]);
 *   return Promise.resolve();
 * });
 * keep = [];
 * const total = (n: typeof head): number => n.selfSize + n.children.reduce((a, c) => a + total(c), 0);
 * assert.ok(total(head) > 0);
 * ```
 */
export async function heapSample(interval: number, body: () => Promise<void>): Promise<ProfNode> {
  const session = new Session();
  session.connect();
  const post = <T>(method: string, params?: object) =>
    new Promise<T>((ok, fail) =>
      session.post(
        method,
        params ?? {},
        (e: Error | null, r?: object) => (e ? fail(e) : ok(r as T)),
      )
    );
  try {
    await post("HeapProfiler.enable");
    await post("HeapProfiler.startSampling", {
      samplingInterval: interval,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    await body();
    return (await post<{ profile: { head: ProfNode } }>("HeapProfiler.stopSampling")).profile.head;
  } finally {
    session.disconnect();
  }
}
