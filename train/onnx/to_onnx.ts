/**
 * Export: a denograd graph's evaluation path, from its inputs to one output
 * node, as an ONNX model (opset 17, a dynamic batch axis named `N`, the
 * parameters as initializers under their own names).
 *
 * @module
 */
import type { Graph, Node, NodeRecord } from "../../graph/graph.ts";
import type { Params } from "../../graph/params.ts";
import type { Model } from "../model.ts";
import { findFusions, type Fusion } from "./_fuse.ts";
import { fmtShape } from "../../graph/op.ts";
import {
  type AttributeMsg,
  AttrType,
  DataType,
  encodeModel,
  type NodeMsg,
  type TensorMsg,
  type ValueInfoMsg,
} from "./schema.ts";

/**
 * The ONNX operator set the exporter writes: 17 (LayerNormalization needs
 * it), or 20 when the graph has a `gelu` (ONNX's Gelu op starts there).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { EXPORT_OPSET, mnistNetModel, toOnnx } from "@denograd/denograd";
 * import { decodeModel } from "./schema.ts";
 * const onnx = decodeModel(toOnnx(mnistNetModel()));
 * assert.deepEqual(onnx.opsetImport, [{ domain: "", version: EXPORT_OPSET }]);
 * ```
 */
export const EXPORT_OPSET = 17;
const GELU_OPSET = 20;

/** Options of {@linkcode graphToOnnx}. */
export interface GraphToOnnxOptions {
  /** The node whose value the ONNX graph outputs (a node or its name). */
  output: Node | string;
  /** Parameter values by name; every parameter the output depends on must be here. */
  params: Params;
  /** ONNX graph name (default `denograd`). */
  name?: string;
  /** Extra name/value pairs stored as the model's metadata. */
  metadata?: Record<string, string>;
}

/** What an op's exporter sees. */
interface Emitter {
  /** The ONNX value name holding node `id`'s value. */
  value(id: number): string;
  /** Appends an ONNX node. */
  node(opType: string, inputs: string[], outputs: string[], attrs?: AttributeMsg[]): void;
  /** A Constant node of int64 values; returns its value name. */
  ints(hint: string, values: readonly number[], dims?: number[]): string;
  /** A Constant node of float32 values; returns its value name. */
  floats(hint: string, values: readonly number[], dims?: number[]): string;
  /** Makes `id`'s value the same ONNX value as `from`'s (ops that vanish in evaluation). */
  alias(id: number, from: number): void;
  /** The graph's record of node `id`. */
  rec(id: number): NodeRecord;
  /** The opset being written. */
  opset: number;
}

type Exporter = (e: Emitter, r: NodeRecord, id: number) => void;

// attribute and tensor messages
function intAttr(name: string, i: number): AttributeMsg {
  return { name, type: AttrType.INT, i };
}

function intsAttr(name: string, ints: readonly number[]): AttributeMsg {
  return { name, type: AttrType.INTS, ints: [...ints] };
}

function floatAttr(name: string, f: number): AttributeMsg {
  return { name, type: AttrType.FLOAT, f };
}

const unary = (opType: string): Exporter => (e, r, id) =>
  e.node(opType, [e.value(r.inputs[0]!)], [e.value(id)]);

const binary = (opType: string): Exporter => (e, r, id) =>
  e.node(opType, r.inputs.map((j) => e.value(j)), [e.value(id)]);

function attrNum(r: NodeRecord, key: string, fallback?: number): number {
  const v = r.attrs[key] ?? fallback;
  if (typeof v !== "number") {
    throw new Error(`Cannot export ${r.op} "${r.name}": attribute ${key} is ${JSON.stringify(v)}`);
  }
  return v;
}

function rank(e: Emitter, id: number): number {
  return e.rec(id).shape.length;
}

function axisOf(e: Emitter, r: NodeRecord, key = "axis"): number {
  const a = attrNum(r, key);
  return a < 0 ? a + rank(e, r.inputs[0]!) : a;
}

function pool(opType: string): Exporter {
  return (e, r, id) => {
    const size = attrNum(r, "size");
    const stride = attrNum(r, "stride", size);
    const p = attrNum(r, "padding", 0);
    const attrs = [
      intsAttr("kernel_shape", [size, size]),
      intsAttr("strides", [stride, stride]),
      intsAttr("pads", [p, p, p, p]),
    ];
    // PyTorch's avg_pool2d divides by the window size including padding by default
    if (opType === "AveragePool" && p > 0) attrs.push(intAttr("count_include_pad", 1));
    e.node(opType, [e.value(r.inputs[0]!)], [e.value(id)], attrs);
  };
}

