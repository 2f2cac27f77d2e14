/**
 * Managing who is in a room, from its members panel: anyone in the room adds
 * people (an `invite` frame: the way into a private room), picking from the
 * app's directory or typing a name; an admin removes someone (a `kick`,
 * asked once first). The server's answer, or its refusal, shows in words.
 *
 * @module
 */
import { NameField } from "./name_field.tsx";
import { useState } from "preact/hooks";
import type { Conversation } from "../conversation.ts";
import type { ChatModel } from "../model.ts";
import { lastSeen } from "../time.ts";
import { Avatar } from "./avatar.tsx";
import { usePeople } from "./use_people.ts";

/** The most people the picker lists at once (the rest are a few letters away). */
const SHOWN = 8;

/** "Add people…" and the form it opens. */
export function AddPeople({ model, conv }: { model: ChatModel; conv: Conversation }) {
  const [open, setOpen] = useState(false);
  const [note, setNote] = useState<string | null>(null);
  if (open) {
    return (
      <AddForm
        model={model}
        conv={conv}
        note={note}
        setNote={setNote}
        onDone={() => setOpen(false)}
      />
    );
  }
  return (
    <div class="add-people">
      <button
        type="button"
        class="btn small wide"
        aria-expanded="false"
        onClick={() => setOpen(true)}
      >
        Add people…
      </button>
      {note && <p class="person-note" role="status">{note}</p>}
    </div>
  );
}

/** The name box and the directory to pick from (mounted only while open: it lists people). */
function AddForm(
  { model, conv, note, setNote, onDone }: {
    model: ChatModel;
    conv: Conversation;
    note: string | null;
    setNote: (note: string | null) => void;
    onDone: () => void;
  },
) {
  const [typed, setTyped] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const people = usePeople(model, typed);
  const members = new Set(conv.members.value.map((m) => m.toLowerCase()));
  const me = (model.me.value ?? "").toLowerCase();
  const room = conv.name;

  const add = async (name: string) => {
    const clean = name.trim().replace(/^@/, "");
    if (clean === "") return setError("Enter a name");
    if (busy) return;
    setBusy(true);
    setError(null);
    setNote(null);
    try {
      const f = await model.addToRoom(room, clean);
      setNote(`${f.user ?? clean} is in #${f.room} now`);
      setTyped("");
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };

  const choices = (people ?? [])
    .filter((u) => !members.has(u.name.toLowerCase()) && u.name.toLowerCase() !== me)
    .slice(0, SHOWN);
  return (
    <form
      class="add-people"
      aria-label={`Add people to #${room}`}
      noValidate
      onSubmit={(e) => {
        e.preventDefault();
        add(typed);
      }}
    >
      <label class="field-title" for="add-person-input">Add someone to #{room}</label>
      <div class="inline-form">
        <NameField
          id="add-person-input"
          errorId="add-person-error"
          value={typed}
          invalid={error !== null}
          onValue={(v) => {
            setTyped(v);
            setError(null);
          }}
        />
        <button type="submit" class="btn primary" aria-disabled={busy ? "true" : undefined}>
          Add
        </button>
      </div>
      {people === null
        ? <p class="muted">Loading people…</p>
        : choices.length > 0 && (
          <ul class="people directory add-choices" aria-label="People to add">
            {choices.map((u) => (
              <li key={u.name}>
                <button
                  type="button"
                  class="person"
                  title={`Add ${u.name} to #${room}`}
                  onClick={() => add(u.name)}
                >
                  <Avatar name={u.name} online={u.online} size="sm" />
                  <span class="person-name truncate">{u.name}</span>
                  <span class="seen">{lastSeen(u.online, u.seen)}</span>
                </button>
              </li>
            ))}
          </ul>
        )}
      <p id="add-person-error" class="form-error" role="alert" hidden={!error}>{error}</p>
      {note && <p class="person-note" role="status">{note}</p>}
      <button
        type="button"
        class="btn small"
        onClick={onDone}
      >
        Done
      </button>
    </form>
  );
}

/** An admin's "Remove from room", asked once, beside a member in the panel. */
export function RemoveFromRoom(
  { model, conv, name }: { model: ChatModel; conv: Conversation; name: string },
) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const room = conv.name;
  const kick = async () => {
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      await model.moderate({ type: "kick", room, user: name });
      setAsking(false);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button
        type="button"
        class="btn small danger-ghost member-remove"
        aria-label={`Remove ${name} from #${room}`}
        aria-expanded={asking}
        title={`Remove ${name} from #${room}`}
        onClick={() => setAsking(!asking)}
      >
        Remove
      </button>
      {asking && (
        <div class="member-confirm" role="group" aria-label={`Remove ${name} from #${room}?`}>
          <span>
            Remove {name} from #{room}? They are told who removed them{conv.settings.value.private
              ? " and lose its history."
              : "; they may join again."}
          </span>
          <div class="invite-actions">
            <button
              type="button"
              class="btn small danger"
              aria-disabled={busy ? "true" : undefined}
              onClick={kick}
            >
              Remove from room
            </button>
            <button
              type="button"
              class="btn small"
              onClick={() =>
                setAsking(false)}
            >
              Cancel
            </button>
          </div>
        </div>
      )}
      {error && <p class="form-error member-error" role="alert">{error}</p>}
    </>
  );
}
