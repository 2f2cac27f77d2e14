/**
 * Where Web Push state lives: each user's push subscriptions (one per
 * browser or device, belonging to the session that made it), each user's
 * notification levels per conversation, and which users have a visible
 * connection on which node.
 *
 * One interface, three backends like the message store: in memory (the
 * default), in the `--data` SQLite file, and in Redis (`--redis`), where every
 * node shares it. `tests/push_store_contract.ts` runs one suite against each.
 *
 * User names are compared ignoring case (as accounts are); conversation keys
 * (`#room`, `@peer`) are kept as given.
 *
 * @module
 */
import { DEFAULT_DM_LEVEL, DEFAULT_ROOM_LEVEL, type NotifyLevel } from "../../protocol.ts";

/** Most subscriptions (devices) one user keeps; subscribing one more drops the oldest. */
export const MAX_SUBSCRIPTIONS_PER_USER = 10;

/** Most notification levels one user keeps (levels equal to the default are not kept). */
export const MAX_LEVELS_PER_USER = 500;

/** One device's push subscription. */
export interface PushSubscriptionRecord {
  /** The push service URL: unique, the subscription's key. */
  endpoint: string;
  /** The device's P-256 public key, base64url (65 bytes). */
  p256dh: string;
  /** The device's auth secret, base64url (16 bytes). */
  auth: string;
  /** The user it belongs to, as spelled when it was made. */
  user: string;
  /** The session (token lineage) that made it: signing that session out removes it. */
  session: string;
  /**
   * The user's credential fingerprint when it was made (`Auth.fingerprint`):
   * once the credentials change (a password change, every session signed
   * out, the account removed) it no longer matches, and the subscription is
   * dropped instead of used.
   */
  fp: string;
  /** When it was made or last renewed (ms since the epoch): the oldest goes first. */
  at: number;
}

/** What {@link PushStore.subscribe} did. */
export type Subscribed =
  /** Kept; `dropped` are the user's oldest endpoints that went to stay within the cap. */
  | { ok: true; dropped: string[] }
  /** The endpoint is another user's, with other keys: left as it is. */
  | { ok: false };

/** Push subscriptions, notification levels and visibility, shared by the nodes. */
export interface PushStore {
  /**
   * Keeps a subscription (an endpoint subscribed again is replaced: new
   * keys, session and time). An endpoint another user holds moves to this
   * one only when the keys are the same (the same browser, its previous
   * user's session lapsed without signing out); else it is refused. Past
   * `max` subscriptions for the user, the oldest go.
   */
  subscribe(sub: PushSubscriptionRecord, max?: number): Promise<Subscribed>;
  /** Removes `endpoint` if it is `user`'s; false when it is not (someone else's, or none). */
  unsubscribe(user: string, endpoint: string): Promise<boolean>;
  /** Removes `endpoint` whoever holds it (the push service said it is gone). */
  drop(endpoint: string): Promise<void>;
  /** The user's subscriptions, oldest first. */
  subscriptions(user: string): Promise<PushSubscriptionRecord[]>;
  /**
   * Whether anyone may hold a subscription: never false while one is kept
   * (it may stay true once all are gone). Lets a chat where nobody turned
   * pushes on skip reading each message's recipients.
   */
  anySubscriptions(): Promise<boolean>;
  /** The subscription of `endpoint`, whoever holds it, or null. */
  get(endpoint: string): Promise<PushSubscriptionRecord | null>;
  /** Removes the subscriptions `session` made; resolves how many. */
  forgetSession(user: string, session: string): Promise<number>;
  /**
   * After a password change: removes every subscription of the user except
   * those of `keep`, which move to the session `to` and the fingerprint `fp`
   * when given.
   */
  keepSession(user: string, keep: string, to?: string, fp?: string): Promise<void>;
  /** Removes every subscription of the user (signed out everywhere). */
  forgetSubscriptions(user: string): Promise<void>;
  /** Removes everything of the user: subscriptions and levels (the account is gone). */
  forgetUser(user: string): Promise<void>;

  /**
   * Sets the user's level of `conv` (`#room` or `@peer`); `null` removes it
   * (the default applies). False when the user keeps {@link MAX_LEVELS_PER_USER}
   * levels already and this is a new one.
   */
  setLevel(user: string, conv: string, level: NotifyLevel | null): Promise<boolean>;
  /** The user's levels, conversation key → level. */
  levels(user: string): Promise<Record<string, NotifyLevel>>;
  /** The levels of `conv` that `users` set (absent: the default), by user as given. */
  levelsOf(conv: string, users: string[]): Promise<Map<string, NotifyLevel>>;
  /** Every level set of `conv`, by lower-cased user name (a room's message reads it once). */
  convLevels(conv: string): Promise<Map<string, NotifyLevel>>;
  /** A room was renamed: its levels (`#room`) move to `#to`, replacing any there. */
  renameRoom(room: string, to: string): Promise<void>;

  /**
   * Message pushes of `conv` were sent to `endpoints`: remembered for `ttl`
   * ms, or until {@link takeNotified} takes them (a `read` push goes only to
   * endpoints that were sent a message push since the last read).
   */
  notified(endpoints: string[], conv: string, ttl: number): Promise<void>;
  /** Which of `endpoints` were sent a message push of `conv` since; forgets them. */
  takeNotified(endpoints: string[], conv: string): Promise<Set<string>>;

  /**
   * Users have (or no longer have) a visible connection on `node` (user →
   * visible), in one write: a storm of sign-ins costs one call per event-loop
   * turn, not one each. Kept for `ttl` ms unless {@link heartbeat} renews it:
   * a node that dies stops counting after that.
   */
  setVisibleMany(node: string, changes: ReadonlyMap<string, boolean>, ttl: number): Promise<void>;
  /** Everyone with a visible connection on `node` now (the whole set, replacing it), for `ttl` ms. */
  heartbeat(node: string, users: string[], ttl: number): Promise<void>;
  /** Which of `users` have a visible connection on any live node, as given. */
  visibleUsers(users: string[]): Promise<Set<string>>;
  /** A node stops: its visible users stop counting at once. */
  leave(node: string): Promise<void>;

  /** Stops answering (a store sharing another's connection leaves it open). */
  close(): Promise<void>;
}

/** Whether `level` is what a conversation has when nobody set it. */
export function isDefaultLevel(conv: string, level: NotifyLevel): boolean {
  return level === (conv.startsWith("@") ? DEFAULT_DM_LEVEL : DEFAULT_ROOM_LEVEL);
}
