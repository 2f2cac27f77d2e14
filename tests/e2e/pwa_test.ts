/**
 * The installable app in a real Chromium: the manifest and its icons, the
 * service worker (controls the page, keeps the shell, starts offline into
 * the last conversations, offers a new version), notifications only through
 * the service worker (a failing one loses nothing), a notification read back
 * with `getNotifications()` and its click opening the conversation, and the
 * per-conversation notification level.
 *
 * A real push service needs the internet: pushes are delivered here by
 * dispatching the service worker's own `push` event (see docs/web.md for
 * checking end to end on a real browser). Headless Chromium cannot click a
 * system notification either: the test dispatches `notificationclick` in
 * the service worker with the notification it shows.
 */
import assert from "node:assert/strict";
import type { BrowserContext, Page, Worker } from "playwright-core";
import { createStaticHandler, WEB_APP_FILES, WEB_APP_ICONS } from "../../server/http/static.ts";
import type { StaticHandler } from "../../server/http/http.ts";
import {
  freePort,
  hashPassword,
  signIn as connect,
  startTestServer,
  type TestServer,
} from "../helpers.ts";
import { screenshot } from "./browser.ts";
import { Network, type Person, person, ready, send, signIn, until, withBrowser } from "./people.ts";

const PASSWORDS = { alice: "alice-password", bob: "bob-password" };

async function users(): Promise<Record<string, string>> {
  return {
    alice: await hashPassword(PASSWORDS.alice),
    bob: await hashPassword(PASSWORDS.bob),
  };
}

/** Waits until a service worker controls the page. */
async function controlled(page: Page): Promise<void> {
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null);
}

/** The context's service worker (playwright's handle, to run code in it). */
async function serviceWorker(context: BrowserContext): Promise<Worker> {
  return context.serviceWorkers()[0] ?? await context.waitForEvent("serviceworker");
}

/**
 * Counts the page's `showNotification()` calls once done (in `__settled`).
 * Chromium's `getNotifications()` drops a notification for good when it
 * reads while that one is still going on display (it takes it for one the
 * user closed): a test reads them once the showing is done, never polls them
 * meanwhile.
 */
function countShown(): void {
  const w = globalThis as unknown as { __settled: number };
  w.__settled = 0;
  const show = ServiceWorkerRegistration.prototype.showNotification;
  ServiceWorkerRegistration.prototype.showNotification = function (
    this: ServiceWorkerRegistration,
    title: string,
    options?: NotificationOptions,
  ) {
    return show.call(this, title, options).finally(() => void w.__settled++);
  };
}

/**
 * Dispatches a `push` in the service worker as the browser does, and waits
 * for the work its handler hands to `waitUntil()` (the notification is then
 * on display). A made-up event's own `waitUntil()` throws: this one keeps
 * the work, as the browser's does.
 */
function pushed(sw: Worker, payload: unknown): Promise<void> {
  return sw.evaluate(async (data) => {
    const scope = globalThis as unknown as {
      PushEvent: new (t: string, i: { data: string }) => Event;
    };
    const e = new scope.PushEvent("push", { data });
    const work: Promise<unknown>[] = [];
    Object.defineProperty(e, "waitUntil", { value: (p: Promise<unknown>) => void work.push(p) });
    globalThis.dispatchEvent(e);
    // Without waitUntil() a real push may be cut short when the browser stops the worker.
    if (work.length === 0) throw new Error("the push handler hands its work to waitUntil()");
    await Promise.all(work);
  }, JSON.stringify(payload));
}

/** Pretends the page went to the background (or came back). */
async function setHidden(page: Page, hidden: boolean): Promise<void> {
  await page.evaluate((hidden) => {
    Object.defineProperty(document, "visibilityState", {
      value: hidden ? "hidden" : "visible",
      configurable: true,
    });
    document.dispatchEvent(new Event("visibilitychange"));
  }, hidden);
}

/** Width and height from a PNG's IHDR chunk. */
function pngSize(bytes: Uint8Array): [number, number] {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  assert.deepEqual([...bytes.subarray(0, 8)], sig, "a PNG signature");
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  return [view.getUint32(16), view.getUint32(20)];
}

/**
 * Has `from` write `text` to alice until the push service got more than
 * `seen` pushes: the page's "hidden" and the message travel on different
 * connections, so the first may reach the server after the message.
 */
async function writeUntilPushed(
  from: { send(frame: unknown): void },
  text: string,
  posts: unknown[],
  seen: number,
): Promise<void> {
  let tick = 0;
  await until(() => {
    if (posts.length > seen) return Promise.resolve(true);
    // About once a second (until polls every 50 ms).
    if (tick++ % 20 === 0) from.send({ type: "send", to: "alice", text });
    return Promise.resolve(false);
  }, `a push of "${text}"`);
}

async function signedIn(
  server: TestServer,
  browser: Parameters<typeof person>[0],
  name: "alice" | "bob",
  opts: Parameters<typeof person>[3] = {},
): Promise<Person> {
  const p = await person(browser, server.http + "/", name, opts);
  await signIn(p, PASSWORDS[name]);
  return p;
}

