/**
 * What the OS did to a pool's threads in its slow steps: reads a `perf sched`
 * recording and the pool's own Chrome trace of the same run, lines them up
 * (perf's monotonic clock against the trace's wall clock, `otherData.epochMs`)
 * and prints, for the steps longer than `--slow` times the median and for the
 * others, per compute thread (the main thread `deno`, the workers `worker-N`)
 * the time it was preempted (runnable, off the CPU), asleep, woken but not yet
 * running, and its migrations; which other threads ran on the CPUs in those
 * steps (the pool's own V8 helper threads, "V8 DefaultWorker", are the JIT
 * compilers and GC helpers); the mean step and the V8 helpers' time per
 * `--bucket` steps; and for every Deno process of the recording (the pool and
 * any `--baseline processes` children) how much of its compute threads' time
 * they were preempted and how long its own V8 helpers ran.
 *
 * ```sh
 * flock /work/cpu.lock perf sched record -k monotonic -o /tmp/s.data -- \
 *   deno task bench:train --workers 2 --batch 64 --steps 400 --reps 2 --profile /tmp/s.json
 * deno run -A bench/sched_trace.ts --perf /tmp/s.data --trace /tmp/s.json
 * ```
 *
 * `-k monotonic` is needed: it makes perf store the clock's wall time
 * (`perf script -F tod`), from which the trace's times are converted.
 *
 * @module
 */
import { benchArgs } from "./_args.ts";
import { median } from "./_stats.ts";

/** One scheduler event of `perf script -F comm,pid,tid,cpu,time,event,trace`. */
export interface SchedEvent {
  /** Seconds, perf's clock. */
  t: number;
  cpu: number;
  pid: number;
  tid: number;
  comm: string;
  event: string;
  rest: string;
}

