/**
 * Open-mode names: claiming one for a new session (taking over a name whose
 * holder has not been seen for the name expiry), releasing one with what
 * was private to it, and the periodic sweep of expired names. Kept apart
 * from sign-in proper because login mode never uses it and its rules (expiry,
 * stale holders) are their own.
 *
 * @module
 */
import { sizeOf } from "./member_counts.ts";
import type { NameClaim } from "../store/store.ts";
import type { NodeContext } from "./context.ts";

/** Milliseconds between checks for open-mode names that expired. */
const NAME_SWEEP_INTERVAL = 10 * 60_000;

/** Open-mode names released per check, at most. */
const NAME_SWEEP_BATCH = 200;

/** What {@link Names} needs from the node. */
export interface NamesContext extends NodeContext {
  /** Whether the node is shutting down. */
  closing: () => boolean;
  /** A name was released: what else was private to it goes (push subscriptions, levels). */
  released?: (user: string) => Promise<void>;
}

/** Options for {@link Names}. */
export interface NamesOptions {
  /** Milliseconds after which a name not seen is released. */
  nameExpiry: number;
}

/** Open-mode name claims on one node. */
export class Names {
  #ctx: NamesContext;
  #nameExpiry: number;
  /** When open-mode names were last checked for expiry (ms). */
  #swept = -Infinity;
  #sweeping = false;

  /** Claims and releases names with what `ctx` gives. */
  constructor(ctx: NamesContext, options: NamesOptions) {
    this.#ctx = ctx;
    this.#nameExpiry = options.nameExpiry;
  }

  /** Now and then, releases names whose holders have not been seen for the name expiry. */
  tick(now: number): void {
    if (now - this.#swept >= NAME_SWEEP_INTERVAL) {
      this.#swept = now;
      this.#sweep(now);
    }
  }

  /**
   * Open mode: a sign-in that did not get through leaves no name held for
   * nobody — neither one it claimed afresh, nor one it took back for a
   * session that was signed out meanwhile.
   */
  releaseUnwelcomed(name: string, session: string, fresh = false): void {
    (async () => {
      if (fresh || await this.#ctx.store.sessionRevoked(session, this.#ctx.now())) {
        await this.release(name, session);
      }
    })().catch((err) => {
      this.#ctx.log.warn(`Could not release the name "${name}": ${(err as Error).message}`);
    });
  }

  /**
   * Open mode: claims `name` for a new session. A claim whose holder has not
   * been seen for the name expiry is released first; so is what a holder
   * from before claims existed left behind (a known name nobody holds).
   */
  async claim(name: string, session: string, now: number): Promise<NameClaim | null> {
    const store = this.#ctx.store;
    let result = await store.claimName(name, session, now, true);
    if (!result.ok) {
      const held = result.claim;
      if (!held || now - held.seen <= this.#nameExpiry || this.#ctx.broker.isOnline(held.name)) {
        return null;
      }
      // Only if it is still stale: its holder may be signing back in right now.
      await this.release(held.name, held.session, now - this.#nameExpiry);
      result = await store.claimName(name, session, now, true);
      if (!result.ok) return null;
    } else if (await store.knownUser(result.claim.name)) {
      // Private state of an earlier holder that never had a claim: not ours to see.
      await this.release(result.claim.name, session);
      result = await store.claimName(name, session, now, true);
      if (!result.ok) return null;
    }
    return result.claim;
  }

  /**
   * Open mode: releases a name held by `session` (and, with `seenBefore`,
   * not seen since), wiping what was private to it, and tells every node
   * that it left its rooms. Resolves false when nothing was released.
   */
  async release(name: string, session: string, seenBefore?: number): Promise<boolean> {
    const rooms = await this.#ctx.store.releaseName(name, session, seenBefore);
    if (rooms === null) return false;
    await this.#ctx.released?.(name);
    const ts = new Date(this.#ctx.now()).toISOString();
    for (const room of rooms) {
      const count = await sizeOf(this.#ctx.store, room);
      await this.#ctx.broker.publish({
        kind: "member",
        user: name,
        room,
        joined: false,
        ts,
        ...(count === undefined ? {} : { count }),
      });
    }
    return true;
  }

  /** Open mode: releases names whose holders have not been seen for the name expiry. */
  async #sweep(now: number): Promise<void> {
    if (this.#ctx.auth.mode !== "open" || this.#sweeping || this.#ctx.closing()) return;
    this.#sweeping = true;
    try {
      const stale = await this.#ctx.store.staleClaims(now - this.#nameExpiry, NAME_SWEEP_BATCH);
      for (const claim of stale) {
        if (this.#ctx.broker.isOnline(claim.name)) {
          // Connected all along: seen now.
          await this.#ctx.store.claimName(claim.name, claim.session, now, false);
        } else if (await this.release(claim.name, claim.session, now - this.#nameExpiry)) {
          this.#ctx.log.info(`Released the name "${claim.name}": not seen for the name expiry`);
        }
      }
      // A full batch: more may be waiting, go on at the next tick.
      if (stale.length === NAME_SWEEP_BATCH) this.#swept = -Infinity;
    } catch (err) {
      this.#ctx.log.warn(`Could not release expired names: ${(err as Error).message}`);
    } finally {
      this.#sweeping = false;
    }
  }
}