Deno.test("web app: the manifest is valid and its icons load at their sizes", async () => {
  const server = await startTestServer({ users: await users() });
  try {
    const res = await fetch(server.http + "/manifest.webmanifest");
    assert.equal(res.headers.get("content-type"), "application/manifest+json; charset=utf-8");
    const m = await res.json();
    for (const field of ["id", "name", "short_name", "description", "start_url", "scope"]) {
      assert.equal(typeof m[field], "string", `manifest.${field}`);
    }
    assert.equal(m.display, "standalone");
    assert.equal(m.start_url, "/");
    assert.equal(m.scope, "/");
    assert.match(m.theme_color, /^#[0-9a-f]{6}$/);
    assert.match(m.background_color, /^#[0-9a-f]{6}$/);
    const pngs = m.icons.filter((i: { type: string }) => i.type === "image/png");
    const want = ["192x192 any", "512x512 any", "192x192 maskable", "512x512 maskable"];
    assert.deepEqual(
      pngs.map((i: { sizes: string; purpose: string }) => `${i.sizes} ${i.purpose}`).sort(),
      want.sort(),
    );
    for (const icon of pngs) {
      const r = await fetch(new URL(icon.src, server.http));
      assert.equal(r.status, 200, icon.src);
      assert.equal(r.headers.get("content-type"), "image/png");
      const [w, h] = pngSize(new Uint8Array(await r.arrayBuffer()));
      assert.equal(`${w}x${h}`, icon.sizes, icon.src);
    }
    // The page names the manifest and a theme colour for each scheme.
    const html = await (await fetch(server.http + "/")).text();
    assert.match(html, /<link rel="manifest" href="\/manifest.webmanifest">/);
    assert.match(
      html,
      /<meta name="theme-color" content="#[0-9a-f]{6}" media="\(prefers-color-scheme: dark\)">/,
    );
    // The service worker: JavaScript, never cached by the HTTP cache, stamped with the build.
    const sw = await fetch(server.http + "/sw.js");
    assert.equal(sw.headers.get("content-type"), "text/javascript; charset=utf-8");
    assert.equal(sw.headers.get("cache-control"), "no-cache");
    const text = await sw.text();
    const build = JSON.parse(text.slice(text.indexOf("=") + 1, text.indexOf(";\n")));
    assert.match(build.version, /^[0-9a-f]{12}$/);
    assert.ok(build.shell.includes("/"));
    assert.ok(build.shell.some((p: string) => /^\/assets\/app\.[0-9a-f]{12}\.js$/.test(p)));
    assert.ok(build.shell.includes("/manifest.webmanifest"));
    assert.ok(!build.shell.some((p: string) => p.startsWith("/api") || p === "/sw.js"));
  } finally {
    await server.close();
  }
});

Deno.test("web app: the service worker controls the page and it starts offline into the last conversations", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    const alice = await signedIn(server, browser, "alice");
    const page = alice.page;
    await page.evaluate(() => navigator.serviceWorker.ready.then(() => {}));
    await page.reload();
    await controlled(page);
    await ready(alice);
    await send(alice, "kept for offline");
    // Only the shell is kept: nothing per user, no API answers.
    const cached = await page.evaluate(async () => {
      const out: string[] = [];
      for (const name of await caches.keys()) {
        for (const req of await (await caches.open(name)).keys()) {
          out.push(new URL(req.url).pathname);
        }
      }
      return out.sort();
    });
    assert.ok(cached.includes("/"), `the index is kept: ${cached}`);
    assert.ok(!cached.some((p) => /^\/(api|ws|files)/.test(p)), `nothing per user: ${cached}`);

    await alice.context.setOffline(true);
    await page.reload();
    const banner = page.locator(".offline-banner");
    await banner.waitFor();
    assert.match((await banner.textContent()) ?? "", /^Offline — reconnecting/);
    await page.locator(".offline-list .msg", { hasText: "kept for offline" }).waitFor();
    await page.locator('.offline-shell [data-conv="#general"]').waitFor({ state: "attached" });
    await screenshot(page, "pwa-offline-desktop");

    await alice.context.setOffline(false);
    await ready(alice);
    await page.locator(".msg:not(.pending)", { hasText: "kept for offline" }).waitFor();
    assert.equal(await page.locator(".offline-banner").count(), 0);
    await send(alice, "back online");

    // The same on a phone in the dark: the conversations are in the drawer.
    const phone = await signedIn(server, browser, "alice", { phone: true, dark: true });
    await phone.page.reload();
    await controlled(phone.page);
    await ready(phone);
    await phone.page.locator(".msg:not(.pending)", { hasText: "back online" }).waitFor();
    await phone.context.setOffline(true);
    await phone.page.reload();
    await phone.page.locator(".offline-list .msg", { hasText: "back online" }).waitFor();
    await screenshot(phone.page, "pwa-offline-phone-dark");
    await phone.page.getByRole("button", { name: "Conversations" }).click();
    await phone.page.locator(".offline-shell .sidebar.open").waitFor();
    await phone.context.setOffline(false);
    await ready(phone);
    assert.deepEqual(phone.errors, []);
    await phone.context.close();

    // Signing out leaves nothing of alice's behind.
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Password").waitFor();
    const left = await page.evaluate(() =>
      Object.keys(localStorage).filter((k) => k.startsWith("chat.offline."))
    );
    assert.deepEqual(left, []);
    assert.deepEqual(alice.errors, []);
  }, server);
});

