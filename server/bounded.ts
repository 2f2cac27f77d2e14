/**
 * Waiting with a limit, for the few places where a wait must not hang a
 * shutdown or an upload.
 *
 * @module
 */

/** Waits for `p` at most `ms` milliseconds; resolves whether it settled in time. */
export async function bounded(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p.then(() => true, () => true),
      new Promise<false>((r) => timer = setTimeout(() => r(false), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
