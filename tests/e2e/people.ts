/**
 * People in a browser for the web app's tests: each has a context (its own
 * storage, viewport and colour scheme) and a page that records script errors
 * and CSP violations; helpers sign in and send the way a person does.
 *
 * @module
 */
import type { Browser, BrowserContext, Page, WebSocketRoute } from "playwright-core";
import { launchBrowser } from "./browser.ts";

/** How long a test waits for anything the page should do. */
export const TIMEOUT = 30_000;
/** A laptop screen. */
export const DESKTOP = { width: 1280, height: 800 };
/** A phone screen. */
export const PHONE = { width: 390, height: 844 };

/** Someone using the web app in a browser context of their own. */
export interface Person {
  name: string;
  context: BrowserContext;
  page: Page;
  phone: boolean;
  /** Script errors and CSP violations seen by the page. */
  errors: string[];
}

/** Options for {@link person}. */
export interface PersonOptions {
  /** Phone viewport, touch and mobile. @default {false} */
  phone?: boolean;
  /** Dark colour scheme. @default {false} */
  dark?: boolean;
  /** Grant notifications and record those raised in `__notes`. @default {false} */
  notifications?: boolean;
  /** Runs on the context before the page opens (routes, init scripts). */
  setup?: (context: BrowserContext) => Promise<void>;
}

/** Opens the app at `url` for `name` in a new context. */
export async function person(
  browser: Browser,
  url: string,
  name: string,
  opts: PersonOptions = {},
): Promise<Person> {
  const context = await browser.newContext({
    viewport: opts.phone ? PHONE : DESKTOP,
    isMobile: opts.phone ?? false,
    hasTouch: opts.phone ?? false,
    colorScheme: opts.dark ? "dark" : "light",
    locale: "en-US",
    timezoneId: "UTC",
    permissions: opts.notifications ? ["notifications"] : [],
  });
  context.setDefaultTimeout(TIMEOUT);
  if (opts.notifications) {
    // Record notifications the page raises (the headless browser shows none).
    await context.addInitScript(() => {
      const w = globalThis as unknown as { __notes: unknown[]; Notification: typeof Notification };
      w.__notes = [];
      const Original = w.Notification;
      w.Notification = class extends Original {
        constructor(title: string, options?: NotificationOptions) {
          w.__notes.push({ title, body: options?.body, viaConstructor: true });
          super(title, options);
        }
      };
      // The app shows notifications through its service worker (never the constructor).
      const show = ServiceWorkerRegistration.prototype.showNotification;
      ServiceWorkerRegistration.prototype.showNotification = function (
        this: ServiceWorkerRegistration,
        title: string,
        options?: NotificationOptions,
      ) {
        w.__notes.push({ title, body: options?.body });
        return show.call(this, title, options);
      };
    });
  }
  await opts.setup?.(context);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy|Refused to/i.test(m.text())) {
      errors.push(m.text());
    }
  });
  await page.goto(url);
  return { name, context, page, phone: opts.phone ?? false, errors };
}

/** Waits until the app is connected and has its first state. */
export async function ready(p: Person): Promise<void> {
  await p.page.locator('.app[data-ready="true"]').waitFor();
}

/** Signs in with the form (login mode). */
export async function signIn(p: Person, password: string): Promise<void> {
  await p.page.getByLabel("Username").fill(p.name);
  await p.page.getByLabel("Password").fill(password);
  await p.page.getByRole("button", { name: "Sign in", exact: true }).click();
  await ready(p);
}

/** Types a message, presses Enter and waits until the server confirmed it. */
export async function send(p: Person, text: string): Promise<void> {
  const box = p.page.locator("#composer");
  await box.fill(text);
  await box.press("Enter");
  await p.page.locator(".msg:not(.pending)", { hasText: text.split("\n")[0] }).last().waitFor();
}

/** Polls `check` until it holds (for what no locator can wait on: titles, storage, counts). */
export async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + TIMEOUT;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs `fn` with a fresh browser, then closes it and the servers, whatever happens. */
export async function withBrowser(
  fn: (browser: Browser) => Promise<void>,
  ...servers: AsyncDisposable[]
): Promise<void> {
  let browser: Browser | undefined;
  try {
    browser = await launchBrowser();
    await fn(browser);
  } finally {
    await browser?.close();
    for (const s of servers) await s[Symbol.asyncDispose]();
  }
}

/**
 * The page's network to the chat's WebSocket, which a test can cut: the
 * page still loads (the HTTP server stays up), but its sockets close at once.
 */
export class Network {
  #online = true;
  #open = new Set<WebSocketRoute>();

  /** Routes the context's WebSockets through this network. */
  async attach(context: BrowserContext): Promise<void> {
    await context.routeWebSocket(/\/ws$/, (ws) => {
      if (!this.#online) {
        ws.close({ code: 1001, reason: "offline" }).catch(() => {});
        return;
      }
      ws.connectToServer();
      this.#open.add(ws);
    });
  }

  /** Closes the open sockets; new ones close as soon as they open. */
  async cut(): Promise<void> {
    this.#online = false;
    for (const ws of this.#open) await ws.close({ code: 1001, reason: "offline" }).catch(() => {});
    this.#open.clear();
  }

  /** Lets sockets through again. */
  restore(): void {
    this.#online = true;
  }
}
