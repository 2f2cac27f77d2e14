/**
 * Sending Web Push messages: {@link PushSender} encrypts one payload for one
 * subscription (RFC 8291, aes128gcm), signs the request with the server's
 * VAPID key (RFC 8292) — both done by the `web-push` library — and posts it
 * with our own `fetch`, through {@link PinnedProxy} so that the connection
 * goes only to checked public addresses. {@link PushQueue} holds pushes for
 * delivery in the background: bounded, a few at a time, retried with
 * backoff, never blocking or throwing into the chat's delivery path.
 *
 * @module
 */
import { checkEndpoint } from "./endpoint.ts";
import { PinnedProxy } from "./pinned_proxy.ts";
import type { VapidKeys } from "./vapid.ts";
import type { Logger } from "../log.ts";

/** A browser's push subscription, as `PushSubscription.toJSON()` gives it. */
export interface PushTarget {
  /** The push service URL that delivers to this browser. */
  endpoint: string;
  /** The browser's keys, base64url. */
  keys: { p256dh: string; auth: string };
}

/** How one attempt ended: delivered, the subscription is gone, worth retrying, or not. */
export type SendResult = "ok" | "gone" | "retry" | "failed";

/** RFC 8030 urgency. */
export type Urgency = "very-low" | "low" | "normal" | "high";

/** Options for one push. */
export interface SendOptions {
  /** Seconds the push service keeps the message for an offline browser (RFC 8030 TTL). */
  ttl: number;
  /** Lets the push service save battery for unimportant pushes. @default {"normal"} */
  urgency?: Urgency;
  /** A newer push with the same topic replaces an undelivered older one (≤ 32 base64url characters). */
  topic?: string;
}

/** What {@link PushSender.deliver} found out. */
export interface SendOutcome {
  /** The verdict. */
  result: SendResult;
  /** The push service's HTTP status, when it answered. */
  status?: number;
  /** How long the push service asked us to wait (Retry-After), in ms. */
  retryAfterMs?: number;
  /** Why it did not succeed, for the log (never holds the endpoint's path). */
  reason?: string;
  /** No answer came within the sender's timeout. */
  timedOut?: boolean;
}

/**
 * Largest payload, in bytes, that fits the single 4096-byte record push
 * services must accept: 4096 − 86 (header) − 16 (tag) − 1 (delimiter).
 */
export const MAX_PAYLOAD_BYTES = 3993;

/** Options for {@link PushSender}. */
export interface PushSenderOptions {
  /** The server's VAPID keys and subject. */
  vapid: Pick<VapidKeys, "publicKey" | "privateKey" | "subject">;
  /** `--unsafe-push-endpoints`: allow http and private addresses, connect directly (tests only). @default {false} */
  unsafe?: boolean;
  /** Time for one request, connection to response body, in ms. @default {5000} */
  timeout?: number;
  /** Resolves host names for the address check (tests). @default {the system resolver} */
  resolve?: (hostname: string) => Promise<string[]>;
  /** Extra root certificates (tests). */
  caCerts?: string[];
}

interface RequestDetails {
  method: string;
  headers: Record<string, string | number>;
  body: Uint8Array | null;
}

type BuildRequest = (
  sub: PushTarget,
  payload: string,
  options: Record<string, unknown>,
) => RequestDetails;

let library: Promise<BuildRequest> | null = null;

/**
 * The library, loaded on first use: it reads environment variables as it
 * loads, which the chat client (same entry point, fewer permissions) may
 * not, and only a server that sends pushes needs it.
 */
function loadLibrary(): Promise<BuildRequest> {
  library ??= import("web-push").then((mod) => {
    const lib = (mod.default ?? mod) as { generateRequestDetails: BuildRequest };
    return lib.generateRequestDetails.bind(lib);
  });
  return library;
}

/** Sends one encrypted push at a time; safe to share. */
export class PushSender {
  #opts: PushSenderOptions;
  #proxy: PinnedProxy | null = null;
  #closed = false;

