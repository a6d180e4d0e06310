// The compiled float32 chain kernel against the reference interpreter with
// the float32 tier's formulas: equal bit for bit (NaN to any NaN), on random
// programs over broadcast inputs with zeros, NaN and infinities.
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { chainF32 } from "../../../ops/kernels/elementwise_chain_fast.ts";
import { chainRef } from "../../../ops/kernels/elementwise_chain_ref.ts";
import { chainCaseArb, sameValue } from "../_chain_programs.ts";

function check(
  attrs: { steps: Parameters<typeof chainRef>[0] },
  ins: Float32Array[],
  inShapes: number[][],
  outShape: number[],
  run: { training: boolean; step: number; sampleOffset: number },
): boolean {
  const n = outShape.reduce((a, b) => a * b, 1);
  const want = new Float32Array(n).fill(7);
  chainRef(attrs.steps, ins, inShapes, want, outShape, run, true);
  const got = new Float32Array(n).fill(NaN);
  const served = chainF32(attrs, ins, inShapes, got, outShape, run);
  if (!served) return false;
  for (let i = 0; i < n; i++) {
    assert.ok(sameValue(got[i]!, want[i]!), `element ${i}: ${got[i]}, want ${want[i]}`);
  }
  return true;
}

Deno.test("chainF32 equals the reference bit for bit on random programs, zeros, NaN and infinities", () => {
  let served = 0, runs = 0;
  fc.assert(
    fc.property(chainCaseArb(), fc.boolean(), fc.nat(5), (c, training, step) => {
      const ins = c.values.map((v) => Float32Array.from(v));
      const run = { training, step, sampleOffset: step * 3 };
      runs++;
      if (check({ steps: c.steps }, ins, c.inShapes, c.outShape, run)) served++;
      else {
        // only a broadcast whose axes are not one run is left to the interpreter
        assert.ok(c.inShapes.some((s) => s.length > 0 && s[s.length - 2] === 1 && s.at(-1)! > 1));
      }
    }),
    { numRuns: 400 },
  );
  assert.ok(served > runs / 2, `the compiled kernel served ${served} of ${runs}`);
});

Deno.test("chainF32 reuses its compiled function and follows changes of shape and of the run", () => {
  const attrs = { steps: [{ op: "dropout", args: [0], attrs: { p: 0.5, seed: 1 } }] };
  const x = new Float32Array(12).fill(1);
  const run = { training: true, step: 0, sampleOffset: 0 };
  for (const shape of [[3, 4], [2, 6], [12]]) {
    for (
      const r of [run, { ...run, step: 1 }, { ...run, training: false }, {
        ...run,
        sampleOffset: 1,
      }]
    ) {
      assert.ok(check(attrs, [x], [shape], shape, r));
    }
  }
});