function reduce(opType: "ReduceSum" | "ReduceMean"): Exporter {
  return (e, r, id) => {
    const n = rank(e, r.inputs[0]!);
    const given = r.attrs.axes as number[] | undefined;
    const axes = (given ?? [...Array(n).keys()]).map((a) => (a < 0 ? a + n : a));
    const keep = intAttr("keepdims", r.attrs.keepdims ? 1 : 0);
    const x = e.value(r.inputs[0]!);
    // ReduceSum takes its axes as an input since opset 13, ReduceMean only since 18
    if (opType === "ReduceSum" || e.opset >= 18) {
      e.node(opType, [x, e.ints(`${r.name}_axes`, axes)], [e.value(id)], [keep]);
    } else e.node(opType, [x], [e.value(id)], [intsAttr("axes", axes), keep]);
  };
}

/**
 * How each denograd op is written in ONNX. Ops missing here (losses,
 * backward ops) cannot be exported; {@linkcode graphToOnnx} names them.
 */
const EXPORTERS: Record<string, Exporter> = {
  conv2d(e, r, id) {
    const w = e.rec(r.inputs[1]!).shape;
    const s = attrNum(r, "stride", 1);
    const p = attrNum(r, "padding", 0);
    e.node("Conv", r.inputs.map((j) => e.value(j)), [e.value(id)], [
      intsAttr("kernel_shape", [w[2]!, w[3]!]),
      intsAttr("strides", [s, s]),
      intsAttr("pads", [p, p, p, p]),
      intsAttr("dilations", [1, 1]),
      intAttr("group", 1),
    ]);
  },
  linear(e, r, id) {
    e.node("Gemm", r.inputs.map((j) => e.value(j)), [e.value(id)], [intAttr("transB", 1)]);
  },
  matmul(e, r, id) {
    const attrs = [];
    if (r.attrs.transA) attrs.push(intAttr("transA", 1));
    if (r.attrs.transB) attrs.push(intAttr("transB", 1));
    e.node("Gemm", r.inputs.map((j) => e.value(j)), [e.value(id)], attrs);
  },
  relu: unary("Relu"),
  exp: unary("Exp"),
  log: unary("Log"),
  sigmoid: unary("Sigmoid"),
  tanh: unary("Tanh"),
  leaky_relu(e, r, id) {
    const slope = attrNum(r, "slope", 0.01);
    e.node("LeakyRelu", [e.value(r.inputs[0]!)], [e.value(id)], [floatAttr("alpha", slope)]);
  },
  gelu(e, r, id) {
    const approximate = r.attrs.approximate === "tanh" ? "tanh" : "none";
    e.node("Gelu", [e.value(r.inputs[0]!)], [e.value(id)], [{
      name: "approximate",
      type: AttrType.STRING,
      s: new TextEncoder().encode(approximate),
    }]);
  },
  max_pool2d: pool("MaxPool"),
  avg_pool2d: pool("AveragePool"),
  dropout(e, r, id) {
    e.alias(id, r.inputs[0]!);
  },
  training_select(e, r, id) {
    e.alias(id, r.inputs[1]!);
  },
  softmax(e, r, id) {
    e.node("Softmax", [e.value(r.inputs[0]!)], [e.value(id)], [intAttr("axis", axisOf(e, r))]);
  },
  log_softmax(e, r, id) {
    e.node("LogSoftmax", [e.value(r.inputs[0]!)], [e.value(id)], [intAttr("axis", axisOf(e, r))]);
  },
  add: binary("Add"),
  sub: binary("Sub"),
  mul: binary("Mul"),
  div: binary("Div"),
  scale(e, r, id) {
    const k = e.floats(`${r.name}_factor`, [attrNum(r, "factor")], []);
    e.node("Mul", [e.value(r.inputs[0]!), k], [e.value(id)]);
  },
  pow(e, r, id) {
    const p = e.floats(`${r.name}_exponent`, [attrNum(r, "exponent")], []);
    e.node("Pow", [e.value(r.inputs[0]!), p], [e.value(id)]);
  },
  sum: reduce("ReduceSum"),
  mean: reduce("ReduceMean"),
  reshape(e, r, id) {
    const shape = e.ints(`${r.name}_shape`, r.attrs.shape as number[]);
    e.node("Reshape", [e.value(r.inputs[0]!), shape], [e.value(id)]);
  },
  concat(e, r, id) {
    e.node("Concat", r.inputs.map((j) => e.value(j)), [e.value(id)], [
      intAttr("axis", axisOf(e, r)),
    ]);
  },
  slice(e, r, id) {
    const a = axisOf(e, r);
    const start = attrNum(r, "start");
    const ins = [
      e.value(r.inputs[0]!),
      e.ints(`${r.name}_starts`, [start]),
      e.ints(`${r.name}_ends`, [start + attrNum(r, "size")]),
      e.ints(`${r.name}_axes`, [a]),
    ];
    e.node("Slice", ins, [e.value(id)]);
  },
  pad_axis(e, r, id) {
    const n = rank(e, r.inputs[0]!);
    const a = axisOf(e, r);
    const pads = new Array(2 * n).fill(0);
    pads[a] = attrNum(r, "before");
    pads[n + a] = attrNum(r, "after");
    e.node("Pad", [e.value(r.inputs[0]!), e.ints(`${r.name}_pads`, pads)], [e.value(id)]);
  },
  fill(e, r, id) {
    const shape = r.attrs.shape as number[];
    const n = shape.reduce((a, b) => a * b, 1);
    e.node("Constant", [], [e.value(id)], [{
      name: "value",
      type: AttrType.TENSOR,
      t: floatTensor("", new Float32Array(n).fill(attrNum(r, "value")), shape),
    }]);
  },
};

