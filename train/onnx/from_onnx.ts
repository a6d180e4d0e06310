/**
 * Import: an ONNX model (opset 13 or later) rebuilt as a denograd graph. Its
 * float initializers become parameters under their own names; integer
 * tensors and Constant nodes become attributes (shapes, axes, exponents).
 *
 * @module
 */
import { Graph, type Node } from "../../graph/graph.ts";
import { fmtShape } from "../../graph/op.ts";
import type { Params } from "../../graph/params.ts";
import { Model } from "../model.ts";
import {
  add,
  avgPool2d,
  batchNormParts,
  concat,
  conv2d,
  div,
  exp,
  fill,
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
  reshape,
  scale,
  sigmoid,
  slice,
  softmax,
  sub,
  sum,
  tanh,
} from "../../ops/mod.ts";
import {
  type AttributeMsg,
  DataType,
  decodeModel,
  type NodeMsg,
  type TensorMsg,
} from "./schema.ts";

/**
 * The oldest and newest default-domain opsets the importer reads.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { EXPORT_OPSET, IMPORT_OPSETS } from "@denograd/denograd";
 * // what the exporter writes reads back
 * assert.ok(IMPORT_OPSETS.min <= EXPORT_OPSET && EXPORT_OPSET <= IMPORT_OPSETS.max);
 * ```
 */
export const IMPORT_OPSETS = { min: 13, max: 23 } as const;

/** A graph read from ONNX, with its single input and output and the parameter values. */
export interface OnnxGraph {
  /** The rebuilt graph. */
  graph: Graph;
  /** Name of the data input (the ONNX graph input). */
  input: string;
  /** Shape of the input, `-1` for the batch axis. */
  inputShape: number[];
  /** Name of the output node. */
  output: string;
  /** Parameter values by name (the float initializers). */
  params: Params;
  /** The file's default-domain opset. */
  opset: number;
}

/** Options of {@linkcode onnxToGraph}. */
export interface OnnxToGraphOptions {
  /** Name of the graph's input node (default: the ONNX input's name). */
  inputName?: string;
}

/** A value known when the file is read: a shape, axes, a scalar. */
interface Const {
  dims: number[];
  data: number[];
}

/** One ONNX value: a graph node, an initializer not yet used, or a constant. */
type Value =
  | { kind: "node"; node: Node }
  | { kind: "init"; name: string; dims: number[]; data: Float32Array | number[]; float: boolean }
  | { kind: "const"; c: Const };

/** What an op's importer sees. */
interface Importer {
  g: Graph;
  n: NodeMsg;
  opset: number;
  /** The node's input `i` as a graph node (initializers become parameters). */
  x(i: number): Node;
  /** Whether input `i` is present. */
  has(i: number): boolean;
  /** Input `i` as a value known when reading. */
  k(i: number): Const;
  /** Input `i` as a known value when it is one, else null. */
  maybeK(i: number): Const | null;
  /**
   * Input `i` as a buffer: a parameter that training replaces with the node
   * named `update` (null when the value was already a node, e.g. shared).
   */
  buffer(i: number): { node: Node; update: string | null };
  /** An integer attribute. */
  int(name: string, fallback: number): number;
  /** An integer list attribute. */
  ints(name: string): number[] | undefined;
  /** A float attribute. */
  float(name: string, fallback: number): number;
  /** A string attribute. */
  str(name: string, fallback: string): string;
  /** Name for the denograd node this ONNX node makes. */
  name: string;
  /** Throws an error naming the node. */
  fail(msg: string): never;
}

type ImportFn = (m: Importer) => Node | Const;

function same(values: number[], what: string, m: Importer): number {
  if (values.some((v) => v !== values[0])) m.fail(`${what} [${values}] must all be equal`);
  return values[0]!;
}

function pool2d(m: Importer): { size: number; stride: number; padding: number } {
  if (m.str("auto_pad", "NOTSET") !== "NOTSET") m.fail("auto_pad is not supported");
  if (m.int("ceil_mode", 0) !== 0) m.fail("ceil_mode 1 is not supported");
  if ((m.ints("dilations") ?? [1]).some((d) => d !== 1)) m.fail("dilations other than 1");
  const k = m.ints("kernel_shape");
  if (!k || k.length !== 2) m.fail(`kernel_shape ${JSON.stringify(k)} must have 2 sizes`);
  const size = same(k, "kernel_shape", m);
  const stride = same(m.ints("strides") ?? [1, 1], "strides", m);
  const padding = same(m.ints("pads") ?? [0, 0, 0, 0], "pads", m);
  return { size, stride, padding };
}