  /** Makes a sender; it opens its loopback proxy on first use. */
  constructor(opts: PushSenderOptions) {
    this.#opts = opts;
  }

  /** Sends `payload` (JSON text, at most {@link MAX_PAYLOAD_BYTES}) to `sub`. Never throws. */
  async send(sub: PushTarget, payload: string, opts: SendOptions): Promise<SendResult> {
    return (await this.deliver(sub, payload, opts)).result;
  }

  /** Like {@link PushSender.send}, with the status, Retry-After and reason; `signal` aborts it. */
  async deliver(
    sub: PushTarget,
    payload: string,
    opts: SendOptions & { signal?: AbortSignal },
  ): Promise<SendOutcome> {
    if (this.#closed) return { result: "retry", reason: "the sender is closed" };
    const unsafe = this.#opts.unsafe ?? false;
    const bad = checkEndpoint(sub?.endpoint, { unsafe });
    if (bad) return { result: "failed", reason: bad };
    const size = new TextEncoder().encode(payload).length;
    if (size > MAX_PAYLOAD_BYTES) {
      return {
        result: "failed",
        reason: `the payload is ${size} bytes, more than ${MAX_PAYLOAD_BYTES}`,
      };
    }
    let build: BuildRequest;
    try {
      build = await loadLibrary();
    } catch (err) {
      library = null;
      return { result: "failed", reason: `cannot load web-push: ${(err as Error).message}` };
    }
    let details: RequestDetails;
    try {
      details = build(sub, payload, {
        vapidDetails: this.#opts.vapid,
        TTL: Math.max(0, Math.floor(opts.ttl)),
        urgency: opts.urgency ?? "normal",
        ...(opts.topic ? { topic: opts.topic } : {}),
      });
    } catch (err) {
      return {
        result: "failed",
        reason: `cannot encrypt for this subscription: ${(err as Error).message}`,
      };
    }
    const headers = new Headers();
    for (const [k, v] of Object.entries(details.headers)) {
      // fetch sets the length itself.
      if (k.toLowerCase() !== "content-length") headers.set(k, String(v));
    }
    const url = new URL(sub.endpoint);
    const ac = new AbortController();
    const timeout = this.#opts.timeout ?? 5_000;
    const timer = setTimeout(
      () => ac.abort(new DOMException("timed out", "TimeoutError")),
      timeout,
    );
    const onAbort = () => ac.abort(opts.signal?.reason);
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    if (opts.signal?.aborted) onAbort();
    try {
      const init: RequestInit & { client?: Deno.HttpClient } = {
        method: "POST",
        headers,
        body: details.body ? new Uint8Array(details.body) : null,
        redirect: "manual",
        signal: ac.signal,
      };
      if (url.protocol === "https:" && !unsafe) init.client = this.#pinned().client;
      const res = await fetch(url, init);
      const text = await readSome(res, 512);
      return outcomeOf(res, text);
    } catch (err) {
      if (ac.signal.aborted) {
        const timedOut = (ac.signal.reason as Error)?.name === "TimeoutError";
        return timedOut
          ? { result: "retry", reason: `no answer within ${timeout} ms`, timedOut }
          : { result: "retry", reason: "aborted" };
      }
      const refused = this.#proxy?.takeRefusal(url.host);
      if (refused) return { result: "failed", reason: refused };
      // fetch's message names the URL: keep the endpoint's path (a capability) out of logs.
      const message = String((err as Error)?.message ?? err).replaceAll(url.href, url.origin)
        .replaceAll(sub.endpoint, url.origin);
      return { result: "retry", reason: `cannot reach the push service: ${message}` };
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Closes the loopback proxy and its connections. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#proxy?.close();
  }

  #pinned(): PinnedProxy {
    this.#proxy ??= PinnedProxy.start({
      // A tunnel is not worth opening once the request it is for gave up.
      connectTimeout: Math.min(10_000, this.#opts.timeout ?? 5_000),
      resolve: this.#opts.resolve,
      caCerts: this.#opts.caCerts,
    });
    return this.#proxy;
  }
}

