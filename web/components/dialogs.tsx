/**
 * Modal dialogs (native `<dialog>`: focus stays inside, Escape closes):
 * browse and create rooms, start a direct conversation with anyone who has
 * an account, and set a room's topic.
 *
 * @module
 */
import { NameField } from "./name_field.tsx";
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { MAX_TOPIC_BYTES, wireLength } from "../../protocol.ts";
import type { Conversation } from "../conversation.ts";
import type { ChatModel } from "../model.ts";
import { slugify } from "../route.ts";
import { bytes } from "../text.ts";
import { lastSeen } from "../time.ts";
import type { UiState } from "../ui.ts";
import { Avatar } from "./avatar.tsx";
import { CloseIcon, RoomIcon } from "./icons.tsx";
import { usePeople } from "./use_people.ts";

/** A modal dialog with a title and a close button; closing it clears `ui.dialog`. */
export function Modal(
  { ui, title, id, children, wide }: {
    ui: UiState;
    title: string;
    id: string;
    children: ComponentChildren;
    wide?: boolean;
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
      id={`${id}-dialog`}
      class={wide ? "modal wide" : "modal"}
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

/** Closes the dialog (and the drawer) and puts the cursor in the composer. */
function done(ui: UiState): void {
  ui.dialog.value = null;
  ui.drawer.value = false;
  ui.focusComposer.value++;
}

/** Lists the rooms that exist and creates new ones. */
export function RoomsDialog({ model, ui }: { model: ChatModel; ui: UiState }) {
  const [filter, setFilter] = useState("");
  const [typed, setTyped] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [locked, setLocked] = useState(false);
  const list = model.roomList.value;
  const joined = model.convs.value;
  useEffect(() => model.listRooms(), []);

  const go = (name: string, opts: { private?: boolean } = {}) => {
    const problem = name === "" ? "Enter a room name" : model.joinRoom(name, opts);
    if (problem) setError(problem);
    else done(ui);
  };
  const slug = slugify(typed);
  const exists = slug !== "" &&
    ((list ?? []).some((r) => r.name === slug) ||
      joined.get(`#${slug}`)?.member.value === true);
  // Private only when creating: the server keeps an existing room's kind.
  const makePrivate = locked && !exists && slug !== "";

  const f = filter.trim().toLowerCase();
  const shown = (list ?? []).filter((r) =>
    r.name.toLowerCase().includes(f) || (r.topic ?? "").toLowerCase().includes(f)
  );
  return (
    <Modal ui={ui} title="Rooms" id="rooms">
      <form
        class="modal-section"
        onSubmit={(e) => {
          e.preventDefault();
          go(slug, makePrivate ? { private: true } : {});
        }}
        noValidate
      >
        <label class="field-title" for="room-input">Create or join a room</label>
        <div class="inline-form">
          <input
            id="room-input"
            autofocus
            name="room"
            placeholder="Room name"
            autocomplete="off"
            spellcheck={false}
            maxLength={64}
            value={typed}
            aria-invalid={error ? true : undefined}
            aria-describedby="room-preview room-error"
            onInput={(e) => {
              setTyped((e.currentTarget as HTMLInputElement).value);
              setError(null);
            }}
          />
          <button type="submit" class="btn primary" disabled={slug === ""}>
            {exists ? "Join" : "Create"}
          </button>
        </div>
        {!exists && slug !== "" && (
          <label class="check switch">
            <input
              type="checkbox"
              role="switch"
              checked={locked}
              aria-describedby="room-preview"
              onChange={(e) => setLocked((e.currentTarget as HTMLInputElement).checked)}
            />
            <span>Private</span>
          </label>
        )}
        <p id="room-preview" class="hint" aria-live="polite">
          {slug === "" ? "Letters, digits, - and _; spaces become -." : (
            <>
              {exists ? "Joins " : makePrivate ? "Creates the private room " : "Creates "}
              <strong class="truncate" title={`#${slug}`}>#{slug}</strong>
              {makePrivate && ": only people you add see it"}
            </>
          )}
        </p>
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
              const member = joined.get(`#${r.name}`)?.member.value === true;
              return (
                <li key={r.name}>
                  <span
                    class={r.private ? "conv-icon private" : "conv-icon"}
                    title={r.private ? "Private room" : undefined}
                  >
                    <RoomIcon private={r.private} />
                  </span>
                  <span class="room-text">
                    <span class="room-name truncate" title={r.name}>
                      {r.name}
                      {r.private && <span class="sr-only">(private)</span>}
                      {r.readOnly && <span class="state-badge">Read-only</span>}
                    </span>
                    {r.topic && <span class="room-topic truncate" title={r.topic}>{r.topic}</span>}
                  </span>
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

/** Starts a direct conversation with anyone who has an account. */
export function DmDialog({ model, ui }: { model: ChatModel; ui: UiState }) {
  const [typed, setTyped] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const people = usePeople(model, typed);
  const open = model.info.value?.mode === "open";

  const go = async (name: string) => {
    const clean = name.trim().replace(/^@/, "");
    if (clean === "") return setError("Enter a name");
    setBusy(true);
    try {
      const who = await model.findPerson(clean);
      if (who === null) {
        setError(`There's no one called “${clean.slice(0, 40)}” here: check the spelling`);
        return;
      }
      const problem = model.openDm(who.name);
      if (problem) setError(problem);
      else done(ui);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Modal ui={ui} title="New direct message" id="dm">
      <form
        class="modal-section"
        onSubmit={(e) => {
          e.preventDefault();
          go(typed);
        }}
        noValidate
      >
        <label class="field-title" for="dm-input">Find someone</label>
        <div class="inline-form">
          <NameField
            id="dm-input"
            errorId="dm-error"
            value={typed}
            invalid={error !== null}
            onValue={(v) => {
              setTyped(v);
              setError(null);
            }}
          />
          <button type="submit" class="btn primary" disabled={busy}>Open</button>
        </div>
        <p id="dm-error" class="form-error" role="alert" hidden={!error}>{error}</p>
      </form>
      <div class="modal-section">
        <h3 class="field-title">{open ? "People seen recently" : "Everyone"}</h3>
        {people === null
          ? <p class="muted">Loading people…</p>
          : people.length === 0
          ? (
            <p class="muted">
              {typed.trim() === "" ? "Nobody else is here yet." : "Nobody matches."}
            </p>
          )
          : (
            <ul class="people directory">
              {people.map((u) => (
                <li key={u.name}>
                  <button type="button" class="person" onClick={() => go(u.name)}>
                    <Avatar name={u.name} online={u.online} size="sm" />
                    <span class="person-name truncate" title={u.name}>{u.name}</span>
                    <span class="seen" title={u.seen}>{lastSeen(u.online, u.seen)}</span>
                  </button>
                </li>
              ))}
            </ul>
          )}
        {model.people.value?.more && typed.trim() === "" && (
          <p class="muted">Only some people are listed: type a name to find others.</p>
        )}
      </div>
    </Modal>
  );
}

/** Sets or clears the topic of a room. */
export function TopicDialog(
  { model, ui, conv }: { model: ChatModel; ui: UiState; conv: Conversation },
) {
  const [text, setText] = useState(conv.topic.value);
  const over = wireLength(text.trim()) - MAX_TOPIC_BYTES;
  return (
    <Modal ui={ui} title={`Topic of #${conv.name}`} id="topic">
      <form
        class="modal-section"
        onSubmit={(e) => {
          e.preventDefault();
          if (over > 0) return;
          model.setTopic(conv.name, text.trim());
          done(ui);
        }}
      >
        <label class="field-title" for="topic-input">What is this room about?</label>
        <input
          id="topic-input"
          autofocus
          value={text}
          placeholder="Add a topic"
          aria-invalid={over > 0 ? true : undefined}
          aria-describedby="topic-hint"
          onInput={(e) => setText((e.currentTarget as HTMLInputElement).value)}
        />
        {over > 0
          ? (
            <p id="topic-hint" class="form-error" role="alert">
              Too long by {bytes(over)}: a topic holds up to {MAX_TOPIC_BYTES}{" "}
              (most characters take 1, accented letters 2, emoji 4).
            </p>
          )
          : <p id="topic-hint" class="hint">Everyone in #{conv.name} sees it in the header.</p>}
        <div class="form-actions">
          {conv.topic.value !== "" && (
            <button
              type="button"
              class="btn"
              onClick={() => {
                model.setTopic(conv.name, "");
                done(ui);
              }}
            >
              Clear topic
            </button>
          )}
          <button type="submit" class="btn primary" disabled={over > 0}>Save</button>
        </div>
      </form>
    </Modal>
  );
}
