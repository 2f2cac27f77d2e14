/**
 * Who gets a Web Push for a stored message, and for a conversation read
 * elsewhere. The node that stored a message calls {@link PushDispatcher.message}
 * once (a resend of the same ref is not fresh, and is never passed on), and
 * never waits for it: the work runs in a bounded queue of its own, and each
 * push goes to the {@link PushQueue}, which sends in the background.
 *
 * For a message, every member of the room (the peer of a DM) but the sender
 * whose level says so — `all`; `mentions` (a room's default) when the text
 * names them (`@name`) or the room (`@room`, `@here`); never `none` — and who
 * has no visible connection on any node, and is not banned, gets one push per
 * subscription.
 *
 * A `read` push (a conversation read on another device) shows no
 * notification, and browsers penalise pushes that show none (Chrome's "site
 * updated in the background", Safari ends the subscription): it goes only to
 * endpoints the store says were sent a message push of that conversation
 * since its last read ({@link PushStore.notified}), never to Apple's.
 *
 * @module
 */
import {
  type ChatMessage,
  DEFAULT_DM_LEVEL,
  DEFAULT_ROOM_LEVEL,
  mentionsIn,
  type PushMessagePayload,
  type PushReadPayload,
  snippetOf,
} from "../../protocol.ts";
import { createHmac, randomBytes } from "node:crypto";
import type { Logger } from "../log.ts";
import type { PushStore, PushSubscriptionRecord } from "./push_store.ts";
import type { EnqueueOptions } from "./send.ts";

/** Where pushes go: {@link PushQueue} (`enqueue` returns at once, never throws). */
export interface PushOutlet {
  enqueue(
    sub: { endpoint: string; keys: { p256dh: string; auth: string } },
    payload: string,
    opts: EnqueueOptions,
  ): void;
}

/** Options for {@link PushDispatcher}. */
export interface DispatcherOptions {
  /** Subscriptions, levels and visibility. */
  store: PushStore;
  /** A room's members now. */
  members: (room: string) => Promise<string[]>;
  /** Where pushes go. */
  out: PushOutlet;
  /** Pushes carry no text nor room name (`--push-content-free`). @default {false} */
  contentFree?: boolean;
  /** Where failures are logged. */
  log: Logger;
  /** Clock in ms. @default {Date.now} */
  now?: () => number;
  /** Messages waiting to be looked at, at most; beyond, new ones get no push. @default {1000} */
  maxPending?: number;
  /** Milliseconds between two `read` pushes of one user and conversation. @default {3000} */
  readInterval?: number;
  /**
   * Whether a subscription's credentials are still the user's (its `fp` is
   * their fingerprint now); one that is not is dropped instead of used.
   * @default {every subscription is}
   */
  current?: (sub: PushSubscriptionRecord) => boolean;
  /** Rooms with more members take `@room`/`@here` from admins only; 0: any size. @default {0} */
  roomMentionMax?: number;
  /** Whether a user is an admin (their `@room` counts in rooms of any size). @default {nobody is} */
  isAdmin?: (user: string) => boolean;
  /** Whether a user is banned now: they get no pushes. @default {nobody is} */
  banned?: (user: string) => boolean | Promise<boolean>;
}

/** Seconds a push service keeps a message push for an offline device. */
export const MESSAGE_TTL = 24 * 3600;

/** Seconds a push service keeps a `read` push: stale soon, and replaced by the next. */
export const READ_TTL = 3600;

/** Reads waiting for their interval, at most (users × conversations). */
const MAX_READS = 10_000;

/** `read` pushes one user's devices get per interval at most (a `read_all` moves many markers). */
const READS_PER_USER = 20;

/** A message's pushes: who, to which conversation key (`#room`/`@peer`), with what. */
type Job = { kind: "message"; msg: ChatMessage } | {
  kind: "read";
  user: string;
  conv: string;
  id: number;
};