// inputs an op reads in evaluation mode, where not all of them
const EVAL_INPUTS: Record<string, number[]> = { training_select: [1] };

// one BatchNormalization or LayerNormalization node for a batch norm or layer norm
function emitFusion(e: Emitter, f: Fusion): void {
  const x = e.rec(f.x);
  const shape = f.opType === "BatchNormalization" ? [x.shape[1]!] : x.shape.slice(f.axis);
  const size = shape.reduce((a, b) => a * b, 1);
  const hint = e.rec(f.end).name;
  const ins = [
    e.value(f.x),
    f.scale === null ? e.floats(`${hint}_ones`, new Array(size).fill(1), shape) : e.value(f.scale),
  ];
  const eps = floatAttr("epsilon", f.eps);
  if (f.opType === "BatchNormalization") {
    const bias = f.bias === null
      ? e.floats(`${hint}_zeros`, new Array(size).fill(0), shape)
      : e.value(f.bias);
    ins.push(bias, e.value(f.mean!), e.value(f.var!));
    e.node("BatchNormalization", ins, [e.value(f.end)], [eps]);
  } else {
    if (f.bias !== null) ins.push(e.value(f.bias));
    e.node("LayerNormalization", ins, [e.value(f.end)], [intAttr("axis", f.axis), eps]);
  }
}

/**
 * Names of the denograd ops {@linkcode graphToOnnx} can write.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { EXPORTABLE_OPS, lectureCnnModel } from "@denograd/denograd";
 * // every op of the lecture CNN, so its model file exports
 * const ops = lectureCnnModel().graph.toJSON().nodes.map((n) => n.op);
 * assert.deepEqual(ops.filter((op) => op !== "input" && op !== "param" && !EXPORTABLE_OPS.includes(op)), []);
 * ```
 */
export const EXPORTABLE_OPS: readonly string[] = Object.keys(EXPORTERS);

// float32 elements as raw little-endian bytes
function floatTensor(
  name: string,
  data: ArrayLike<number>,
  dims: readonly number[],
): TensorMsg {
  const f = Float32Array.from(data);
  return {
    name,
    dims: [...dims],
    dataType: DataType.FLOAT,
    rawData: new Uint8Array(f.buffer, f.byteOffset, f.byteLength),
  };
}

function int64Tensor(name: string, values: readonly number[], dims: readonly number[]): TensorMsg {
  const b = BigInt64Array.from(values, (v) => BigInt(v));
  return { name, dims: [...dims], dataType: DataType.INT64, rawData: new Uint8Array(b.buffer) };
}

function valueInfo(name: string, shape: readonly number[]): ValueInfoMsg {
  return {
    name,
    type: {
      tensorType: {
        elemType: DataType.FLOAT,
        shape: { dim: shape.map((d) => (d < 0 ? { dimParam: "N" } : { dimValue: d })) },
      },
    },
  };
}

/**
 * Writes the part of `graph` that computes `opts.output` as an ONNX model:
 * evaluation semantics (dropout removed), opset {@linkcode EXPORT_OPSET}, the
 * batch axis `-1` as the symbolic dimension `N`, parameters as float32
 * initializers under their own names. An op with no ONNX form throws an
 * error naming the op and the node.
 *
 * @example
 * ```ts
 * import { graphToOnnx, Graph, initParams, linear, relu } from "@denograd/denograd";
 * import assert from "node:assert/strict";
 * const g = new Graph();
 * const w = g.param("fc.weight", [2, 3], { kind: "uniform", bound: 1 });
 * const y = relu(linear(g.input("x", [-1, 3]), w), { name: "y" });
 * const bytes = graphToOnnx(g, { output: y, params: initParams(g) });
 * assert.ok(bytes.length > 24);
 * ```
 */