Deno.test("web app: with the server down (the network up) the offline screen stays, on the conversation chosen", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-pwa-" });
  const port = String(freePort());
  const all = await users();
  const start = () => startTestServer({ users: all, dir, args: ["--port", port] });
  let server = await start();
  try {
    const bob = await connect(server.ws, "bob", PASSWORDS.bob);
    await withBrowser(async (browser) => {
      const alice = await signedIn(server, browser, "alice");
      const page = alice.page;
      await page.evaluate(() => navigator.serviceWorker.ready.then(() => {}));
      await page.reload();
      await controlled(page);
      await ready(alice);
      bob.send({ type: "send", to: "alice", text: "hi alice" });
      await page.locator('[data-conv="@bob"]').waitFor({ state: "attached" });
      await send(alice, "said in general");
      // Hidden: the snapshot is saved.
      await setHidden(page, true);
      await setHidden(page, false);
      await bob.close();

      // The server stops; the device is online.
      await server.close();
      await page.reload();
      const banner = page.locator(".offline-banner");
      await banner.waitFor();
      await page.locator('.offline-shell [data-conv="@bob"]').click();
      await page.locator('.offline-shell [data-conv="@bob"][aria-current="page"]').waitFor();
      // Every change of the page from now on: what shows, and which conversation.
      await page.evaluate(() => {
        const w = globalThis as unknown as { __seen: string[] };
        w.__seen = [];
        const note = () => {
          const shell = document.querySelector(".offline-shell");
          const conn = document.querySelector(".app")?.getAttribute("data-conn");
          w.__seen.push(
            shell
              ? `offline:${shell.querySelector(".conv-item.active")?.getAttribute("data-conv")}`
              : `chat(${conn})`,
          );
        };
        new MutationObserver(note).observe(document.getElementById("app")!, {
          subtree: true,
          childList: true,
          attributes: true,
        });
      });
      // Attempts fail one after the other: the screen stays as it is.
      const retry = banner.getByRole("button", { name: "Retry now" });
      for (let i = 0; i < 3; i++) {
        await retry.waitFor();
        assert.match((await banner.textContent()) ?? "", /^The chat server is not answering/);
        await retry.click();
        await page.locator('.app[data-conn="waiting"]').waitFor({ state: "attached" });
      }
      await retry.waitFor();
      await screenshot(page, "pwa-server-down-desktop");
      const seen = await page.evaluate(() =>
        (globalThis as unknown as { __seen: string[] }).__seen
      );
      assert.ok(seen.length > 0);
      assert.deepEqual(
        [...new Set(seen)],
        ["offline:@bob"],
        "no other screen, no other conversation",
      );

      // Back: the chat takes over, on the conversation chosen.
      server = await start();
      // As when the network comes back: the app tries at once.
      await page.evaluate(() => dispatchEvent(new Event("online")));
      await ready(alice);
      assert.equal(await page.locator(".offline-shell").count(), 0);
      assert.deepEqual(alice.errors, []);
      await alice.context.close();
    });
  } finally {
    await server.close().catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("web app: notifications go through the service worker and a click opens the conversation", async () => {
  const server = await startTestServer({ users: await users() });
  const bob = await connect(server.ws, "bob", PASSWORDS.bob);
  await withBrowser(
    async (browser) => {
      const alice = await signedIn(server, browser, "alice", {
        notifications: true,
        setup: async (context) => void await context.addInitScript(countShown),
      });
      const page = alice.page;
      await controlled(page).catch(async () => {
        await page.reload();
        await controlled(page);
      });
      await ready(alice);
      const sw = await serviceWorker(alice.context);
      await setHidden(page, true);
      bob.send({ type: "send", to: "alice", text: "are you there?" });
      const shown = () =>
        page.evaluate(async () => {
          const reg = await navigator.serviceWorker.ready;
          return (await reg.getNotifications()).map((n) => ({
            title: n.title,
            body: n.body,
            tag: n.tag,
            url: (n.data as { url: string }).url,
          }));
        });
      const settled = () =>
        page.evaluate(() => (globalThis as unknown as { __settled: number }).__settled);
      await until(async () => (await settled()) === 1, "a notification is shown");
      assert.deepEqual(await shown(), [{
        title: "bob (direct message)",
        body: "are you there?",
        tag: "@bob",
        url: "/#/@bob",
      }]);
      // The constructor was never used (the people helper marks its calls).
      assert.deepEqual(
        await page.evaluate(() =>
          (globalThis as unknown as { __notes: { viaConstructor?: true }[] }).__notes
            .filter((n) => n.viaConstructor === true)
        ),
        [],
      );

      // Clicked: the open window shows the conversation.
      await sw.evaluate(async () => {
        const scope = globalThis as unknown as {
          registration: ServiceWorkerRegistration;
          NotificationEvent: new (t: string, i: { notification: Notification }) => Event;
        };
        const [n] = await scope.registration.getNotifications({ tag: "@bob" });
        globalThis.dispatchEvent(
          new scope.NotificationEvent("notificationclick", { notification: n }),
        );
      });
      await until(async () => (await page.title()).includes("bob · Chat"), "the DM opens");
      assert.equal(new URL(page.url()).hash, "#/@bob");
      await until(async () => (await shown()).length === 0, "the clicked notification closes");

      // A push (the service worker's own handler): one per conversation, and
      // "read elsewhere" closes it.
      const push = (payload: unknown) => pushed(sw, payload);
      await push({
        v: 1,
        kind: "message",
        conv: "#general",
        id: 7,
        from: "bob",
        title: "bob in #general",
        body: "@alice look",
        url: "/#/general/7",
      });
      assert.deepEqual(await shown(), [{
        title: "bob in #general",
        body: "@alice look",
        tag: "#general",
        url: "/#/general/7",
      }]);
      await push({ v: 1, kind: "read", conv: "#general", id: 7 });
      await until(async () => (await shown()).length === 0, "read elsewhere closes it");

      // Another page of the site, in front: only the app's own page counts; with
      // none, a window is opened at the conversation's address.
      const other = await alice.context.newPage();
      await other.goto(server.http + "/favicon.svg");
      await other.bringToFront();
      const click = (tag: string) =>
        sw.evaluate(async (tag) => {
          const scope = globalThis as unknown as {
            registration: ServiceWorkerRegistration;
            clients: {
              opened?: string[];
              openWindow(url: string | URL): Promise<unknown>;
              matchAll(o: { type: string }): Promise<{ url: string; focused: boolean }[]>;
            };
            NotificationEvent: new (t: string, i: { notification: Notification }) => Event;
          };
          // A made-up click may not open windows: what would be opened is noted.
          scope.clients.opened ??= [];
          scope.clients.openWindow = (url: string | URL) => {
            scope.clients.opened!.push(String(url));
            return Promise.resolve(null);
          };
          const windows = await scope.clients.matchAll({ type: "window" });
          const [n] = await scope.registration.getNotifications({ tag });
          globalThis.dispatchEvent(
            new scope.NotificationEvent("notificationclick", { notification: n }),
          );
          await new Promise((r) => setTimeout(r, 50));
          return {
            opened: scope.clients.opened,
            windows: windows.map((w) => `${new URL(w.url).pathname} ${w.focused}`),
          };
        }, tag);
      await page.evaluate(() => (location.hash = "#/general"));
      await until(async () => (await page.title()).includes("general · Chat"), "general is open");
      bob.send({ type: "send", to: "alice", text: "over here" });
      await until(async () => (await settled()) === 2, "a notification is shown");
      assert.equal((await shown()).length, 1);
      const first = await click("@bob");
      await until(
        async () => (await page.title()).includes("bob · Chat"),
        `the app opens it: ${JSON.stringify(first)}`,
      );
      assert.deepEqual(first.opened, []);
      // No page of the app open (it went elsewhere): a window is opened.
      await page.goto(server.http + "/favicon.svg");
      await sw.evaluate(async () => {
        const scope = globalThis as unknown as { registration: ServiceWorkerRegistration };
        await scope.registration.showNotification("bob (direct message)", {
          tag: "@bob",
          data: { url: "/#/@bob", conv: "@bob" },
        });
      });
      const second = await click("@bob");
      assert.deepEqual(second.opened, [server.http + "/#/@bob"], JSON.stringify(second));
      await other.close();

      // Signing out leaves no message text in the tray.
      await page.goto(server.http + "/");
      await ready(alice);
      // The page closed the notifications of the conversation it shows: read after
      // that, so that its reading is done before the push shows one.
      await shown();
      // Of a conversation the page does not show: reading one closes its notifications.
      await push({
        v: 1,
        kind: "message",
        conv: "@carol",
        id: 9,
        from: "carol",
        title: "carol (direct message)",
        body: "secret plans",
        url: "/#/@carol",
      });
      assert.ok((await shown()).some((n) => n.tag === "@carol"), "the pushed notification shows");
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByLabel("Password").waitFor();
      await until(async () => (await shown()).length === 0, "sign-out closes every notification");
      assert.deepEqual(alice.errors, []);
    },
    server,
    bob,
  );
});

Deno.test("web app: without a service worker, notifications come from the page itself", async () => {
  const server = await startTestServer({ users: await users() });
  const bob = await connect(server.ws, "bob", PASSWORDS.bob);
  await withBrowser(
    async (browser) => {
      const alice = await person(browser, server.http + "/", "alice", {
        notifications: true,
        // Service workers turned off (a browser setting, a private window in some browsers).
        setup: async (context) =>
          void await context.addInitScript(() => {
            ServiceWorkerContainer.prototype.register = () =>
              Promise.reject(new DOMException("Service workers are disabled", "SecurityError"));
          }),
      });
      await signIn(alice, PASSWORDS.alice);
      const page = alice.page;
      await setHidden(page, true);
      bob.send({ type: "send", to: "alice", text: "no worker here" });
      const notes = () =>
        page.evaluate(() =>
          (globalThis as unknown as { __notes: { body?: string; viaConstructor?: true }[] }).__notes
        );
      await until(async () => (await notes()).length > 0, "a notification is shown");
      assert.deepEqual(await notes(), [{
        title: "bob (direct message)",
        body: "no worker here",
        viaConstructor: true,
      }]);
      assert.deepEqual(alice.errors, []);
    },
    server,
    bob,
  );
});

Deno.test("web app: a notification that throws loses none of the messages batched with it", async () => {
  const server = await startTestServer({ users: await users() });
  const bob = await connect(server.ws, "bob", PASSWORDS.bob);
  await withBrowser(
    async (browser) => {
      const alice = await person(browser, server.http + "/", "alice", {
        notifications: true,
        async setup(context) {
          // Android Chrome: the constructor throws; and here the worker refuses too.
          await context.addInitScript(() => {
            const w = globalThis as unknown as { __tried: number };
            w.__tried = 0;
            globalThis.Notification = class {
              static permission = "granted";
              static requestPermission() {
                return Promise.resolve("granted");
              }
              constructor() {
                throw new TypeError("Illegal constructor");
              }
            } as unknown as typeof Notification;
            ServiceWorkerRegistration.prototype.showNotification = function () {
              w.__tried++;
              throw new TypeError("Illegal invocation");
            };
          });
          // The server's own batching, made certain: bob's three lines in one WebSocket message.
          await context.routeWebSocket(/\/ws$/, (ws) => {
            const server = ws.connectToServer();
            const held: string[] = [];
            server.onMessage((data) => {
              const text = String(data);
              if (!text.includes('"batched ')) return ws.send(text);
              held.push(text);
              if (held.length === 3) ws.send(held.splice(0).join("\n"));
            });
          });
        },
      });
      await signIn(alice, PASSWORDS.alice);
      const page = alice.page;
      await page.locator('[data-conv="#general"][aria-current="page"]').waitFor();
      await setHidden(page, true);
      for (const n of [1, 2, 3]) {
        bob.send({
          type: "send",
          room: "general",
          text: `@alice batched ${n}`,
        });
      }
      for (const n of [1, 2, 3]) {
        await page.locator(".msg", { hasText: `@alice batched ${n}` }).waitFor();
      }
      await until(
        async () =>
          (await page.evaluate(() => (globalThis as unknown as { __tried: number }).__tried)) === 3,
        "a notification was tried for each",
      );
      assert.deepEqual(alice.errors, []);
    },
    server,
    bob,
  );
});

/**
 * A static handler that can be swapped while the server runs: a new build
 * of the web app, as after an upgrade.
 */
function swappable(
  first: StaticHandler,
): { handler: StaticHandler; swap(next: StaticHandler): void } {
  let current = first;
  return {
    handler: (req, path) => current(req, path),
    swap(next) {
      current = next;
    },
  };
}

Deno.test("web app: a new version is offered and a click reloads into it", async () => {
  const web = swappable(await createStaticHandler([...WEB_APP_FILES, ...WEB_APP_ICONS]));
  const server = await startTestServer({ users: await users(), static: web.handler });
  await withBrowser(async (browser) => {
    const shots: [string, boolean, boolean][] = [
      ["desktop", false, false],
      ["phone-dark", true, true],
    ];
    for (const [name, phone, dark] of shots) {
      const network = new Network();
      const alice = await signedIn(server, browser, "alice", {
        phone,
        dark,
        setup: (context) => network.attach(context),
      });
      const page = alice.page;
      await page.reload();
      await controlled(page);
      await ready(alice);
      assert.equal(await page.locator(".update-bar").count(), 0);

      // The server now has a different build: another index, hence another worker.
      const build = `${name}-${Date.now()}`;
      web.swap(
        await createStaticHandler(
          [...WEB_APP_FILES, ...WEB_APP_ICONS].map((f) =>
            f.path === "/index.html"
              ? {
                ...f,
                body: String(f.body).replace(
                  "<head>",
                  `<head>\n    <meta name="chat-build" content="${build}">`,
                ),
              }
              : f
          ),
        ),
      );
      // A reconnect (as after the server's restart) makes the page look for a new version.
      await network.cut();
      await page.locator('.app:not([data-ready="true"])').waitFor({ state: "attached" });
      network.restore();
      await ready(alice);
      const bar = page.locator(".update-bar");
      await bar.waitFor();
      assert.equal((await bar.textContent())?.startsWith("A new version is ready."), true);
      await screenshot(page, `pwa-update-${name}`);
      await bar.getByRole("button", { name: "Reload" }).click();
      await page.locator(`meta[name="chat-build"][content="${build}"]`).waitFor({
        state: "attached",
      });
      await ready(alice);
      await controlled(page);
      assert.equal(await page.locator(".update-bar").count(), 0);
      assert.deepEqual(alice.errors, []);
      await alice.context.close();
      web.swap(await createStaticHandler([...WEB_APP_FILES, ...WEB_APP_ICONS]));
    }
  }, server);
});

Deno.test("web app: the notification level menu sets the level on every device and keeps it", async () => {
  const server = await startTestServer({ users: await users() });
  // Alice's other device hears of the change.
  const other = await connect(server.ws, "alice", PASSWORDS.alice);
  await withBrowser(
    async (browser) => {
      for (
        const [name, phone, dark] of [["desktop", false, false], [
          "phone-dark",
          true,
          true,
        ]] as const
      ) {
        const alice = await signedIn(server, browser, "alice", { phone, dark });
        const page = alice.page;
        await page.locator('[data-conv="#general"][aria-current="page"]').waitFor({
          state: "attached",
        });
        const bell = page.locator(".level-btn");
        const want = name === "desktop" ? "all" : "none";
        const label = want === "all" ? "All messages" : "Nothing";
        // Rooms start at mentions only (then at what the desktop chose).
        const before = name === "desktop" ? "Mentions only" : "All messages";
        assert.equal(await bell.getAttribute("aria-label"), `Notifications: ${before}`);
        const menu = page.getByRole("menu", { name: "Notify me about" });
        if (phone) {
          await bell.click();
          await menu.waitFor();
          await screenshot(page, `pwa-level-menu-${name}`);
          await menu.getByRole("menuitemradio", { name: new RegExp(`^${label}`) }).click();
        } else {
          // By keyboard: Enter opens it on the current choice, arrows move, Enter picks.
          await bell.focus();
          await page.keyboard.press("Enter");
          await menu.waitFor();
          await screenshot(page, `pwa-level-menu-${name}`);
          // The choice in the menu that has the focus (the bell has a data-level too).
          const focused = () =>
            page.evaluate(() => {
              const el = document.activeElement;
              return el?.getAttribute("role") === "menuitemradio"
                ? el.getAttribute("data-level")
                : null;
            });
          await until(async () => (await focused()) === "mentions", "the current choice has focus");
          await page.keyboard.press("Escape");
          await menu.waitFor({ state: "detached" });
          await until(
            async () =>
              (await page.evaluate(() => document.activeElement?.className)) ===
                "icon-btn level-btn",
            "Escape gives the focus back to the bell",
          );
          await page.keyboard.press("Enter");
          await menu.waitFor();
          // The current choice has the focus as soon as the menu shows (before, the focus
          // and the arrows' listener came a frame later: an ArrowUp then was lost).
          assert.equal(await focused(), "mentions", "the reopened menu has the choice focused");
          await page.keyboard.press("ArrowUp");
          await until(async () => (await focused()) === "all", "ArrowUp moves to All messages");
          await page.keyboard.press("Enter");
        }
        await menu.waitFor({ state: "detached" });
        assert.equal(await bell.getAttribute("aria-label"), `Notifications: ${label}`);
        const heard = await other.next((f) => f.type === "notify_level" && f.level === want);
        assert.deepEqual(heard, { type: "notify_level", room: "general", level: want });
        // Kept by the server: a reload gets it with the welcome.
        await page.reload();
        await ready(alice);
        await page.locator(`.level-btn[data-level="${want}"]`).waitFor();
        assert.deepEqual(alice.errors, []);
        await alice.context.close();
      }
    },
    server,
    other,
  );
});

/**
 * Stands in for the browser's push service inside the page: Chromium
 * without the internet cannot reach its own. The subscription is a real
 * P-256 key and auth secret with an endpoint of the test's; the server's
 * key the page passed is kept to compare.
 */
function fakePushManager(endpoint: string): void {
  {
    const w = globalThis as unknown as {
      __sub: PushSubscription | null;
      __serverKey: string | null;
      __keys: { jwk: JsonWebKey; auth: string } | null;
    };
    w.__sub = null;
    w.__serverKey = null;
    const b64url = (b: ArrayBuffer) =>
      btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\+/g, "-").replace(/\//g, "_")
        .replace(/=+$/, "");
    PushManager.prototype.getSubscription = function () {
      return Promise.resolve(w.__sub);
    };
    PushManager.prototype.subscribe = async function (opts?: PushSubscriptionOptionsInit) {
      const key = new Uint8Array(opts!.applicationServerKey as Uint8Array).slice().buffer;
      w.__serverKey = b64url(key);
      const pair = await crypto.subtle.generateKey(
        { name: "ECDH", namedCurve: "P-256" },
        true,
        ["deriveBits"],
      );
      const p256dh = await crypto.subtle.exportKey("raw", pair.publicKey);
      const auth = crypto.getRandomValues(new Uint8Array(16)).buffer;
      w.__keys = { jwk: await crypto.subtle.exportKey("jwk", pair.privateKey), auth: b64url(auth) };
      const sub = {
        endpoint: endpoint,
        expirationTime: null,
        options: { applicationServerKey: key, userVisibleOnly: true },
        getKey: (name: string) => name === "p256dh" ? p256dh : auth,
        unsubscribe() {
          w.__sub = null;
          return Promise.resolve(true);
        },
        toJSON: () => ({
          endpoint: endpoint,
          keys: { p256dh: b64url(p256dh), auth: b64url(auth) },
        }),
      };
      w.__sub = sub as unknown as PushSubscription;
      return w.__sub;
    };
  }
}

function fromB64url(text: string): Uint8Array<ArrayBuffer> {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(
    atob(b64.padEnd(Math.ceil(b64.length / 4) * 4, "=")),
    (c) => c.charCodeAt(0),
  );
}

async function hkdf(
  salt: Uint8Array<ArrayBuffer>,
  ikm: Uint8Array<ArrayBuffer>,
  info: Uint8Array<ArrayBuffer>,
  bytes: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const key = await crypto.subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  return new Uint8Array(
    await crypto.subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt, info }, key, bytes * 8),
  );
}

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Decrypts an RFC 8291 (aes128gcm) push body with the subscription's
 * private key and auth secret, as the browser does: written here from the
 * RFC, independent of the server's library.
 */
