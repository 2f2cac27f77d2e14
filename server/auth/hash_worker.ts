/**
 * Runs argon2id off the main thread, so a login never stalls delivery for
 * everyone else. Messages: `{id, password, salt, m, t, p, len}` → `{id, hash}`
 * (base64) or `{id, error}`.
 *
 * @module
 */
import { setPriority } from "node:os";
import { argon2id } from "hash-wasm";

// Lowest scheduling priority for this thread only (on Linux the nice value is
// per thread): when the cores are busy, delivery on the main thread goes
// first and sign-ins wait a little longer. Without --allow-sys=setPriority
// the worker runs at normal priority.
try {
  setPriority(0, 19);
} catch {
  // Not permitted or not supported: hashing still happens off the main thread.
}

interface Job {
  id: number;
  password: string;
  salt: Uint8Array;
  m: number;
  t: number;
  p: number;
  len: number;
}

const scope = self as unknown as {
  onmessage: ((e: MessageEvent<Job>) => void) | null;
  postMessage(v: unknown): void;
};

scope.onmessage = async (e) => {
  const { id, password, salt, m, t, p, len } = e.data;
  try {
    const hash = await argon2id({
      password,
      salt,
      memorySize: m,
      iterations: t,
      parallelism: p,
      hashLength: len,
      outputType: "binary",
    });
    scope.postMessage({ id, hash });
  } catch (err) {
    scope.postMessage({ id, error: String(err) });
  }
};
