/**
 * The push store of a server without `--data` or `--redis`: everything in
 * memory, gone at restart. The web app sends its subscription again
 * (`push_subscribe`) with every `welcome`, so a browser's subscription is
 * back as soon as it reconnects; subscribing the same endpoint and keys
 * again only renews its time.
 * Visibility is kept here by the SQLite store too: one process, one node.
 *
 * @module
 */
import type { NotifyLevel } from "../../protocol.ts";
import {
  MAX_LEVELS_PER_USER,
  MAX_SUBSCRIPTIONS_PER_USER,
  type PushStore,
  type PushSubscriptionRecord,
  type Subscribed,
} from "./push_store.ts";

/** Which users are visible on which node, until when (ms). */
export class VisibleSet {
  #nodes = new Map<string, { users: Set<string>; until: number }>();
  #now: () => number;

  /** Uses `now` as the clock. */
  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  #node(node: string, ttl: number): Set<string> {
    let entry = this.#nodes.get(node);
    const until = this.#now() + ttl;
    if (!entry || entry.until <= this.#now()) {
      entry = { users: new Set(), until };
      this.#nodes.set(node, entry);
    }
    entry.until = until;
    return entry.users;
  }

  /** See {@link PushStore.setVisible}. */
  set(node: string, user: string, visible: boolean, ttl: number): void {
    const users = this.#node(node, ttl);
    if (visible) users.add(user.toLowerCase());
    else users.delete(user.toLowerCase());
  }

  /** See {@link PushStore.heartbeat}. */
  heartbeat(node: string, users: string[], ttl: number): void {
    this.#nodes.set(node, {
      users: new Set(users.map((u) => u.toLowerCase())),
      until: this.#now() + ttl,
    });
  }

  /** See {@link PushStore.visibleUsers}. */
  visible(users: string[]): Set<string> {
    const now = this.#now();
    const out = new Set<string>();
    for (const [node, entry] of this.#nodes) {
      if (entry.until <= now) {
        this.#nodes.delete(node);
        continue;
      }
      for (const u of users) if (entry.users.has(u.toLowerCase())) out.add(u);
    }
    return out;
  }

  /** See {@link PushStore.leave}. */
  leave(node: string): void {
    this.#nodes.delete(node);
  }
}

/** Most endpoint+conversation pairs a {@link NotifiedSet} keeps; the oldest go beyond. */
const MAX_NOTIFIED = 100_000;

/** Which endpoints were sent a message push of which conversation, until when (ms). */
export class NotifiedSet {
  /** endpoint\nconv → until (insertion order: oldest first). */
  #pairs = new Map<string, number>();
  #now: () => number;

