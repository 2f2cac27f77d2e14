/**
 * The installable app's own screens: the chat as it last was, shown when
 * the app starts without a connection, and the "new version" bar.
 *
 * @module
 */
import { signal } from "@preact/signals";
import { useState } from "preact/hooks";
import type { ChatModel } from "../model.ts";
import type { Snapshot } from "../offline.ts";
import type { AppWorker } from "../sw_client.ts";
import { clock, dayLabel } from "../time.ts";
import type { UiState } from "../ui.ts";
import { Avatar } from "./avatar.tsx";
import { Logo, MenuIcon, RoomIcon } from "./icons.tsx";

/**
 * The conversation chosen on the offline screen: kept outside it, so that it
 * stays chosen whatever is drawn meanwhile.
 */
const chosen = signal<string | null>(null);

/**
 * What the offline screen's bar says: offline (the device has no network),
 * the server not answering, or connecting.
 */
function offlineStatus(model: ChatModel): string {
  const conn = model.conn.value;
  const online = typeof navigator === "undefined" || navigator.onLine;
  const waiting = conn === "waiting";
  if (!online) {
    return waiting
      ? `Offline — reconnecting in ${model.retryIn.value} s.`
      : "Offline — reconnecting…";
  }
  if (waiting) return `The chat server is not answering — retrying in ${model.retryIn.value} s.`;
  return "Connecting to the chat…";
}

/**
 * The conversations and last messages the app had, read-only, under a bar
 * that says the app is offline and reconnecting (it keeps trying; the real
 * chat takes over once the server answers).
 */
export function OfflineScreen(
  { model, ui, snapshot }: { model: ChatModel; ui: UiState; snapshot: Snapshot },
) {
  const open = chosen.value ??
    snapshot.active ?? snapshot.conversations.find((c) => c.messages)?.key ?? null;
  const setOpen = (key: string) => (chosen.value = key);
  const conv = snapshot.conversations.find((c) => c.key === open);
  const rooms = snapshot.conversations.filter((c) => c.key.startsWith("#"));
  const dms = snapshot.conversations.filter((c) => c.key.startsWith("@"));
  const waiting = model.conn.value === "waiting";
  const item = (c: Snapshot["conversations"][number]) => (
    <li key={c.key}>
      <button
        type="button"
        class={`conv-item${c.key === open ? " active" : ""}${c.unread > 0 ? " unread" : ""}`}
        aria-current={c.key === open ? "page" : undefined}
        data-conv={c.key}
        onClick={() => {
          setOpen(c.key);
          ui.drawer.value = false;
        }}
      >
        {c.key.startsWith("#")
          ? (
            <span class="conv-icon">
              <RoomIcon />
            </span>
          )
          : <Avatar name={c.key.slice(1)} size="sm" />}
        <span class="conv-name">{c.key.slice(1)}</span>
        {c.unread > 0 && (
          <span class="badge" data-unread={c.unread}>{c.unread > 99 ? "99+" : c.unread}</span>
        )}
      </button>
    </li>
  );
  let day = "";
  return (
    <div class="shell offline-shell" data-offline="true">
      <aside class={ui.drawer.value ? "sidebar open" : "sidebar"} aria-label="Conversations">
        <div class="brand">
          <Logo />
          <span class="brand-name">Chat</span>
        </div>
        <nav class="conv-nav">
          <section>
            <div class="section-head">
              <h2 id="offline-rooms">Rooms</h2>
            </div>
            <ul aria-labelledby="offline-rooms">{rooms.map(item)}</ul>
          </section>
          {dms.length > 0 && (
            <section>
              <div class="section-head">
                <h2 id="offline-dms">Direct messages</h2>
              </div>
              <ul aria-labelledby="offline-dms">{dms.map(item)}</ul>
            </section>
          )}
        </nav>
      </aside>
      {ui.drawer.value && (
        <div class="scrim" aria-hidden="true" onClick={() => (ui.drawer.value = false)} />
      )}
      <main class="main">
        <header class="topbar">
          <button
            type="button"
            class="icon-btn menu-btn"
            aria-label="Conversations"
            onClick={() => (ui.drawer.value = true)}
          >
            <MenuIcon />
          </button>
          <div class="title">
            <h1>
              {conv?.key.startsWith("#") && <span class="hash">#</span>}
              {conv ? conv.key.slice(1) : "Chat"}
            </h1>
          </div>
        </header>
        <div class="banner offline-banner" role="status">
          <span>
            {offlineStatus(model)}{" "}
            Showing your conversations as they were when you were last online.
          </span>
          {waiting && (
            <button type="button" class="btn small" onClick={() => model.retryNow()}>
              Retry now
            </button>
          )}
        </div>
        <section class="conversation offline-messages" aria-label="Conversation">
          {conv?.messages?.length
            ? (
              <ol class="offline-list">
                {conv.messages.map((m) => {
                  const d = dayLabel(m.ts);
                  const head = d !== day;
                  day = d;
                  return (
                    <li key={m.id}>
                      {head && <p class="offline-day">{d}</p>}
                      <div class="msg" data-id={m.id}>
                        <div class="msg-side">
                          <Avatar name={m.from} />
                        </div>
                        <div class="msg-body">
                          <div class="msg-meta">
                            <span class="from">{m.from}</span>{" "}
                            <time class="time" dateTime={m.ts}>{clock(m.ts)}</time>
                          </div>
                          <div class="msg-text">
                            {m.text}
                            {m.files?.map((f) => <span key={f} class="offline-file">📎 {f}</span>)}
                          </div>
                        </div>
                      </div>
                    </li>
                  );
                })}
              </ol>
            )
            : (
              <p class="list-status">
                {conv ? "No messages kept for this conversation." : "Connecting…"}
              </p>
            )}
        </section>
      </main>
    </div>
  );
}

/** "A new version is ready": switches to it and reloads on a click. */
export function UpdateBanner({ worker }: { worker: AppWorker }) {
  const [busy, setBusy] = useState(false);
  if (!worker.updateReady.value) return null;
  return (
    <div class="update-bar" role="status">
      <span>A new version is ready.</span>
      <button
        type="button"
        class="btn small primary"
        disabled={busy}
        onClick={() => {
          setBusy(true);
          worker.applyUpdate();
        }}
      >
        Reload
      </button>
    </div>
  );
}
