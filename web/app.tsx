/**
 * The web app's entry point: builds the {@link ChatModel} with the page's
 * storage, visibility and notifications, and renders the screens.
 *
 * @module
 */
import { effect } from "@preact/signals";
import { render } from "preact";
import { useEffect } from "preact/hooks";
import { ChatScreen } from "./components/chat_screen.tsx";
import { Logo } from "./components/icons.tsx";
import { SignIn } from "./components/sign_in.tsx";
import { ChatModel } from "./model.ts";
import { UiState } from "./ui.ts";

/** The whole page: a loading mark, the sign-in card or the chat. */
export function App({ model, ui }: { model: ChatModel; ui: UiState }) {
  const phase = model.phase.value;
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "k" && phase === "chat") {
        e.preventDefault();
        ui.panel.value = "search";
        ui.focusSearch.value++;
      } else if (e.key === "Escape" && ui.dialog.value === null) {
        // Close whatever covers the messages: the drawer, or a panel drawn over them.
        if (ui.drawer.value) ui.drawer.value = false;
        else if (ui.panel.value && matchMedia("(max-width: 1099px)").matches) {
          ui.panel.value = null;
        }
      }
    };
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
  }, [phase]);
  return (
    <div
      class="app"
      data-phase={phase}
      data-conn={model.conn.value}
      data-ready={model.ready.value ? "true" : undefined}
    >
      {phase === "loading"
        ? (
          <div class="splash" aria-busy="true" aria-label="Loading">
            <Logo size={48} />
          </div>
        )
        : phase === "signin"
        ? <SignIn model={model} />
        : <ChatScreen model={model} ui={ui} />}
    </div>
  );
}

function boot(): void {
  const ui = new UiState();
  const model = new ChatModel({
    origin: location.origin,
    storage: localStorage,
    notify(alert) {
      if (!("Notification" in globalThis) || Notification.permission !== "granted") return;
      const n = new Notification(alert.title, { body: alert.body, tag: alert.key });
      n.onclick = () => {
        focus();
        model.open(alert.key);
        n.close();
      };
    },
  });
  if ("Notification" in globalThis) ui.notifications.value = Notification.permission;
  model.visible.value = document.visibilityState === "visible";
  document.addEventListener("visibilitychange", () => {
    model.setVisible(document.visibilityState === "visible");
  });
  addEventListener("online", () => model.retryNow());
  // A draft typed just before the page goes away is saved too.
  addEventListener("pagehide", () => model.saveDrafts());
  // Desktop: members beside the messages from the start.
  if (matchMedia("(min-width: 1100px)").matches) ui.panel.value = "members";

  // The tab title carries the unread count and the open conversation.
  effect(() => {
    const n = model.unreadTotal.value;
    const conv = model.current.value;
    const name = conv ? (conv.kind === "room" ? `#${conv.name}` : conv.name) : "";
    document.title = `${n > 0 ? `(${n}) ` : ""}${name ? `${name} · ` : ""}Chat`;
  });

  render(<App model={model} ui={ui} />, document.getElementById("app")!);
  model.start();
}

if (typeof document !== "undefined") boot();
