/**
 * `deno task profile FILE [--top N]`: the per-op time table of a trace that
 * `deno task train --profile FILE` or `bench:train --profile FILE` wrote:
 * milliseconds per step (summed over threads) and share of the threads'
 * busy time, biggest first; then, per thread, its micro-batches' count and
 * p10/p50/p90 duration, and how evenly the steps kept the threads busy (see
 * `stepBalance`), and the steps' critical path and length spread (see
 * `stepPath`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { flagError } from "./flag_errors.ts";
import {
  microBatchTable,
  opTable,
  stepBalance,
  stepPath,
  type TraceEvent,
} from "./parallel/trace.ts";
import { stdoutLines } from "./text_out.ts";

const USAGE = "usage: deno task profile FILE [--top N]  (FILE from --profile)";
/** One line, `error: <message>`, as every denograd command says it; exit code 2 for bad flags. */
function die(message: string, code: number): never {
  console.error(`error: ${message}`);
  Deno.exit(code);
}
let parsed;
try {
  parsed = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: { top: { type: "string", default: "25" } },
  });
} catch (e) {
  die(`${flagError(e, ["top"])}; ${USAGE}`, 2);
}
const { values, positionals } = parsed;
const file = positionals[0];
const top = /^[0-9]+$/.test(values.top) ? Number(values.top) : NaN;
if (!file) die(`FILE is required; ${USAGE}`, 2);
if (positionals.length > 1) die(`unexpected argument "${positionals[1]}"; ${USAGE}`, 2);
if (!(top >= 1)) die(`--top must be a whole number 1 or more, got "${values.top}"`, 2);

/** Traces `bench:train --profile FILE` wrote beside FILE: one per thread count or A/B side. */
async function siblings(path: string): Promise<string[]> {
  const slash = path.lastIndexOf("/");
  const dir = slash < 0 ? "." : path.slice(0, slash) || "/";
  const stem = path.slice(slash + 1).replace(/\.json$/, "");
  const found: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.name.startsWith(`${stem}-`) && e.name.endsWith(".json")) {
        found.push(slash < 0 ? e.name : `${path.slice(0, slash)}/${e.name}`);
      }
    }
  } catch {
    // no directory: no hint
  }
  return found.sort();
}

let trace: { traceEvents: TraceEvent[] };
try {
  trace = JSON.parse(await Deno.readTextFile(file));
  if (!Array.isArray(trace.traceEvents)) throw new Error("no traceEvents array");
} catch (e) {
  const near = e instanceof Deno.errors.NotFound ? await siblings(file) : [];
  die(
    `cannot read trace "${file}": ${(e as Error).message.split("\n")[0]}${
      near.length
        ? `; bench:train --profile writes one trace per thread count (--workers 1,2) and A/B side: ${
          near.map((n) => `"${n}"`).join(", ")
        }`
        : ""
    }`,
    1,
  );
}
const { steps, rows } = opTable(trace);
const print = stdoutLines(); // exits quietly when the reader has gone (`| head`)
const threads = new Set(trace.traceEvents.map((e) => e.tid)).size;
print(`${file}: ${steps} steps, ${threads} thread(s); ms per step summed over threads`);
print(
  `${"span".padEnd(48)} ${"pass".padEnd(7)} ${"ms/step".padStart(9)} ${"share".padStart(7)}`,
);
for (const r of rows.slice(0, top)) {
  print(
    `${r.name.slice(0, 48).padEnd(48)} ${r.cat.padEnd(7)} ${r.msPerStep.toFixed(3).padStart(9)} ${
      (100 * r.share).toFixed(1).padStart(6)
    }%`,
  );
}
if (rows.length > top) print(`... ${rows.length - top} more (--top N)`);
const perThread = microBatchTable(trace);
if (perThread.length > 0) {
  const us = (x: number) => Math.round(x).toLocaleString("en-US").padStart(9);
  print("");
  print(
    `${"micro-batches".padEnd(16)} ${"count".padStart(7)} ${"p10 µs".padStart(9)} ${
      "p50 µs".padStart(9)
    } ${"p90 µs".padStart(9)}`,
  );
  for (const r of perThread) {
    print(
      `${r.name.padEnd(16)} ${String(r.count).padStart(7)} ${us(r.p10)} ${us(r.p50)} ${us(r.p90)}`,
    );
  }
}
const bal = stepBalance(trace);
if (bal.threads > 1 && bal.steps > 0) {
  print(
    `step imbalance: ${bal.balance.toFixed(3)} over ${bal.steps} steps = mean over steps of ` +
      `the threads' mean busy time / the busiest's (1: even; 1 minus it: the share of ` +
      `the threads' time in a step spent waiting for the slowest)` +
      (bal.soloSteps ? `; ${bal.soloSteps} steps on one thread alone left out` : ""),
  );
  print(
    `step length: ${bal.stepMs.toFixed(3)} ms on average, the busiest thread busy ` +
      `${bal.busiestMs.toFixed(3)} ms of it (${(bal.busiestMs / bal.stepMs).toFixed(3)}); ` +
      `the rest it waits: for another thread, or for the step to start or end`,
  );
}
const path = stepPath(trace);
if (path.steps > 0) {
  const f = (x: number) => (Number.isNaN(x) ? "-" : x.toFixed(0));
  print(
    `step path (µs, medians over ${path.steps} steps): start to the last micro-batch's start ` +
      `${f(path.toLastStart)}, that micro-batch ${f(path.lastMicro)}, its end to the update ` +
      `${f(path.toUpdate)}, the update ${f(path.update)}, to the step's end ${f(path.toEnd)}, ` +
      `to the next step ${f(path.between)}`,
  );
  print(
    `step length (µs): p50 ${f(path.stepP50)}, mean ${f(path.stepMean)}, p90 ${f(path.stepP90)}; ${
      (100 * path.slowShare).toFixed(1)
    }% of the steps longer than 1.5 × the median ` +
      `(the mean over the median, ${(path.stepMean / path.stepP50).toFixed(2)}, is what they cost)`,
  );
}
