// The WebAssembly SIMD chain kernel against the reference interpreter with
// the float32 tier's formulas: equal bit for bit (NaN to any NaN), on random
// programs of the steps it serves, over inputs in a wasm arena, with zeros,
// NaN and infinities; and the calls it must decline.
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { chainRef, type ChainStep } from "../../../ops/kernels/elementwise_chain_ref.ts";
import { chainWasm } from "../../../ops/kernels/elementwise_chain_wasm.ts";
import { wasmArenaBuffer } from "../../../ops/kernels/elementwise_wasm.ts";
import { chainCaseArb, sameValue } from "../_chain_programs.ts";

const NOT_WASM = [
  "exp",
  "log",
  "tanh",
  "sigmoid",
  "gelu",
  "sigmoid_backward",
  "tanh_backward",
  "gelu_backward",
];
const buf = wasmArenaBuffer(1 << 20);

// the arrays laid out one after another in the arena, 16-byte aligned
function inArena(arrays: ArrayLike<number>[], outLength: number): [Float32Array[], Float32Array] {
  let at = 0;
  const place = (len: number) => {
    const a = new Float32Array(buf!, at, len);
    at += Math.ceil((len * 4) / 16) * 16;
    return a;
  };
  const ins = arrays.map((v) => {
    const a = place(v.length);
    a.set(v);
    return a;
  });
  const out = place(outLength).fill(NaN);
  return [ins, out];
}

Deno.test({
  name: "chainWasm equals the reference bit for bit on random programs, zeros, NaN and infinities",
  ignore: buf === null,
  fn() {
    fc.assert(
      fc.property(
        chainCaseArb({
          exclude: NOT_WASM,
          kinds: ["full", "scalar", "row", "col"],
          width4: true,
          powers: [1, 2],
        }),
        fc.boolean(),
        fc.nat(1000),
        (c, training, step) => {
          const n = c.outShape.reduce((a, b) => a * b, 1);
          const [ins, out] = inArena(c.values, n);
          const run = { training, step, sampleOffset: step % 7 };
          const want = new Float32Array(n);
          chainRef(c.steps, ins, c.inShapes, want, c.outShape, run, true);
          // a [N, C, 1] input against [N, C, W] varies within a sample: that is not served
          const mixed = c.inShapes.some((s) => s.length === 3 && s[2] === 1 && s[1]! > 1);
          const served = chainWasm({ steps: c.steps }, ins, c.inShapes, out, c.outShape, run);
          assert.equal(served, !mixed, "served");
          if (!served) return;
          for (let i = 0; i < n; i++) {
            assert.ok(sameValue(out[i]!, want[i]!), `element ${i}: ${out[i]}, want ${want[i]}`);
          }
        },
      ),
      { numRuns: 300 },
    );
  },
});

Deno.test({
  name: "chainWasm declines steps, broadcasts, sizes and arrays it does not serve",
  ignore: buf === null,
  fn() {
    const run = { training: true, step: 0, sampleOffset: 0 };
    const [[x, row], out] = inArena([new Float32Array(8), new Float32Array(4)], 8);
    const serve = (steps: ChainStep[], ins: Float32Array[], shapes: number[][], shape: number[]) =>
      chainWasm(
        { steps },
        ins,
        shapes,
        out!.subarray(0, shape.reduce((a, b) => a * b, 1)),
        shape,
        run,
      );
    assert.ok(serve([{ op: "relu", args: [0] }], [x!], [[2, 4]], [2, 4]));
    assert.ok(!serve([{ op: "exp", args: [0] }], [x!], [[2, 4]], [2, 4]));
    assert.ok(!serve([{ op: "pow", args: [0], attrs: { exponent: 3 } }], [x!], [[2, 4]], [2, 4]));
    // a statistic per sample, one per row of the samples, and one varying within a sample
    const add = [{ op: "add", args: [0, 1] }];
    assert.ok(serve(add, [x!, row!.subarray(0, 2)], [[2, 4], [2, 1]], [2, 4]));
    assert.ok(serve(add, [x!, row!], [[2, 4], [4]], [2, 4]));
    assert.ok(!serve(add, [x!, row!], [[2, 2, 2], [2, 2, 1]], [2, 2, 2]));
    // six elements: not a multiple of four; with dropout, rows of two
    assert.ok(!serve([{ op: "relu", args: [0] }], [x!.subarray(0, 6)], [[6]], [6]));
    const drop = { op: "dropout", args: [0], attrs: { p: 0.5, seed: 1 } };
    assert.ok(!serve([drop], [x!], [[4, 2]], [4, 2]));
    assert.ok(serve([drop], [x!], [[2, 4]], [2, 4]));
    // an input outside the arena
    assert.ok(!serve([{ op: "relu", args: [0] }], [new Float32Array(8)], [[2, 4]], [2, 4]));
  },
});
