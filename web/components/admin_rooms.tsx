/**
 * The admin page's rooms (`GET /api/rooms`): every room, private and
 * archived ones included, with its size, topic and kind — never its
 * messages. Switches set a room private, read-only, archived, a default
 * room (new accounts join it) or one where only admins may notify everyone
 * with `@room` or `@here`: each sends a `room_settings` frame over the
 * app's connection, and the row shows the server's answer, or its refusal
 * in its words (`general` cannot be private or archived). **Rename** opens a
 * field for a new name in the row (not for `general`); the row then shows
 * the room under it.
 *
 * @module
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { LOBBY, type RoomKind } from "../../protocol.ts";
import type { AdminApi, AdminRoom, ApiError } from "../admin_api.ts";
import type { ChatModel } from "../model.ts";
import { kindOf } from "../room_kind.ts";
import { RoomIcon } from "./icons.tsx";
import { mayRename, RenameRoom } from "./rename_room.tsx";

/** The switches, in the order shown, with what turning each on or off means. */
const FLAGS: { key: keyof RoomKind; label: string; on: string; off: string; hint: string }[] = [
  {
    key: "private",
    label: "Private",
    on: "is private now: only its members see it",
    off: "is public now: everyone can find and join it",
    hint: "Only members see it; they add people",
  },
  {
    key: "readOnly",
    label: "Read-only",
    on: "is read-only now: only admins post",
    off: "is open to everyone's messages again",
    hint: "Only admins post (announcements)",
  },
  {
    key: "archived",
    label: "Archived",
    on: "is archived: kept, read-only, out of the list",
    off: "is back in use",
    hint: "Kept and readable, closed to messages, out of the list",
  },
  {
    key: "autoJoin",
    label: "Default room",
    on: "is a default room now: new accounts join it",
    off: "is no longer a default room",
    hint: "New accounts join it on their first sign-in",
  },
  {
    key: "restrictRoomMentions",
    label: "Only admins may use @room",
    on: "lets only admins use @room and @here now",
    off: "lets everyone use @room and @here again",
    hint: "Members' messages with @room or @here are refused (for large rooms)",
  },
];

