/**
 * Settings: notifications on this device — Web Push when the browser and
 * the server have it, else only while a tab is open — (and the sidebar's
 * reminder about them),
 * changing one's own password, and signing out.
 *
 * @module
 */
import { useEffect, useRef, useState } from "preact/hooks";
import type { ChatModel } from "../model.ts";
import type { UiState } from "../ui.ts";
import { Modal } from "./dialogs.tsx";

const PROMPT_KEY = "chat.notifyPrompt";

/** Whether the sidebar's notification reminder was dismissed on this device. */
export function promptDismissed(): boolean {
  try {
    return localStorage.getItem(PROMPT_KEY) === "dismissed";
  } catch {
    return false;
  }
}

/** Hides (or brings back) the sidebar's notification reminder, on this device. */
export function dismissPrompt(ui: UiState, dismissed: boolean): void {
  ui.promptDismissed.value = dismissed;
  try {
    if (dismissed) localStorage.setItem(PROMPT_KEY, "dismissed");
    else localStorage.removeItem(PROMPT_KEY);
  } catch {
    // Remembered until the page reloads.
  }
}

/**
 * Turns notifications on (call from a click: it asks the browser's
 * permission): Web Push where there is one, else while a tab is open.
 */
export async function askNotifications(ui: UiState): Promise<void> {
  if (!("Notification" in globalThis)) return;
  const push = ui.push;
  try {
    if (push?.supported && push.state.peek() !== "server-off") await push.enable();
    else await Notification.requestPermission();
    ui.notifications.value = Notification.permission;
  } catch {
    ui.notifications.value = "denied";
  }
}

/** Web Push on this device: on, off, or why it cannot be. */
function PushSetting({ ui }: { ui: UiState }) {
  const push = ui.push!;
  const state = push.state.value;
  const error = push.error.value;
  return (
    <section class="modal-section" aria-labelledby="notify-title">
      <h3 id="notify-title" class="field-title">Notifications on this device</h3>
      <div class="push-row">
        <p class="setting-state" data-push={state}>
          {state === "on"
            ? "On: this device is notified even when the chat is closed."
            : state === "denied"
            ? "Blocked: allow notifications for this site in your browser's settings."
            : state === "busy"
            ? "Just a moment…"
            : "Off: you only see new messages while the chat is open."}
        </p>
        {state === "on"
          ? (
            <button type="button" class="btn" onClick={() => push.disable()}>
              Turn off
            </button>
          )
          : (state === "off" || state === "busy") && (
            <button
              type="button"
              class="btn primary"
              disabled={state === "busy"}
              onClick={async () => {
                await push.enable();
                ui.notifications.value = Notification.permission;
              }}
            >
              Turn on
            </button>
          )}
      </div>
      <p id="push-error" class="form-error" role="alert" hidden={!error}>{error}</p>
      <p class="hint">
        What notifies you is set per conversation with the bell at the top: all messages, mentions
        only, or nothing. Rooms start at mentions only, direct messages at all messages.
      </p>
      {ui.notifications.value === "default" && ui.promptDismissed.value && (
        <div class="form-actions start">
          <button type="button" class="btn" onClick={() => dismissPrompt(ui, false)}>
            Show the reminder in the sidebar
          </button>
        </div>
      )}
    </section>
  );
}

function Notifications({ ui }: { ui: UiState }) {
  const perm = ui.notifications.value;
  const push = ui.push;
  if (push?.supported && push.state.value !== "server-off" && push.state.value !== "unsupported") {
    return <PushSetting ui={ui} />;
  }
  return (
    <section class="modal-section" aria-labelledby="notify-title">
      <h3 id="notify-title" class="field-title">Notifications</h3>
      <p class="setting-state" data-permission={perm}>
        {perm === "granted"
          ? "On: mentions and direct messages notify you while this tab is in the background."
          : perm === "denied"
          ? "Blocked: allow notifications for this site in your browser's settings."
          : perm === "unsupported"
          ? "This browser cannot show notifications."
          : "Off: you only see new messages while the chat is open."}
      </p>
      {perm === "default" && (
        <div class="form-actions start">
          <button type="button" class="btn primary" onClick={() => askNotifications(ui)}>
            Turn on notifications
          </button>
          {ui.promptDismissed.value && (
            <button
              type="button"
              class="btn"
              onClick={() => dismissPrompt(ui, false)}
            >
              Show the reminder in the sidebar
            </button>
          )}
        </div>
      )}
    </section>
  );
}

