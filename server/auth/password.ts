/**
 * Password hashing: argon2id at the OWASP-recommended cost (19 MiB, t=2,
 * p=1), run in a worker so it never blocks the event loop, stored as a PHC
 * string. Seed-era plaintext entries still verify, in the time a hashed one takes.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";

/** argon2id parameters for new hashes (OWASP Password Storage Cheat Sheet). */
export const ARGON2_PARAMS = { m: 19456, t: 2, p: 1, len: 32 } as const;

const PHC =
  /^\$argon2id\$v=19\$m=(\d{1,7}),t=(\d{1,3}),p=(\d{1,2})\$([A-Za-z0-9+/]{16,})\$([A-Za-z0-9+/]{16,})$/;

/** Password checks waiting at most: about 10 s of hashing. */
export const MAX_QUEUE = 200;

/** The hasher has too many checks waiting: try again later. */
export class HasherBusyError extends Error {
  /** Builds the error. */
  constructor() {
    super("Too many sign-ins are being checked: try again in a few seconds");
    this.name = "HasherBusyError";
  }
}

/** Whether a users.json value is a hash (else it is a seed-era plaintext password). */
export function isHashed(value: string): boolean {
  return PHC.test(value);
}

/** Hashed in place of an empty password, which argon2 refuses. */
const EMPTY_STAND_IN = "\u0000";

function b64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/=+$/, "");
}

function unb64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

interface Pending {
  resolve(hash: Uint8Array): void;
  reject(err: Error): void;
}

/** Hashes and verifies passwords on a worker thread. */
export class PasswordHasher {
  #worker: Worker | null = null;
  #next = 1;
  #pending = new Map<number, Pending>();
  #dummy: string | null = null;
  #maxQueue: number;

  /** `maxQueue`: checks that may wait at once. @default {200} */
  constructor(options: { maxQueue?: number } = {}) {
    this.#maxQueue = options.maxQueue ?? MAX_QUEUE;
  }

  #start(): Worker {
    if (this.#worker) return this.#worker;
    const w = new Worker(new URL("./hash_worker.ts", import.meta.url).href, {
      type: "module",
    });
    w.onmessage = (e) => {
      const { id, hash, error } = e.data;
      const job = this.#pending.get(id);
      if (!job) return;
      this.#pending.delete(id);
      if (error) job.reject(new Error(`Password hashing failed: ${error}`));
      else job.resolve(hash);
    };
    w.onerror = (e) => {
      e.preventDefault();
      const err = new Error(`Password hashing failed: ${e.message}`);
      for (const job of this.#pending.values()) job.reject(err);
      this.#pending.clear();
      this.#worker?.terminate();
      this.#worker = null;
    };
    this.#worker = w;
    return w;
  }

  #run(
    password: string,
    salt: Uint8Array,
    params: { m: number; t: number; p: number; len: number },
  ): Promise<Uint8Array> {
    // Each job costs ~50 ms of a core: a queue longer than this only makes
    // every sign-in wait; refuse instead (the client retries later).
    if (this.#pending.size >= this.#maxQueue) {
      return Promise.reject(new HasherBusyError());
    }
    const w = this.#start();
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      w.postMessage({ id, password, salt, ...params });
    });
  }

  /** A new PHC string for `password`. */
  async hash(password: string): Promise<string> {
    const salt = crypto.getRandomValues(new Uint8Array(16));
    const { m, t, p } = ARGON2_PARAMS;
    const hash = await this.#run(password, salt, ARGON2_PARAMS);
    return `$argon2id$v=19$m=${m},t=${t},p=${p}$${b64(salt)}$${b64(hash)}`;
  }

  /**
   * Whether `password` matches `stored` (a PHC string or a plaintext
   * password). With `stored` undefined it spends the same time and answers
   * false, so unknown names cannot be told apart by timing.
   */
  async verify(password: string, stored: string | undefined): Promise<boolean> {
    const m = stored === undefined ? null : PHC.exec(stored);
    if (m === null) {
      // Unknown users and seed-era plaintext entries cost one argon2 check
      // too, so timing tells neither apart from a hashed entry.
      this.#dummy ??= await this.hash("not a password");
      await this.verify(password, this.#dummy);
      if (stored === undefined) return false;
      // Compare digests so the length does not leak.
      const a = createHash("sha256").update(password).digest();
      const b = createHash("sha256").update(stored).digest();
      return timingSafeEqual(a, b);
    }
    const expected = unb64(m[5]);
    // argon2 refuses an empty password; it never matches, but must cost the same time.
    const got = await this.#run(password === "" ? EMPTY_STAND_IN : password, unb64(m[4]), {
      m: Number(m[1]),
      t: Number(m[2]),
      p: Number(m[3]),
      len: expected.length,
    });
    return password !== "" && got.length === expected.length && timingSafeEqual(got, expected);
  }

  /** Stops the worker. */
  close(): void {
    this.#worker?.terminate();
    this.#worker = null;
    const err = new Error("Password hasher closed");
    for (const job of this.#pending.values()) job.reject(err);
    this.#pending.clear();
  }
}
