import assert from "node:assert/strict";
import { tensor } from "../../graph/tensor.ts";

Deno.test("tensor validates shape entries and values", () => {
  const six = [1, 2, 3, 4, 5, 6];
  assert.throws(
    () => tensor(six, [-1, -6]),
    /shape entries must be whole numbers ≥ 0, got \[-1,-6\]/,
  );
  assert.throws(() => tensor([1, 2, 3, 4, 5], [2.5, 2]), /shape entries .* got \[2.5,2\]/);
  assert.throws(
    () => tensor(["a", "b"] as never),
    /values must be numbers, got string "a" at index 0/,
  );
  assert.throws(() => tensor([[1, "a"]] as never), /values must be numbers, got string "a"/);
  assert.throws(() => tensor(null as never), /values must be numbers/);
  assert.throws(() => tensor(six, [4, 2]), /6 values cannot take the shape \[4,2\]/);
  assert.deepEqual(tensor(six, [3, 2]).shape, [3, 2]);
  assert.deepEqual(tensor([], [0, 3]).shape, [0, 3]);
});
