/**
 * An admin renames a room: a field prefilled with its name, turned into a
 * valid one as it is typed (the way the room browser does: "Design team" →
 * `#design-team`, shown before anything is sent), Enter or Save to send a
 * `rename_room`, Escape or Cancel to leave it. The server's refusals (the
 * name is taken, `general`) show under the field in its words. Offered on
 * the admin page's Rooms tab and in the room's members panel.
 *
 * @module
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { LOBBY, type RoomRenamedFrame } from "../../protocol.ts";
import type { ChatModel } from "../model.ts";
import { slugify } from "../route.ts";

/** Whether this user is offered to rename `room`: admins, any room but `general`. */
export function mayRename(model: ChatModel, room: string): boolean {
  return model.role.value === "admin" && room !== LOBBY;
}

/** What {@link RenameRoom} needs. */
export interface RenameRoomProps {
  model: ChatModel;
  /** The room's name now. */
  room: string;
  /** Prefix of the ids of the field and its lines (unique in the page). */
  id: string;
  /** The server renamed it. */
  onDone: (f: RoomRenamedFrame) => void;
  /** Left without renaming (Escape, Cancel). */
  onCancel: () => void;
}

/** The rename field, its preview of the new name, Save and Cancel. */
export function RenameRoom({ model, room, id, onDone, onCancel }: RenameRoomProps) {
  const [typed, setTyped] = useState(room);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => {
    // The whole name is selected: typing replaces it, arrows edit it.
    input.current?.focus();
    input.current?.select();
  }, []);
  const slug = slugify(typed);
  const same = slug === room;

  const save = async () => {
    if (busy) return;
    if (slug === "") return setError("Enter a room name");
    if (same) return onCancel();
    setBusy(true);
    setError(null);
    try {
      onDone(await model.renameRoom(room, slug));
    } catch (err) {
      setError((err as Error).message);
      setBusy(false);
      input.current?.focus();
    }
  };

  return (
    <form
      class="rename-room"
      aria-label={`Rename #${room}`}
      noValidate
      onSubmit={(e) => {
        e.preventDefault();
        save();
      }}
      onKeyDown={(e) => {
        if (e.key !== "Escape") return;
        // Only the field closes: not the panel or page around it.
        e.preventDefault();
        e.stopPropagation();
        onCancel();
      }}
    >
      <label class="field-title" for={`${id}-input`}>New name for #{room}</label>
      <div class="inline-form">
        <input
          id={`${id}-input`}
          ref={input}
          name="room"
          autocomplete="off"
          autocapitalize="off"
          spellcheck={false}
          maxLength={64}
          value={typed}
          aria-invalid={error ? true : undefined}
          aria-describedby={`${id}-preview ${id}-error`}
          onInput={(e) => {
            setTyped((e.currentTarget as HTMLInputElement).value);
            setError(null);
          }}
        />
        <button type="submit" class="btn primary" disabled={busy || slug === ""}>
          {busy ? "Saving…" : "Save"}
        </button>
        <button type="button" class="btn" onClick={onCancel}>Cancel</button>
      </div>
      <p id={`${id}-preview`} class="hint" aria-live="polite">
        {slug === ""
          ? "Letters, digits, - and _; spaces become -."
          : same
          ? "That is its name now"
          : (
            <>
              Renames it to <strong class="truncate" title={`#${slug}`}>#{slug}</strong>
            </>
          )}
      </p>
      <p id={`${id}-error`} class="form-error" role="alert" hidden={!error}>{error}</p>
    </form>
  );
}
