/**
 * The web app's entry point: builds the {@link ChatModel} with the page's
 * storage, visibility and notifications, and renders the screens.
 *
 * @module
 */
import { effect, signal } from "@preact/signals";
import { render } from "preact";
import { useEffect } from "preact/hooks";
import { AdminPage } from "./components/admin_page.tsx";
import { ChatScreen } from "./components/chat_screen.tsx";
import { Logo } from "./components/icons.tsx";
import { InvitePage } from "./components/invite_page.tsx";
import { OfflineScreen, UpdateBanner } from "./components/offline_screen.tsx";
import { promptDismissed } from "./components/settings.tsx";
import { SignIn } from "./components/sign_in.tsx";
import { shortcut } from "./keys.ts";
import { ChatModel, TOKEN_KEY, USER_KEY } from "./model.ts";
import {
  clearSnapshots,
  loadSnapshot,
  saveSnapshot,
  type Snapshot,
  SNAPSHOT_CONVERSATIONS,
  takeSnapshot,
} from "./offline.ts";
import { PushControl } from "./push.ts";
import { AppWorker } from "./sw_client.ts";
import { parsePage, routeHash } from "./route.ts";
import { UiState } from "./ui.ts";

/** What the app last had, for starting offline (null once the server answered). */
const offline = signal<Snapshot | null>(null);

/**
 * The whole page: a loading mark, the sign-in card or the chat — or a page
 * of its own address instead: an invite link (signed in or not) or, once
 * signed in, the admin page. Started without a connection, the chat as it
 * last was, read-only, until the server answers.
 */
export function App({ model, ui }: { model: ChatModel; ui: UiState }) {
  const phase = model.phase.value;
  const page = ui.page.value;
  const chat = phase === "chat" && page === null;
  const snapshot = offline.value;
  // Until the server first answers (offline, or the server down, or still
  // connecting): the snapshot, steadily, whatever the connection does meanwhile
  // — unless this device holds conversations of its own (unsent messages,
  // drafts): those show in the chat itself, where they can still be written.
  const startedOffline = chat && snapshot !== null && !model.ready.value &&
    model.convs.value.size === 0;
  useEffect(() => {
    if (!chat) return;
    const onKey = (e: KeyboardEvent) => {
      if (shortcut(e, model, ui)) e.preventDefault();
    };
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
  }, [chat]);
  return (
    <div
      class="app"
      data-phase={phase}
      data-page={page?.kind}
      data-conn={model.conn.value}
      data-ready={model.ready.value ? "true" : undefined}
    >
      {ui.worker && <UpdateBanner worker={ui.worker} />}
      {page?.kind === "invite"
        ? <InvitePage key={page.code} model={model} ui={ui} code={page.code} />
        : page?.kind === "admin" && phase === "chat"
        ? <AdminPage model={model} ui={ui} tab={page.tab} />
        : phase === "loading"
        ? (
          <div class="splash" aria-busy="true" aria-label="Loading">
            <Logo size={48} />
          </div>
        )
        : phase === "signin"
        ? <SignIn model={model} />
        : startedOffline
        ? <OfflineScreen model={model} ui={ui} snapshot={snapshot} />
        : <ChatScreen model={model} ui={ui} />}
    </div>
  );
}

/**
 * The installed app's part of the page: the service worker, Web Push, the
 * snapshot for starting offline (taken while connected, dropped on
 * sign-out) and closing the notifications of what is read here.
 */
function installable(model: ChatModel, ui: UiState, worker: AppWorker): void {
  const push = new PushControl(model, worker, localStorage);
  ui.worker = worker;
  ui.push = push;
  worker.start((url) => {
    focus();
    // Off the admin page, if it is open: the conversation is what was asked for.
    ui.page.value = null;
    const hash = new URL(url, location.origin).hash;
    if (location.hash !== hash) location.hash = hash;
    else model.followLink(hash);
  });
  push.refresh();

  const user = localStorage.getItem(USER_KEY);
  const saved = user === null ? null : loadSnapshot(localStorage, user);
  offline.value = saved;
  // Conversations open lately, the latest first: their messages are kept.
  let recent = saved?.conversations.filter((c) => c.messages).map((c) => c.key) ?? [];
  if (saved?.active) recent = [saved.active, ...recent.filter((k) => k !== saved.active)];
  const save = () => {
    if (!model.ready.peek()) return;
    const snap = takeSnapshot(model, recent);
    if (snap) saveSnapshot(localStorage, snap, recent);
  };
  effect(() => {
    const key = model.active.value;
    if (key === null) return;
    recent = [key, ...recent.filter((k) => k !== key)].slice(0, SNAPSHOT_CONVERSATIONS);
  });
  let welcomes = 0;
  effect(() => {
    if (!model.ready.value) return;
    offline.value = null;
    // A reconnect may be to a new version of the server: look for a new app.
    if (welcomes++ > 0) worker.checkForUpdate();
    push.sync();
    save();
  });
  const timer = setInterval(save, 30_000);
  addEventListener("pagehide", () => {
    save();
    clearInterval(timer);
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") save();
  });
  // Signed out (or the session ended): nothing of the user's stays on the device.
  let signedIn = false;
  effect(() => {
    const phase = model.phase.value;
    if (phase === "chat") signedIn = true;
    if (phase !== "signin") return;
    offline.value = null;
    recent = [];
    clearSnapshots(localStorage);
    // Their text is the user's too: none stays in the tray.
    worker.closeNotifications().catch(() => {});
    if (signedIn) push.forget();
    signedIn = false;
  });
  // What is read here needs no notification anywhere on this device.
  effect(() => {
    const key = model.active.value;
    if (key === null || !model.ready.value || !model.visible.value) return;
    worker.closeNotifications(key).catch(() => {});
  });
}

