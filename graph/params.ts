/**
 * Parameter storage and initialisation.
 *
 * @module
 */
import { hashUniform } from "./hash.ts";
import { type FloatArray, numel } from "./op.ts";
import type { Graph, Init } from "./graph.ts";

/** Parameter buffers by parameter name. */
export type Params = Map<string, FloatArray>;

/**
 * Fresh parameters for every `param` node of `graph`, drawn from each node's
 * initialiser. Values depend only on (seed, parameter name, element), not on
 * creation order elsewhere.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, initParams } from "@denograd/denograd";
 * const g = new Graph();
 * g.param("w", [2, 3], { kind: "uniform", bound: 0.5 });
 * const p = initParams(g, { seed: 1 });
 * assert.equal(p.get("w")!.length, 6);
 * ```
 */
export function initParams(
  graph: Graph,
  opts: { seed?: number; dtype?: "float32" | "float64"; shared?: boolean } = {},
): Params {
  const seed = opts.seed ?? 0;
  const out: Params = new Map();
  for (const p of graph.params()) {
    const n = numel(p.shape);
    const bytes = n * (opts.dtype === "float64" ? 8 : 4);
    const buf = opts.shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes);
    const data = opts.dtype === "float64" ? new Float64Array(buf) : new Float32Array(buf);
    fillInit(data, p.record.attrs.init as Init, seed, nameHash(p.name));
    out.set(p.name, data);
  }
  return out;
}

function fillInit(data: FloatArray, init: Init, seed: number, key: number): void {
  switch (init.kind) {
    case "constant":
      data.fill(init.value);
      return;
    case "uniform":
      for (let i = 0; i < data.length; i++) {
        data[i] = (2 * hashUniform(seed, key, i, 0) - 1) * init.bound;
      }
      return;
    case "normal":
      for (let i = 0; i < data.length; i++) {
        // Box-Muller from two independent uniforms
        const u = 1 - hashUniform(seed, key, i, 1);
        const v = hashUniform(seed, key, i, 2);
        data[i] = init.std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
      }
      return;
    default:
      throw new Error(`Unknown initialiser ${JSON.stringify(init)}`);
  }
}

function nameHash(name: string): number {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
  return h >>> 0;
}
