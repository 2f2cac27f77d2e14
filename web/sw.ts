// This module is browser compatible.
/**
 * The service worker (bundled to `/sw.js`, scope `/`): keeps the app shell
 * for starting offline, shows Web Push notifications and opens the
 * conversation a notification is about.
 *
 * The server puts `self.CHAT_BUILD = {version, shell}` in front of the
 * bundle: the version is a hash of every file of the web app, so a new
 * server build is a new `/sw.js`, which the browser installs beside the
 * running one; the page then offers to reload (see `web/sw_client.ts`).
 *
 * Only the shell is cached, never anything of a user: `/api/`, `/ws` and
 * `/files/` always go to the network.
 *
 * @module
 */

/** What the server prepends to the bundle. */
interface Build {
  /** Content hash of the web app. */
  version: string;
  /** Paths of the app shell: `/`, the hashed bundle and stylesheet, icons, manifest. */
  shell: string[];
}

/** The push payload the server sends (see docs/web.md). */
export interface PushPayload {
  v: 1;
  kind: "message" | "read";
  /** Conversation key: `#room` or `@peer`. */
  conv: string;
  id?: number;
  from?: string;
  title?: string;
  body?: string;
  /** Where a click goes, e.g. `/#/dev/42`. */
  url?: string;
}

/** A message the page sends to the worker. */
export type PageMessage = { type: "skipWaiting" };

/** A message the worker sends to its pages. */
export type WorkerMessage = { type: "open"; url: string };

// The parts of the service worker scope used here (the DOM lib lacks them).
interface ExtendableEvent extends Event {
  waitUntil(p: Promise<unknown>): void;
}
interface FetchEvent extends ExtendableEvent {
  readonly request: Request;
  respondWith(r: Response | Promise<Response>): void;
}
interface PushEvent extends ExtendableEvent {
  readonly data: { json(): unknown; text(): string } | null;
}
interface NotificationEvent extends ExtendableEvent {
  readonly notification: Notification;
}
interface MessageEvent_ extends ExtendableEvent {
  readonly data: unknown;
}
interface WindowClient {
  readonly url: string;
  readonly focused: boolean;
  focus(): Promise<WindowClient>;
  postMessage(message: WorkerMessage): void;
}
interface Scope {
  CHAT_BUILD?: Build;
  readonly location: Location;
  readonly registration: ServiceWorkerRegistration;
  readonly clients: {
    matchAll(o: { type: "window"; includeUncontrolled: boolean }): Promise<WindowClient[]>;
    openWindow(url: string): Promise<WindowClient | null>;
    claim(): Promise<void>;
  };
  skipWaiting(): Promise<void>;
  addEventListener(type: "install" | "activate", fn: (e: ExtendableEvent) => void): void;
  addEventListener(type: "fetch", fn: (e: FetchEvent) => void): void;
  addEventListener(type: "push", fn: (e: PushEvent) => void): void;
  addEventListener(type: "notificationclick", fn: (e: NotificationEvent) => void): void;
  addEventListener(type: "message", fn: (e: MessageEvent_) => void): void;
}

const sw = globalThis as unknown as Scope;
const BUILD: Build = sw.CHAT_BUILD ?? { version: "dev", shell: ["/"] };
const PREFIX = "chat-shell-";
const CACHE = `${PREFIX}${BUILD.version}`;
/** Never cached, never answered from a cache: per-user or live. */
const NETWORK_ONLY = /^\/(api\/|ws$|files\/|healthz|metrics)/;

/**
 * An event a page made up (tests dispatch `notificationclick` themselves):
 * `waitUntil` throws for those, and the work goes on without it.
 */
function keep(e: ExtendableEvent, work: Promise<unknown>): void {
  try {
    e.waitUntil(work);
  } catch {
    // Not dispatched by the browser.
  }
}

sw.addEventListener("install", (e) => {
  keep(
    e,
    (async () => {
      const cache = await caches.open(CACHE);
      // Straight from the network: not an old copy from the HTTP cache.
      await cache.addAll(BUILD.shell.map((p) => new Request(p, { cache: "reload" })));
    })(),
  );
});

