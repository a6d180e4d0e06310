/**
 * Concrete tensors: a shape and a flat row-major buffer.
 *
 * @module
 */
import { type FloatArray, fmtShape, numel } from "./op.ts";

/** A concrete tensor: row-major `data` of `shape`. */
export interface Tensor<T extends FloatArray = Float32Array> {
  /** Sizes of the axes. */
  shape: number[];
  /** Elements in row-major order. */
  data: T;
}

/** Nested arrays of numbers, as written in code. */
export type NestedNumbers = number | readonly NestedNumbers[];

/**
 * Makes a float32 tensor from flat values and a shape, or from nested arrays
 * (the shape is then read off the nesting).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tensor } from "@denograd/denograd";
 * const a = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
 * const b = tensor([[1, 2, 3], [4, 5, 6]]);
 * assert.deepEqual(a.shape, [2, 3]);
 * assert.deepEqual(b, a);
 * ```
 */
export function tensor(
  values: ArrayLike<number> | NestedNumbers,
  shape?: readonly number[],
): Tensor {
  let flat: ArrayLike<number>;
  let s: number[];
  if (
    typeof values !== "number" &&
    (values === null || typeof values !== "object" || typeof values.length !== "number")
  ) {
    throw new Error(`tensor: values must be numbers or (nested) arrays of numbers, got ${values}`);
  }
  if (typeof values === "number") {
    flat = [values];
    s = [];
  } else if (Array.isArray(values) && values.some((v) => Array.isArray(v))) {
    s = nestedShape(values);
    flat = (values as unknown[]).flat(Infinity) as number[];
  } else {
    flat = values as ArrayLike<number>;
    s = [flat.length];
  }
  if (Array.isArray(flat)) {
    const i = flat.findIndex((v) => typeof v !== "number");
    if (i >= 0) {
      throw new Error(
        `tensor: values must be numbers, got ${typeof flat[i]} ${
          JSON.stringify(flat[i])
        } at index ${i}`,
      );
    }
  }
  if (shape) {
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new Error(
        `tensor: shape entries must be whole numbers ≥ 0, got ${JSON.stringify(shape)}`,
      );
    }
    if (numel(shape) !== flat.length) {
      throw new Error(`tensor: ${flat.length} values cannot take the shape ${fmtShape(shape)}`);
    }
    s = [...shape];
  }
  return { shape: s, data: Float32Array.from(flat) };
}

function nestedShape(v: NestedNumbers): number[] {
  if (typeof v === "number") return [];
  if (!Array.isArray(v)) {
    throw new Error(`tensor: values must be numbers, got ${typeof v} ${JSON.stringify(v)}`);
  }
  const inner = v.length ? nestedShape(v[0]!) : [];
  for (const x of v) {
    if (nestedShape(x).join() !== inner.join()) throw new Error("tensor: nested arrays are ragged");
  }
  return [v.length, ...inner];
}
