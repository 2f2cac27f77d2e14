/**
 * The counting hooks the hub, sign-in and outbox call, and their no-op
 * versions for a server without `--metrics`. Kept apart from the registry so
 * that the hub depends on these few methods only; `chat_metrics.ts`
 * implements them.
 *
 * @module
 */

/** What the hub counts. */
export interface HubMeter {
  /** A frame from a client was parsed (`"other"` when it could not be). */
  frameIn(type: string): void;
  /** A frame was refused by its connection's token bucket. */
  rateLimited(): void;
  /** The server closed a connection with this close code. */
  closed(code: number): void;
  /** A chat message went out to `deliveries` connections of this node. */
  message(deliveries: number): void;
  /** A sign-in ended in a `welcome`. */
  signedIn(): void;
  /** A sign-in was refused; `reason` is the error code the client got. */
  signInFailed(reason: string): void;
}

/** What the outbox counts: each socket write. */
export interface OutboxMeter {
  /** `frames` frames went out in one socket write of `text`. */
  written(frames: number, text: string): void;
}

/** The hooks of a server without metrics: they do nothing. */
export const NO_HUB_METER: HubMeter = {
  frameIn() {},
  rateLimited() {},
  closed() {},
  message() {},
  signedIn() {},
  signInFailed() {},
};
