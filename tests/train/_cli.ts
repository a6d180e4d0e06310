// Helpers for tests that run `train/cli.ts` as a child process on a small
// MNIST-shaped IDX directory written on the spot.
import { readSafetensors } from "../../train/safetensors.ts";

const CLI = new URL("../../train/cli.ts", import.meta.url).pathname;
const FLAGS = ["--allow-read", "--allow-write", "--allow-env", "--allow-sys"];

/** Output of a finished CLI run. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to the end with `args`; `env` adds variables. */
export async function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...FLAGS, CLI, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...env },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

function idxBytes(dims: number[], data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out.set([0, 0, 8, dims.length]);
  const view = new DataView(out.buffer);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

/** Writes the four MNIST files with `train` and `test` 28×28 images of seeded noise. */
export async function writeDigits(dir: string, train: number, test: number): Promise<void> {
  let s = 12345;
  const byte = () => ((s = (s * 1103515245 + 12345) >>> 0) >>> 24);
  const images = (n: number) => Uint8Array.from({ length: n * 784 }, byte);
  const labels = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7) % 10);
  await Deno.writeFile(`${dir}/train-images-idx3-ubyte`, idxBytes([train, 28, 28], images(train)));
  await Deno.writeFile(`${dir}/train-labels-idx1-ubyte`, idxBytes([train], labels(train)));
  await Deno.writeFile(`${dir}/t10k-images-idx3-ubyte`, idxBytes([test, 28, 28], images(test)));
  await Deno.writeFile(`${dir}/t10k-labels-idx1-ubyte`, idxBytes([test], labels(test)));
}

/** A running CLI child that reads its `--json` events as they come. */
export class CliChild {
  readonly events: Record<string, any>[] = [];
  private child: Deno.ChildProcess;
  private reader: ReadableStreamDefaultReader<string>;
  private buf = "";
  private stderrText: Promise<string>;

  private stderrSeen = "";
  private stderrReader: ReadableStreamDefaultReader<string> | null = null;

  /** Starts the CLI with `--json` and `args`; `stderr: true` lets {@linkcode untilStderr} read it live. */
  constructor(args: string[], opts: { stderr?: boolean } = {}) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...FLAGS, CLI, "--json", ...args],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.reader = this.child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    if (opts.stderr) {
      this.stderrReader = this.child.stderr.pipeThrough(new TextDecoderStream()).getReader();
      this.stderrText = Promise.resolve("");
    } else this.stderrText = new Response(this.child.stderr).text();
  }

  /** Reads stderr until it matches `re` (true) or ends (false). */
  async untilStderr(re: RegExp): Promise<boolean> {
    while (!re.test(this.stderrSeen)) {
      const { value, done } = await this.stderrReader!.read();
      if (done) return false;
      this.stderrSeen += value;
    }
    return true;
  }

  /** Reads events until one satisfies `pred` (true) or the output ends (false). */
  async until(pred: (e: Record<string, any>) => boolean): Promise<boolean> {
    for (;;) {
      const lines = this.buf.split("\n");
      this.buf = lines.pop()!;
      for (const l of lines) {
        if (!l) continue;
        const e = JSON.parse(l);
        this.events.push(e);
        if (pred(e)) return true;
      }
      const { value, done } = await this.reader.read();
      if (done) return false;
      this.buf += value;
    }
  }

  /** Sends a signal to the child. */
  kill(sig: Deno.Signal): void {
    this.child.kill(sig);
  }

  /** Reads the rest of the output and waits for the exit. */
  async finish(): Promise<{ code: number; stderr: string }> {
    await this.until(() => false);
    if (this.stderrReader) {
      for (;;) {
        const { value, done } = await this.stderrReader.read();
        if (done) break;
        this.stderrSeen += value;
      }
    }
    const status = await this.child.status;
    return { code: status.code, stderr: this.stderrSeen + (await this.stderrText) };
  }
}

/** The tensors of a safetensors file, by name. */
export async function tensorsOf(path: string): Promise<Map<string, Float32Array>> {
  const { tensors } = await readSafetensors(path);
  return new Map(Object.entries(tensors).map(([k, t]) => [k, t.data]));
}
