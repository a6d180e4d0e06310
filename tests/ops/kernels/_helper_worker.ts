/**
 * A helper thread for the assist tests: starts the worker module `url`,
 * posts it `message` with a shared `stop` flag added, and collects its
 * messages ("ready" once it helps, "done" when it stops) and its errors.
 */
export function helperWorker(url: URL, message: Record<string, unknown>) {
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(url, { type: "module" });
  const errors: string[] = [];
  worker.onerror = (e) => {
    e.preventDefault();
    errors.push(e.message);
  };
  const messages: string[] = [];
  let wake: () => void = () => {};
  worker.onmessage = (e) => {
    messages.push(e.data);
    wake();
  };
  /** Resolves once `n` messages have arrived. */
  const next = (n: number) =>
    new Promise<void>((resolve) => {
      wake = () => messages.length >= n && resolve();
      wake();
    });
  worker.postMessage({ ...message, stop });
  return { worker, stop, errors, messages, next };
}