function outcomeOf(res: Response, text: string): SendOutcome {
  const status = res.status;
  if (status >= 200 && status < 300) return { result: "ok", status };
  const detail = text.replace(/[^\x20-\x7e]+/g, " ").trim().slice(0, 200);
  const reason = `the push service answered ${status}${detail ? `: ${detail}` : ""}`;
  if (status === 404 || status === 410) return { result: "gone", status, reason };
  if (status === 429 || status >= 500) {
    const retryAfterMs = parseRetryAfter(res.headers.get("retry-after"));
    return {
      result: "retry",
      status,
      reason,
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    };
  }
  // 3xx too: a push service does not redirect, and following one could lead anywhere.
  return { result: "failed", status, reason };
}

/** Retry-After as seconds or an HTTP date, in ms from now; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Up to `limit` bytes of the body as text; the rest is cancelled so a large answer costs nothing. */
async function readSome(res: Response, limit: number): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  try {
    while (n < limit) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      n += value.length;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const all = new Uint8Array(n);
  let off = 0;
  for (const c of chunks) {
    all.set(c, off);
    off += c.length;
  }
  return new TextDecoder().decode(all.subarray(0, limit));
}

/** What {@link PushQueue} needs of a sender. */
export interface Deliverer {
  /** One attempt; must not throw (a throw counts as "retry"). */
  deliver(
    sub: PushTarget,
    payload: string,
    opts: SendOptions & { signal?: AbortSignal },
  ): Promise<SendOutcome>;
}

/** Options of one push in {@link PushQueue.enqueue}. */
export interface EnqueueOptions extends SendOptions {
  /**
   * The user it is for: a user's pushes have at most `maxPerUser` requests in
   * flight, and a full queue drops from the user with the most waiting.
   * @default {each endpoint counts as a user of its own}
   */
  user?: string;
}

/** Options for {@link PushQueue}. */
export interface PushQueueOptions {
  /** Told when a push service says a subscription no longer exists (404/410): remove it. */
  onGone?: (endpoint: string) => void | Promise<void>;
  /**
   * Asked just before each attempt whether the subscription is still kept,
   * with the same keys (a session signed out meanwhile, the user banned): a
   * push whose subscription went is dropped, not sent.
   * @default {every subscription is}
   */
  stillSubscribed?: (sub: PushTarget) => boolean | Promise<boolean>;
  /** Where failures are logged, once per push service and kind of failure. */
  log?: Logger;
  /** Pushes waiting at most, over all endpoints; beyond, the user with the most waiting loses their oldest. @default {10000} */
  maxQueued?: number;
  /** Pushes waiting at most for one endpoint; its oldest is dropped beyond. @default {50} */
  maxPerEndpoint?: number;
  /** Requests in flight at most. @default {16} */
  concurrency?: number;
  /** Requests in flight at most to one push service host (1 while its last request timed out). @default {4} */
  maxPerHost?: number;
  /** Requests in flight at most for one user's pushes. @default {2} */
  maxPerUser?: number;
  /** Attempts per push at most. @default {5} */
  maxAttempts?: number;
  /** First retry delay, in ms; doubles with each failure of the endpoint. @default {1000} */
  baseDelay?: number;
  /** Longest backoff, in ms (a Retry-After may ask for longer, within the push's TTL). @default {300000} */
  maxDelay?: number;
  /** Random numbers in [0, 1) for the jitter (tests). @default {Math.random} */
  random?: () => number;
}

/** Counters of a {@link PushQueue} since it started. */
export interface PushQueueStats {
  /** Waiting now (including those backing off). */
  queued: number;
  /** Requests in flight now. */
  inFlight: number;
  /** Delivered. */
  sent: number;
  /** Dropped because their subscription is gone. */
  gone: number;
  /** Refused by the push service or the checks, or out of attempts. */
  failed: number;
  /** Attempts that will be retried. */
  retried: number;
  /** Dropped because a queue was full. */
  dropped: number;
  /** Dropped because their TTL ran out before delivery. */
  expired: number;
  /** Dropped because their subscription was no longer kept when their turn came. */
  unsubscribed: number;
}

