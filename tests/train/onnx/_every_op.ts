// A small model that uses every op the ONNX exporter writes, so one file
// checks them all in ONNX Runtime and on the way back in.
import { Graph, type Node } from "../../../graph/graph.ts";
import {
  add,
  avgPool2d,
  batchNorm,
  concat,
  conv2d,
  div,
  dropout,
  exp,
  fill,
  flatten,
  gelu,
  layerNorm,
  leakyRelu,
  linear,
  log,
  logSoftmax,
  matmul,
  maxPool2d,
  mean,
  mul,
  padAxis,
  pow,
  relu,
  scale,
  sigmoid,
  slice,
  softmax,
  sub,
  sum,
  tanh,
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
  const running = {
    mean: u("bn.running_mean", [4]),
    var: g.param("bn.running_var", [4], { kind: "constant", value: 1.5 }),
  };
  const bn = batchNorm(c, u("bn.weight", [4]), u("bn.bias", [4]), { running, name: "bn" });
  const r = relu(bn, { name: "relu" });
  const p = maxPool2d(r, { size: 2, stride: 1, padding: 1, name: "maxpool" }); // [N, 4, 5, 5]
  const a = avgPool2d(p, { size: 3, stride: 2, padding: 1, name: "avgpool" }); // [N, 4, 3, 3]
  const lr = leakyRelu(a, { slope: 0.1, name: "leaky" });
  const f = flatten(dropout(lr, { p: 0.5, name: "drop" }), { name: "flat" }); // [N, 36]
  const l = linear(f, u("fc.weight", [6, 36]), u("fc.bias", [6]), { name: "fc" }); // [N, 6]
  const ln = layerNorm(l, u("ln.weight", [6]), u("ln.bias", [6]), { name: "ln" });
  const t = tanh(ln, { name: "tanh" });
  const m = matmul(t, u("mix.weight", [6, 6]), { transB: true, name: "mix" });
  const ge = gelu(l, { name: "gelu" });
  const s = sub(add(m, ge, { name: "sum_ab" }), u("shift", [6]), { name: "diff" });
  const one = fill([6], 1, g, { name: "one" });
  const den = add(pow(l, 2, { name: "sq" }), one, { name: "den" });
  const sg = sigmoid(l, { name: "sigmoid" });
  const q = scale(div(mul(s, sg, { name: "prod" }), den, { name: "quot" }), 0.5, { name: "half" });
  const softplus = log(add(exp(l, { name: "exp" }), one, { name: "exp1" }), { name: "softplus" });
  const cat = concat([q, softplus], { axis: 1, name: "cat" }); // [N, 12]
  const cut = slice(cat, { axis: 1, start: 2, size: 8, name: "cut" }); // [N, 8]
  const padded = padAxis(cut, { axis: 1, before: 1, after: 1, name: "pad" }); // [N, 10]
  const sm = softmax(padded, { axis: 1, name: "softmax" });
  const ls = logSoftmax(padded, { axis: 1, name: "logsoftmax" });
  const total = sum(sm, { axes: [1], keepdims: true, name: "total" }); // [N, 1]
  const avg = mean(ls, { axes: [-1], keepdims: true, name: "avg" }); // [N, 1]
  const out = add(add(ls, avg, { name: "centred" }), total, { name: "out" });
  return { graph: g, input: "x", output: out };
}