export function graphToOnnx(graph: Graph, opts: GraphToOnnxOptions): Uint8Array {
  const out = typeof opts.output === "string" ? graph.node(opts.output) : opts.output;
  if (out.graph !== graph) throw new Error(`Cannot export: node "${out.name}" is not in the graph`);
  const n = graph.nodes.length;
  const needed = new Uint8Array(n);
  needed[out.id] = 1;
  for (let i = out.id; i >= 0; i--) {
    if (!needed[i]) continue;
    const r = graph.nodes[i]!;
    // evaluation reads only some inputs of a mode switch (batch norm's running statistics)
    for (const k of EVAL_INPUTS[r.op] ?? r.inputs.keys()) needed[r.inputs[k]!] = 1;
  }
  const names = new Set(graph.nodes.map((r) => r.name));
  const fresh = (hint: string): string => {
    let s = hint, k = 1;
    while (names.has(s)) s = `${hint}_${k++}`;
    names.add(s);
    return s;
  };
  const valueName = graph.nodes.map((r) => r.name);
  const opset = graph.nodes.some((r, i) => needed[i] && r.op === "gelu")
    ? GELU_OPSET
    : EXPORT_OPSET;
  const nodes: NodeMsg[] = [];
  const initializers: TensorMsg[] = [];
  const inputs: ValueInfoMsg[] = [];
  const constant = (hint: string, t: (name: string) => TensorMsg): string => {
    const name = fresh(hint);
    nodes.push({
      opType: "Constant",
      name,
      input: [],
      output: [name],
      attribute: [{ name: "value", type: AttrType.TENSOR, t: t("") }],
    });
    return name;
  };
  const e: Emitter = {
    value: (id) => valueName[id]!,
    node(opType, ins, outs, attrs = []) {
      nodes.push({ opType, name: fresh(outs[0]!), input: ins, output: outs, attribute: attrs });
    },
    ints: (hint, values, dims = [values.length]) =>
      constant(hint, (nm) => int64Tensor(nm, values, dims)),
    floats: (hint, values, dims = [values.length]) =>
      constant(hint, (nm) => floatTensor(nm, values, dims)),
    alias(id, from) {
      valueName[id] = valueName[from]!;
    },
    rec: (id) => graph.nodes[id]!,
    opset,
  };
  const fusions = findFusions(graph, needed);
  const fusedAt = new Map(fusions.map((f) => [f.end, f]));
  const covered = new Set(fusions.flatMap((f) => f.covered));
  for (let i = 0; i < n; i++) {
    if (!needed[i]) continue;
    if (covered.has(i)) {
      const f = fusedAt.get(i);
      if (f) emitFusion(e, f);
      continue;
    }
    const r = graph.nodes[i]!;
    if (r.op === "input") inputs.push(valueInfo(r.name, r.shape));
    else if (r.op === "param") {
      const data = opts.params.get(r.name);
      if (!data) throw new Error(`Cannot export parameter "${r.name}": no value was given for it`);
      const size = r.shape.reduce((a, b) => a * b, 1);
      if (data.length !== size) {
        throw new Error(
          `Cannot export parameter "${r.name}": it has ${data.length} values but shape ${
            fmtShape(r.shape)
          } needs ${size}`,
        );
      }
      initializers.push(floatTensor(r.name, data, r.shape));
    } else {
      const ex = EXPORTERS[r.op];
      if (!ex) {
        throw new Error(
          `Cannot export ${r.op} "${r.name}": op "${r.op}" has no ONNX form (exportable: ${
            EXPORTABLE_OPS.join(", ")
          })`,
        );
      }
      ex(e, r, i);
    }
  }
  const outName = valueName[out.id]!;
  return encodeModel({
    irVersion: 8,
    opsetImport: [{ domain: "", version: opset }],
    producerName: "denograd",
    producerVersion: "0.1.0",
    graph: {
      name: opts.name ?? "denograd",
      node: nodes,
      initializer: initializers,
      input: inputs,
      output: [valueInfo(outName, out.shape)],
    },
    ...(opts.metadata
      ? {
        metadataProps: Object.entries(opts.metadata).map(([key, value]) => ({ key, value })),
      }
      : {}),
  });
}

/**
 * A {@linkcode Model} as ONNX bytes: its evaluation graph from the input `x`
 * (batch axis `N`) to its output, dropout removed, batch norm with its
 * running statistics, parameters as initializers under their names. ONNX
 * Runtime (`npm:onnxruntime-node`) runs the bytes as they are.
 *
 * @example
 * ```ts
 * import { defineModel, fromOnnx, nn, toOnnx } from "@denograd/denograd";
 * import assert from "node:assert/strict";
 * const model = defineModel({ input: [4] }, (x) => nn.linear(nn.relu(nn.linear(x, 8)), 3));
 * const again = fromOnnx(toOnnx(model));
 * const x = new Float32Array([0.5, -1, 2, 0, 1, 1, 1, 1]);
 * assert.deepEqual(again.predict(x).data, model.predict(x).data);
 * ```
 */
export function toOnnx(model: Model): Uint8Array {
  return graphToOnnx(model.graph, {
    output: model.output,
    params: model.params,
    name: model.name,
  });
}
