// This module is browser compatible.
/**
 * Layout state that is not chat state: which drawer, panel or dialog is
 * open. One instance for the page, read by the components.
 *
 * @module
 */
import { signal } from "@preact/signals";
import type { PushControl } from "./push.ts";
import type { Page } from "./route.ts";
import type { AppWorker } from "./sw_client.ts";

/** What the right-hand panel shows. */
export type Panel = "members" | "search" | null;

/** Which dialog is open. */
export type Dialog = "rooms" | "dm" | "switcher" | "settings" | "topic" | null;

/** Page layout state. */
export class UiState {
  /** The conversation drawer is open (phone widths). */
  readonly drawer = signal(false);
  /** The right-hand panel. */
  readonly panel = signal<Panel>(null);
  /** The open dialog. */
  readonly dialog = signal<Dialog>(null);
  /** A page shown instead of the chat (an invite link, the admin page), from the hash. */
  readonly page = signal<Page | null>(null);
  /** Desktop notification permission: "default", "granted", "denied" or "unsupported". */
  readonly notifications = signal<string>("unsupported");
  /** Bumped to move focus to the composer. */
  readonly focusComposer = signal(0);
  /** Bumped to move focus to the search box. */
  readonly focusSearch = signal(0);
  /** The sidebar's "notify me" prompt was dismissed (it comes back from settings). */
  readonly promptDismissed = signal(false);
  /** The service worker, in a page (absent in tests that render without one). */
  worker: AppWorker | null = null;
  /** This device's Web Push, in a page. */
  push: PushControl | null = null;
}
