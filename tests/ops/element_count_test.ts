import "../../ops/mod.ts";
import assert from "node:assert/strict";
import { elementCount } from "../../ops/element_count.ts";
import { mul } from "../../ops/mul.ts";
import { vjp } from "../../graph/vjp.ts";
import { checkVjp, randTensor } from "../_grad_check.ts";

Deno.test("element_count vjp matches finite differences (a count does not move with x)", () => {
  for (const [seed, axes] of [[1, undefined], [2, [0]], [3, [1, 2]]] as const) {
    const x = randTensor([2, 3, 2], seed);
    checkVjp((v) => mul(v, elementCount(v, { axes: axes && [...axes] })), [x], {
      seed,
      full: true,
    });
  }
});

Deno.test("element_count counts the reduced elements", () => {
  const x = randTensor([2, 3, 4], 1);
  assert.deepEqual([...vjp((v) => elementCount(v), x).out.data], [24]);
  assert.deepEqual([...vjp((v) => elementCount(v, { axes: [0, 2] }), x).out.data], [8]);
});
