/**
 * Removes files nobody can reach any more: uploads never sent (after
 * {@link UNATTACHED_TTL}) and files whose message is gone — deleted (when
 * the delete's own removal failed), dropped by retention or by the
 * per-conversation cap, or forgotten with a released open-mode name's DMs.
 * Driven by the server's timer; one sweep at a time.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { Store } from "../store/store.ts";
import { type FileStore, UNATTACHED_TTL } from "./files.ts";

/** Options for {@link FileJanitor}. */
export interface JanitorOptions {
  /** Milliseconds between sweeps of unsent uploads. @default {60000} */
  unattachedEvery?: number;
  /** Milliseconds between sweeps of files whose message is gone. @default {60000} */
  orphansEvery?: number;
  /** Files looked at per read of the orphan sweep. @default {500} */
  batch?: number;
}

/** Sweeps a file store against the message store. */
export class FileJanitor {
  #files: FileStore;
  #store: Store;
  #log: Logger;
  #unattachedEvery: number;
  #orphansEvery: number;
  #batch: number;
  #nextUnattached = 0;
  #nextOrphans = 0;
  #running: Promise<void> | null = null;

  /** A janitor for `files`, whose messages `store` keeps. */
  constructor(files: FileStore, store: Store, log: Logger, options: JanitorOptions = {}) {
    this.#files = files;
    this.#store = store;
    this.#log = log;
    this.#unattachedEvery = options.unattachedEvery ?? 60_000;
    // A minute: a released name's DM files must not stay readable for long
    // (by whoever takes the name next and was given an old link).
    this.#orphansEvery = options.orphansEvery ?? 60_000;
    this.#batch = options.batch ?? 500;
  }

  /** Starts the sweeps that are due at `now` (ms), unless one is still running. */
  tick(now: number): void {
    if (this.#running) return;
    const unattached = now >= this.#nextUnattached;
    const orphans = now >= this.#nextOrphans;
    if (!unattached && !orphans) return;
    if (unattached) this.#nextUnattached = now + this.#unattachedEvery;
    if (orphans) this.#nextOrphans = now + this.#orphansEvery;
    this.#running = this.sweep(now, { unattached, orphans })
      .then(
        () => {},
        (err) => this.#log.warn(`File sweep failed (tried again later): ${err.message}`),
      )
      .finally(() => this.#running = null);
  }

  /** Waits for a sweep under way (for shutdown). */
  async idle(): Promise<void> {
    await this.#running;
  }

  /** Runs the sweeps asked for now; resolves how many files went. */
  async sweep(now: number, which = { unattached: true, orphans: true }): Promise<number> {
    let removed = 0;
    if (which.unattached) removed += await this.#files.sweepUnattached(now - UNATTACHED_TTL);
    if (!which.orphans) return removed;
    let after = "";
    while (true) {
      const page = await this.#files.bound(after, this.#batch);
      if (page.length === 0) break;
      const gone: string[] = [];
      /** Rooms of this page that no longer exist under their name, looked up once each. */
      const renamed = new Map<string, boolean>();
      for (const f of page) {
        const msg = await this.#store.message(f.conv, f.msg);
        if (msg !== null && !msg.deleted && msg.files?.some((x) => x.id === f.id)) continue;
        if (msg === null && await this.#renamedAway(f.conv, renamed)) continue;
        gone.push(f.id);
      }
      if (gone.length > 0) await this.#files.remove(gone);
      removed += gone.length;
      after = page[page.length - 1].id;
      if (page.length < this.#batch) break;
    }
    return removed;
  }

  /**
   * Whether `conv` is a room that no longer exists: one just renamed, whose
   * messages are under the new name and whose files are about to follow
   * them (`FileStore.rebind` runs after `Store.renameRoom`). Its files stay.
   * Should the rebind fail, they stay until a room of the old name is
   * created again (then their message is looked for there, and is not found).
   */
  async #renamedAway(conv: string, known: Map<string, boolean>): Promise<boolean> {
    if (conv.startsWith("@")) return false;
    let away = known.get(conv);
    if (away === undefined) {
      away = !(await this.#store.roomExists(conv));
      known.set(conv, away);
    }
    return away;
  }
}
