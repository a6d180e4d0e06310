/**
 * Prints the lecture CNN's forward and backward graph as Graphviz DOT:
 * `deno run train/dot_cli.ts [--channels N] > cnn.dot`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { toDot } from "../graph/dot.ts";
import { lectureCnn } from "./models.ts";
import { stdoutLines } from "./text_out.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { channels: { type: "string", default: "32" } },
});
const channels = Number(values.channels);
if (!Number.isInteger(channels) || channels < 1) {
  console.error(`dot: --channels must be a positive whole number, got "${values.channels}"`);
  Deno.exit(2);
}
const m = lectureCnn({ channels });
const title = `lecture CNN, ${channels} channels: forward and backward`;
const highlight = [m.loss, ...Object.values(m.grads)];
stdoutLines()(toDot(m.built, { title, forwardEnd: m.loss, highlight }).trimEnd());
