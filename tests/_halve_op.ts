/**
 * A custom op for tests that cross process and worker boundaries: `halve(x)`
 * is `x / 2`. It imports the library through a relative path, so loaded from
 * a URL it registers itself in the registry of the `mod.ts` at that URL.
 *
 * @module
 */
import { mul, type Node, type OpDef, registerOp } from "../mod.ts";

/** `y = x / 2`; dy/dx = 1/2. */
export const halveOp: OpDef = registerOp({
  name: "test_halve",
  inputs: ["x"],
  shape: ([x]) => x!,
  forward([x], y) {
    for (let i = 0; i < y.length; i++) y[i] = x![i]! / 2;
  },
  vjp: ({ dy }) => [mul(dy, 0.5)],
});

/** Applies {@linkcode halveOp}. */
export function halve(x: Node): Node {
  return x.graph.apply(halveOp, [x], {});
}