async function decryptPush(
  body: Uint8Array<ArrayBuffer>,
  keys: { jwk: JsonWebKey; auth: string },
): Promise<string> {
  const salt = body.slice(0, 16);
  const idlen = body[20];
  const senderPublic = body.slice(21, 21 + idlen);
  const ciphertext = body.slice(21 + idlen);
  const priv = await crypto.subtle.importKey(
    "jwk",
    keys.jwk,
    { name: "ECDH", namedCurve: "P-256" },
    false,
    ["deriveBits"],
  );
  const { x, y } = keys.jwk;
  const uaPublic = concat(new Uint8Array([4]), fromB64url(x!), fromB64url(y!));
  const sender = await crypto.subtle.importKey(
    "raw",
    senderPublic,
    { name: "ECDH", namedCurve: "P-256" },
    false,
    [],
  );
  const secret = new Uint8Array(
    await crypto.subtle.deriveBits({ name: "ECDH", public: sender }, priv, 256),
  );
  const text = new TextEncoder();
  const ikm = await hkdf(
    fromB64url(keys.auth),
    secret,
    concat(text.encode("WebPush: info\0"), uaPublic, senderPublic),
    32,
  );
  const cek = await hkdf(salt, ikm, text.encode("Content-Encoding: aes128gcm\0"), 16);
  const nonce = await hkdf(salt, ikm, text.encode("Content-Encoding: nonce\0"), 12);
  const key = await crypto.subtle.importKey("raw", cek, "AES-GCM", false, ["decrypt"]);
  const padded = new Uint8Array(
    await crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce }, key, ciphertext),
  );
  // The last record ends with 0x02, then padding zeros.
  let end = padded.length - 1;
  while (end >= 0 && padded[end] === 0) end--;
  assert.equal(padded[end], 2, "the last record's delimiter");
  return new TextDecoder().decode(padded.subarray(0, end));
}