  /** Uses `now` as the clock. */
  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** See {@link PushStore.notified}. */
  add(endpoints: string[], conv: string, ttl: number): void {
    const until = this.#now() + ttl;
    for (const e of endpoints) {
      const key = `${e}\n${conv}`;
      this.#pairs.delete(key);
      this.#pairs.set(key, until);
    }
    if (this.#pairs.size <= MAX_NOTIFIED) return;
    const now = this.#now();
    for (const [key, at] of this.#pairs) {
      if (this.#pairs.size <= MAX_NOTIFIED && at > now) break;
      this.#pairs.delete(key);
    }
  }

  /** See {@link PushStore.takeNotified}. */
  take(endpoints: string[], conv: string): Set<string> {
    const out = new Set<string>();
    const now = this.#now();
    for (const e of endpoints) {
      const key = `${e}\n${conv}`;
      const until = this.#pairs.get(key);
      if (until === undefined) continue;
      this.#pairs.delete(key);
      if (until > now) out.add(e);
    }
    return out;
  }
}

/** Options for {@link MemoryPushStore}. */
export interface MemoryPushStoreOptions {
  /** Clock in ms (visibility expiry). @default {Date.now} */
  now?: () => number;
}

/** A {@link PushStore} in memory. */
export class MemoryPushStore implements PushStore {
  /** endpoint → subscription. */
  #subs = new Map<string, PushSubscriptionRecord>();
  /** folded user → their endpoints. */
  #byUser = new Map<string, Set<string>>();
  /** folded user → conv → level. */
  #levels = new Map<string, Map<string, NotifyLevel>>();
  #visible: VisibleSet;
  #notified: NotifiedSet;

  /** An empty store. */
  constructor(options: MemoryPushStoreOptions = {}) {
    this.#visible = new VisibleSet(options.now);
    this.#notified = new NotifiedSet(options.now);
  }

  anySubscriptions(): Promise<boolean> {
    return Promise.resolve(this.#subs.size > 0);
  }

  subscribe(sub: PushSubscriptionRecord, max = MAX_SUBSCRIPTIONS_PER_USER): Promise<Subscribed> {
    const held = this.#subs.get(sub.endpoint);
    if (
      held && !same(held.user, sub.user) && (held.p256dh !== sub.p256dh || held.auth !== sub.auth)
    ) {
      return Promise.resolve({ ok: false });
    }
    this.#remove(sub.endpoint);
    this.#add({ ...sub });
    const mine = this.#of(sub.user);
    const dropped: string[] = [];
    while (mine.length - dropped.length > max) {
      const oldest = mine[dropped.length];
      dropped.push(oldest.endpoint);
      this.#remove(oldest.endpoint);
    }
    return Promise.resolve({ ok: true, dropped });
  }

  unsubscribe(user: string, endpoint: string): Promise<boolean> {
    const held = this.#subs.get(endpoint);
    if (!held || !same(held.user, user)) return Promise.resolve(false);
    this.#remove(endpoint);
    return Promise.resolve(true);
  }

  drop(endpoint: string): Promise<void> {
    this.#remove(endpoint);
    return Promise.resolve();
  }

  subscriptions(user: string): Promise<PushSubscriptionRecord[]> {
    return Promise.resolve(this.#of(user).map((s) => ({ ...s })));
  }

  get(endpoint: string): Promise<PushSubscriptionRecord | null> {
    const held = this.#subs.get(endpoint);
    return Promise.resolve(held ? { ...held } : null);
  }

  forgetSession(user: string, session: string): Promise<number> {
    let n = 0;
    for (const s of this.#of(user)) {
      if (s.session !== session) continue;
      this.#remove(s.endpoint);
      n++;
    }
    return Promise.resolve(n);
  }

  keepSession(user: string, keep: string, to?: string, fp?: string): Promise<void> {
    for (const s of this.#of(user)) {
      if (s.session !== keep) {
        this.#remove(s.endpoint);
        continue;
      }
      if (to !== undefined) s.session = to;
      if (fp !== undefined) s.fp = fp;
    }
    return Promise.resolve();
  }

  forgetSubscriptions(user: string): Promise<void> {
    for (const s of this.#of(user)) this.#remove(s.endpoint);
    return Promise.resolve();
  }

  async forgetUser(user: string): Promise<void> {
    await this.forgetSubscriptions(user);
    this.#levels.delete(user.toLowerCase());
  }

  setLevel(user: string, conv: string, level: NotifyLevel | null): Promise<boolean> {
    const key = user.toLowerCase();
    let mine = this.#levels.get(key);
    if (level === null) {
      mine?.delete(conv);
      if (mine?.size === 0) this.#levels.delete(key);
      return Promise.resolve(true);
    }
    if (!mine) this.#levels.set(key, mine = new Map());
    if (!mine.has(conv) && mine.size >= MAX_LEVELS_PER_USER) return Promise.resolve(false);
    mine.set(conv, level);
    return Promise.resolve(true);
  }

  levels(user: string): Promise<Record<string, NotifyLevel>> {
    return Promise.resolve(Object.fromEntries(this.#levels.get(user.toLowerCase()) ?? []));
  }

  levelsOf(conv: string, users: string[]): Promise<Map<string, NotifyLevel>> {
    const out = new Map<string, NotifyLevel>();
    for (const u of users) {
      const level = this.#levels.get(u.toLowerCase())?.get(conv);
      if (level !== undefined) out.set(u, level);
    }
    return Promise.resolve(out);
  }

  convLevels(conv: string): Promise<Map<string, NotifyLevel>> {
    const out = new Map<string, NotifyLevel>();
    for (const [user, mine] of this.#levels) {
      const level = mine.get(conv);
      if (level !== undefined) out.set(user, level);
    }
    return Promise.resolve(out);
  }

  renameRoom(room: string, to: string): Promise<void> {
    const from = `#${room}`, next = `#${to}`;
    for (const mine of this.#levels.values()) {
      const level = mine.get(from);
      mine.delete(next);
      if (level === undefined) continue;
      mine.delete(from);
      mine.set(next, level);
    }
    return Promise.resolve();
  }

  notified(endpoints: string[], conv: string, ttl: number): Promise<void> {
    this.#notified.add(endpoints, conv, ttl);
    return Promise.resolve();
  }

  takeNotified(endpoints: string[], conv: string): Promise<Set<string>> {
    return Promise.resolve(this.#notified.take(endpoints, conv));
  }

  setVisibleMany(node: string, changes: ReadonlyMap<string, boolean>, ttl: number): Promise<void> {
    for (const [user, visible] of changes) this.#visible.set(node, user, visible, ttl);
    return Promise.resolve();
  }

  heartbeat(node: string, users: string[], ttl: number): Promise<void> {
    this.#visible.heartbeat(node, users, ttl);
    return Promise.resolve();
  }

  visibleUsers(users: string[]): Promise<Set<string>> {
    return Promise.resolve(this.#visible.visible(users));
  }

  leave(node: string): Promise<void> {
    this.#visible.leave(node);
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** The user's subscriptions, oldest first (by time, then endpoint). */
  #of(user: string): PushSubscriptionRecord[] {
    const out: PushSubscriptionRecord[] = [];
    for (const e of this.#byUser.get(user.toLowerCase()) ?? []) out.push(this.#subs.get(e)!);
    return out.sort(byAge);
  }

  #add(sub: PushSubscriptionRecord): void {
    this.#subs.set(sub.endpoint, sub);
    const key = sub.user.toLowerCase();
    let mine = this.#byUser.get(key);
    if (!mine) this.#byUser.set(key, mine = new Set());
    mine.add(sub.endpoint);
  }

  #remove(endpoint: string): void {
    const held = this.#subs.get(endpoint);
    if (!held) return;
    this.#subs.delete(endpoint);
    const key = held.user.toLowerCase();
    const mine = this.#byUser.get(key);
    mine?.delete(endpoint);
    if (mine?.size === 0) this.#byUser.delete(key);
  }
}

/** Oldest first; the same millisecond by endpoint (every backend alike). */
export function byAge(a: PushSubscriptionRecord, b: PushSubscriptionRecord): number {
  return a.at - b.at || (a.endpoint < b.endpoint ? -1 : a.endpoint > b.endpoint ? 1 : 0);
}

function same(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}