sw.addEventListener("activate", (e) => {
  keep(
    e,
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith(PREFIX) && name !== CACHE) await caches.delete(name);
      }
      await sw.clients.claim();
    })(),
  );
});

sw.addEventListener("fetch", (e) => {
  const req = e.request;
  if (req.method !== "GET") return;
  const url = new URL(req.url);
  if (url.origin !== sw.location.origin || NETWORK_ONLY.test(url.pathname)) return;
  const navigation = req.mode === "navigate";
  const path = navigation ? "/" : url.pathname;
  if (!navigation && !BUILD.shell.includes(path)) return;
  e.respondWith(fromShell(req, path, navigation));
});

/**
 * Network first, so a new server version is seen at once; the cached shell
 * when the network fails. Hashed assets never change: the cache is enough.
 */
async function fromShell(req: Request, path: string, navigation: boolean): Promise<Response> {
  const cache = await caches.open(CACHE);
  if (path.startsWith("/assets/")) {
    const hit = await cache.match(path);
    if (hit) return hit;
  }
  try {
    const res = await fetch(navigation ? req : new Request(req, { cache: "no-cache" }));
    // The shell of this version only: a newer index is the next worker's to keep.
    if (res.ok && !navigation && !res.redirected) await cache.put(path, res.clone());
    return res;
  } catch (err) {
    const hit = await cache.match(path);
    if (hit) return hit;
    throw err;
  }
}

sw.addEventListener("message", (e) => {
  const msg = e.data as PageMessage | null;
  if (msg?.type === "skipWaiting") keep(e, sw.skipWaiting());
});

sw.addEventListener("push", (e) => {
  // Chrome requires a notification for every push: one that cannot be read still says something.
  let payload: PushPayload = { v: 1, kind: "message", conv: "", title: "New message" };
  try {
    const data = e.data?.json() as PushPayload | undefined;
    if (data && typeof data === "object" && typeof data.conv === "string") payload = data;
  } catch {
    // Not JSON: the plain notification.
  }
  keep(e, onPush(payload));
});

async function onPush(p: PushPayload): Promise<void> {
  const reg = sw.registration;
  if (p.kind === "read") {
    // Read on another device: what was said here is old news.
    for (const n of await reg.getNotifications({ tag: p.conv })) n.close();
    return;
  }
  const options: NotificationOptions & { renotify?: boolean } = {
    body: p.body ?? "",
    icon: "/icon-192.png",
    badge: "/badge-96.png",
    data: { url: p.url ?? "/", conv: p.conv, id: p.id },
  };
  // One notification per conversation; a new message replaces it and alerts again.
  if (p.conv) {
    options.tag = p.conv;
    options.renotify = true;
  }
  await reg.showNotification(p.title || "New message", options);
}

sw.addEventListener("notificationclick", (e) => {
  e.notification.close();
  const data = e.notification.data as { url?: unknown } | null;
  const raw = typeof data?.url === "string" ? data.url : "/";
  // Only addresses of this app.
  const url = new URL(raw, sw.location.origin);
  keep(e, openAt(url.origin === sw.location.origin ? url.href : sw.location.origin + "/"));
});

/** Shows `url` in an open window of the app (the focused one first), or opens one. */
async function openAt(url: string): Promise<void> {
  const all = await sw.clients.matchAll({ type: "window", includeUncontrolled: true });
  // Only the app's own page hears "open": another page of the origin (a
  // file, the API) would be focused and show nothing.
  const windows = all.filter((w) => new URL(w.url).pathname === "/");
  const win = windows.find((w) => w.focused) ?? windows[0];
  if (!win) {
    await sw.clients.openWindow(url);
    return;
  }
  // The page opens the conversation itself (no reload, no lost composer text).
  win.postMessage({ type: "open", url });
  await win.focus().catch(() => {
    // Only a click may focus: an event a test made up cannot.
  });
}