function constOperand(m: Importer, c: Const): Node {
  if (c.data.length === 0 || c.data.some((v) => v !== c.data[0])) {
    m.fail(`a constant tensor ${fmtShape(c.dims)} with differing values as an operand`);
  }
  return fill(c.dims, c.data[0]!, m.g, { name: `${m.name}_const` });
}

function binary(kind: "add" | "sub" | "mul" | "div"): ImportFn {
  const fns = { add, sub, mul, div };
  return (m) => {
    const [ka, kb] = [m.maybeK(0), m.maybeK(1)];
    // x·c and x/c with a scalar constant c are a scale
    if (!ka && kb && kb.data.length === 1 && (kind === "mul" || kind === "div")) {
      const c = kb.data[0]!;
      return scale(m.x(0), kind === "mul" ? c : 1 / c, { name: m.name });
    }
    if (ka && !kb && ka.data.length === 1 && kind === "mul") {
      return scale(m.x(1), ka.data[0]!, { name: m.name });
    }
    const a = ka ? constOperand(m, ka) : m.x(0);
    const b = kb ? constOperand(m, kb) : m.x(1);
    return fns[kind](a, b, { name: m.name });
  };
}

function unary(fn: (x: Node, o: { name: string }) => Node): ImportFn {
  return (m) => fn(m.x(0), { name: m.name });
}

function axesOf(m: Importer, inputIndex: number): number[] | undefined {
  if (m.has(inputIndex)) return m.k(inputIndex).data;
  return m.ints("axes");
}

function reduce(fn: typeof sum, attrAxesBefore: number): ImportFn {
  return (m) => {
    const axes = m.opset < attrAxesBefore ? m.ints("axes") : axesOf(m, 1);
    const keepdims = m.int("keepdims", 1) === 1;
    if ((!axes || axes.length === 0) && m.int("noop_with_empty_axes", 0) === 1) return m.x(0);
    return fn(m.x(0), { axes: axes && axes.length ? axes : undefined, keepdims, name: m.name });
  };
}

