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

/** Lists the rooms that exist and creates new ones. */
export function RoomsDialog({ model, ui }: { model: ChatModel; ui: UiState }) {
  const [error, setError] = useState<string | null>(null);
  const [filter, setFilter] = useState("");
  const list = model.roomList.value;
  const joined = model.convs.value;
  useEffect(() => model.listRooms(), []);

  const go = (name: string) => {
    const problem = model.joinRoom(name);
    if (problem) {
      setError(problem);
      return;
    }
    ui.dialog.value = null;
    ui.drawer.value = false;
    ui.focusComposer.value++;
  };

  const f = filter.trim().toLowerCase();
  const shown = (list ?? []).filter((r) => r.name.toLowerCase().includes(f));
  return (
    <Modal ui={ui} title="Rooms" id="rooms">
      <form
        class="modal-section"
        onSubmit={(e) => {
          e.preventDefault();
          const data = new FormData(e.currentTarget as HTMLFormElement);
          go(String(data.get("room") ?? "").trim().replace(/^#/, ""));
        }}
        noValidate
      >
        <label class="field-title" for="room-input">Create or join a room</label>
        <div class="inline-form">
          <input
            id="room-input"
            autofocus
            name="room"
            placeholder="room-name"
            autocomplete="off"
            autocapitalize="off"
            spellcheck={false}
            maxLength={33}
            aria-invalid={error ? true : undefined}
            aria-describedby="room-error"
            onInput={() => setError(null)}
          />
          <button type="submit" class="btn primary">Create</button>
        </div>
        <p id="room-error" class="form-error" role="alert" hidden={!error}>{error}</p>
      </form>
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
  const [error, setError] = useState<string | null>(null);
  const me = model.me.value;
  const online = [...model.online.value].filter((u) => u !== me).sort();
  const go = (name: string) => {
    const problem = model.openDm(name);
    if (problem) {
      setError(problem);
      return;
    }
    ui.dialog.value = null;
    ui.drawer.value = false;
    ui.focusComposer.value++;
  };
  return (
    <Modal ui={ui} title="New direct message" id="dm">
      <form
        class="modal-section"
        onSubmit={(e) => {
          e.preventDefault();
          const data = new FormData(e.currentTarget as HTMLFormElement);
          go(String(data.get("user") ?? "").trim().replace(/^@/, ""));
        }}
        noValidate
      >
        <label class="field-title" for="dm-input">Username</label>
        <div class="inline-form">
          <input
            id="dm-input"
            autofocus
            name="user"
            placeholder="name"
            autocomplete="off"
            autocapitalize="off"
            spellcheck={false}
            maxLength={33}
            aria-invalid={error ? true : undefined}
            aria-describedby="dm-error"
            onInput={() => setError(null)}
          />
          <button type="submit" class="btn primary">Open</button>
        </div>
        <p id="dm-error" class="form-error" role="alert" hidden={!error}>{error}</p>
      </form>
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
