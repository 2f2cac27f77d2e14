/**
 * The conversation list: rooms and direct messages with unread badges, and
 * the signed-in user with the connection state.
 *
 * @module
 */
import type { Conversation } from "../conversation.ts";
import type { ChatModel } from "../model.ts";
import type { UiState } from "../ui.ts";
import { Avatar } from "./avatar.tsx";
import {
  BellIcon,
  CheckAllIcon,
  CloseIcon,
  GearIcon,
  Logo,
  LogoutIcon,
  PlusIcon,
  RoomIcon,
  SearchIcon,
  ShieldIcon,
} from "./icons.tsx";
import { askNotifications, dismissPrompt } from "./settings.tsx";

function Badge({ conv }: { conv: Conversation }) {
  const n = conv.unread.value;
  if (n === 0) return null;
  return (
    <span class={conv.mentioned.value ? "badge strong" : "badge"} data-unread={n}>
      <span aria-hidden="true">{n > 99 ? "99+" : n}</span>
      <span class="sr-only">{n === 1 ? "1 unread message" : `${n} unread messages`}</span>
    </span>
  );
}

function Item({ model, ui, conv }: { model: ChatModel; ui: UiState; conv: Conversation }) {
  const active = model.active.value === conv.key;
  const unread = conv.unread.value > 0;
  return (
    <li>
      <button
        type="button"
        class={`conv-item${active ? " active" : ""}${unread ? " unread" : ""}`}
        aria-current={active ? "page" : undefined}
        data-conv={conv.key}
        onClick={() => {
          model.open(conv.key);
          ui.drawer.value = false;
          ui.focusComposer.value++;
        }}
      >
        {conv.kind === "room"
          ? (
            <span
              class={conv.settings.value.private ? "conv-icon private" : "conv-icon"}
              title={conv.settings.value.private ? "Private room" : undefined}
            >
              <RoomIcon private={conv.settings.value.private} />
              {conv.settings.value.private && <span class="sr-only">Private room</span>}
            </span>
          )
          : <Avatar name={conv.name} online={model.online.value.has(conv.name)} size="sm" />}
        <span class="conv-name" title={conv.name}>{conv.name}</span>
        <Badge conv={conv} />
      </button>
    </li>
  );
}

/** Connection state in words. */
export function ConnStatus({ model }: { model: ChatModel }) {
  const state = model.conn.value;
  const ready = model.ready.value;
  let text: string;
  if (ready) text = "Connected";
  else if (state === "waiting") text = `Reconnecting in ${model.retryIn.value} s`;
  else if (state === "connecting" || state === "open") text = "Connecting…";
  else text = "Offline";
  return (
    <span class={`conn ${ready ? "ok" : state === "waiting" ? "bad" : "busy"}`} role="status">
      <span class="conn-dot" aria-hidden="true" />
      {text}
      {state === "waiting" && (
        <button type="button" class="link" onClick={() => model.retryNow()}>Retry now</button>
      )}
    </span>
  );
}

/** The sidebar. */
export function Sidebar({ model, ui }: { model: ChatModel; ui: UiState }) {
  const me = model.me.value ?? "";
  const perm = ui.notifications.value;
  const unread = model.unreadTotal.value;
  return (
    <aside class={ui.drawer.value ? "sidebar open" : "sidebar"} aria-label="Conversations">
      <div class="brand">
        <Logo />
        <span class="brand-name">Chat</span>
        {unread > 0 && (
          <button
            type="button"
            class="mark-read"
            title="Mark all as read (Shift+Esc)"
            onClick={() => {
              model.markAllRead();
              // The button goes with the last unread message: keep the keyboard somewhere useful.
              ui.focusComposer.value++;
            }}
          >
            <CheckAllIcon /> Mark all as read
          </button>
        )}
      </div>
      <button
        type="button"
        class="jump-to"
        aria-keyshortcuts="Control+K"
        onClick={() => (ui.dialog.value = "switcher")}
      >
        <SearchIcon size={16} /> Jump to…
        <kbd aria-hidden="true">Ctrl K</kbd>
      </button>
      <nav class="conv-nav">
        <section>
          <div class="section-head">
            <h2 id="rooms-heading">Rooms</h2>
            <button
              type="button"
              class="icon-btn small"
              aria-label="Browse or create rooms"
              title="Browse or create rooms"
              onClick={() => (ui.dialog.value = "rooms")}
            >
              <PlusIcon />
            </button>
          </div>
          <ul aria-labelledby="rooms-heading">
            {model.rooms.value.map((c) => <Item key={c.key} model={model} ui={ui} conv={c} />)}
          </ul>
        </section>
        <section>
          <div class="section-head">
            <h2 id="dms-heading">Direct messages</h2>
            <button
              type="button"
              class="icon-btn small"
              aria-label="New direct message"
              title="New direct message"
              onClick={() => (ui.dialog.value = "dm")}
            >
              <PlusIcon />
            </button>
          </div>
          <ul aria-labelledby="dms-heading">
            {model.dms.value.map((c) => <Item key={c.key} model={model} ui={ui} conv={c} />)}
            {model.dms.value.length === 0 && (
              <li class="empty-hint">Click someone's name to talk privately.</li>
            )}
          </ul>
        </section>
      </nav>
      {perm === "default" && !ui.promptDismissed.value && (
        <div class="notify-prompt">
          <button type="button" class="notify-btn" onClick={() => askNotifications(ui)}>
            <BellIcon /> Notify me about mentions and direct messages
          </button>
          <button
            type="button"
            class="icon-btn small"
            aria-label="Dismiss: turn notifications on later from settings"
            title="Dismiss (turn them on later from settings)"
            onClick={() => {
              dismissPrompt(ui, true);
              ui.focusComposer.value++;
            }}
          >
            <CloseIcon />
          </button>
        </div>
      )}
      <div class="me">
        <Avatar name={me || "?"} />
        <div class="me-text">
          <span class="me-name" title={me}>{me}</span>
          <ConnStatus model={model} />
        </div>
        {model.role.value === "admin" && (
          <a
            class="icon-btn"
            href="#/admin/people"
            aria-label="Admin"
            title="Admin: people, invite links, rooms and the audit log"
            onClick={() => (ui.drawer.value = false)}
          >
            <ShieldIcon />
          </a>
        )}
        <button
          type="button"
          class="icon-btn"
          aria-label="Settings"
          title="Settings"
          onClick={() => (ui.dialog.value = "settings")}
        >
          <GearIcon />
        </button>
        <button
          type="button"
          class="icon-btn"
          aria-label="Sign out"
          title="Sign out"
          onClick={() => model.signOut()}
        >
          <LogoutIcon />
        </button>
      </div>
    </aside>
  );
}