/** How each ONNX op type becomes denograd ops. */
const IMPORTERS: Record<string, ImportFn> = {
  Conv(m) {
    if (m.int("group", 1) !== 1) m.fail(`group ${m.int("group", 1)} is not supported`);
    if (m.str("auto_pad", "NOTSET") !== "NOTSET") m.fail("auto_pad is not supported");
    if ((m.ints("dilations") ?? [1]).some((d) => d !== 1)) m.fail("dilations other than 1");
    const stride = same(m.ints("strides") ?? [1, 1], "strides", m);
    const padding = same(m.ints("pads") ?? [0, 0, 0, 0], "pads", m);
    return conv2d(m.x(0), m.x(1), m.has(2) ? m.x(2) : null, { stride, padding, name: m.name });
  },
  Gemm(m) {
    const alpha = m.float("alpha", 1), beta = m.float("beta", 1);
    if (alpha !== 1 || beta !== 1) m.fail(`alpha ${alpha} and beta ${beta} must be 1`);
    const transA = m.int("transA", 0) === 1, transB = m.int("transB", 0) === 1;
    const a = m.x(0), b = m.x(1);
    const c = m.has(2) ? m.x(2) : null;
    if (!transA && transB && (!c || c.shape.length === 1)) return linear(a, b, c, { name: m.name });
    if (!c) return matmul(a, b, { transA, transB, name: m.name });
    return add(matmul(a, b, { transA, transB, name: `${m.name}_matmul` }), c, { name: m.name });
  },
  MatMul(m) {
    const a = m.x(0), b = m.x(1);
    if (a.shape.length !== 2 || b.shape.length !== 2) {
      m.fail(`only 2-D operands are supported (${fmtShape(a.shape)}, ${fmtShape(b.shape)})`);
    }
    return matmul(a, b, { name: m.name });
  },
  Relu: unary(relu),
  Exp: unary(exp),
  Log: unary(log),
  Sigmoid: unary(sigmoid),
  Tanh: unary(tanh),
  LeakyRelu: (m) => leakyRelu(m.x(0), { slope: m.float("alpha", 0.01), name: m.name }),
  Gelu(m) {
    const approx = m.str("approximate", "none");
    if (approx !== "none") m.fail(`approximate "${approx}" is not supported`);
    return gelu(m.x(0), { name: m.name });
  },
  MaxPool(m) {
    if (m.n.output && m.n.output.length > 1 && m.n.output[1]) m.fail("the Indices output");
    if (m.int("storage_order", 0) !== 0) m.fail("storage_order 1 is not supported");
    return maxPool2d(m.x(0), { ...pool2d(m), name: m.name });
  },
  AveragePool(m) {
    const p = pool2d(m);
    if (p.padding > 0 && m.int("count_include_pad", 0) !== 1) {
      m.fail("count_include_pad 0 with padding (PyTorch's avg_pool2d counts the padding)");
    }
    return avgPool2d(m.x(0), { ...p, name: m.name });
  },
  Flatten(m) {
    const x = m.x(0);
    const axis = m.int("axis", 1);
    if (axis !== 1) m.fail(`axis ${axis} is not supported (only 1, keeping the batch axis)`);
    const tail = x.shape.slice(1).reduce((a, b) => a * b, 1);
    return reshape(x, [x.shape[0]!, tail].map((d) => (d < 0 ? -1 : d)), { name: m.name });
  },
  Reshape(m) {
    const x = m.x(0);
    if (m.int("allowzero", 0) !== 0) m.fail("allowzero 1 is not supported");
    const given = m.k(1).data;
    // a 0 copies the input's axis; the batch size (a 0 on axis 0, or NaN from Shape) stays -1
    const target = given.map((d, i) => (Number.isNaN(d) ? -1 : d === 0 ? x.shape[i]! : d));
    const free = target.flatMap((d, i) => (d === -1 && given[i] === -1 ? [i] : []));
    if (target.filter((d) => d === -1).length === 2 && free.length === 1) {
      // the other -1 is what the rest of a sample leaves
      const known = x.shape.reduce((a, d) => (d > 0 ? a * d : a), 1);
      const rest = target.reduce((a, d) => (d > 0 ? a * d : a), 1);
      target[free[0]!] = known / rest;
    }
    return reshape(x, target, { name: m.name });
  },
  // shape arithmetic on values known when reading, PyTorch's `x.view(x.size(0), -1)`:
  // the batch size is NaN until a Reshape makes it -1
  Shape(m) {
    const shape = m.x(0).shape.map((d) => (d < 0 ? NaN : d));
    const r = shape.length;
    const at = (v: number) => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
    const data = shape.slice(at(m.int("start", 0)), at(m.int("end", r)));
    return { dims: [data.length], data };
  },
  Gather(m) {
    const data = m.k(0), idx = m.k(1);
    if (data.dims.length !== 1 || m.int("axis", 0) !== 0) {
      m.fail("only gathering from a 1-D constant on axis 0 is supported");
    }
    const n = data.data.length;
    return { dims: idx.dims, data: idx.data.map((i) => data.data[i < 0 ? i + n : i]!) };
  },
  Unsqueeze(m) {
    const c = m.maybeK(0);
    if (!c) return m.fail("only constants can be unsqueezed");
    const axes = axesOf(m, 1) ?? [];
    const dims = [...c.dims];
    const r = dims.length + axes.length;
    for (const a of axes.map((a) => (a < 0 ? a + r : a)).sort((a, b) => a - b)) {
      dims.splice(a, 0, 1);
    }
    return { dims, data: c.data };
  },
  Cast(m) {
    const c = m.maybeK(0);
    if (!c) return m.fail("only constants can be cast");
    return c;
  },
  Softmax: (m) => softmax(m.x(0), { axis: m.int("axis", -1), name: m.name }),
  LogSoftmax: (m) => logSoftmax(m.x(0), { axis: m.int("axis", -1), name: m.name }),
  Add: binary("add"),
  Sub: binary("sub"),
  Mul: binary("mul"),
  Div: binary("div"),
  Pow(m) {
    const p = m.k(1);
    if (p.data.length !== 1) m.fail(`exponent must be one number, got ${fmtShape(p.dims)}`);
    return pow(m.x(0), p.data[0]!, { name: m.name });
  },
  Identity: (m) => m.maybeK(0) ?? m.x(0),
  Dropout: (m) => m.x(0), // evaluation: the identity (training_mode defaults to false)
  Concat(m) {
    const ins = m.n.input ?? [];
    const ks = ins.map((_, i) => m.maybeK(i));
    if (ks.every((k) => k && k.dims.length === 1)) {
      const data = ks.flatMap((k) => k!.data);
      return { dims: [data.length], data };
    }
    const xs = ins.map((_, i) => m.x(i));
    return concat(xs, { axis: m.int("axis", 0), name: m.name });
  },
  Slice(m) {
    let x = m.x(0);
    const starts = m.k(1).data, ends = m.k(2).data;
    const axes = m.has(3) ? m.k(3).data : starts.map((_, i) => i);
    const steps = m.has(4) ? m.k(4).data : starts.map(() => 1);
    if (steps.some((s) => s !== 1)) m.fail(`steps [${steps}] other than 1`);
    axes.forEach((ax, i) => {
      const a = ax < 0 ? ax + x.shape.length : ax;
      const dim = x.shape[a]!;
      if (dim < 0) m.fail("slicing the batch axis is not supported");
      const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + dim : v, 0), dim);
      const s = clamp(starts[i]!), e = clamp(ends[i]!);
      const last = i === axes.length - 1;
      x = slice(x, {
        axis: a,
        start: s,
        size: Math.max(e - s, 0),
        name: last ? m.name : undefined,
      });
    });
    return x;
  },
  Pad(m) {
    const mode = m.str("mode", "constant");
    if (mode !== "constant") m.fail(`mode "${mode}" is not supported`);
    if (m.has(2) && m.k(2).data.some((v) => v !== 0)) m.fail("a pad value other than 0");
    let x = m.x(0);
    const pads = m.k(1).data;
    const r = x.shape.length;
    const axes = m.has(3) ? m.k(3).data.map((a) => (a < 0 ? a + r : a)) : [...Array(r).keys()];
    if (pads.some((p) => p < 0)) m.fail(`negative pads [${pads}]`);
    axes.forEach((a, i) => {
      const before = pads[i]!, after = pads[i + axes.length]!;
      if (before || after) x = padAxis(x, { axis: a, before, after });
    });
    return x;
  },
  ReduceSum: reduce(sum, 13),
  ReduceMean: reduce(mean, 18),
  BatchNormalization(m) {
    if (m.int("training_mode", 0) !== 0) m.fail("training_mode 1 is not supported");
    if (m.n.output && m.n.output.length > 1) m.fail("outputs beyond Y (training mode)");
    const x = m.x(0);
    const c = x.shape[1]!;
    // as nn.batchNorm2d keeps them: the running statistics are buffers that
    // training replaces by (1 - momentum)·running + momentum·batch statistic;
    // ONNX's momentum weighs the old value, PyTorch's the new one
    const momentum = 1 - m.float("momentum", 0.9);
    const mean = m.buffer(3), variance = m.buffer(4);
    const eps = m.float("epsilon", 1e-5);
    const running = { mean: mean.node, var: variance.node };
    const parts = batchNormParts(x, m.x(1), m.x(2), { eps, running, name: m.name });
    const blend = (old: Node, batch: Node, name: string | null) => {
      if (name) add(scale(old, 1 - momentum), scale(reshape(batch, [c]), momentum), { name });
    };
    blend(mean.node, parts.mean, mean.update);
    const unbiased = mul(parts.var, div(parts.count, sub(parts.count, 1)));
    blend(variance.node, unbiased, variance.update);
    return parts.y;
  },
  LayerNormalization(m) {
    const x = m.x(0);
    const r = x.shape.length;
    const axis = m.int("axis", -1);
    const first = axis < 0 ? axis + r : axis;
    const axes = [...Array(r - first).keys()].map((i) => first + i);
    if (m.n.output && m.n.output.length > 1) m.fail("outputs beyond Y (Mean, InvStdDev)");
    const eps = m.float("epsilon", 1e-5);
    return layerNorm(x, m.x(1), m.has(2) ? m.x(2) : null, { axes, eps, name: m.name });
  },
  Constant(m) {
    const a = m.n.attribute?.[0];
    if (!a) return m.fail("no value attribute");
    if (a.t) return tensorConst(a.t, `Constant "${m.n.name}"`);
    if (a.name === "value_float") return { dims: [], data: [a.f ?? 0] };
    if (a.name === "value_floats") return { dims: [a.floats?.length ?? 0], data: a.floats ?? [] };
    if (a.name === "value_int") return { dims: [], data: [a.i ?? 0] };
    if (a.name === "value_ints") return { dims: [a.ints?.length ?? 0], data: a.ints ?? [] };
    return m.fail(`attribute "${a.name}" is not supported`);
  },
};