function boot(): void {
  const ui = new UiState();
  const worker = new AppWorker();
  const model = new ChatModel({
    origin: location.origin,
    storage: localStorage,
    // Through the service worker: the constructor throws on Android Chrome. With
    // pushes on, the server's push says it (the page is hidden, so it is sent): not twice.
    notify: (alert) => ui.push?.state.peek() === "on" ? undefined : worker.notify(alert),
  });
  installable(model, ui, worker);
  if ("Notification" in globalThis) ui.notifications.value = Notification.permission;
  ui.promptDismissed.value = promptDismissed();
  model.visible.value = document.visibilityState === "visible";
  document.addEventListener("visibilitychange", () => {
    model.setVisible(document.visibilityState === "visible");
  });
  addEventListener("online", () => model.retryNow());
  addEventListener("storage", (e: StorageEvent) => {
    if (e.key === TOKEN_KEY && e.newValue) model.adoptToken(e.newValue);
  });
  // A draft typed just before the page goes away is saved too.
  addEventListener("pagehide", () => model.saveDrafts());
  // Files still uploading would be lost with the page: the browser asks first,
  // as Slack's does. Listening only meanwhile keeps the page in the
  // back/forward cache the rest of the time.
  effect(() => {
    if (model.uploading.value === 0) return;
    const ask = (e: BeforeUnloadEvent) => {
      e.preventDefault();
      // Chrome before 119 and older Safari ask only when this is set.
      e.returnValue = true;
    };
    addEventListener("beforeunload", ask);
    return () => removeEventListener("beforeunload", ask);
  });
  // Desktop: members beside the messages from the start.
  if (matchMedia("(min-width: 1100px)").matches) ui.panel.value = "members";

  // The tab title carries the unread count and the open conversation.
  effect(() => {
    const n = model.unreadTotal.value;
    const conv = model.current.value;
    const page = ui.page.value?.kind;
    const name = page === "admin"
      ? "Admin"
      : page === "invite"
      ? "Invite"
      : conv
      ? (conv.kind === "room" ? `#${conv.name}` : conv.name)
      : "";
    document.title = `${n > 0 ? `(${n}) ` : ""}${name ? `${name} · ` : ""}Chat`;
  });

  // Every conversation has its own address: the hash follows the open one
  // (a new history entry per change, so Back and Forward move between
  // conversations), and following a link or going back opens what it names.
  // A page of its own (an invite link, the admin page) keeps its address
  // until it is left; then the hash names the open conversation again.
  let placed = false;
  effect(() => {
    const key = model.active.value;
    if (!model.ready.value || key === null || ui.page.value !== null) return;
    const hash = routeHash(key);
    if (location.hash === hash) {
      // Opened at its own address (a reload, a link): the next one gets an entry of its own.
      placed = true;
      return;
    }
    // A link to a message stays as it is while its conversation is open.
    if (location.hash.startsWith(`${hash}/`)) return;
    // The open room was renamed: the same place under its new name, not a new entry.
    const moved = model.movedLink(location.hash);
    if (moved !== null && (moved === hash || moved.startsWith(`${hash}/`))) {
      history.replaceState(null, "", moved);
      placed = true;
      return;
    }
    if (placed) history.pushState(null, "", hash);
    else history.replaceState(null, "", hash);
    placed = true;
  });
  const follow = () => {
    ui.page.value = parsePage(location.hash);
    if (ui.page.value !== null) return;
    // A link to a room renamed this session (Back, an old link): its new address.
    const moved = model.movedLink(location.hash);
    if (moved !== null) history.replaceState(null, "", moved);
    if (model.followLink(location.hash) || !location.hash.startsWith("#/")) return;
    // Not an address of ours (a mistyped link): show where the user really is.
    const key = model.active.peek();
    if (key !== null) history.replaceState(null, "", routeHash(key));
  };
  addEventListener("hashchange", follow);
  addEventListener("popstate", follow);

  ui.page.value = parsePage(location.hash);
  render(<App model={model} ui={ui} />, document.getElementById("app")!);
  model.start();
  if (ui.page.value === null) model.followLink(location.hash);
}

if (typeof document !== "undefined") boot();
