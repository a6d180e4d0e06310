// A small model that uses every op the ONNX exporter writes, so one file
// checks them all in ONNX Runtime and on the way back in.
import { Graph, type Node } from "../../../graph/graph.ts";
import {
  add,
  concat,
  conv2d,
  div,
  dropout,
  fill,
  flatten,
  linear,
  logSoftmax,
  matmul,
  maxPool2d,
  mean,
  mul,
  padAxis,
  pow,
  relu,
  scale,
  slice,
  softmax,
  sub,
  sum,
} from "../../../ops/mod.ts";

/** The graph, its input name and its output node: x [N, 2, 8, 8] -> [N, 10]. */
export function everyOpModel(): { graph: Graph; input: string; output: Node } {
  const g = new Graph();
  const u = (name: string, shape: number[]) =>
    g.param(name, shape, { kind: "uniform", bound: 1 / Math.sqrt(shape.at(-1)!) });
  const x = g.input("x", [-1, 2, 8, 8]);
  const c = conv2d(x, u("conv.weight", [4, 2, 3, 3]), u("conv.bias", [4]), {
    stride: 2,
    padding: 1,
    name: "conv",
  }); // [N, 4, 4, 4]
  const p = maxPool2d(relu(c, { name: "relu" }), { size: 2, name: "pool" }); // [N, 4, 2, 2]
  const f = flatten(dropout(p, { p: 0.5, name: "drop" }), { name: "flat" }); // [N, 16]
  const l = linear(f, u("fc.weight", [6, 16]), u("fc.bias", [6]), { name: "fc" }); // [N, 6]
  const m = matmul(l, u("mix.weight", [6, 6]), { transB: true, name: "mix" });
  const s = sub(add(m, l, { name: "sum_ab" }), u("shift", [6]), { name: "diff" });
  const den = add(pow(l, 2, { name: "sq" }), fill([6], 1, g, { name: "one" }), { name: "den" });
  const q = scale(div(mul(s, l, { name: "prod" }), den, { name: "quot" }), 0.5, { name: "half" });
  const cat = concat([q, l], { axis: 1, name: "cat" }); // [N, 12]
  const cut = slice(cat, { axis: 1, start: 2, size: 8, name: "cut" }); // [N, 8]
  const padded = padAxis(cut, { axis: 1, before: 1, after: 1, name: "pad" }); // [N, 10]
  const sm = softmax(padded, { axis: 1, name: "softmax" });
  const ls = logSoftmax(padded, { axis: 1, name: "logsoftmax" });
  const total = sum(sm, { axes: [1], keepdims: true, name: "total" }); // [N, 1]
  const avg = mean(ls, { axes: [-1], keepdims: true, name: "avg" }); // [N, 1]
  const out = add(add(ls, avg, { name: "centred" }), total, { name: "out" });
  return { graph: g, input: "x", output: out };
}
