/**
 * Runs one {@link upload} on a thread of its own (see {@link uploadInWorker}):
 * receives `{ url, token, size }`, answers `{ outcome }` with its times on
 * the epoch clock (a worker's `performance.now()` has its own origin), or
 * `{ error }`, then ends.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { upload } from "./upload.ts";

self.onmessage = async (e: MessageEvent<{ url: string; token: string; size: number }>) => {
  const { url, token, size } = e.data;
  try {
    const o = await upload(url, token, size);
    const origin = performance.timeOrigin;
    self.postMessage({
      outcome: { ...o, startedAt: o.startedAt + origin, endedAt: o.endedAt + origin },
    });
  } catch (err) {
    self.postMessage({ error: (err as Error).message });
  }
  self.close();
};