/**
 * ONNX op types {@linkcode onnxToGraph} reads.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { IMPORTABLE_OPS, mnistNetModel, toOnnx } from "@denograd/denograd";
 * import { decodeModel } from "./schema.ts";
 * // every op the exporter writes for mnist-net reads back
 * const types = decodeModel(toOnnx(mnistNetModel())).graph!.node!.map((n) => n.opType!);
 * assert.deepEqual(types.filter((t) => !IMPORTABLE_OPS.includes(t)), []);
 * assert.ok(types.includes("Conv"));
 * ```
 */
export const IMPORTABLE_OPS: readonly string[] = Object.keys(IMPORTERS);

function fail(msg: string): never {
  throw new Error(`Cannot read ONNX: ${msg}`);
}

/** Elements of a tensor as numbers (float32 for FLOAT, exact for integers up to 2^53). */
function tensorData(t: TensorMsg, what: string): { data: Float32Array | number[]; float: boolean } {
  if (t.dataLocation === 1) {
    fail(`${what} keeps its data in an external file, which is not supported`);
  }
  const type = t.dataType ?? 0;
  const dims = t.dims ?? [];
  const count = dims.reduce((a, b) => a * b, 1);
  const raw = t.rawData && t.rawData.length ? t.rawData : null;
  let data: Float32Array | number[];
  let float = true;
  const width = type === DataType.FLOAT || type === DataType.INT32 ? 4 : 8;
  if (raw && raw.length !== count * width) {
    fail(
      `${what} has ${raw.length} bytes of data but dims ${fmtShape(dims)} need ${count * width}`,
    );
  }
  // an aligned copy (decoded bytes may be a view into the file, or a Node Buffer whose slice is a view)
  const copy = raw ? new Uint8Array(raw).buffer : null;
  switch (type) {
    case DataType.FLOAT:
      data = copy ? new Float32Array(copy) : Float32Array.from(t.floatData ?? []);
      break;
    case DataType.DOUBLE:
      data = Float32Array.from(copy ? new Float64Array(copy) : t.doubleData ?? []);
      break;
    case DataType.INT64:
      data = copy ? Array.from(new BigInt64Array(copy), Number) : (t.int64Data ?? []).map(Number);
      float = false;
      break;
    case DataType.INT32:
      data = copy ? Array.from(new Int32Array(copy)) : [...(t.int32Data ?? [])];
      float = false;
      break;
    default:
      return fail(`${what} has element type ${type}, not float, double, int32 or int64`);
  }
  if (data.length !== count) {
    fail(`${what} has ${data.length} values but dims ${fmtShape(dims)} need ${count}`);
  }
  return { data, float };
}