const LINE = /^\s*(.+?)\s+(-?\d+)\/(-?\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s+(.*)$/;

/**
 * The scheduler events in `perf script` text (lines that are not events are skipped).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePerfScript } from "./sched_trace.ts";
 * const ev = parsePerfScript(
 *   "        worker-1 10479/10486 [001] 76605.620129: sched:sched_switch: prev_comm=worker-1 prev_pid=10486",
 * );
 * assert.deepEqual([ev[0]!.pid, ev[0]!.tid, ev[0]!.cpu, ev[0]!.comm], [10479, 10486, 1, "worker-1"]);
 * ```
 */
export function parsePerfScript(text: string): SchedEvent[] {
  const out: SchedEvent[] = [];
  for (const line of text.split("\n")) {
    const m = LINE.exec(line);
    if (!m) continue;
    out.push({
      comm: m[1]!,
      pid: Number(m[2]),
      tid: Number(m[3]),
      cpu: Number(m[4]),
      t: Number(m[5]),
      event: m[6]!,
      rest: m[7]!,
    });
  }
  return out;
}

/** Why a thread was off its CPU for a while. */
export type OffKind = "preempt" | "sleep" | "wakedelay";

/** What the scheduler events say: who ran where, and each thread's time off the CPU. */
export interface Timeline {
  /** [start, end, cpu, tid] of every stretch a thread ran (tid 0: idle). */
  runs: [number, number, number, number][];
  /** Per thread: [start, end, kind] of each stretch off the CPU. */
  off: Map<number, [number, number, OffKind][]>;
  /** Per thread: the times it was moved to another CPU. */
  migrations: Map<number, number[]>;
  /** Per thread: the CPU it was preempted on, for each of its "preempt" stretches in turn. */
  preemptedOn: Map<number, number[]>;
  /** Per thread: its last name and its process. */
  threads: Map<number, { comm: string; pid: number }>;
}

const SWITCH =
  /prev_comm=(.*) prev_pid=(\d+) prev_prio=\d+ prev_state=(\S+) ==> next_comm=(.*) next_pid=(\d+)/;

/**
 * Runs and off-CPU stretches from `sched_switch`, `sched_waking` and
 * `sched_migrate_task` events: a thread switched out runnable (state R) was
 * preempted until it ran again; one switched out asleep slept until woken,
 * then waited for a CPU (`wakedelay`) until it ran.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePerfScript, timeline } from "./sched_trace.ts";
 * const sw = (t: number, prev: number, state: string, next: number) =>
 *   `deno 1/${prev} [000] ${t}: sched:sched_switch: prev_comm=a prev_pid=${prev} prev_prio=120 prev_state=${state} ==> next_comm=b next_pid=${next} next_prio=120`;
 * const tl = timeline(parsePerfScript([sw(1, 7, "R", 8), sw(1.5, 8, "S", 7)].join("\n")));
 * assert.deepEqual(tl.off.get(7), [[1, 1.5, "preempt"]]);
 * assert.deepEqual(tl.runs, [[1, 1.5, 0, 8]]);
 * ```
 */
export function timeline(events: SchedEvent[]): Timeline {
  const runs: Timeline["runs"] = [];
  const off = new Map<number, [number, number, OffKind][]>();
  const migrations = new Map<number, number[]>();
  const threads = new Map<number, { comm: string; pid: number }>();
  const current = new Map<number, [number, number]>(); // cpu -> [tid, since]
  // off-CPU thread -> [state, since, the CPU it left]
  const state = new Map<number, ["R" | "S", number, number]>();
  const woken = new Map<number, number>();
  const preemptedOn = new Map<number, number[]>();
  const push = <K, V>(m: Map<K, V[]>, k: K, v: V) => {
    const a = m.get(k);
    if (a) a.push(v);
    else m.set(k, [v]);
  };
  for (const e of events) {
    if (e.tid > 0) threads.set(e.tid, { comm: e.comm, pid: e.pid });
    if (e.event === "sched:sched_switch") {
      const m = SWITCH.exec(e.rest);
      if (!m) continue;
      const prev = Number(m[2]), next = Number(m[5]);
      // a thread seen only in a switch: its name, its process unknown
      if (prev > 0 && !threads.has(prev)) threads.set(prev, { comm: m[1]!, pid: -1 });
      if (next > 0 && !threads.has(next)) threads.set(next, { comm: m[4]!, pid: -1 });
      const cur = current.get(e.cpu);
      if (cur) runs.push([cur[1], e.t, e.cpu, cur[0]]);
      current.set(e.cpu, [next, e.t]);
      if (prev > 0) state.set(prev, [m[3]!.startsWith("R") ? "R" : "S", e.t, e.cpu]);
      const was = state.get(next);
      if (next > 0 && was) {
        state.delete(next);
        const w = woken.get(next);
        woken.delete(next);
        if (was[0] === "R") {
          push(off, next, [was[1], e.t, "preempt"]);
          push(preemptedOn, next, was[2]);
        } else if (w !== undefined && w >= was[1]) {
          push(off, next, [was[1], w, "sleep"]);
          push(off, next, [w, e.t, "wakedelay"]);
        } else push(off, next, [was[1], e.t, "sleep"]);
      }
    } else if (e.event === "sched:sched_waking") {
      const tid = Number(/pid=(\d+)/.exec(e.rest)?.[1]);
      if (state.get(tid)?.[0] === "S") woken.set(tid, e.t);
    } else if (e.event === "sched:sched_migrate_task") {
      push(migrations, Number(/pid=(\d+)/.exec(e.rest)?.[1]), e.t);
    }
  }
  return { runs, off, migrations, threads, preemptedOn };
}

if (import.meta.main) await main();

async function main() {
  const values = benchArgs(
    "bench/sched_trace.ts",
    {
      perf: { type: "string" },
      trace: { type: "string" },
      slow: { type: "string", default: "1.5" },
      bucket: { type: "string", default: "50" },
      show: { type: "string", default: "0" },
    },
    Deno.args,
    {
      perf: "perf.data from `perf sched record -k monotonic -o FILE -- <the run>`",
      trace: "the run's Chrome trace (bench:train or train --profile FILE)",
      slow: "a step this many times the median is slow",
      bucket: "steps per row of the table over the run",
      show: "print this many slow steps one by one",
    },
  );
  if (!values.perf || !values.trace) {
    console.error("error: bench/sched_trace.ts: --perf and --trace are both needed (see --help)");
    Deno.exit(2);
  }
  const slowAt = Number(values.slow), bucket = Number(values.bucket), show = Number(values.show);
  const perf = (args: string[]) => {
    const out = new Deno.Command("perf", { args: ["script", "-i", values.perf!, ...args] })
      .outputSync();
    if (out.code !== 0) {
      console.error(
        `error: perf script -i ${values.perf} failed: ${new TextDecoder().decode(out.stderr)}`,
      );
      Deno.exit(1);
    }
    return new TextDecoder().decode(out.stdout);
  };
  // wall time of perf's clock: "comm YYYY-MM-DD HH:MM:SS.uuuuuu secs:"
  const first = /(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(\.\d+) ([\d.]+):/.exec(
    perf(["-F", "tod,time"]).slice(0, 4096),
  );
  if (!first) {
    console.error(
      "error: no wall time in the recording: record with perf sched record -k monotonic",
    );
    Deno.exit(1);
  }
  const wallMs = new Date(`${first[1]}T${first[2]}`).getTime() + Number(first[3]) * 1000;
  const offsetS = wallMs / 1000 - Number(first[4]); // wall seconds minus perf seconds
  const tl = timeline(parsePerfScript(perf(["-F", "comm,pid,tid,cpu,time,event,trace"])));

  const trace = JSON.parse(await Deno.readTextFile(values.trace)) as {
    traceEvents: { ph: string; cat?: string; ts?: number; dur?: number; tid: number }[];
    otherData?: { epochMs?: number };
  };
  const epochMs = trace.otherData?.epochMs;
  if (epochMs === undefined) {
    console.error(
      `error: ${values.trace} has no otherData.epochMs (a trace from before it was recorded)`,
    );
    Deno.exit(1);
  }
  const perfS = (us: number) => (epochMs + us / 1000) / 1000 - offsetS;
  const steps = trace.traceEvents.filter((e) => e.ph === "X" && e.cat === "step" && e.tid === 0)
    .map((e) => [perfS(e.ts!), perfS(e.ts! + e.dur!)] as [number, number])
    .sort((a, b) => a[0] - b[0]);
  if (steps.length === 0) {
    console.error(`error: ${values.trace} has no steps on the main thread`);
    Deno.exit(1);
  }

  // the pool: the process with worker threads that ran longest; its compute threads
  const ranFor = new Map<number, number>();
  for (const [s, e, , tid] of tl.runs) ranFor.set(tid, (ranFor.get(tid) ?? 0) + e - s);
  const byPid = new Map<number, number[]>();
  for (const [tid, t] of tl.threads) {
    if (t.pid >= 0) byPid.set(t.pid, [...(byPid.get(t.pid) ?? []), tid]);
  }
  const isWorker = (tid: number) => tl.threads.get(tid)?.comm.startsWith("worker-") ?? false;
  const isV8 = (tid: number) => tl.threads.get(tid)?.comm.startsWith("V8 Default") ?? false;
  const pools = [...byPid].filter(([, tids]) => tids.some(isWorker));
  if (pools.length === 0) {
    console.error("error: no process with worker threads in the recording");
    Deno.exit(1);
  }
  const busy = (tids: number[]) => tids.reduce((n, t) => n + (ranFor.get(t) ?? 0), 0);
  const [poolPid, poolTids] = pools.sort((a, b) => busy(b[1]) - busy(a[1]))[0]!;
  const compute = [poolPid, ...poolTids.filter(isWorker).sort((a, b) => a - b)];
  const name = (tid: number) => tl.threads.get(tid)?.comm ?? `?${tid}`;
  const own = new Set(poolTids);

  const overlap = (s: number, e: number, a: number, b: number) =>
    Math.max(0, Math.min(e, b) - Math.max(s, a));
  const within = (a: number, b: number) => {
    const per = compute.map((tid) => {
      const c: Record<string, number> = { preempt: 0, sleep: 0, wakedelay: 0, migrations: 0 };
      for (const [s, e, k] of tl.off.get(tid) ?? []) {
        if (e > a && s < b) c[k]! += overlap(s, e, a, b);
      }
      c.migrations = (tl.migrations.get(tid) ?? []).filter((t) => t >= a && t < b).length;
      return c;
    });
    const others = new Map<string, number>();
    for (const [s, e, , tid] of tl.runs) {
      if (tid === 0 || compute.includes(tid) || e <= a || s >= b) continue;
      const k = own.has(tid) ? `own ${name(tid)}` : name(tid);
      others.set(k, (others.get(k) ?? 0) + overlap(s, e, a, b));
    }
    return { per, others };
  };
  const lens = steps.map(([a, b]) => b - a);
  const med = median(lens);
  const ms = (s: number) => (s * 1000).toFixed(3);
  console.log(
    `pool pid ${poolPid}, compute threads ${
      compute.map(name).join(", ")
    }; ${steps.length} steps, ` +
      `median ${ms(med)} ms, mean ${ms(lens.reduce((x, y) => x + y, 0) / lens.length)} ms`,
  );
  const slow = steps.filter(([a, b]) => b - a > slowAt * med);
  const fast = steps.filter(([a, b]) => b - a <= slowAt * med);
  console.log(
    `${slow.length} steps over ${slowAt} x the median; their excess over it ${
      (slow.reduce((n, [a, b]) => n + b - a - med, 0) * 1000).toFixed(1)
    } ms`,
  );
  for (const [label, group] of [["slow", slow], ["other", fast]] as const) {
    if (group.length === 0) continue;
    const sum = compute.map(() => new Map<string, number>());
    const others = new Map<string, number>();
    for (const [a, b] of group) {
      const w = within(a, b);
      w.per.forEach((c, i) => {
        for (const [k, v] of Object.entries(c)) sum[i]!.set(k, (sum[i]!.get(k) ?? 0) + v);
      });
      for (const [k, v] of w.others) others.set(k, (others.get(k) ?? 0) + v);
    }
    const n = group.length;
    console.log(
      `== ${label} steps: ${n}, mean ${
        ms(group.reduce((x, [a, b]) => x + b - a, 0) / n)
      } ms; per step:`,
    );
    compute.forEach((tid, i) => {
      const c = sum[i]!;
      console.log(
        `  ${name(tid).padEnd(10)} preempted ${ms(c.get("preempt")! / n)} ms, asleep ${
          ms(c.get("sleep")! / n)
        } ms, woken waiting for a CPU ${ms(c.get("wakedelay")! / n)} ms, migrations ${
          (c.get("migrations")! / n).toFixed(3)
        }`,
      );
    });
    const top = [...others].sort((x, y) => y[1] - x[1]).slice(0, 8);
    console.log(
      `  others on the CPUs (ms per step): ${top.map(([k, v]) => `${k} ${ms(v / n)}`).join(", ")}`,
    );
  }
  for (const [a, b] of slow.slice(0, show)) {
    const w = within(a, b);
    console.log(
      `  slow step at ${(a - steps[0]![0]).toFixed(4)} s, ${ms(b - a)} ms: ` +
        compute.map((tid, i) =>
          `${name(tid)} preempted ${ms(w.per[i]!.preempt!)} asleep ${ms(w.per[i]!.sleep!)}`
        ).join("; ") + "; others " +
        [...w.others].sort((x, y) => y[1] - x[1]).slice(0, 3).map(([k, v]) => `${k} ${ms(v)}`)
          .join(", "),
    );
  }
  console.log(
    `per ${bucket} steps: first step, mean step ms, own V8 helpers ms/step, compute threads preempted ms/step, slow steps`,
  );
  for (let i = 0; i < steps.length; i += bucket) {
    const g = steps.slice(i, i + bucket);
    let v8 = 0, pre = 0;
    for (const [a, b] of g) {
      const w = within(a, b);
      for (const [k, v] of w.others) if (k.startsWith("own V8")) v8 += v;
      for (const c of w.per) pre += c.preempt!;
    }
    console.log(
      `  ${String(i).padStart(5)} ${ms(g.reduce((x, [a, b]) => x + b - a, 0) / g.length)} ${
        ms(v8 / g.length)
      } ${ms(pre / g.length)} ${g.filter(([a, b]) => b - a > slowAt * med).length}`,
    );
  }
  console.log(
    "every Deno process of the recording (the pool, baseline children): its compute threads",
  );
  for (const [pid, tids] of byPid) {
    const comp = tids.filter((t) => (t === pid && name(t) === "deno") || isWorker(t));
    const on = busy(comp);
    if (on < 0.2) continue;
    let pre = 0, preLong = 0;
    const by = new Map<string, number>(); // who ran on the CPU a compute thread was preempted on
    for (const t of comp) {
      const cpus = tl.preemptedOn.get(t) ?? [];
      let i = 0;
      for (const [s, e, k] of tl.off.get(t) ?? []) {
        if (k !== "preempt") continue;
        const cpu = cpus[i++];
        pre += e - s;
        if (e - s > 0.0005) preLong++;
        for (const [rs, re, rc, rt] of tl.runs) {
          if (rc !== cpu || re <= s || rs >= e || rt === 0) continue;
          const who = tids.includes(rt)
            ? `own ${name(rt)}`
            : byPid.has(tl.threads.get(rt)?.pid ?? -1) && name(rt) === "deno"
            ? "another process's deno"
            : name(rt);
          by.set(who, (by.get(who) ?? 0) + overlap(rs, re, s, e));
        }
      }
    }
    const v8 = busy(tids.filter(isV8));
    const mig = comp.reduce((n, t) => n + (tl.migrations.get(t)?.length ?? 0), 0);
    console.log(
      `  pid ${pid}${pid === poolPid ? " (pool)" : ""} [${comp.map(name).join(", ")}]: ran ${
        (on * 1000).toFixed(0)
      } ms, preempted ${(pre * 1000).toFixed(1)} ms (${
        (pre / on * 100).toFixed(1)
      }%, ${preLong} times > 0.5 ms), ` +
        `own V8 helpers ran ${(v8 * 1000).toFixed(0)} ms (${
          (v8 / on * 100).toFixed(1)
        }%), migrations ${mig}`,
    );
    const top = [...by].sort((x, y) => y[1] - x[1]).slice(0, 5);
    console.log(
      `    preempted by (ms): ${top.map(([k, v]) => `${k} ${(v * 1000).toFixed(1)}`).join(", ")}`,
    );
  }
}
