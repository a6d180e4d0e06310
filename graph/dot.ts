/**
 * Graphviz DOT of a graph: inputs, parameters and ops as differently styled
 * nodes, and the backward nodes that `grad` appended in a cluster of their
 * own, so a model and its gradient computation can be looked at.
 *
 * Run as a script it prints the lecture CNN (forward and backward):
 * `deno run graph/dot.ts --channels 32 > cnn.dot && dot -Tsvg cnn.dot > cnn.svg`.
 *
 * @module
 */
import type { Graph } from "./graph.ts";

/** Options of {@linkcode toDot}. */
export interface DotOptions {
  /** Caption drawn above the graph. */
  title?: string;
  /** Nodes (by id or name) drawn with a thick red outline, e.g. the loss and its gradients. */
  highlight?: readonly (number | string)[];
  /**
   * Id or name of the last forward node, usually the loss: every node after
   * it is a backward node. Without it the backward part starts at the seed
   * `grad` creates (the first `fill` of 1) or at an input named `cotangent`
   * (the one `vjp` creates); give it when the forward part itself holds such
   * a node, or when `grad` was given a cotangent under another name.
   */
  forwardEnd?: number | string;
}

// Colours of the three node kinds; backward ops get the warm one so the two
// passes separate at a glance even without the cluster frame.
const STYLE = {
  input: 'shape=box, style="filled", fillcolor="#cfe2ff"',
  param: 'shape=box, style="rounded,filled", fillcolor="#fff3bf"',
  forward: 'shape=ellipse, style="filled", fillcolor="#e9ecef"',
  backward: 'shape=ellipse, style="filled", fillcolor="#ffd6d6"',
} as const;

/**
 * The graph as a Graphviz DOT digraph: one node statement per graph node
 * (label: name, op, shape with `N` for the batch axis) and one edge per input
 * of every node. Backward nodes sit in a cluster labelled "backward"; edges
 * from forward nodes into it (the activations the backward pass reads) are
 * dashed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, grad, mean, mul, toDot } from "@denograd/denograd";
 * const g = new Graph();
 * const x = g.input("x", [-1, 3]);
 * const loss = mean(mul(x, x), { name: "loss" });
 * grad(loss, [x]);
 * const dot = toDot(g, { title: "x²", highlight: ["loss"] });
 * assert.ok(dot.startsWith("digraph"));
 * ```
 */
export function toDot(graph: Graph, opts: DotOptions = {}): string {
  const nodes = graph.nodes;
  const firstBackward = backwardStart(graph, opts.forwardEnd);
  const highlighted = new Set<number>();
  for (const h of opts.highlight ?? []) highlighted.add(graph.node(h).id);

  const statement = (i: number): string => {
    const r = nodes[i]!;
    const kind = r.op === "input" || r.op === "param"
      ? r.op
      : i >= firstBackward
      ? "backward"
      : "forward";
    const shape = `[${r.shape.map((d) => (d === -1 ? "N" : String(d))).join(", ")}]`;
    const label = [r.name, r.op, shape].map(escape).join("\\n");
    const extra = highlighted.has(i) ? ', color="#d62828", penwidth=3' : "";
    return `n${i} [label="${label}", ${STYLE[kind]}${extra}];`;
  };

  const lines = [`digraph ${quote(opts.title ?? "denograd")} {`];
  lines.push("  rankdir=TB;");
  lines.push('  node [fontname="Helvetica", fontsize=10];');
  lines.push('  edge [color="#495057", arrowsize=0.6];');
  if (opts.title !== undefined) {
    lines.push(`  label=${quote(opts.title)};`, "  labelloc=t;", "  fontsize=14;");
  }
  // Sources and forward ops first, then the backward ones inside their
  // cluster: Graphviz puts a node in the cluster where it is first declared.
  const backward: number[] = [];
  for (let i = 0; i < nodes.length; i++) {
    const r = nodes[i]!;
    if (i >= firstBackward && r.op !== "input" && r.op !== "param") backward.push(i);
    else lines.push(`  ${statement(i)}`);
  }
  if (backward.length > 0) {
    lines.push("  subgraph cluster_backward {");
    lines.push('    label="backward";', '    style="rounded,dashed";', '    color="#c92a2a";');
    for (const i of backward) lines.push(`    ${statement(i)}`);
    lines.push("  }");
  }
  for (let i = 0; i < nodes.length; i++) {
    const intoBackward = i >= firstBackward && nodes[i]!.op !== "input" &&
      nodes[i]!.op !== "param";
    for (const j of nodes[i]!.inputs) {
      const saved = intoBackward && j < firstBackward && nodes[j]!.op !== "param";
      lines.push(`  n${j} -> n${i}${saved ? " [style=dashed]" : ""};`);
    }
  }
  lines.push("}");
  return lines.join("\n") + "\n";
}

/** Id of the first backward node, or the node count when there is none. */
function backwardStart(graph: Graph, forwardEnd: number | string | undefined): number {
  if (forwardEnd !== undefined) return graph.node(forwardEnd).id + 1;
  const i = graph.nodes.findIndex((r) =>
    (r.op === "fill" && r.inputs.length === 0 && r.attrs.value === 1) ||
    (r.op === "input" && r.name === "cotangent")
  );
  return i === -1 ? graph.nodes.length : i;
}

/** A DOT string literal: only `"` and `\` need escaping inside double quotes. */
function quote(s: string): string {
  return `"${escape(s)}"`;
}

function escape(s: string): string {
  // a lone backslash would start a DOT label escape (\n, \l, \N …)
  return s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\r?\n/g, "\\n");
}