type Counter = "sent" | "gone" | "failed" | "dropped" | "expired" | "unsubscribed";

interface Job {
  sub: PushTarget;
  payload: string;
  urgency?: Urgency;
  topic?: string;
  expiresAt: number;
  attempts: number;
  /** The key of its user's {@link Bucket}. */
  user: string;
  state: "waiting" | "flight" | "done";
}

interface EndpointState {
  jobs: Job[];
  host: string;
  busy: boolean;
  /** Waiting in a host's or user's `parked` for a free slot. */
  parked: boolean;
  failures: number;
  until: number;
  timer?: ReturnType<typeof setTimeout>;
}

/** Requests in flight to one host or for one user, and endpoints waiting for a slot there. */
interface Bucket {
  inFlight: number;
  parked: Set<string>;
  /** Hosts: the last request timed out (one request at a time until one is answered). */
  slow: boolean;
  /** Users: their jobs (finished ones are skipped and pruned lazily), oldest first. */
  jobs: Job[];
  /** Users: how many of `jobs` wait. */
  waiting: number;
}

/** Longest delay setTimeout takes (2^31 − 1 ms); longer ones fire at once. */
const MAX_TIMER = 2 ** 31 - 1;

/**
 * Pushes waiting for delivery. {@link PushQueue.enqueue} returns at once and
 * never throws; one request per endpoint at a time, at most `maxPerHost` to
 * one push service (one while it does not answer), `maxPerUser` for one
 * user's devices and `concurrency` in all, so that one member's slow
 * endpoints cannot hold up everyone's pushes; an endpoint that fails backs
 * off exponentially with jitter (or as its Retry-After says, within the
 * push's TTL) and a push is given up after `maxAttempts` or when its TTL
 * would run out.
 */
