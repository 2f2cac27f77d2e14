/**
 * Small files that several processes rewrite or append to (users.json, the
 * terminal client's saved sessions, the kept sign-outs): one writer at a time
 * under an OS lock, and writes that are atomic and survive a power cut.
 *
 * @module
 */
import { dirname } from "node:path";

/** Options for {@link replaceLocked}. */
export interface ReplaceOptions {
  /** Milliseconds to wait for another writer before giving up. */
  wait: number;
  /** The error message when the wait runs out. */
  busy: string;
}

/**
 * Runs `update` holding the OS lock on `<path>.lock` (created 0600 if
 * missing, never renamed or removed), then writes what it returns (unless
 * null) to `<path>.tmp`, syncs it, renames it over `path` and syncs the
 * folder, still holding the lock. The lock belongs to the open file, not to
 * a name on disk: closing it, or the process dying in any way, releases it,
 * so there is no stale lock to judge by its age and no way for two writers
 * to hold it at once.
 *
 * @throws {Error} `options.busy` when another writer keeps the lock; `Cannot
 * write "<path>": …` when the file cannot be written. A `SyntaxError` from
 * `update` passes through as it is.
 */
export function replaceLocked(
  path: string,
  update: () => Promise<string | null>,
  options: ReplaceOptions,
): Promise<void> {
  const tmp = `${path}.tmp`;
  return withLock(path, options, async () => {
    let renamed = false;
    try {
      const text = await update();
      if (text === null) return;
      await writeSynced(tmp, text);
      await Deno.rename(tmp, path);
      renamed = true;
      await syncDirectory(dirname(path));
    } catch (err) {
      if (!renamed) await Deno.remove(tmp).catch(() => {});
      if (err instanceof SyntaxError) throw err;
      throw new Error(`Cannot write "${path}": ${(err as Error).message}`);
    }
  });
}

/**
 * Appends `text` to `path` (created 0600 if missing) holding the same lock
 * as {@link replaceLocked}, and forces it to disk before resolving.
 *
 * @throws {Error} `options.busy` when another writer keeps the lock; `Cannot
 * write "<path>": …` when the file cannot be written.
 */
export function appendLocked(path: string, text: string, options: ReplaceOptions): Promise<void> {
  return withLock(path, options, async () => {
    try {
      await writeAll(await Deno.open(path, { append: true, create: true, mode: 0o600 }), text);
    } catch (err) {
      throw new Error(`Cannot write "${path}": ${(err as Error).message}`);
    }
  });
}

/** Runs `fn` holding the OS lock on `<path>.lock`, waiting at most `options.wait`. */
async function withLock<T>(
  path: string,
  options: ReplaceOptions,
  fn: () => Promise<T>,
): Promise<T> {
  let lock: Deno.FsFile;
  try {
    lock = await Deno.open(`${path}.lock`, { read: true, write: true, create: true, mode: 0o600 });
  } catch (err) {
    throw new Error(`Cannot write "${path}": ${(err as Error).message}`);
  }
  try {
    const deadline = Date.now() + options.wait;
    // tryLock() and a short, jittered poll rather than lock(): a blocked lock()
    // cannot be given up on when the wait runs out.
    while (!(await lock.tryLock(true))) {
      if (Date.now() >= deadline) throw new Error(options.busy);
      await new Promise((r) => setTimeout(r, 2 + Math.random() * 18));
    }
    return await fn();
  } finally {
    // Closing the file releases the lock.
    lock.close();
  }
}

/** Writes all of `text` to a new 0600 file at `path` and forces it to disk. */
async function writeSynced(path: string, text: string): Promise<void> {
  // Only the lock holder writes here, so anything already there is a leftover
  // of a crash: remove it rather than write through it (it could be a link).
  await Deno.remove(path).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
  await writeAll(await Deno.open(path, { write: true, createNew: true, mode: 0o600 }), text);
}

/** Writes all of `text` to `file`, forces it to disk and closes it. */
async function writeAll(file: Deno.FsFile, text: string): Promise<void> {
  try {
    const bytes = new TextEncoder().encode(text);
    for (let done = 0; done < bytes.length;) done += await file.write(bytes.subarray(done));
    await file.sync();
  } finally {
    file.close();
  }
}

/**
 * Forces a rename in `dir` to disk, so that it survives a power cut (until
 * then the directory entry may still point at the old file).
 */
async function syncDirectory(dir: string): Promise<void> {
  // POSIX only: Windows offers no fsync of a directory through Deno.open().
  if (Deno.build.os === "windows") return;
  // The compiled binary may read only its own files in the folder it runs in
  // (scripts/compile.ts), not the folder itself, and must not be given the
  // whole folder for this. Without the sync the rename is still atomic: after
  // a power cut the file is the old one or the new one, never a mix.
  if (Deno.permissions.querySync({ name: "read", path: dir }).state !== "granted") return;
  const handle = await Deno.open(dir, { read: true });
  try {
    await handle.sync();
  } finally {
    handle.close();
  }
}