/** The rooms tab. */
export function RoomsTab({ api, model }: { api: AdminApi; model: ChatModel }) {
  const [rooms, setRooms] = useState<AdminRoom[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  // What the last rename said, shown in the row of the room under its new name.
  const [renamed, setRenamed] = useState<{ room: string; text: string } | null>(null);
  const load = async () => {
    setError(null);
    try {
      setRooms(await api.rooms());
    } catch (err) {
      setError((err as ApiError).message);
    }
  };
  useEffect(() => void load(), []);
  return (
    <section class="admin-section" aria-labelledby="rooms-title">
      <div class="admin-section-head">
        <h2 id="rooms-title">Rooms</h2>
        <button type="button" class="btn small" onClick={load}>Refresh</button>
      </div>
      <p class="hint">
        Every room, private and archived ones too: their names, sizes and kinds, never their
        messages.
      </p>
      {error && <p class="form-error" role="alert">{error}</p>}
      {rooms === null
        ? !error && <p class="list-status" role="status">Loading…</p>
        : rooms.length === 0
        ? <p class="list-status">No rooms yet.</p>
        : (
          <ul class="rooms-admin">
            {rooms.map((r) => (
              <RoomItem
                key={r.name}
                model={model}
                room={r}
                note={renamed?.room === r.name ? renamed.text : null}
                onRenamed={(name) => {
                  setRenamed({ room: name, text: `#${r.name} is called #${name} now` });
                  setRooms((old) =>
                    (old ?? []).map((x) => x.name === r.name ? { ...x, name } : x)
                      .sort((a, b) => a.name.localeCompare(b.name))
                  );
                }}
                onKind={(kind) =>
                  setRooms((old) =>
                    (old ?? []).map((x) =>
                      x.name === r.name
                        ? {
                          name: x.name,
                          members: x.members,
                          ...(x.topic ? { topic: x.topic } : {}),
                          ...kind,
                        }
                        : x
                    )
                  )}
              />
            ))}
          </ul>
        )}
    </section>
  );
}

/** One room with its switches and Rename. */
function RoomItem(
  { model, room, note: renamedNote, onRenamed, onKind }: {
    model: ChatModel;
    room: AdminRoom;
    /** A note to show from the start (the row is new after a rename). */
    note: string | null;
    onRenamed: (name: string) => void;
    onKind: (kind: RoomKind) => void;
  },
) {
  const [busy, setBusy] = useState<keyof RoomKind | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [note, setNote] = useState<string | null>(renamedNote);
  const [renaming, setRenaming] = useState(false);
  const renameButton = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    // The row is new after a rename: the keyboard goes on from its Rename.
    if (renamedNote !== null) renameButton.current?.focus();
  }, []);
  const id = `room-${room.name}`;

  const set = async (key: keyof RoomKind, value: boolean) => {
    if (busy) return;
    setBusy(key);
    setError(null);
    setNote(null);
    try {
      const f = await model.roomSettings(room.name, { [key]: value });
      const kind = kindOf(f.settings);
      onKind(kind);
      const flag = FLAGS.find((x) => x.key === key)!;
      setNote(`#${room.name} ${kind[key] ? flag.on : flag.off}`);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(null);
    }
  };

  const lobby = room.name === LOBBY;
  // A private room is managed from inside: the server answers an admin outside it as it
  // answers anyone outside it.
  const outside = room.private === true &&
    model.convs.value.get(`#${room.name}`)?.member.value !== true;
  return (
    <li
      class="room-admin"
      data-room={room.name}
      data-kind={FLAGS.filter((f) => room[f.key]).map((f) => f.key).join(" ")}
      aria-labelledby={`${id}-name`}
    >
      <div class="room-admin-main">
        <span class={room.private ? "conv-icon private" : "conv-icon"}>
          <RoomIcon private={room.private} />
        </span>
        <div class="room-admin-text">
          <div class="person-top">
            <strong id={`${id}-name`} class="room-admin-name truncate" title={room.name}>
              {room.name}
            </strong>
            {room.private && <span class="state-badge">Private</span>}
            {room.readOnly && <span class="state-badge">Read-only</span>}
            {room.archived && <span class="state-badge revoked">Archived</span>}
            {(room.autoJoin || lobby) && <span class="state-badge ok">Default</span>}
          </div>
          <p class="person-meta">
            {room.members} member{room.members === 1 ? "" : "s"}
            {room.topic && <span class="room-admin-topic" title={room.topic}>· {room.topic}</span>}
          </p>
        </div>
        {mayRename(model, room.name) && !renaming && (
          <button
            ref={renameButton}
            type="button"
            class="btn small rename-btn"
            aria-label={`Rename #${room.name}`}
            aria-expanded="false"
            aria-disabled={outside ? "true" : undefined}
            aria-describedby={outside ? `${id}-outside` : undefined}
            onClick={() => {
              if (outside) return;
              setNote(null);
              setRenaming(true);
            }}
          >
            Rename
          </button>
        )}
      </div>
      <div class="room-switches" role="group" aria-label={`Settings of #${room.name}`}>
        {FLAGS.map((f) => {
          const on = !!room[f.key];
          return (
            <label key={f.key} class="check switch" title={f.hint}>
              <input
                type="checkbox"
                role="switch"
                checked={on}
                aria-disabled={busy !== null || outside ? "true" : undefined}
                aria-describedby={outside ? `${id}-outside` : undefined}
                onClick={(e) => {
                  // The answer sets the switch: until then it shows what the room is.
                  e.preventDefault();
                  if (!outside) set(f.key, !on);
                }}
              />
              <span>{busy === f.key ? `${f.label}…` : f.label}</span>
            </label>
          );
        })}
      </div>
      {renaming && (
        <RenameRoom
          model={model}
          room={room.name}
          id={`${id}-rename`}
          onCancel={() => {
            setRenaming(false);
            // The field goes: the keyboard stays on the row, on the button that opened it.
            setTimeout(() => renameButton.current?.focus());
          }}
          onDone={(f) => onRenamed(f.name)}
        />
      )}
      {outside && (
        <p id={`${id}-outside`} class="hint room-outside">
          You are not in #{room.name}: only its members manage a private room.
        </p>
      )}
      {error && <p class="form-error" role="alert">{error}</p>}
      {note && <p class="person-note" role="status">{note}</p>}
    </li>
  );
}