export class PushQueue {
  #sender: Deliverer;
  #opts: Required<Omit<PushQueueOptions, "onGone" | "log" | "stillSubscribed">>;
  #onGone?: (endpoint: string) => void | Promise<void>;
  #stillSubscribed?: (sub: PushTarget) => boolean | Promise<boolean>;
  #log?: Logger;
  #eps = new Map<string, EndpointState>();
  #ready = new Set<string>();
  #hosts = new Map<string, Bucket>();
  #users = new Map<string, Bucket>();
  #waiting = 0;
  #flights = new Set<Promise<void>>();
  #abort = new AbortController();
  #closed = false;
  #idle: (() => void)[] = [];
  #logged = new Set<string>();
  #stats = {
    sent: 0,
    gone: 0,
    failed: 0,
    retried: 0,
    dropped: 0,
    expired: 0,
    unsubscribed: 0,
  };

  /** A queue that delivers through `sender`. */
  constructor(sender: Deliverer, opts: PushQueueOptions = {}) {
    this.#sender = sender;
    this.#onGone = opts.onGone;
    this.#stillSubscribed = opts.stillSubscribed;
    this.#log = opts.log;
    this.#opts = {
      maxQueued: opts.maxQueued ?? 10_000,
      maxPerEndpoint: opts.maxPerEndpoint ?? 50,
      concurrency: opts.concurrency ?? 16,
      maxPerHost: Math.max(1, opts.maxPerHost ?? 4),
      maxPerUser: Math.max(1, opts.maxPerUser ?? 2),
      maxAttempts: opts.maxAttempts ?? 5,
      baseDelay: opts.baseDelay ?? 1000,
      maxDelay: opts.maxDelay ?? 300_000,
      random: opts.random ?? Math.random,
    };
  }

  /** Counters; see {@link PushQueueStats}. */
  get stats(): PushQueueStats {
    return { queued: this.#waiting, inFlight: this.#flights.size, ...this.#stats };
  }

  /** Queues one push; returns at once, never throws, ignored after {@link PushQueue.close}. */
  enqueue(sub: PushTarget, payload: string, opts: EnqueueOptions): void {
    if (this.#closed) return;
    try {
      const endpoint = sub.endpoint;
      const job: Job = {
        sub,
        payload,
        urgency: opts.urgency,
        topic: opts.topic,
        expiresAt: Date.now() + Math.max(0, opts.ttl) * 1000,
        attempts: 0,
        user: opts.user !== undefined ? `u:${opts.user.toLowerCase()}` : `e:${endpoint}`,
        state: "waiting",
      };
      let ep = this.#eps.get(endpoint);
      if (!ep) {
        ep = {
          jobs: [],
          host: hostOf(endpoint),
          busy: false,
          parked: false,
          failures: 0,
          until: 0,
        };
        this.#eps.set(endpoint, ep);
      }
      while (ep.jobs.length >= this.#opts.maxPerEndpoint) {
        this.#finish(ep.jobs.shift()!, "dropped");
      }
      ep.jobs.push(job);
      const user = this.#bucket(this.#users, job.user);
      user.jobs.push(job);
      user.waiting++;
      this.#waiting++;
      while (this.#waiting > this.#opts.maxQueued) this.#dropFromLargest();
      if (user.jobs.length > 2 * user.waiting + 16) {
        user.jobs = user.jobs.filter((j) => j.state !== "done");
      }
      this.#settle(endpoint, ep);
      this.#pump();
    } catch (err) {
      this.#stats.failed++;
      this.#logOnce("enqueue", `Cannot queue a push: ${(err as Error).message}`);
    }
  }

  /** Resolves when nothing waits and nothing is in flight (or the queue is closed). */
  idle(): Promise<void> {
    if (this.#closed || (this.#waiting === 0 && this.#flights.size === 0)) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Stops: cancels retries, aborts requests in flight and waits for them; waiting pushes are discarded. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const ep of this.#eps.values()) clearTimeout(ep.timer);
    this.#abort.abort();
    await Promise.allSettled([...this.#flights]);
    this.#eps.clear();
    this.#ready.clear();
    this.#hosts.clear();
    this.#users.clear();
    this.#waiting = 0;
    this.#wakeIdle();
  }

  #bucket(map: Map<string, Bucket>, key: string): Bucket {
    let b = map.get(key);
    if (!b) map.set(key, b = { inFlight: 0, parked: new Set(), slow: false, jobs: [], waiting: 0 });
    return b;
  }

  #hostCap(host: Bucket): number {
    return host.slow ? 1 : this.#opts.maxPerHost;
  }

  /** Moves up to `n` endpoints parked in `b` back to the ready ones. */
  #release(b: Bucket, n: number): void {
    for (const endpoint of b.parked) {
      if (n <= 0) break;
      b.parked.delete(endpoint);
      const ep = this.#eps.get(endpoint);
      if (!ep) continue;
      ep.parked = false;
      this.#settle(endpoint, ep);
      // One with nothing left to send takes no slot.
      if (ep.jobs.length > 0) n--;
    }
  }

  #pump(): void {
    while (!this.#closed && this.#flights.size < this.#opts.concurrency && this.#ready.size > 0) {
      const endpoint: string = this.#ready.values().next().value!;
      this.#ready.delete(endpoint);
      const ep = this.#eps.get(endpoint);
      const job = ep?.jobs[0];
      if (!ep || !job) {
        if (ep) this.#settle(endpoint, ep);
        continue;
      }
      if (Date.now() >= job.expiresAt) {
        ep.jobs.shift();
        this.#finish(job, "expired");
        this.#settle(endpoint, ep);
        continue;
      }
      const host = this.#bucket(this.#hosts, ep.host);
      const user = this.#bucket(this.#users, job.user);
      const userFree = user.inFlight < this.#opts.maxPerUser;
      const hostFree = host.inFlight < this.#hostCap(host);
      if (!hostFree || !userFree) {
        // Waits for a slot where it is full; a slot this leaves free elsewhere goes to another.
        ep.parked = true;
        if (!hostFree) {
          host.parked.add(endpoint);
          if (userFree) this.#release(user, 1);
        } else {
          user.parked.add(endpoint);
          this.#release(host, 1);
        }
        continue;
      }
      ep.jobs.shift();
      this.#waiting--;
      user.waiting--;
      job.state = "flight";
      ep.busy = true;
      host.inFlight++;
      user.inFlight++;
      const flight = this.#run(endpoint, ep, job).catch((err) =>
        this.#logOnce("run", `Push queue error: ${(err as Error)?.message ?? err}`)
      );
      this.#flights.add(flight);
      flight.finally(() => {
        this.#flights.delete(flight);
        host.inFlight--;
        user.inFlight--;
        if (!this.#closed) {
          this.#release(host, this.#hostCap(host) - host.inFlight);
          this.#release(user, this.#opts.maxPerUser - user.inFlight);
          this.#prune(this.#hosts, ep.host, host);
          this.#prune(this.#users, job.user, user);
        }
        this.#pump();
      });
    }
    this.#wakeIdle();
  }

  /** Forgets a bucket with nothing in it (a slow host is remembered, up to a bound). */
  #prune(map: Map<string, Bucket>, key: string, b: Bucket): void {
    if (b.inFlight > 0 || b.parked.size > 0 || b.waiting > 0) return;
    if (b.slow && this.#hosts.size < 1000) return;
    if (map.get(key) === b) map.delete(key);
  }

  async #run(endpoint: string, ep: EndpointState, job: Job): Promise<void> {
    let out: SendOutcome = { result: "retry" };
    let unsubscribed = false;
    try {
      if (this.#stillSubscribed && !(await this.#stillSubscribed(job.sub))) {
        unsubscribed = true;
      } else {
        out = await this.#sender.deliver(job.sub, job.payload, {
          ttl: Math.max(0, Math.ceil((job.expiresAt - Date.now()) / 1000)),
          urgency: job.urgency,
          topic: job.topic,
          signal: this.#abort.signal,
        });
      }
    } catch (err) {
      out = { result: "retry", reason: (err as Error)?.message ?? String(err) };
    }
    ep.busy = false;
    if (this.#closed) return;
    const host = this.#hosts.get(ep.host);
    if (host) {
      if (out.timedOut) host.slow = true;
      else if (out.status !== undefined) host.slow = false;
    }
    if (unsubscribed) {
      // The store no longer keeps it: nothing waiting for it goes either.
      this.#finish(job, "unsubscribed");
      for (const other of ep.jobs.splice(0)) this.#finish(other, "unsubscribed");
      this.#settle(endpoint, ep);
      return;
    }
    job.attempts++;
    const origin = originOf(endpoint);
    switch (out.result) {
      case "ok":
        ep.failures = 0;
        this.#finish(job, "sent");
        break;
      case "gone":
        this.#finish(job, "gone");
        for (const other of ep.jobs.splice(0)) this.#finish(other, "gone");
        this.#eps.delete(endpoint);
        this.#ready.delete(endpoint);
        clearTimeout(ep.timer);
        this.#callOnGone(endpoint);
        return;
      case "failed":
        this.#finish(job, "failed");
        this.#logOnce(
          `${origin} ${out.status ?? out.reason}`,
          `Push to ${origin} failed: ${out.reason}`,
        );
        break;
      default: {
        ep.failures++;
        const backoff = Math.min(
          this.#opts.maxDelay,
          this.#opts.baseDelay * 2 ** (ep.failures - 1),
        );
        const jittered = backoff / 2 + this.#opts.random() * backoff / 2;
        const asked = out.retryAfterMs !== undefined
          ? Math.max(out.retryAfterMs, jittered)
          : jittered;
        // Never past what the push may wait (nor what setTimeout can count).
        const delay = Math.max(0, Math.min(asked, job.expiresAt - Date.now(), MAX_TIMER));
        if (job.attempts >= this.#opts.maxAttempts) {
          this.#finish(job, "failed");
          this.#logOnce(
            `${origin} gave up`,
            `Push to ${origin} given up after ${job.attempts} attempts: ${out.reason}`,
          );
        } else if (Date.now() + asked >= job.expiresAt) {
          this.#finish(job, "expired");
        } else {
          job.state = "waiting";
          ep.jobs.unshift(job);
          this.#waiting++;
          const user = this.#bucket(this.#users, job.user);
          user.waiting++;
          if (!user.jobs.includes(job)) user.jobs.unshift(job);
          this.#stats.retried++;
        }
        ep.until = Date.now() + delay;
        ep.timer = setTimeout(() => {
          ep.timer = undefined;
          if (this.#closed) return;
          this.#settle(endpoint, ep);
          this.#pump();
        }, delay);
        return;
      }
    }
    this.#settle(endpoint, ep);
  }

  /** Makes an endpoint ready when it has work and may send, or forgets it when it has none. */
  #settle(endpoint: string, ep: EndpointState): void {
    if (ep.busy || ep.timer !== undefined || ep.parked) return;
    if (ep.jobs.length > 0) this.#ready.add(endpoint);
    else if (this.#eps.get(endpoint) === ep) {
      this.#eps.delete(endpoint);
      this.#ready.delete(endpoint);
    }
  }

  #finish(job: Job, how: Counter): void {
    if (job.state === "done") return;
    if (job.state === "waiting") {
      this.#waiting--;
      const user = this.#users.get(job.user);
      if (user) user.waiting--;
    }
    job.state = "done";
    this.#stats[how]++;
    const user = this.#users.get(job.user);
    if (user) this.#prune(this.#users, job.user, user);
  }

  /** The queue is full: the user with the most pushes waiting loses their oldest. */
  #dropFromLargest(): void {
    let largest: Bucket | null = null;
    for (const b of this.#users.values()) {
      if (b.waiting > 0 && (largest === null || b.waiting > largest.waiting)) largest = b;
    }
    if (largest === null) {
      // Cannot happen (the counts agree); stop rather than loop.
      this.#waiting = Math.min(this.#waiting, this.#opts.maxQueued);
      return;
    }
    const jobs = largest.jobs;
    let i = 0;
    while (i < jobs.length && jobs[i].state !== "waiting") i++;
    const job = jobs[i];
    // Finished jobs before it go with it; one in flight stays (it may wait again).
    largest.jobs = jobs.slice(0, i).filter((j) => j.state === "flight").concat(jobs.slice(i + 1));
    if (!job) return;
    const ep = this.#eps.get(job.sub.endpoint);
    const at = ep?.jobs.indexOf(job) ?? -1;
    if (ep && at !== -1) ep.jobs.splice(at, 1);
    this.#finish(job, "dropped");
  }

  #callOnGone(endpoint: string): void {
    if (!this.#onGone) return;
    try {
      Promise.resolve(this.#onGone(endpoint)).catch((err) =>
        this.#logOnce("onGone", `Cannot remove a gone push subscription: ${(err as Error).message}`)
      );
    } catch (err) {
      this.#logOnce("onGone", `Cannot remove a gone push subscription: ${(err as Error).message}`);
    }
  }

  #logOnce(key: string, message: string): void {
    if (this.#logged.has(key)) return;
    if (this.#logged.size >= 256) this.#logged.clear();
    this.#logged.add(key);
    this.#log?.warn(message);
  }

  #wakeIdle(): void {
    if (!this.#closed && (this.#waiting > 0 || this.#flights.size > 0)) return;
    for (const resolve of this.#idle.splice(0)) resolve();
  }
}

function originOf(endpoint: string): string {
  try {
    return new URL(endpoint).origin;
  } catch {
    return "an invalid endpoint";
  }
}

/** The host (with port) a request to `endpoint` goes to; the endpoint itself when it is no URL. */
function hostOf(endpoint: string): string {
  try {
    return new URL(endpoint).host;
  } catch {
    return String(endpoint);
  }
}
