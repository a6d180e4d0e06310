/**
 * The static dataflow graph: plain, JSON-serialisable node records, and
 * `Node` handles that op functions are applied to.
 *
 * @module
 */
import { type Attrs, fmtShape, lookupOp, type OpDef, type Shape } from "./op.ts";

/** How a parameter is initialised. */
export type Init =
  | { kind: "uniform"; bound: number }
  | { kind: "normal"; std: number }
  | { kind: "constant"; value: number };

/** Options of {@linkcode Graph.param}. */
export interface ParamOptions {
  /**
   * Makes the parameter a buffer, not trained: after each training step it
   * takes the value of the node of this name (same shape), e.g. batch norm's
   * running mean from its update node.
   */
  update?: string;
}

/** One node of a graph, as stored and serialised. */
export interface NodeRecord {
  /** Op name (`input` and `param` are the sources). */
  op: string;
  /** Ids of the input nodes, all smaller than this node's id. */
  inputs: number[];
  /** JSON attributes. */
  attrs: Attrs;
  /** Unique, human-readable name (used in errors, checkpoints and DOT). */
  name: string;
  /** Shape with `-1` for the batch axis when it is bound at run time. */
  shape: number[];
}

/** The JSON form of a graph. */
export interface GraphJSON {
  /** Format tag. */
  format: "denograd.graph";
  /** Nodes in topological (creation) order. */
  nodes: NodeRecord[];
}

/**
 * A handle to one node of a graph; op functions take and return these.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, Node, relu } from "@denograd/denograd";
 * const g = new Graph();
 * const y = relu(g.input("x", [-1, 3]), { name: "y" });
 * assert.ok(y instanceof Node && y.graph === g);
 * assert.deepEqual([y.name, y.record.op, y.shape], ["y", "relu", [-1, 3]]); // -1: the batch axis
 * ```
 */
export class Node {
  /** The graph this node belongs to. */
  readonly graph: Graph;
  /** The node's index in its graph. */
  readonly id: number;
  /** A handle to node `id` of `graph`; `Graph` methods and op functions make these. */
  constructor(graph: Graph, id: number) {
    this.graph = graph;
    this.id = id;
  }
  /** The node's record. */
  get record(): NodeRecord {
    return this.graph.nodes[this.id]!;
  }
  /** Build-time shape (`-1` marks the batch axis). */
  get shape(): readonly number[] {
    return this.record.shape;
  }
  /** The node's unique name. */
  get name(): string {
    return this.record.name;
  }
  /** The node's op name. */
  get op(): string {
    return this.record.op;
  }
}

const sourceOps = new Set(["input", "param"]);

/**
 * A static graph under construction. Nodes are appended in topological order,
 * shape-checked as they are added.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, relu } from "@denograd/denograd";
 * const g = new Graph();
 * const x = g.input("x", [-1, 3]);
 * const y = relu(x);
 * assert.deepEqual(y.shape, [-1, 3]);
 * ```
 */
export class Graph {
  /** Node records, in topological order. */
  readonly nodes: NodeRecord[] = [];
  private names = new Map<string, number>();

  /** A data input; `-1` in the first axis is the batch size, bound when a plan is made. */
  input(name: string, shape: readonly number[]): Node {
    checkSourceShape("input", name, shape);
    return this.push({ op: "input", inputs: [], attrs: {}, name, shape: [...shape] });
  }

  /**
   * A parameter with its initialiser: trainable, or with `opts.update` a
   * buffer (batch norm's running mean) that training sets after each step to
   * the value of the node named `update` instead of following a gradient.
   */
  param(name: string, shape: readonly number[], init: Init, opts: ParamOptions = {}): Node {
    checkSourceShape("param", name, shape);
    if (shape.some((d) => d < 0)) {
      throw new Error(`param "${name}": shape ${fmtShape(shape)} cannot have a batch axis`);
    }
    const attrs = opts.update === undefined ? { init } : { init, update: opts.update };
    return this.push({ op: "param", inputs: [], attrs, name, shape: [...shape] });
  }

