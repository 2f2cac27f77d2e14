// This module is browser compatible.
/**
 * The page's side of the service worker (`web/sw.ts`): registers it, says
 * when a new version of the app waits ({@link AppWorker.updateReady}) and
 * switches to it on request, shows notifications through it (the
 * `Notification` constructor throws on Android Chrome: it is used only where
 * there is no service worker) and hears which conversation a clicked
 * notification is about.
 *
 * @module
 */
import { signal } from "@preact/signals";
import type { Alert } from "./model.ts";
import { routeHash } from "./route.ts";
import type { PageMessage, WorkerMessage } from "./sw.ts";

/** The service worker of the app, seen from the page. */
export class AppWorker {
  /** A new version of the app is installed and waits for a reload. */
  readonly updateReady = signal(false);
  #registration: Promise<ServiceWorkerRegistration | null> = Promise.resolve(null);
  #switching = false;
  #onOpen: (url: string) => void = () => {};

  /** Whether the browser has service workers (they need https or localhost). */
  get supported(): boolean {
    return typeof navigator !== "undefined" && "serviceWorker" in navigator;
  }

  /**
   * Registers `/sw.js` and listens to it: `onOpen` gets the address of a
   * conversation whose notification was clicked.
   */
  start(onOpen: (url: string) => void): void {
    this.#onOpen = onOpen;
    if (!this.supported) return;
    const container = navigator.serviceWorker;
    container.addEventListener("message", (e: MessageEvent) => {
      const msg = e.data as WorkerMessage | null;
      if (msg?.type === "open" && typeof msg.url === "string") onOpen(msg.url);
    });
    container.addEventListener("controllerchange", () => {
      // Only the switch asked for reloads, and only once.
      if (!this.#switching) return;
      this.#switching = false;
      location.reload();
    });
    this.#registration = container
      .register("/sw.js", { scope: "/", updateViaCache: "none" })
      .then((reg) => {
        this.#watch(reg);
        return reg;
      }, (err) => {
        // deno-lint-ignore no-console
        console.warn("Cannot register the service worker:", err);
        return null;
      });
  }

  #watch(reg: ServiceWorkerRegistration): void {
    // A worker waiting while another controls the page is a new version.
    const check = () => {
      if (reg.waiting && navigator.serviceWorker.controller) this.updateReady.value = true;
    };
    check();
    reg.addEventListener("updatefound", () => {
      const next = reg.installing;
      next?.addEventListener("statechange", () => {
        if (next.state === "installed") check();
      });
    });
  }

  /** Asks the server whether the app changed (after a reconnect: it may have been updated). */
  async checkForUpdate(): Promise<void> {
    const reg = await this.#registration;
    await reg?.update().catch(() => {
      // Offline or the server restarting: the next reconnect asks again.
    });
  }

  /** Switches to the waiting version and reloads the page once it controls it. */
  async applyUpdate(): Promise<void> {
    const reg = await this.#registration;
    const waiting = reg?.waiting;
    if (!waiting) {
      location.reload();
      return;
    }
    this.#switching = true;
    waiting.postMessage({ type: "skipWaiting" } satisfies PageMessage);
  }

  /** The registration, once there is one (null without a service worker). */
  registration(): Promise<ServiceWorkerRegistration | null> {
    return this.#registration;
  }

  /**
   * Shows `alert` as a system notification through the service worker: one
   * per conversation (its key is the tag), which a click opens. Rejects if
   * the browser refuses; the model logs that and carries on.
   */
  async notify(alert: Alert): Promise<void> {
    if (typeof Notification === "undefined" || Notification.permission !== "granted") return;
    const url = `/${routeHash(alert.key)}`;
    const options: NotificationOptions & { renotify: boolean } = {
      body: alert.body,
      tag: alert.key,
      renotify: true,
      icon: "/icon-192.png",
      badge: "/badge-96.png",
      data: { url, conv: alert.key },
    };
    if (!(await this.#registration)) {
      // No service worker (plain http, or turned off): the page's own, where
      // the constructor works; where it throws, the model logs it.
      const note = new Notification(alert.title, options);
      note.onclick = () => {
        focus();
        note.close();
        this.#onOpen(url);
      };
      return;
    }
    // Only an active worker shows notifications: the first moments of the first visit wait.
    const reg = await navigator.serviceWorker.ready;
    await reg.showNotification(alert.title, options);
  }

  /**
   * Closes the notifications about conversation `key` (it was read here), or
   * all of them without a key (signed out: no message text stays in the tray).
   */
  async closeNotifications(key?: string): Promise<void> {
    const reg = await this.#registration;
    if (!reg) return;
    for (const n of await reg.getNotifications(key === undefined ? {} : { tag: key })) n.close();
  }
}
