/**
 * Who is typing where on this node: each typist's flag per conversation,
 * cleared after a timeout, and published through the {@link TypingGate} so
 * that a typist toggling fast costs the room one event per interval. Kept
 * apart from the hub, which only fans out the typing events that come back
 * from the broker.
 *
 * @module
 */
import type { Target } from "../../protocol.ts";
import type { Broker, TypingEvent } from "../broker/broker.ts";
import type { Logger } from "../log.ts";
import { TypingGate } from "./typing_gate.ts";

interface Typist {
  conv: string;
  target: Target;
  user: string;
  expires: number;
}

/** What {@link Typists} needs from the node. */
export interface TypistsContext {
  /** Where typing changes go. */
  broker: Pick<Broker, "publish">;
  log: Logger;
  /** Clock in milliseconds. */
  now: () => number;
}

/** Options for {@link Typists}. */
export interface TypistsOptions {
  /** Milliseconds of silence after which a typing flag clears. */
  timeout: number;
  /** Typing changes one typist may publish per conversation in a burst. */
  burst: number;
  /** Milliseconds per further typing change. */
  interval: number;
}

/** The typing flags of the users on this node. */
export class Typists {
  #ctx: TypistsContext;
  #timeout: number;
  #typing = new Map<string, Typist>();
  #gate: TypingGate<TypingEvent>;

  /** Publishes typing changes through `ctx.broker`. */
  constructor(ctx: TypistsContext, options: TypistsOptions) {
    this.#ctx = ctx;
    this.#timeout = options.timeout;
    this.#gate = new TypingGate({ burst: options.burst, interval: options.interval });
  }

  /** A `typing` frame from `user` in `conv`: sets or clears their flag there. */
  set(conv: string, target: Target, user: string, active: boolean): void {
    const key = `${conv}\n${user}`;
    const existing = this.#typing.get(key);
    if (active) {
      const expires = this.#ctx.now() + this.#timeout;
      if (existing) {
        existing.expires = expires;
        return;
      }
      this.#typing.set(key, { conv, target, user, expires });
    } else if (!this.#typing.delete(key)) return;
    this.#event(key, { kind: "typing", conv, ...target, user, active });
  }

  /** `user` sent a message in `conv`: their flag there clears. */
  stop(conv: string, target: Target, user: string): void {
    const key = `${conv}\n${user}`;
    if (this.#typing.delete(key)) {
      this.#event(key, { kind: "typing", conv, ...target, user, active: false });
    }
  }

  /** Clears `user`'s flags in `room`, or everywhere (they left, or went offline). */
  clear(user: string, room?: string): void {
    for (const [key, t] of this.#typing) {
      if (t.user === user && (room === undefined || t.target.room === room)) {
        this.#typing.delete(key);
        this.#event(key, { kind: "typing", conv: t.conv, ...t.target, user, active: false });
      }
    }
  }

  /**
   * Forgets the flags in `room` without a word: it was renamed, and its
   * members clear them as they hear of that.
   */
  forgetRoom(room: string): void {
    for (const [key, t] of this.#typing) if (t.target.room === room) this.#typing.delete(key);
  }

  /** Clears flags that timed out and publishes held changes whose turn came. */
  tick(now: number): void {
    for (const [key, t] of this.#typing) {
      if (t.expires <= now) {
        this.#typing.delete(key);
        this.#event(key, {
          kind: "typing",
          conv: t.conv,
          ...t.target,
          user: t.user,
          active: false,
        });
      }
    }
    for (const held of this.#gate.due(now)) this.#publish(held.info);
  }

  /** Publishes a typing change now, or holds it if the typist is changing too often. */
  #event(key: string, event: TypingEvent): void {
    if (this.#gate.offer(key, event.active, event, this.#ctx.now())) this.#publish(event);
  }

  #publish(event: TypingEvent): void {
    this.#ctx.broker.publish(event).catch((err) => {
      this.#ctx.log.warn(`Could not publish ${event.kind} event: ${(err as Error).message}`);
    });
  }
}