function tensorConst(t: TensorMsg, what: string): Const {
  return { dims: [...(t.dims ?? [])], data: Array.from(tensorData(t, what).data) };
}

function attrOf(n: NodeMsg, name: string): AttributeMsg | undefined {
  return n.attribute?.find((a) => a.name === name);
}

function nodeLabel(n: NodeMsg): string {
  return `${n.opType ?? "?"} "${n.name || n.output?.[0] || "?"}"`;
}

/**
 * Reads ONNX bytes into a denograd graph with one input (its first axis the
 * batch axis) and one output. Throws a one-line error naming what is wrong:
 * bytes that do not parse, an opset older than 13, a node whose op type is
 * not supported (with its name), an initializer whose data does not fit its
 * dims, or shapes that do not agree.
 *
 * @example
 * ```ts
 * import { Graph, graphToOnnx, initParams, linear, onnxToGraph } from "@denograd/denograd";
 * import assert from "node:assert/strict";
 * const g = new Graph();
 * const w = g.param("fc.weight", [2, 3], { kind: "uniform", bound: 1 });
 * const y = linear(g.input("x", [-1, 3]), w, null, { name: "y" });
 * const back = onnxToGraph(graphToOnnx(g, { output: y, params: initParams(g) }));
 * assert.deepEqual([back.input, back.inputShape, [...back.params.keys()]], ["x", [-1, 3], ["fc.weight"]]);
 * ```
 */
