/**
 * The signed-in screen: sidebar, the open conversation, the side panel,
 * dialogs, the connection banner and toasts.
 *
 * @module
 */
import type { ChatModel } from "../model.ts";
import type { UiState } from "../ui.ts";
import { Composer, MessageList, TypingLine } from "./conversation_view.tsx";
import { DmDialog, RoomsDialog, TopicDialog } from "./dialogs.tsx";
import { CloseIcon } from "./icons.tsx";
import { MembersPanel, SearchPanel, Topbar } from "./panels.tsx";
import { SettingsDialog } from "./settings.tsx";
import { Sidebar } from "./sidebar.tsx";
import { Switcher } from "./switcher.tsx";

/** Shown while the connection is down: what happens to messages now. */
function ConnBanner({ model }: { model: ChatModel }) {
  if (model.ready.value) return null;
  const state = model.conn.value;
  const note = model.connNote.value;
  const first = model.convs.value.size === 0;
  if (first && state !== "waiting") return null;
  return (
    <div class="banner" role="status">
      <span>
        {note ?? "Connection lost"}. {state === "waiting"
          ? `Reconnecting in ${model.retryIn.value} s — messages you write will be sent then.`
          : "Reconnecting…"}
      </span>
      {state === "waiting" && (
        <button
          type="button"
          class="btn small"
          onClick={() => model.retryNow()}
        >
          Retry now
        </button>
      )}
    </div>
  );
}

function Toasts({ model }: { model: ChatModel }) {
  const toasts = model.toasts.value;
  return (
    <div class="toasts" role="status" aria-live="polite">
      {toasts.map((t) => (
        <div key={t.id} class="toast">
          <span>{t.text}</span>
          <button
            type="button"
            class="icon-btn small"
            aria-label="Dismiss"
            onClick={() => model.dismissToast(t.id)}
          >
            <CloseIcon />
          </button>
        </div>
      ))}
    </div>
  );
}

/** The chat. */
export function ChatScreen({ model, ui }: { model: ChatModel; ui: UiState }) {
  const conv = model.current.value;
  const panel = ui.panel.value;
  const dialog = ui.dialog.value;
  return (
    <div class={`shell${panel ? " with-panel" : ""}`}>
      <a
        class="skip"
        href="#composer"
        onClick={(e) => {
          // The page's address names the open conversation: keep it.
          e.preventDefault();
          ui.focusComposer.value++;
        }}
      >
        Skip to message box
      </a>
      <Sidebar model={model} ui={ui} />
      {ui.drawer.value && (
        <div class="scrim" aria-hidden="true" onClick={() => (ui.drawer.value = false)} />
      )}
      <main class="main">
        <Topbar model={model} ui={ui} />
        <ConnBanner model={model} />
        <div class="content">
          <section class="conversation" aria-label="Conversation">
            {conv
              ? (
                <>
                  <MessageList key={conv.id} model={model} ui={ui} conv={conv} />
                  <TypingLine conv={conv} />
                  <Composer model={model} ui={ui} conv={conv} />
                </>
              )
              : <p class="list-status">Connecting…</p>}
          </section>
          {panel === "search" && <SearchPanel model={model} ui={ui} />}
          {panel === "members" && conv?.kind === "room" && conv.member.value && (
            <MembersPanel model={model} ui={ui} conv={conv} />
          )}
        </div>
      </main>
      {dialog === "rooms" && <RoomsDialog model={model} ui={ui} />}
      {dialog === "dm" && <DmDialog model={model} ui={ui} />}
      {dialog === "switcher" && <Switcher model={model} ui={ui} />}
      {dialog === "settings" && <SettingsDialog model={model} ui={ui} />}
      {dialog === "topic" && conv?.kind === "room" && (
        <TopicDialog model={model} ui={ui} conv={conv} />
      )}
      <Toasts model={model} />
    </div>
  );
}