/** Counters since start. */
export interface DispatchStats {
  /** Messages looked at. */
  messages: number;
  /** Pushes handed to the queue (messages and reads). */
  pushes: number;
  /** Messages or reads given up because the dispatcher's own queue was full. */
  dropped: number;
}

/**
 * How long "nobody has a push subscription" is believed before the store is
 * asked again (a first subscription on another node is seen this late).
 */
const ANY_RECHECK = 1000;

/** Decides who gets pushes and hands them to the queue. */
export class PushDispatcher {
  #store: PushStore;
  #members: (room: string) => Promise<string[]>;
  #out: PushOutlet;
  #contentFree: boolean;
  #log: Logger;
  #now: () => number;
  #maxPending: number;
  #readInterval: number;
  #current: (sub: PushSubscriptionRecord) => boolean;
  #roomMentionMax: number;
  #isAdmin: (user: string) => boolean;
  #banned: (user: string) => boolean | Promise<boolean>;
  #jobs: Job[] = [];
  #head = 0;
  #running: Promise<void> | null = null;
  #closed = false;
  /** user\nconv → when its last read push went and up to which id. */
  #reads = new Map<string, { at: number; id: number }>();
  /** user → read pushes sent in the current interval, and when it began. */
  #userReads = new Map<string, { at: number; n: number }>();
  /** user\nconv → the newest read waiting for its interval. */
  #waitingReads = new Map<string, { user: string; conv: string; id: number }>();
  /** Message keys looked at lately (conv\nid): a message is looked at once. */
  #seen = new Set<string>();
  #warned = -Infinity;
  #failedAt = -Infinity;
  #stats: DispatchStats = { messages: 0, pushes: 0, dropped: 0 };
  /**
   * Whether anyone may hold a subscription (null: not asked yet). True
   * sticks; false is asked again after {@link ANY_RECHECK} ms.
   */
  #any: boolean | null = null;
  #anyAt = -Infinity;

  /** A dispatcher on `options.store`, sending through `options.out`. */
  constructor(options: DispatcherOptions) {
    this.#store = options.store;
    this.#members = options.members;
    this.#out = options.out;
    this.#contentFree = options.contentFree ?? false;
    this.#log = options.log;
    this.#now = options.now ?? Date.now;
    this.#maxPending = options.maxPending ?? 1000;
    this.#readInterval = options.readInterval ?? 3000;
    this.#current = options.current ?? (() => true);
    this.#roomMentionMax = options.roomMentionMax ?? 0;
    this.#isAdmin = options.isAdmin ?? (() => false);
    this.#banned = options.banned ?? (() => false);
  }