function PasswordField(
  { label, name, fresh, onInput }: {
    label: string;
    name: string;
    fresh?: boolean;
    onInput: () => void;
  },
) {
  return (
    <label class="field">
      <span>{label}</span>
      <input
        type="password"
        name={name}
        autocomplete={fresh ? "new-password" : "current-password"}
        minLength={fresh ? 8 : undefined}
        required
        onInput={onInput}
      />
    </label>
  );
}

function Password({ model }: { model: ChatModel }) {
  const state = model.passwd.value;
  const [mismatch, setMismatch] = useState<string | null>(null);
  const said = useRef<HTMLParagraphElement>(null);
  useEffect(() => () => void (model.passwd.value = null), []);
  // The form goes once the change is done: the keyboard goes to what says so.
  useEffect(() => said.current?.focus(), [state?.done]);
  if (state?.done) {
    return (
      <p ref={said} tabIndex={-1} class="setting-state ok" role="status">
        Your password was changed. Every other device you were signed in on has been signed out.
      </p>
    );
  }
  const error = mismatch ?? state?.error ?? null;
  const clear = () => setMismatch(null);
  return (
    <form
      class="password-form"
      onSubmit={(e) => {
        e.preventDefault();
        const data = new FormData(e.currentTarget as HTMLFormElement);
        const current = String(data.get("current") ?? "");
        const next = String(data.get("password") ?? "");
        const again = String(data.get("again") ?? "");
        // Not disabled while busy (the focus would drop to the page): ignored instead.
        if (state?.busy) return;
        if (current === "") return setMismatch("Enter your current password");
        if (next !== again) return setMismatch("The new passwords don't match");
        setMismatch(null);
        model.changePassword(current, next);
      }}
      noValidate
    >
      {/* Lets password managers tie the change to the account. */}
      <input type="hidden" name="username" autocomplete="username" value={model.me.value ?? ""} />
      <PasswordField label="Current password" name="current" onInput={clear} />
      <PasswordField label="New password" name="password" onInput={clear} fresh />
      <PasswordField label="New password again" name="again" onInput={clear} fresh />
      <p id="passwd-error" class="form-error" role="alert" hidden={!error}>{error}</p>
      <p class="hint">At least 8 characters. Your other devices will be signed out.</p>
      <div class="form-actions start">
        <button type="submit" class="btn primary" aria-disabled={state?.busy ? "true" : undefined}>
          {state?.busy ? "Changing…" : "Change password"}
        </button>
      </div>
    </form>
  );
}

/** The settings dialog. */
export function SettingsDialog({ model, ui }: { model: ChatModel; ui: UiState }) {
  const login = model.info.value?.mode !== "open";
  return (
    <Modal ui={ui} title="Settings" id="settings">
      <Notifications ui={ui} />
      {login && (
        <section class="modal-section" aria-labelledby="passwd-title">
          <h3 id="passwd-title" class="field-title">Change your password</h3>
          <Password model={model} />
        </section>
      )}
      <section class="modal-section">
        <h3 class="field-title">
          Signed in as <span class="truncate">{model.me.value}</span>
        </h3>
        <div class="form-actions start">
          <button type="button" class="btn danger-ghost" onClick={() => model.signOut()}>
            Sign out
          </button>
        </div>
      </section>
    </Modal>
  );
}
