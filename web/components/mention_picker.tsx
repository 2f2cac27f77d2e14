/**
 * The list that `@` opens in the message box: the conversation's people who
 * match what follows the `@` (a room's members, a DM's peer) and, in rooms,
 * `@room`. The message box keeps the keyboard (it points at the row chosen
 * with `aria-activedescendant`); a click or tap on a row picks it.
 *
 * @module
 */
import type { Conversation } from "../conversation.ts";
import type { ChatModel } from "../model.ts";
import { rankNames } from "../text.ts";
import { Avatar } from "./avatar.tsx";

/** The most rows the list shows (the rest are a letter or two away). */
export const MENTION_ROWS = 8;

/** The id of the list, for the message box's `aria-controls`. */
export const MENTION_LIST_ID = "mention-list";

/** One row: a person, or `@room` (everyone in the room). */
export interface MentionOption {
  /** What goes after the `@`. */
  name: string;
  /** Online now (people only). */
  online?: boolean;
  /** The row is `@room`. */
  room?: boolean;
}

/** The id of row `i`, for `aria-activedescendant`. */
export function mentionOptionId(i: number): string {
  return `mention-${i}`;
}

/**
 * The rows for `query` in `conv`: its people other than the viewer (online
 * first, then by name; names starting with `query` before names containing
 * it), then `@room` when it matches, in a room where the viewer's `@room`
 * reaches everyone. At most {@link MENTION_ROWS}.
 */
export function mentionOptions(
  model: ChatModel,
  conv: Conversation,
  query: string,
): MentionOption[] {
  const me = model.me.value?.toLowerCase();
  const online = model.online.value;
  const names = conv.kind === "room" ? conv.members.value : [conv.name];
  const people = names
    .filter((n) => n.toLowerCase() !== me)
    .map((name) => ({ name, online: online.has(name) }));
  const room = conv.kind === "room" && "room".includes(query.toLowerCase()) &&
    reachesEveryone(model, conv);
  const rows: MentionOption[] = rankNames(query, people, MENTION_ROWS - (room ? 1 : 0));
  if (room) rows.push({ name: "room", room: true });
  return rows;
}

/**
 * Whether the viewer's `@room` notifies everyone in room `conv`: in a room
 * larger than the server's `roomMentionMax`, only an admin's does.
 */
function reachesEveryone(model: ChatModel, conv: Conversation): boolean {
  const max = model.limits.value.roomMentionMax ?? 0;
  if (max === 0 || model.role.value === "admin") return true;
  return Math.max(conv.memberCount.value ?? 0, conv.members.value.length) <= max;
}

/** The list itself, drawn above the message box. */
export function MentionPicker(
  { conv, options, active, onPick, onActive }: {
    conv: Conversation;
    options: MentionOption[];
    active: number;
    onPick: (option: MentionOption) => void;
    onActive: (i: number) => void;
  },
) {
  return (
    <ul
      id={MENTION_LIST_ID}
      class="mention-picker"
      role="listbox"
      aria-label="People to mention"
      // A press on a row must not take the focus (and a phone's keyboard) from the message box.
      onMouseDown={(e) => e.preventDefault()}
    >
      {options.map((o, i) => (
        <li
          key={o.room ? "@room" : o.name}
          id={mentionOptionId(i)}
          role="option"
          aria-selected={i === active}
          class={`mention-option${i === active ? " selected" : ""}`}
          data-name={o.name}
          onMouseMove={() => i !== active && onActive(i)}
          onClick={() => onPick(o)}
        >
          {o.room
            ? <span class="mention-room-icon" aria-hidden="true">@</span>
            : <Avatar name={o.name} online={o.online} size="sm" />}
          <span class="mention-name truncate">{o.room ? "@room" : o.name}</span>
          <span class="mention-note">
            {o.room ? `Notify everyone in #${conv.name}` : o.online ? "online" : ""}
          </span>
        </li>
      ))}
    </ul>
  );
}
