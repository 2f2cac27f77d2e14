/**
 * The quick switcher (Ctrl+K, or Cmd+K): type part of a room's or a
 * person's name, pick with the arrow keys, Enter opens it — a room the user
 * is not in is joined, a person's direct conversation is started.
 *
 * @module
 */
import { useEffect, useState } from "preact/hooks";
import type { Conversation } from "../conversation.ts";
import type { ChatModel } from "../model.ts";
import { lastSeen } from "../time.ts";
import type { UiState } from "../ui.ts";
import { Avatar } from "./avatar.tsx";
import { Modal } from "./dialogs.tsx";
import { RoomIcon } from "./icons.tsx";
import { usePeople } from "./use_people.ts";

/** Most choices listed at once. */
const MAX_CHOICES = 50;

type Choice =
  | { kind: "conv"; id: string; conv: Conversation }
  | { kind: "room"; id: string; name: string; topic?: string; private?: true }
  | { kind: "person"; id: string; name: string; online: boolean; seen?: string };

/** How well `name` matches `q`: 0 starts with it, 1 has a word starting with it, 2 has it, else -1. */
function rank(name: string, q: string): number {
  if (q === "") return 0;
  const n = name.toLowerCase();
  if (n.startsWith(q)) return 0;
  if (new RegExp(`[-_]${q.replace(/[^a-z0-9]/g, "\\$&")}`).test(n)) return 1;
  return n.includes(q) ? 2 : -1;
}

function choices(model: ChatModel, typed: string, people: ReturnType<typeof usePeople>): Choice[] {
  const q = typed.trim().replace(/^[#@]/, "").toLowerCase();
  const out: { c: Choice; r: number; order: number }[] = [];
  const convs = [...model.rooms.value, ...model.dms.value];
  const have = new Set(convs.map((c) => c.key.toLowerCase()));
  convs.forEach((conv, i) => {
    const r = rank(conv.name, q);
    if (r < 0) return;
    // With nothing typed: what is unread first, the rest as the sidebar has them.
    const order = q === "" && conv.unread.value > 0 ? -1 : i;
    out.push({ c: { kind: "conv", id: conv.key, conv }, r, order });
  });
  let order = convs.length;
  for (const room of model.roomList.value ?? []) {
    if (have.has(`#${room.name}`.toLowerCase())) continue;
    const r = rank(room.name, q);
    if (r >= 0) out.push({ c: { kind: "room", id: `#${room.name}`, ...room }, r, order: order++ });
  }
  for (const u of people ?? []) {
    if (have.has(`@${u.name}`.toLowerCase())) continue;
    const r = rank(u.name, q);
    if (r >= 0) out.push({ c: { kind: "person", id: `@${u.name}`, ...u }, r, order: order++ });
  }
  out.sort((a, b) => a.r - b.r || a.order - b.order);
  return out.slice(0, MAX_CHOICES).map((x) => x.c);
}

/** The quick switcher dialog. */
export function Switcher({ model, ui }: { model: ChatModel; ui: UiState }) {
  const [typed, setTyped] = useState("");
  const [at, setAt] = useState(0);
  const people = usePeople(model, typed);
  useEffect(() => model.listRooms(), []);
  const list = choices(model, typed, people);
  const sel = Math.min(at, Math.max(0, list.length - 1));

  const pick = (c: Choice | undefined) => {
    if (!c) return;
    const problem = c.kind === "conv"
      ? (model.open(c.conv.key), null)
      : c.kind === "room"
      ? model.joinRoom(c.name)
      : model.openDm(c.name);
    if (problem) {
      model.toast(problem);
      return;
    }
    ui.dialog.value = null;
    ui.drawer.value = false;
    ui.focusComposer.value++;
  };

  return (
    <Modal ui={ui} title="Jump to a conversation" id="switcher" wide>
      <div class="modal-section switcher">
        <input
          id="switcher-input"
          autofocus
          role="combobox"
          aria-expanded="true"
          aria-controls="switcher-list"
          aria-activedescendant={list[sel] ? `sw-${list[sel].id}` : undefined}
          aria-label="Room or person"
          placeholder="Room or person"
          autocomplete="off"
          autocapitalize="off"
          spellcheck={false}
          value={typed}
          onInput={(e) => {
            setTyped((e.currentTarget as HTMLInputElement).value);
            setAt(0);
          }}
          onKeyDown={(e) => {
            if (e.key === "ArrowDown" || (e.key === "n" && e.ctrlKey)) {
              e.preventDefault();
              setAt((sel + 1) % Math.max(1, list.length));
            } else if (e.key === "ArrowUp" || (e.key === "p" && e.ctrlKey)) {
              e.preventDefault();
              setAt((sel - 1 + list.length) % Math.max(1, list.length));
            } else if (e.key === "Enter") {
              e.preventDefault();
              pick(list[sel]);
            }
          }}
        />
        <ul id="switcher-list" role="listbox" aria-label="Conversations">
          {list.map((c, i) => (
            <li
              key={c.id}
              id={`sw-${c.id}`}
              role="option"
              aria-selected={i === sel}
              class={i === sel ? "choice selected" : "choice"}
              data-choice={c.id}
              onMouseMove={() => i !== sel && setAt(i)}
              onClick={() => pick(c)}
            >
              {c.kind === "person" || (c.kind === "conv" && c.conv.kind === "dm")
                ? (
                  <Avatar
                    name={c.kind === "person" ? c.name : c.conv.name}
                    online={c.kind === "person"
                      ? c.online
                      : model.online.value.has((c as { conv: Conversation }).conv.name)}
                    size="sm"
                  />
                )
                : (
                  <span class="conv-icon">
                    <RoomIcon
                      private={c.kind === "conv" ? c.conv.settings.value.private : c.private}
                    />
                  </span>
                )}
              <span class="choice-name truncate" title={c.kind === "conv" ? c.conv.name : c.name}>
                {c.kind === "conv" ? c.conv.name : c.name}
              </span>
              <span class="choice-note">
                {c.kind === "conv"
                  ? c.conv.unread.value > 0 ? `${c.conv.unread.value} unread` : ""
                  : c.kind === "room"
                  ? "join"
                  : lastSeen(c.online, c.seen)}
              </span>
            </li>
          ))}
          {list.length === 0 && <li class="muted">Nothing matches.</li>}
        </ul>
        <p class="hint">↑ ↓ to choose · Enter to open · Esc to close</p>
      </div>
    </Modal>
  );
}
