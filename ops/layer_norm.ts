import type { Node } from "../graph/graph.ts";
import { fmtShape } from "../graph/op.ts";
import { add } from "./add.ts";
import { fill } from "./fill.ts";
import { mean } from "./mean.ts";
import { mul } from "./mul.ts";
import { pow } from "./pow.ts";
import { sub } from "./sub.ts";

/** Options of {@linkcode layerNorm}. */
export interface LayerNormOptions {
  /**
   * The normalised trailing axes, e.g. `[-1]` or `[-2, -1]` (default: as
   * many trailing axes as `weight` has, else the last one).
   */
  axes?: number[];
  /** Added to the variance (default 1e-5, PyTorch's). */
  eps?: number;
  /** Name of the output node. */
  name?: string;
}

/**
 * Layer normalisation, like `torch.nn.functional.layer_norm(x,
 * normalized_shape, weight, bias, eps)`: each sample is normalised over the
 * trailing `axes` with its own mean and (biased) variance, then scaled by
 * `weight` and shifted by `bias`, both shaped like those axes (either may be
 * null). Built from elementwise and mean ops, so its VJP is theirs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { layerNorm, tensor, vjp } from "@denograd/denograd";
 * const { out } = vjp((x) => layerNorm(x, null, null, { eps: 0 }), tensor([[1, 3], [5, 5.5]]));
 * assert.deepEqual([...out.data], [-1, 1, -1, 1]);
 * ```
 */
export function layerNorm(
  x: Node,
  weight: Node | null = null,
  bias: Node | null = null,
  opts: LayerNormOptions = {},
): Node {
  const r = x.shape.length;
  const where = `layerNorm "${opts.name ?? x.name}"`;
  const k = opts.axes?.length ?? (weight ? weight.shape.length : 1);
  const axes = (opts.axes ?? Array.from({ length: k }, (_, i) => i - k))
    .map((a) => (a < 0 ? a + r : a)).sort((a, b) => a - b);
  if (k < 1 || axes.some((a, i) => a !== r - k + i)) {
    throw new Error(
      `${where}: axes [${opts.axes}] must be distinct trailing axes of x ${fmtShape(x.shape)}`,
    );
  }
  if (axes.some((a) => x.shape[a]! < 0)) {
    throw new Error(`${where}: the batch axis cannot be normalised (x ${fmtShape(x.shape)})`);
  }
  const normShape = axes.map((a) => x.shape[a]!);
  for (const [what, p] of [["weight", weight], ["bias", bias]] as const) {
    if (p && p.shape.join() !== normShape.join()) {
      throw new Error(
        `${where}: ${what} has shape ${fmtShape(p.shape)} but the normalised axes have ${
          fmtShape(normShape)
        }`,
      );
    }
  }
  const eps = opts.eps ?? 1e-5;
  if (!(eps >= 0)) throw new Error(`${where}: eps must be a number ≥ 0, got ${eps}`);
  const mu = mean(x, { axes, keepdims: true });
  const xc = sub(x, mu);
  const variance = mean(mul(xc, xc), { axes, keepdims: true });
  const inv = pow(add(variance, fill([], eps, x.graph)), -0.5);
  let y = mul(xc, inv, bias || weight ? {} : { name: opts.name });
  if (weight) y = mul(y, weight, bias ? {} : { name: opts.name });
  if (bias) y = add(y, bias, { name: opts.name });
  return y;
}