  /** Counters since start. */
  get stats(): DispatchStats {
    return { ...this.#stats };
  }

  /** Pushes of content-free payloads. */
  get contentFree(): boolean {
    return this.#contentFree;
  }

  /**
   * A message was stored (fresh, on this node): its pushes go out in the
   * background. Returns at once, never throws.
   */
  message(msg: ChatMessage): void {
    // Nobody turned pushes on: no job, no read of the message's recipients.
    if (this.#any === false && this.#now() - this.#anyAt < ANY_RECHECK) return;
    const key = `${msg.room ?? `@${msg.from}:${msg.to}`}\n${msg.id}`;
    if (this.#seen.has(key)) return;
    this.#seen.add(key);
    if (this.#seen.size > 4 * this.#maxPending) {
      // Oldest first (insertion order): a message is never looked at long after it was stored.
      for (const k of this.#seen) {
        this.#seen.delete(k);
        if (this.#seen.size <= 2 * this.#maxPending) break;
      }
    }
    this.#add({ kind: "message", msg });
  }

  /**
   * `user` read `conv` (`#room` or `@peer`) up to `id` on some device: their
   * other devices close its notifications. At most one push per user and
   * conversation per interval (the newest id wins); returns at once.
   */
  read(user: string, conv: string, id: number): void {
    if (this.#closed) return;
    const key = `${user.toLowerCase()}\n${conv}`;
    const last = this.#reads.get(key);
    if (last && id <= last.id) return;
    if (last && this.#now() - last.at < this.#readInterval) {
      if (this.#waitingReads.size >= MAX_READS && !this.#waitingReads.has(key)) {
        this.#stats.dropped++;
        return;
      }
      this.#waitingReads.set(key, { user, conv, id });
      return;
    }
    if (!this.#allowRead(user)) {
      this.#stats.dropped++;
      return;
    }
    this.#reads.set(key, { at: this.#now(), id });
    this.#add({ kind: "read", user, conv, id });
  }

  /** Whether the user's devices may get one more `read` push in this interval. */
  #allowRead(user: string): boolean {
    const now = this.#now();
    const key = user.toLowerCase();
    let window = this.#userReads.get(key);
    if (!window || now - window.at >= this.#readInterval) {
      window = { at: now, n: 0 };
      this.#userReads.set(key, window);
    }
    if (window.n >= READS_PER_USER) return false;
    window.n++;
    return true;
  }

  /** Sends the reads whose interval passed; forgets old ones. Call often (the hub's tick). */
  tick(now: number = this.#now()): void {
    for (const [key, r] of this.#waitingReads) {
      const last = this.#reads.get(key);
      if (last && now - last.at < this.#readInterval) continue;
      if (!this.#allowRead(r.user)) continue;
      this.#waitingReads.delete(key);
      this.#reads.set(key, { at: now, id: r.id });
      this.#add({ kind: "read", ...r });
    }
    for (const [key, w] of this.#userReads) {
      if (now - w.at >= this.#readInterval) this.#userReads.delete(key);
    }
    if (this.#reads.size > MAX_READS) {
      for (const [key, r] of this.#reads) {
        if (now - r.at >= this.#readInterval && !this.#waitingReads.has(key)) {
          this.#reads.delete(key);
        }
      }
    }
  }

  /** Resolves when nothing waits to be looked at (tests). */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /** Stops taking work; resolves once the job under way is done. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#jobs = [];
    this.#head = 0;
    this.#waitingReads.clear();
    await this.idle();
  }

  #add(job: Job): void {
    if (this.#closed) return;
    if (this.#jobs.length - this.#head >= this.#maxPending) {
      this.#stats.dropped++;
      const now = this.#now();
      if (now - this.#warned > 60_000) {
        this.#warned = now;
        this.#log.warn(
          `Web Push: more than ${this.#maxPending} messages wait to be looked at; new ones get no push until the queue drains`,
        );
      }
      return;
    }
    this.#jobs.push(job);
    this.#running ??= this.#run();
  }

  async #run(): Promise<void> {
    // Runs after the caller returns: the send path never waits for any of this.
    await Promise.resolve();
    try {
      while (this.#head < this.#jobs.length && !this.#closed) {
        const job = this.#jobs[this.#head++];
        if (this.#head > 1024 && this.#head * 2 > this.#jobs.length) {
          this.#jobs = this.#jobs.slice(this.#head);
          this.#head = 0;
        }
        try {
          if (job.kind === "message") await this.#message(job.msg);
          else await this.#read(job.user, job.conv, job.id);
        } catch (err) {
          // Once a minute at most: a store that is away fails every message.
          const now = this.#now();
          if (now - this.#failedAt >= 60_000) {
            this.#failedAt = now;
            this.#log.warn(
              `Web Push: could not look at a ${job.kind} (some get no push): ${
                (err as Error).message
              }`,
            );
          }
        }
      }
    } finally {
      this.#jobs = this.#jobs.slice(this.#head);
      this.#head = 0;
      this.#running = null;
      if (this.#jobs.length > 0 && !this.#closed) this.#running = this.#run();
    }
  }

  /** A subscription was kept on this node: messages are looked at from now on. */
  subscribed(): void {
    this.#any = true;
  }

  async #message(msg: ChatMessage): Promise<void> {
    if (msg.deleted) return;
    if (this.#any !== true) {
      const any = await this.#store.anySubscriptions();
      // subscribed() may have said so while the store was asked: that stands.
      if ((this.#any as boolean | null) !== true) this.#any = any;
      this.#anyAt = this.#now();
      if (!this.#any) return;
    }
    this.#stats.messages++;
    const from = msg.from.toLowerCase();
    const room = msg.room;
    let recipients: string[];
    if (room === undefined) {
      const to = msg.to!;
      if (to.toLowerCase() === from) return;
      const level = (await this.#store.levelsOf(`@${msg.from}`, [to])).get(to) ?? DEFAULT_DM_LEVEL;
      recipients = level === "none" ? [] : [to];
    } else {
      const members = (await this.#members(room)).filter((m) => m.toLowerCase() !== from);
      if (members.length === 0) return;
      const mentions = mentionsIn(msg.text);
      const named = new Set(mentions.names);
      const max = this.#roomMentionMax;
      // In a large room, only an admin's @room reaches everyone.
      const everyone = mentions.room &&
        (max === 0 || members.length + 1 <= max || this.#isAdmin(msg.from));
      // One read of the levels set for the room (by folded name), not one per member.
      const levels = await this.#store.convLevels(`#${room}`);
      await this.#dropLeft(`#${room}`, levels, members, from);
      recipients = members.filter((m) => {
        const level = levels.get(m.toLowerCase()) ?? DEFAULT_ROOM_LEVEL;
        if (level === "all") return true;
        if (level === "none") return false;
        return everyone || named.has(m.toLowerCase());
      });
    }
    if (recipients.length === 0) return;
    const conv = room === undefined ? `@${msg.from}` : `#${room}`;
    const visible = await this.#store.visibleUsers(recipients);
    for (const user of recipients) {
      if (visible.has(user)) continue;
      const subs = await this.#subscriptions(user);
      if (subs.length === 0) continue;
      const payload = JSON.stringify(this.#messagePayload(msg, user));
      for (const sub of subs) {
        this.#send(sub, payload, {
          ttl: MESSAGE_TTL,
          urgency: "high",
          topic: topicOf("m", conv),
          user,
        });
      }
      // A later read of the conversation goes to these devices (and only these).
      const readable = subs.map((s) => s.endpoint).filter(takesReads);
      if (readable.length > 0) {
        await this.#store.notified(readable, convKey(conv), MESSAGE_TTL * 1000);
      }
    }
  }

  /**
   * Levels of a room set by people no longer in it (they left or were
   * kicked) go: they count toward the user's cap, and a room one is not in
   * cannot be set back.
   */
  async #dropLeft(
    conv: string,
    levels: Map<string, unknown>,
    members: string[],
    from: string,
  ): Promise<void> {
    if (levels.size === 0) return;
    const here = new Set(members.map((m) => m.toLowerCase()));
    here.add(from);
    for (const user of levels.keys()) {
      if (here.has(user)) continue;
      levels.delete(user);
      await this.#store.setLevel(user, conv, null).catch((err) =>
        this.#log.warn(`Could not drop a level of a room left: ${(err as Error).message}`)
      );
    }
  }

  async #read(user: string, conv: string, id: number): Promise<void> {
    const level = (await this.#store.levelsOf(conv, [user])).get(user);
    if (level === "none") return;
    const subs = (await this.#subscriptions(user)).filter((s) => takesReads(s.endpoint));
    if (subs.length === 0) return;
    // A read push shows no notification: only devices that may show one of
    // this conversation get it (browsers penalise pushes that show none).
    const notified = await this.#store.takeNotified(subs.map((s) => s.endpoint), convKey(conv));
    if (notified.size === 0) return;
    const payload: PushReadPayload = {
      v: 1,
      kind: "read",
      conv: this.#contentFree && conv.startsWith("#") ? "#" : conv,
      id,
    };
    const text = JSON.stringify(payload);
    for (const sub of subs) {
      if (!notified.has(sub.endpoint)) continue;
      this.#send(sub, text, { ttl: READ_TTL, urgency: "normal", topic: topicOf("r", conv), user });
    }
  }

  /**
   * The user's subscriptions that are still theirs: one made before their
   * credentials changed (a password change, every session signed out) is
   * dropped. A banned user has none.
   */
  async #subscriptions(user: string): Promise<PushSubscriptionRecord[]> {
    const subs = await this.#store.subscriptions(user);
    if (subs.length === 0 || await this.#banned(user)) return [];
    const kept = subs.filter((s) => this.#current(s));
    for (const s of subs) {
      if (kept.includes(s)) continue;
      await this.#store.drop(s.endpoint).catch((err) =>
        this.#log.warn(`Could not drop a stale push subscription: ${(err as Error).message}`)
      );
    }
    return kept;
  }

  #send(sub: PushSubscriptionRecord, payload: string, opts: EnqueueOptions): void {
    this.#stats.pushes++;
    this.#out.enqueue(
      { endpoint: sub.endpoint, keys: { p256dh: sub.p256dh, auth: sub.auth } },
      payload,
      opts,
    );
  }

  /** The payload `user` gets for `msg`. */
  #messagePayload(msg: ChatMessage, user: string): PushMessagePayload {
    const dm = msg.room === undefined;
    const conv = dm ? `@${msg.from}` : `#${msg.room}`;
    if (this.#contentFree) {
      return {
        v: 1,
        kind: "message",
        conv: dm ? conv : "#",
        id: msg.id,
        from: msg.from,
        title: `New message from ${msg.from}`,
        body: "",
        url: dm ? dmUrl(user, msg.from, msg.id) : "/",
      };
    }
    return {
      v: 1,
      kind: "message",
      conv,
      id: msg.id,
      from: msg.from,
      title: dm ? msg.from : `${msg.from} in #${msg.room}`,
      body: bodyOf(msg),
      url: dm ? dmUrl(user, msg.from, msg.id) : `/#/${msg.room}/${msg.id}`,
    };
  }
}

/** The link to a message of the DM between `me` and `peer`, as the web app's routes spell it. */
function dmUrl(me: string, peer: string, id: number): string {
  const [a, b] = [me, peer].sort((x, y) => x.localeCompare(y));
  return `/#/@${a}+${b}/${id}`;
}

/** What a notification shows of a message: its start on one line, or its files. */
function bodyOf(msg: ChatMessage): string {
  const text = snippetOf(msg.text);
  if (text !== "") return text;
  const files = msg.files ?? [];
  if (files.length === 0) return "";
  const names = files.map((f) => f.name).join(", ");
  return snippetOf(`📎 ${names}`);
}

/** The conversation key read tracking uses: names compared ignoring case. */
function convKey(conv: string): string {
  return conv.toLowerCase();
}

/**
 * Whether an endpoint may be sent `read` pushes, which show no notification:
 * Safari's push service (Apple) ends subscriptions whose pushes show none.
 */
export function takesReads(endpoint: string): boolean {
  try {
    const host = new URL(endpoint).hostname.toLowerCase();
    return host !== "push.apple.com" && !host.endsWith(".push.apple.com");
  } catch {
    return false;
  }
}

/** Keys the topics: the push service must not learn which conversation a push is about. */
const TOPIC_KEY = randomBytes(32);

/**
 * A push topic per conversation (`kind` m: messages, r: reads): a newer push
 * of a topic replaces an undelivered older one at the push service, as the
 * app shows one notification per conversation anyway. Push services see
 * topics in the clear: a keyed hash, random per process, tells them nothing.
 */
function topicOf(kind: string, conv: string): string {
  return kind + createHmac("sha256", TOPIC_KEY).update(conv).digest("base64url").slice(0, 22);
}
