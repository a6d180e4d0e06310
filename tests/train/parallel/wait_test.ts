import assert from "node:assert/strict";
import { MAX_SPIN_MS, Spinner, waitChange, Yielder } from "../../../train/parallel/wait.ts";

Deno.test("a spinner spins about twice the typical short wait, and not at all when waits are long", () => {
  const s = new Spinner(1e9); // so many cores that the load never counts
  assert.equal(s.budget(0), 0, "nothing learned yet");
  for (let i = 0; i < 50; i++) s.record(0.1);
  assert.ok(Math.abs(s.budget(0) - 0.2) < 1e-3, `budget ${s.budget(0)}`);
  for (let i = 0; i < 50; i++) s.record(0.4);
  assert.equal(s.budget(0), MAX_SPIN_MS);
  for (let i = 0; i < 50; i++) s.record(20);
  assert.equal(s.budget(0), 0);
});

Deno.test("a spinner does not spin on an oversubscribed machine", () => {
  const s = new Spinner(0); // any load is more than 0 cores, where the load can be read
  for (let i = 0; i < 50; i++) s.record(0.1);
  const load = Deno.loadavg()[0]!;
  assert.equal(s.budget(performance.now()) === 0, load > 0);
  assert.equal(s.oversubscribed, load > 0);
});

Deno.test("waitChange returns at once for a changed value and times out for an unchanged one", () => {
  const a = new Int32Array(new SharedArrayBuffer(4));
  const s = new Spinner(1e9);
  assert.equal(waitChange(a, 0, 1, s, 1000), true);
  const t0 = performance.now();
  assert.equal(waitChange(a, 0, 0, s, 30), false);
  assert.ok(performance.now() - t0 >= 25);
});

Deno.test("a yielder lets a due timer run before settle resolves", async () => {
  const y = new Yielder();
  // a timer set before the step starts (one set during a step runs at the next step's turn)
  let ran = false;
  setTimeout(() => (ran = true), 0);
  y.arm();
  const t0 = performance.now();
  while (performance.now() - t0 < 5); // a step's work
  await y.settle();
  assert.ok(ran);
});