  /** Applies an op to nodes of this graph, checking shapes; used by every op function. */
  apply<A>(op: OpDef<A>, inputs: readonly Node[], attrs: A, name?: string): Node {
    const required = op.inputs.filter((n) => !n.endsWith("?")).length;
    const variadic = op.inputs.at(-1)?.endsWith("...") ?? false;
    const most = variadic ? Infinity : op.inputs.length;
    const nodeName = name ?? this.freshName(op.name);
    if (inputs.length < required || inputs.length > most) {
      throw new Error(
        `${op.name} "${nodeName}": expected ${required}..${most} inputs (${
          op.inputs.join(", ")
        }) but got ${inputs.length}`,
      );
    }
    for (const x of inputs) {
      if (x.graph !== this) {
        throw new Error(`${op.name} "${nodeName}": input "${x.name}" belongs to another graph`);
      }
    }
    let shape: Shape;
    try {
      shape = op.shape(inputs.map((x) => x.shape), attrs);
    } catch (e) {
      const shapes = inputs.map((x, i) =>
        `${(op.inputs[i] ?? op.inputs.at(-1)!).replace(/[?.]+$/, "")} ${fmtShape(x.shape)}`
      );
      throw new Error(`${op.name} "${nodeName}": ${(e as Error).message} (${shapes.join(", ")})`);
    }
    return this.push({
      op: op.name,
      inputs: inputs.map((x) => x.id),
      attrs: attrs as Attrs,
      name: nodeName,
      shape: [...shape],
    });
  }

  /** The node with this id or name. */
  node(idOrName: number | string): Node {
    const id = typeof idOrName === "number" ? idOrName : this.names.get(idOrName);
    if (id === undefined || id < 0 || id >= this.nodes.length) {
      throw new Error(`Graph has no node ${JSON.stringify(idOrName)}`);
    }
    return new Node(this, id);
  }

  /** Whether a node with this name exists. */
  has(name: string): boolean {
    return this.names.has(name);
  }

  /** All input nodes. */
  inputs(): Node[] {
    return this.nodesOf("input");
  }

  /** All parameter nodes. */
  params(): Node[] {
    return this.nodesOf("param");
  }

  /** Plain-data form; `Graph.fromJSON(JSON.parse(JSON.stringify(g.toJSON())))` rebuilds it. */
  toJSON(): GraphJSON {
    return { format: "denograd.graph", nodes: structuredClone(this.nodes) };
  }

  /** Rebuilds a graph from its JSON form through the op registry, re-checking every shape. */
  static fromJSON(json: GraphJSON): Graph {
    if (json?.format !== "denograd.graph" || !Array.isArray(json.nodes)) {
      throw new Error('Cannot read graph JSON: expected an object with format "denograd.graph"');
    }
    const g = new Graph();
    for (const [i, r] of json.nodes.entries()) {
      if (r.op === "input") g.input(r.name, r.shape);
      else if (r.op === "param") {
        g.param(r.name, r.shape, r.attrs.init as Init, {
          update: r.attrs.update as string | undefined,
        });
      } else {
        for (const j of r.inputs) {
          if (!(j >= 0 && j < i)) {
            throw new Error(`Cannot read graph JSON: node ${i} "${r.name}" has input ${j}`);
          }
        }
        g.apply(lookupOp(r.op), r.inputs.map((j) => new Node(g, j)), r.attrs as unknown, r.name);
      }
      const got = g.nodes[i]!.shape;
      if (got.join() !== r.shape.join()) {
        throw new Error(
          `Cannot read graph JSON: node "${r.name}" has shape ${
            fmtShape(r.shape)
          } but ${r.op} gives ${fmtShape(got)}`,
        );
      }
    }
    return g;
  }

  /** Handles to every node of op `op`, in id order. */
  private nodesOf(op: string): Node[] {
    const out: Node[] = [];
    this.nodes.forEach((r, i) => r.op === op && out.push(new Node(this, i)));
    return out;
  }

  /** `${base}_${i}` with the smallest `i` ≥ the node count that is not yet taken. */
  private freshName(base: string): string {
    let i = this.nodes.length;
    while (this.names.has(`${base}_${i}`)) i++;
    return `${base}_${i}`;
  }

  /** Appends a record under a name not yet taken and returns its handle. */
  private push(r: NodeRecord): Node {
    if (this.names.has(r.name)) {
      throw new Error(`${r.op} "${r.name}": a node of that name already exists in the graph`);
    }
    const id = this.nodes.length;
    this.nodes.push(r);
    this.names.set(r.name, id);
    return new Node(this, id);
  }
}

function checkSourceShape(op: string, name: string, shape: readonly number[]): void {
  const ok = shape.every((d, i) => Number.isInteger(d) && (d >= 0 || (d === -1 && i === 0)));
  if (!ok) {
    throw new Error(
      `${op} "${name}": shape ${
        JSON.stringify(shape)
      } must be whole sizes (-1 only for the batch axis)`,
    );
  }
}

/**
 * Whether an op name is a source (input or parameter) with no forward rule.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isSource } from "./graph.ts";
 * assert.deepEqual(["input", "param", "relu"].map(isSource), [true, true, false]);
 * ```
 */
export function isSource(op: string): boolean {
  return sourceOps.has(op);
}