Deno.test("web app: notifications on this device subscribe to pushes, which come only while the page is hidden", async () => {
  // The push service's side: what the server sends, as it arrives.
  const posts: Uint8Array<ArrayBuffer>[] = [];
  const encodings: string[] = [];
  await using endpoint = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      encodings.push(req.headers.get("content-encoding") ?? "");
      posts.push(new Uint8Array(await req.arrayBuffer()));
      return new Response(null, { status: 201 });
    },
  );
  const url = `http://127.0.0.1:${endpoint.addr.port}/push/alice-laptop`;
  const server = await startTestServer({ users: await users(), args: ["--unsafe-push-endpoints"] });
  const bob = await connect(server.ws, "bob", PASSWORDS.bob);
  const shots = [["desktop", false, false], ["phone-dark", true, true]] as const;
  await withBrowser(
    async (browser) => {
      for (const [name, phone, dark] of shots) {
        const alice = await person(browser, server.http + "/", "alice", {
          phone,
          dark,
          notifications: true,
          setup: async (context) => void await context.addInitScript(fakePushManager, url),
        });
        await signIn(alice, PASSWORDS.alice);
        const page = alice.page;
        if (phone) await page.getByRole("button", { name: /^Conversations/ }).click();
        await page.getByRole("button", { name: "Settings" }).click();
        const dialog = page.locator("#settings-dialog");
        await dialog.getByText("Notifications on this device").waitFor();
        assert.equal(await dialog.locator("[data-push]").getAttribute("data-push"), "off");
        await dialog.getByRole("button", { name: "Turn on" }).click();
        await dialog.locator('[data-push="on"]').waitFor();
        assert.equal(
          await page.evaluate(() => (globalThis as unknown as { __serverKey: string }).__serverKey),
          (bob.welcome as { push?: { key: string } }).push?.key,
          "subscribed with the server's VAPID key",
        );
        await screenshot(page, `pwa-settings-${name}`);
        if (name !== "desktop") {
          // Off again: the browser forgets the subscription.
          await dialog.getByRole("button", { name: "Turn off" }).click();
          await dialog.locator('[data-push="off"]').waitFor();
          assert.equal(
            await page.evaluate(() => (globalThis as unknown as { __sub: unknown }).__sub),
            null,
          );
          assert.deepEqual(alice.errors, []);
          await alice.context.close();
          continue;
        }
        await page.keyboard.press("Escape");

        // Seen on screen: no push. Hidden: one, which the service worker shows,
        // and its click opens the conversation.
        bob.send({ type: "send", to: "alice", text: "seen on screen" });
        await page.locator(`[data-conv="@bob"]`).waitFor({ state: "attached" });
        await setHidden(page, true);
        await writeUntilPushed(bob, "while away", posts, 0);
        assert.equal(encodings[0], "aes128gcm");
        const keys = await page.evaluate(() =>
          (globalThis as unknown as { __keys: { jwk: JsonWebKey; auth: string } }).__keys
        );
        const payload = JSON.parse(await decryptPush(posts[0], keys));
        assert.equal(payload.kind, "message");
        assert.equal(payload.conv, "@bob");
        assert.equal(payload.body, "while away", "the first push is the hidden page's");
        // The message's own address: the page opens the DM at it.
        assert.equal(payload.url, `/#/@alice+bob/${payload.id}`);
        const sw = await serviceWorker(alice.context);
        await pushed(sw, payload);
        await sw.evaluate(async () => {
          const scope = globalThis as unknown as {
            registration: ServiceWorkerRegistration;
            NotificationEvent: new (t: string, i: { notification: Notification }) => Event;
          };
          const [shown] = await scope.registration.getNotifications({ tag: "@bob" });
          if (!shown) throw new Error("the pushed notification shows");
          globalThis.dispatchEvent(
            new scope.NotificationEvent("notificationclick", { notification: shown }),
          );
        });
        await until(async () => (await page.title()).includes("bob · Chat"), "the DM opens");
        await page.locator(`.msg[data-id="${payload.id}"]`, { hasText: "while away" }).waitFor();
        await setHidden(page, false);
        assert.deepEqual(alice.errors, []);
        await alice.context.close();
      }
    },
    server,
    bob,
  );
});

