import assert from "node:assert/strict";
import type { Tier } from "../../../graph/op.ts";
import {
  getKernelTier,
  kernelTier,
  runKernel,
  setKernelTier,
  wasmAvailable,
} from "../../../ops/kernels/tier.ts";

Deno.test("the default tier is wasm where WebAssembly SIMD runs, else ts", () => {
  assert.equal(getKernelTier(), wasmAvailable() ? "wasm" : "ts");
});

Deno.test("setKernelTier sets the process-wide tier and rejects unknown names", () => {
  const saved = getKernelTier();
  try {
    setKernelTier("ts");
    assert.equal(getKernelTier(), "ts");
    assert.equal(kernelTier(new Float32Array(1), undefined), "ts");
    setKernelTier("ref");
    assert.equal(kernelTier(new Float32Array(1), undefined), "ref");
    assert.throws(() => setKernelTier("gpu" as Tier), /setKernelTier: unknown tier "gpu"/);
    assert.throws(() => kernelTier(new Float32Array(1), "gpu" as Tier), /unknown tier "gpu"/);
  } finally {
    setKernelTier(saved);
  }
});

Deno.test("runKernel: float64 and the ref tier run ref, wasm falls back to ts, ts to ref", () => {
  const log: string[] = [];
  const all = {
    ref: () => void log.push("ref"),
    ts: () => void log.push("ts"),
    wasm: () => void log.push("wasm"),
  };
  const f32 = new Float32Array(1), f64 = new Float64Array(1);
  const calls: [Float32Array | Float64Array, Tier, object, string[]][] = [
    [f64, "wasm", all, ["ref"]],
    [f32, "ref", all, ["ref"]],
    [f32, "ts", all, ["ts"]],
    [f32, "wasm", all, wasmAvailable() ? ["wasm"] : ["ts"]],
    // a wasm kernel that cannot serve its operands hands over to ts
    [
      f32,
      "wasm",
      { ...all, wasm: () => (log.push("wasm"), false) },
      wasmAvailable() ? ["wasm", "ts"] : ["ts"],
    ],
    // no ts kernel: the reference serves float32 too
    [f32, "ts", { ref: all.ref }, ["ref"]],
    [f32, "wasm", { ref: all.ref, wasm: all.wasm }, wasmAvailable() ? ["wasm"] : ["ref"]],
  ];
  for (const [out, tier, k, want] of calls) {
    log.length = 0;
    runKernel(out, tier, k as Parameters<typeof runKernel>[2]);
    assert.deepEqual(log, want, `${out.constructor.name} on ${tier}`);
  }
});
