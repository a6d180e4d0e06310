// A temporary directory for a test's files, removed afterwards whatever the test did.

/** Runs `fn` with a fresh temporary directory and removes it afterwards. */
export async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