Deno.test("web app: after the server restarts, pushes still come, and a refused subscription says it is off", async () => {
  const posts: number[] = [];
  await using endpoint = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      await req.arrayBuffer();
      posts.push(Date.now());
      return new Response(null, { status: 201 });
    },
  );
  const url = `http://127.0.0.1:${endpoint.addr.port}/push/alice`;
  const dir = await Deno.makeTempDir({ prefix: "chat-pwa-" });
  const all = await users();
  const port = String(freePort());
  // The push store is in memory (the default): a restart forgets every subscription.
  const start = (unsafe = true) =>
    startTestServer({
      users: all,
      dir,
      args: ["--port", port, ...(unsafe ? ["--unsafe-push-endpoints"] : [])],
    });
  let server = await start();
  let bob = await connect(server.ws, "bob", PASSWORDS.bob);
  try {
    await withBrowser(async (browser) => {
      const alice = await person(browser, server.http + "/", "alice", {
        notifications: true,
        setup: async (context) => void await context.addInitScript(fakePushManager, url),
      });
      await signIn(alice, PASSWORDS.alice);
      const page = alice.page;
      await page.getByRole("button", { name: "Settings" }).click();
      const dialog = page.locator("#settings-dialog");
      await dialog.getByRole("button", { name: "Turn on" }).click();
      await dialog.locator('[data-push="on"]').waitFor();
      await page.keyboard.press("Escape");
      await setHidden(page, true);
      await writeUntilPushed(bob, "before the restart", posts, 0);

      // Restarted: the page's next welcome gives the server its subscription again.
      const restart = async (unsafe: boolean) => {
        await bob.close();
        await server.close();
        await page.locator('.app:not([data-ready="true"])').waitFor({ state: "attached" });
        server = await start(unsafe);
        bob = await connect(server.ws, "bob", PASSWORDS.bob);
        await page.evaluate(() => dispatchEvent(new Event("online")));
        await ready(alice);
      };
      await restart(true);
      // The subscription reaches the server a moment after the welcome (before the
      // fix, it never did: no push came however long bob wrote).
      const before = posts.length;
      await writeUntilPushed(bob, "after the restart", posts, before);

      // Restarted without the test's push service allowed: the server refuses the
      // subscription, and the settings say so.
      await restart(false);
      await setHidden(page, false);
      await page.getByRole("button", { name: "Settings" }).click();
      await dialog.locator('[data-push="off"]').waitFor();
      assert.match(
        (await dialog.locator("#push-error").textContent()) ?? "",
        /^Notifications are off: ./,
      );
      assert.equal(
        await page.evaluate(() => (globalThis as unknown as { __sub: unknown }).__sub),
        null,
      );
      assert.deepEqual(alice.errors, []);
      await alice.context.close();
    });
  } finally {
    await bob.close();
    await server.close().catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