export function onnxToGraph(bytes: Uint8Array, opts: OnnxToGraphOptions = {}): OnnxGraph {
  let model;
  try {
    model = decodeModel(bytes);
  } catch (e) {
    fail(
      `the bytes are not a whole ONNX protobuf, truncated or not ONNX (${
        (e as Error).message.split("\n")[0]
      })`,
    );
  }
  const ops = model.opsetImport ?? [];
  const std = ops.find((o) => !o.domain || o.domain === "ai.onnx");
  if (!model.graph || !std) fail("the file has no graph or no default-domain opset_import");
  const opset = Number(std.version ?? 0);
  if (opset < IMPORT_OPSETS.min || opset > IMPORT_OPSETS.max) {
    fail(
      `opset ${opset} is not supported (denograd reads opsets ${IMPORT_OPSETS.min} to ${IMPORT_OPSETS.max})`,
    );
  }
  const gm = model.graph;
  const values = new Map<string, Value>();
  for (const t of gm.initializer ?? []) {
    const name = t.name ?? "";
    const { data, float } = tensorData(t, `initializer "${name}"`);
    values.set(name, { kind: "init", name, dims: [...(t.dims ?? [])], data, float });
  }
  const dataInputs = (gm.input ?? []).filter((v) => !values.has(v.name));
  if (dataInputs.length !== 1) {
    fail(
      `the graph has ${dataInputs.length} data inputs (${
        dataInputs.map((v) => v.name).join(", ")
      }); denograd reads models with exactly one`,
    );
  }
  const inInfo = dataInputs[0]!;
  const tt = inInfo.type?.tensorType;
  if (!tt?.shape?.dim || (tt.elemType !== undefined && tt.elemType !== DataType.FLOAT)) {
    fail(`input "${inInfo.name}" must be a float tensor with a known rank`);
  }
  const inputShape = tt.shape.dim.map((d, i) => {
    if (i === 0) return -1; // the first axis is the batch axis, whatever the file fixed
    const v = Number(d.dimValue ?? 0);
    if (!(v > 0)) fail(`input "${inInfo.name}" has no fixed size for axis ${i}`);
    return v;
  });
  const g = new Graph();
  const inName = opts.inputName ?? inInfo.name;
  if (values.has(inName)) fail(`input name "${inName}" is also an initializer's name`);
  values.set(inInfo.name, { kind: "node", node: g.input(inName, inputShape) });
  const params: Params = new Map();
  const taken = new Set<string>([inName, inInfo.name, ...values.keys()]);
  const fresh = (s: string): string => {
    let out = s, k = 1;
    while (taken.has(out) || g.has(out)) out = `${s}_${k++}`;
    taken.add(out);
    return out;
  };

  for (const [idx, n] of (gm.node ?? []).entries()) {
    const label = nodeLabel(n);
    if (n.domain && n.domain !== "ai.onnx") {
      fail(`node ${label} is in domain "${n.domain}", which is not supported`);
    }
    const imp = IMPORTERS[n.opType ?? ""];
    if (!imp) {
      fail(
        `node ${label} has op type "${n.opType}", which denograd does not import (supported: ${
          IMPORTABLE_OPS.join(", ")
        })`,
      );
    }
    const ins = n.input ?? [];
    const get = (i: number): Value => {
      const nm = ins[i];
      if (!nm) m.fail(`input ${i} is missing`);
      const v = values.get(nm);
      if (!v) m.fail(`input "${nm}" is not produced by an earlier node`);
      return v;
    };
    const m: Importer = {
      g,
      n,
      opset,
      name: fresh(n.name || n.output?.[0] || `${n.opType}_${idx}`),
      has: (i) => !!ins[i],
      x(i) {
        const v = get(i);
        if (v.kind === "node") return v.node;
        if (v.kind === "const") return constOperand(m, v.c);
        if (!v.float) m.fail(`integer initializer "${v.name}" used as a float tensor`);
        const p = g.param(v.name, v.dims, { kind: "constant", value: 0 });
        params.set(v.name, v.data as Float32Array);
        const node: Value = { kind: "node", node: p };
        values.set(v.name, node);
        return p;
      },
      buffer(i) {
        const v = get(i);
        if (v.kind !== "init" || !v.float) return { node: m.x(i), update: null };
        const update = fresh(`${v.name}.next`);
        const p = g.param(v.name, v.dims, { kind: "constant", value: 0 }, { update });
        params.set(v.name, v.data as Float32Array);
        values.set(v.name, { kind: "node", node: p });
        return { node: p, update };
      },
      k(i) {
        const v = get(i);
        if (v.kind === "const") return v.c;
        if (v.kind === "init") return { dims: v.dims, data: Array.from(v.data) };
        return m.fail(`input "${ins[i]}" must be a constant (it is computed by the graph)`);
      },
      maybeK(i) {
        const v = get(i);
        if (v.kind === "const") return v.c;
        // small integer initializers are constants; float ones stay parameters
        if (v.kind === "init" && !v.float) return { dims: v.dims, data: Array.from(v.data) };
        return null;
      },
      // proto3 leaves zero values off the wire: a present attribute without its field is 0
      int: (nm, d) => {
        const a = attrOf(n, nm);
        return a ? Number(a.i ?? 0) : d;
      },
      ints: (nm) => {
        const a = attrOf(n, nm);
        return a ? (a.ints ?? []).map(Number) : undefined;
      },
      float: (nm, d) => {
        const a = attrOf(n, nm);
        return a ? Number(a.f ?? 0) : d;
      },
      str: (nm, d) => {
        const s = attrOf(n, nm)?.s;
        return s && s.length ? new TextDecoder().decode(s) : d;
      },
      fail(msg): never {
        throw new Error(`Cannot read ONNX: node ${label}: ${msg}`);
      },
    };
    let out: Node | Const;
    try {
      out = imp(m);
    } catch (e) {
      const msg = (e as Error).message.split("\n")[0]!;
      if (msg.startsWith("Cannot read ONNX")) throw e;
      throw new Error(`Cannot read ONNX: node ${label}: ${msg}`);
    }
    const outName = n.output?.[0];
    if (!outName) fail(`node ${label} has no output`);
    values.set(outName, "dims" in out ? { kind: "const", c: out } : { kind: "node", node: out });
  }
  const outInfo = gm.output?.[0];
  if (!outInfo || (gm.output?.length ?? 0) !== 1) {
    fail(`the graph has ${gm.output?.length ?? 0} outputs; denograd reads models with exactly one`);
  }
  const last = values.get(outInfo.name);
  if (!last || last.kind !== "node") {
    fail(`output "${outInfo.name}" is not computed from the input`);
  }
  return { graph: g, input: inName, inputShape, output: last.node.name, params, opset };
}

