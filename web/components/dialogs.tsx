/**
 * Modal dialogs (native `<dialog>`: focus stays inside, Escape closes):
 * browse and create rooms, and start a direct conversation.
 *
 * @module
 */
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import type { ChatModel } from "../model.ts";
import type { UiState } from "../ui.ts";
import { Avatar } from "./avatar.tsx";
import { CloseIcon, HashIcon } from "./icons.tsx";

function Modal(
  { ui, title, id, children }: {
    ui: UiState;
    title: string;
    id: string;
    children: ComponentChildren;
  },
) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => d?.close();
  }, []);
  return (
    <dialog
      ref={ref}
      class="modal"
      aria-labelledby={`${id}-title`}
      onClose={() => (ui.dialog.value = null)}
      onClick={(e) => {
        // A click on the backdrop lands on the dialog element itself.
        if (e.target === ref.current) ui.dialog.value = null;
      }}
    >
      <div class="modal-head">
        <h2 id={`${id}-title`}>{title}</h2>
        <button
          type="button"
          class="icon-btn"
          aria-label="Close"
          onClick={() => (ui.dialog.value = null)}
        >
          <CloseIcon />
        </button>
      </div>
      {children}
    </dialog>
  );
}

/**
 * Runs a dialog's action on a name: on a problem, shows it in the form;
 * else closes the dialog and puts the cursor in the composer.
 */
function useGo(ui: UiState, action: (name: string) => string | null) {
  const [error, setError] = useState<string | null>(null);
  const go = (name: string) => {
    const problem = action(name);
    if (problem) {
      setError(problem);
      return;
    }
    ui.dialog.value = null;
    ui.drawer.value = false;
    ui.focusComposer.value++;
  };
  return { error, clear: () => setError(null), go };
}

/** The one-line "type a name" form a dialog opens with; `sigil` (# or @) may be typed too. */
function NameForm(
  { id, name, label, placeholder, button, sigil, error, clear, go }: {
    id: string;
    name: string;
    label: string;
    placeholder: string;
    button: string;
    sigil: string;
    error: string | null;
    clear: () => void;
    go: (name: string) => void;
  },
) {
  return (
    <form
      class="modal-section"
      onSubmit={(e) => {
        e.preventDefault();
        const data = new FormData(e.currentTarget as HTMLFormElement);
        const typed = String(data.get(name) ?? "").trim();
        go(typed.startsWith(sigil) ? typed.slice(1) : typed);
      }}
      noValidate
    >
      <label class="field-title" for={`${id}-input`}>{label}</label>
      <div class="inline-form">
        <input
          id={`${id}-input`}
          autofocus
          name={name}
          placeholder={placeholder}
          autocomplete="off"
          autocapitalize="off"
          spellcheck={false}
          maxLength={33}
          aria-invalid={error ? true : undefined}
          aria-describedby={`${id}-error`}
          onInput={clear}
        />
        <button type="submit" class="btn primary">{button}</button>
      </div>
      <p id={`${id}-error`} class="form-error" role="alert" hidden={!error}>{error}</p>
    </form>
  );
}

/** Lists the rooms that exist and creates new ones. */
export function RoomsDialog({ model, ui }: { model: ChatModel; ui: UiState }) {
  const [filter, setFilter] = useState("");
  const list = model.roomList.value;
  const joined = model.convs.value;
  useEffect(() => model.listRooms(), []);

  const { error, clear, go } = useGo(ui, (name) => model.joinRoom(name));

  const f = filter.trim().toLowerCase();
  const shown = (list ?? []).filter((r) => r.name.toLowerCase().includes(f));
  return (
    <Modal ui={ui} title="Rooms" id="rooms">
      <NameForm
        id="room"
        name="room"
        label="Create or join a room"
        placeholder="room-name"
        button="Create"
        sigil="#"
        {...{ error, clear, go }}
      />
      <div class="modal-section">
        <label class="field">
          <span>Browse rooms</span>
          <input
            type="search"
            placeholder="Filter rooms"
            value={filter}
            onInput={(e) => setFilter((e.currentTarget as HTMLInputElement).value)}
          />
        </label>
        {list === null ? <p class="muted">Loading rooms…</p> : (
          <ul class="room-list">
            {shown.map((r) => {
              const member = joined.has(`#${r.name}`);
              return (
                <li key={r.name}>
                  <span class="conv-icon">
                    <HashIcon />
                  </span>
                  <span class="room-name">{r.name}</span>
                  <span class="muted">{r.members} member{r.members === 1 ? "" : "s"}</span>
                  <button
                    type="button"
                    class={member ? "btn" : "btn primary"}
                    aria-label={member ? `Open #${r.name}` : `Join #${r.name}`}
                    onClick={() => go(r.name)}
                  >
                    {member ? "Open" : "Join"}
                  </button>
                </li>
              );
            })}
            {shown.length === 0 && <li class="muted">No rooms match.</li>}
          </ul>
        )}
      </div>
    </Modal>
  );
}

/** Starts a direct conversation with someone. */
export function DmDialog({ model, ui }: { model: ChatModel; ui: UiState }) {
  const me = model.me.value;
  const online = [...model.online.value].filter((u) => u !== me).sort();
  const { error, clear, go } = useGo(ui, (name) => model.openDm(name));
  return (
    <Modal ui={ui} title="New direct message" id="dm">
      <NameForm
        id="dm"
        name="user"
        label="Username"
        placeholder="name"
        button="Open"
        sigil="@"
        {...{ error, clear, go }}
      />
      <div class="modal-section">
        <h3 class="field-title">Online now</h3>
        {online.length === 0 ? <p class="muted">Nobody else is online.</p> : (
          <ul class="people">
            {online.map((u) => (
              <li key={u}>
                <button type="button" class="person" onClick={() => go(u)}>
                  <Avatar name={u} online size="sm" />
                  <span class="person-name">{u}</span>
                </button>
              </li>
            ))}
          </ul>
        )}
      </div>
    </Modal>
  );
}
