// This module is browser compatible.
/**
 * "Notifications on this device": the browser's permission and its Web Push
 * subscription, kept in step with the server. Turning it on asks for the
 * permission (only ever on a click), subscribes with the server's VAPID key
 * and sends `push_subscribe`; turning it off unsubscribes both. After every
 * `welcome` the subscription is sent again while it is on (a restarted server
 * with a memory store has forgotten it; a new key on the server means a new
 * subscription); if the server refuses it, notifications are off here too.
 *
 * @module
 */
import { signal } from "@preact/signals";
import type { PushSubscriptionInfo } from "../protocol.ts";
import { type ChatModel, PUSH_CONNECTION_LOST, PUSH_NOT_CONNECTED } from "./model.ts";
import type { AppWorker } from "./sw_client.ts";

/** What the settings show. */
export type PushState =
  /** The browser has no Web Push (or no service worker: plain http). */
  | "unsupported"
  /** The server has push off: notifications only while a tab is open. */
  | "server-off"
  /** The user blocked notifications for this site. */
  | "denied"
  | "off"
  | "busy"
  | "on";

/** Where versions before 2026-12 remembered the last subscription sent: removed. */
const SENT_KEY = "chat.push.sent";

/** Said when notifications are turned on before the chat is connected. */
export const NOT_CONNECTED = "Not connected: try again once the chat is back";

/** Decodes base64url (VAPID keys). */
export function fromBase64Url(text: string): Uint8Array<ArrayBuffer> {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  // atob rather than Uint8Array.fromBase64: browsers from before 2025 lack that.
  const bin = atob(b64.padEnd(Math.ceil(b64.length / 4) * 4, "="));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** Encodes bytes as base64url without padding. */
export function toBase64Url(bytes: ArrayBuffer | Uint8Array): string {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  return btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The subscription as the protocol carries it, or null when it lacks keys. */
export function subscriptionInfo(sub: PushSubscription): PushSubscriptionInfo | null {
  const p256dh = sub.getKey("p256dh");
  const auth = sub.getKey("auth");
  if (!p256dh || !auth) return null;
  return { endpoint: sub.endpoint, keys: { p256dh: toBase64Url(p256dh), auth: toBase64Url(auth) } };
}

function sameKey(sub: PushSubscription, key: string): boolean {
  const held = sub.options.applicationServerKey;
  return held !== null && toBase64Url(held) === key;
}

/** This device's Web Push, for the settings and the page. */
export class PushControl {
  /** What the settings say. */
  readonly state = signal<PushState>("unsupported");
  /** Why the last change failed, if it did. */
  readonly error = signal<string | null>(null);
  #model: ChatModel;
  #worker: AppWorker;
  #storage: Pick<Storage, "getItem" | "setItem" | "removeItem">;

  constructor(
    model: ChatModel,
    worker: AppWorker,
    storage: Pick<Storage, "getItem" | "setItem" | "removeItem">,
  ) {
    this.#model = model;
    this.#worker = worker;
    this.#storage = storage;
    this.#forgetSent();
  }

  /** Whether this browser can take pushes at all. */
  get supported(): boolean {
    return this.#worker.supported && typeof PushManager !== "undefined" &&
      typeof Notification !== "undefined";
  }

  async #subscription(): Promise<PushSubscription | null> {
    const reg = await this.#worker.registration();
    return reg ? await reg.pushManager.getSubscription() : null;
  }

  /** Works out the state again: after a welcome, and once at start. */
  async refresh(): Promise<void> {
    if (!this.supported) {
      this.state.value = "unsupported";
      return;
    }
    if (Notification.permission === "denied") {
      this.state.value = "denied";
      return;
    }
    const info = this.#model.push.peek();
    if (!info) {
      this.state.value = this.#model.ready.peek() ? "server-off" : this.state.peek();
      return;
    }
    const sub = await this.#subscription();
    this.state.value = sub && Notification.permission === "granted" ? "on" : "off";
  }

  /**
   * After every welcome: the server learns the subscription again (a
   * restarted server may have lost it; a new key makes it anew). A refusal
   * turns notifications off on this device, with the server's words.
   */
  async sync(): Promise<void> {
    await this.refresh();
    const info = this.#model.push.peek();
    const user = this.#model.me.peek();
    if (this.state.peek() !== "on" || !info || !user) return;
    let sub = await this.#subscription();
    if (!sub) return;
    if (!sameKey(sub, info.key)) {
      // The server has new keys: the old subscription can never be used again.
      await sub.unsubscribe().catch(() => false);
      sub = await this.#subscribe(info.key);
    }
    const data = sub && subscriptionInfo(sub);
    if (!sub || !data) return;
    const problem = await this.#model.pushSubscribe(data);
    // Not connected any more: the next welcome sends it again.
    if (problem === null || problem === PUSH_NOT_CONNECTED || problem === PUSH_CONNECTION_LOST) {
      return;
    }
    await sub.unsubscribe().catch(() => false);
    this.error.value = `Notifications are off: ${problem}`;
    this.state.value = "off";
  }

  async #subscribe(key: string): Promise<PushSubscription | null> {
    const reg = await this.#worker.registration();
    if (!reg) return null;
    return await reg.pushManager.subscribe({
      userVisibleOnly: true,
      applicationServerKey: fromBase64Url(key),
    });
  }

  #forgetSent(): void {
    try {
      this.#storage.removeItem(SENT_KEY);
    } catch {
      // Storage refused: the key is never read.
    }
  }

  /** Turns notifications on for this device (asks the permission: call from a click). */
  async enable(): Promise<void> {
    if (!this.supported) return;
    if (!this.#model.ready.peek()) {
      // The server's key and answer are needed: nothing is asked or subscribed.
      this.error.value = NOT_CONNECTED;
      return;
    }
    this.error.value = null;
    this.state.value = "busy";
    try {
      const permission = await Notification.requestPermission();
      if (permission !== "granted") {
        this.state.value = permission === "denied" ? "denied" : "off";
        return;
      }
      const info = this.#model.push.peek();
      if (!info) {
        this.state.value = "server-off";
        return;
      }
      let sub = await this.#subscription();
      if (sub && !sameKey(sub, info.key)) {
        await sub.unsubscribe().catch(() => false);
        sub = null;
      }
      sub ??= await this.#subscribe(info.key);
      const data = sub && subscriptionInfo(sub);
      if (!sub || !data) throw new Error("the browser gave no subscription");
      const problem = await this.#model.pushSubscribe(data);
      if (problem !== null) {
        await sub.unsubscribe().catch(() => false);
        throw new Error(problem);
      }
      this.state.value = "on";
    } catch (err) {
      this.error.value = `Cannot turn notifications on: ${(err as Error).message}`;
      await this.refresh();
    }
  }

  /** Turns them off: the browser and the server forget the subscription. */
  async disable(): Promise<void> {
    this.error.value = null;
    this.state.value = "busy";
    try {
      const sub = await this.#subscription();
      if (sub) {
        const endpoint = sub.endpoint;
        await sub.unsubscribe();
        const problem = await this.#model.pushUnsubscribe(endpoint);
        if (problem !== null) throw new Error(problem);
      }
      this.state.value = "off";
    } catch (err) {
      this.error.value = `Cannot turn notifications off: ${(err as Error).message}`;
      await this.refresh();
    }
  }

  /**
   * Signed out: this device's subscription goes too (the server dropped the
   * session's already), so nothing more arrives for the user who left.
   */
  async forget(): Promise<void> {
    const sub = await this.#subscription().catch(() => null);
    await sub?.unsubscribe().catch(() => false);
    await this.refresh();
  }
}