/**
 * Builds a {@linkcode Model} from ONNX bytes (opset 13 or later, one input
 * whose first axis is the batch): the float initializers become parameters
 * under their names, so the model predicts, evaluates, saves, and trains
 * with `train({ model })`. `loadModel("file.onnx")` reads a file with it.
 * Errors are one line and name what is wrong (see {@linkcode onnxToGraph}).
 * Parameters named by the exporter (`onnx::Conv_23`: PyTorch's constant
 * folding merged a batch norm into its convolution) give the model a
 * `warnings` entry saying how to export with the module's names.
 *
 * @example
 * ```ts
 * import { defineModel, fromOnnx, nn, toOnnx } from "@denograd/denograd";
 * import assert from "node:assert/strict";
 * const model = defineModel({ input: [3] }, (x) => nn.linear(x, 2, { name: "fc" }));
 * const again = fromOnnx(toOnnx(model), { name: "copy" });
 * assert.deepEqual(again.paramShapes(), [["fc.weight", [2, 3]], ["fc.bias", [2]]]);
 * assert.deepEqual(again.warnings, []);
 * ```
 */
export function fromOnnx(bytes: Uint8Array, opts: { name?: string } = {}): Model {
  const g = onnxToGraph(bytes, { inputName: "x" });
  // tensorData gives float initializers as Float32Array
  const params = g.params as Map<string, Float32Array>;
  // PyTorch's exporter names a tensor it computed itself (constant folding of a batch norm into
  // the convolution before it, in eval mode) "onnx::Conv_23": the module's names are gone
  const made = g.graph.params().map((p) => p.name).filter((n) => n.startsWith("onnx::"));
  const warnings = made.length === 0 ? [] : [
    `parameter${made.length > 1 ? "s" : ""} ${
      made.map((n) => `"${n}"`).join(", ")
    } of the ONNX file carry names the exporter made up, not PyTorch's (constant folding merged a batch norm into the layer before it, or folded other parameters): export with torch.onnx.export(..., training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False) to keep the module's names (conv1.weight, bn1.weight, ...) and its batch norm`,
  ];
  return new Model(g.graph, g.output, params, { name: opts.name ?? "onnx", warnings });
}
