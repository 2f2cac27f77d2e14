/**
 * The top bar of the open conversation and the right-hand panels: members
 * with presence, and search over this conversation or everything.
 *
 * @module
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { LOBBY } from "../../protocol.ts";
import type { Conversation } from "../conversation.ts";
import type { ChatModel, SearchScope } from "../model.ts";
import { postingClosed } from "../room_kind.ts";
import { highlight } from "../text.ts";
import { fullDate, shortStamp } from "../time.ts";
import type { UiState } from "../ui.ts";
import { Avatar } from "./avatar.tsx";
import { AddPeople, RemoveFromRoom } from "./room_people.tsx";
import { mayRename, RenameRoom } from "./rename_room.tsx";
import { CloseIcon, LockIcon, MenuIcon, PeopleIcon, SearchIcon } from "./icons.tsx";
import { LevelMenu } from "./level_menu.tsx";

/** Opens a panel, or closes it when it is already open. */
function toggle(ui: UiState, panel: "members" | "search"): void {
  ui.panel.value = ui.panel.value === panel ? null : panel;
  if (ui.panel.value === "search") ui.focusSearch.value++;
}

/** Title, presence summary and the panel buttons. */
export function Topbar({ model, ui }: { model: ChatModel; ui: UiState }) {
  const conv = model.current.value;
  const online = model.online.value;
  const total = model.unreadTotal.value - (conv?.unread.value ?? 0);
  const ready = model.ready.value;
  let subtitle = "";
  // Who may not post here may not set the topic either (the server refuses it).
  const closed = conv?.kind === "room" &&
    postingClosed(conv.name, conv.settings.value, model.role.value === "admin") !== null;
  if (conv?.kind === "room" && !conv.member.value) {
    subtitle = "You're not in this room";
  } else if (conv?.kind === "room") {
    const members = conv.members.value;
    const total = conv.memberCount.value ?? members.length;
    // Who is online among members not loaded yet is unknown, but everyone is in the lobby.
    const here = conv.name === LOBBY
      ? online.size
      : conv.membersComplete.value
      ? members.filter((m) => online.has(m)).length
      : null;
    const kind = conv.settings.value;
    // What kind of room, first: it says why the composer may be missing.
    const kinds = [
      kind.private && "Private",
      kind.archived ? "Archived" : kind.readOnly && "Read-only",
    ].filter(Boolean);
    subtitle = `${kinds.length > 0 ? kinds.join(" · ") + " · " : ""}${total} member${
      total === 1 ? "" : "s"
    }`;
    const count = model.onlineCount.value;
    // A very large chat sends only how many are online, not who.
    if (ready && count !== null) subtitle += ` · ${count} online in the chat`;
    else if (ready && here !== null) subtitle += ` · ${here} online`;
  } else if (conv) {
    subtitle = !ready ? "Direct message" : online.has(conv.name) ? "Online" : "Offline";
  }
  return (
    <header class="topbar">
      <button
        type="button"
        class="icon-btn menu-btn"
        aria-label={total > 0 ? `Conversations (${total} unread)` : "Conversations"}
        onClick={() => (ui.drawer.value = true)}
      >
        <MenuIcon />
        {total > 0 && <span class="menu-dot" aria-hidden="true" />}
      </button>
      {conv?.kind === "dm" && (
        <Avatar name={conv.name} online={ready ? online.has(conv.name) : undefined} />
      )}
      <div class="title">
        <h1 title={conv ? conv.name : undefined}>
          {conv
            ? (conv.kind === "room"
              ? (conv.settings.value.private
                ? (
                  <span class="hash lock" title="Private room">
                    <LockIcon size={18} />
                    <span class="sr-only">Private room</span>
                  </span>
                )
                : <span class="hash">#</span>)
              : null)
            : null}
          {conv ? conv.name : "Chat"}
        </h1>
        {subtitle && (
          <p class="subtitle">
            <span class="subtitle-text">{subtitle}</span>
            {conv?.kind === "room" && conv.member.value && closed && conv.topic.value && (
              // The topic of a room this user may not change (read-only, archived): shown only.
              <span class="topic-text truncate" title={conv.topic.value}>
                · {conv.topic.value}
              </span>
            )}
            {conv?.kind === "room" && conv.member.value && !closed && (
              <button
                type="button"
                class={conv.topic.value ? "topic-btn" : "topic-btn empty"}
                title={conv.topic.value ? `${conv.topic.value} (click to change)` : undefined}
                aria-label={conv.topic.value
                  ? `Topic: ${conv.topic.value}. Change the topic`
                  : "Add a topic"}
                onClick={() => (ui.dialog.value = "topic")}
              >
                {conv.topic.value || "Add a topic"}
              </button>
            )}
          </p>
        )}
      </div>
      <div class="actions">
        {conv && ready && (conv.kind === "dm" || conv.member.value) && (
          <LevelMenu key={conv.key} model={model} conv={conv} />
        )}
        <button
          type="button"
          class={ui.panel.value === "search" ? "icon-btn pressed" : "icon-btn"}
          aria-label="Search messages"
          aria-pressed={ui.panel.value === "search"}
          title="Search messages (Ctrl+Shift+F)"
          onClick={() => toggle(ui, "search")}
        >
          <SearchIcon />
        </button>
        {conv?.kind === "room" && conv.member.value && (
          <button
            type="button"
            class={ui.panel.value === "members" ? "icon-btn pressed" : "icon-btn"}
            aria-label="Members"
            aria-pressed={ui.panel.value === "members"}
            title="Members"
            onClick={() => toggle(ui, "members")}
          >
            <PeopleIcon />
            <span class="count">{conv.memberCount.value ?? conv.members.value.length}</span>
          </button>
        )}
      </div>
    </header>
  );
}

function PanelHead({ ui, title }: { ui: UiState; title: string }) {
  return (
    <div class="panel-head">
      <h2>{title}</h2>
      <button
        type="button"
        class="icon-btn"
        aria-label={`Close ${title.toLowerCase()}`}
        onClick={() => (ui.panel.value = null)}
      >
        <CloseIcon />
      </button>
    </div>
  );
}

function Person(
  { model, ui, name, online, conv }: {
    model: ChatModel;
    ui: UiState;
    name: string;
    online: boolean;
    conv: Conversation;
  },
) {
  const me = model.me.value === name;
  // Admins remove people from a room (not from the lobby: everyone stays there).
  const removable = !me && model.role.value === "admin" && conv.name !== LOBBY &&
    conv.member.value;
  return (
    <li class={removable ? "member-row" : undefined} data-member={name}>
      <button
        type="button"
        class="person"
        disabled={me}
        title={me ? undefined : `Message ${name} privately`}
        onClick={() => {
          model.openDm(name);
          ui.focusComposer.value++;
          if (matchMedia("(max-width: 1099px)").matches) ui.panel.value = null;
        }}
      >
        <Avatar name={name} online={online} size="sm" />
        <span class="person-name" title={name}>{name}</span>
        {me && <span class="you">you</span>}
        <span class="sr-only">{online ? "online" : "offline"}</span>
      </button>
      {removable && <RemoveFromRoom model={model} conv={conv} name={name} />}
    </li>
  );
}

/** How far below the panel's visible end the next page of members is asked for (px). */
const MEMBERS_AHEAD = 240;

/**
 * Room members, online first (among those loaded), how many there are in
 * all, and the next page of a large room's members asked for as the end of
 * the list comes near.
 */
export function MembersPanel(
  { model, ui, conv }: { model: ChatModel; ui: UiState; conv: Conversation },
) {
  const online = model.online.value;
  const members = conv.members.value;
  const total = conv.memberCount.value ?? members.length;
  const complete = conv.membersComplete.value;
  const more = conv.moreMembers.value;
  const loading = conv.loadingMembers.value;
  // Online first: everyone online in the lobby (everyone is a member), else
  // those among the members loaded. Counted per list only once every member
  // is known to be listed (among the first pages a count says less than it seems).
  const lobby = conv.name === LOBBY;
  const on = lobby ? [...online].sort() : members.filter((m) => online.has(m));
  const off = members.filter((m) => !online.has(m));
  const body = useRef<HTMLDivElement>(null);
  const sentinel = useRef<HTMLDivElement>(null);
  // Scrolling (or the keyboard) brings the end near: the next page.
  useEffect(() => {
    const el = sentinel.current;
    if (!el || !more) return;
    const seen = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) model.loadMoreMembers(conv);
    }, { root: body.current, rootMargin: `0px 0px ${MEMBERS_AHEAD}px 0px` });
    seen.observe(el);
    return () => seen.disconnect();
  }, [conv, more]);
  // A page that leaves the end in sight (a tall screen) calls for the next one at once:
  // the observer says nothing while the end stays in sight.
  useEffect(() => {
    const el = sentinel.current;
    const box = body.current;
    if (!el || !box || !more || loading) return;
    if (el.getBoundingClientRect().top < box.getBoundingClientRect().bottom + MEMBERS_AHEAD) {
      model.loadMoreMembers(conv);
    }
  }, [conv, members.length, more, loading]);
  const countId = `member-count-${conv.id}`;
  return (
    <aside class="panel" aria-label="Members" aria-describedby={countId}>
      <PanelHead ui={ui} title="Members" />
      <div class="panel-body" ref={body}>
        {conv.name !== LOBBY && conv.member.value && !conv.settings.value.archived && (
          <AddPeople key={conv.key} model={model} conv={conv} />
        )}
        <p id={countId} class="member-total">
          {total.toLocaleString("en-US")} member{total === 1 ? "" : "s"}
          {!complete && (
            <span class="member-shown">
              {` · ${members.length.toLocaleString("en-US")} listed`}
            </span>
          )}
        </p>
        <h3 id="members-online">Online{complete || lobby ? ` — ${on.length}` : ""}</h3>
        <ul class="people" data-list="online" aria-labelledby="members-online">
          {on.map((n) => <Person key={n} model={model} ui={ui} conv={conv} name={n} online />)}
        </ul>
        {off.length > 0 && (
          <>
            <h3 id="members-offline">Offline{complete ? ` — ${off.length}` : ""}</h3>
            <ul class="people" data-list="offline" aria-labelledby="members-offline">
              {off.map((n) => (
                <Person key={n} model={model} ui={ui} conv={conv} name={n} online={false} />
              ))}
            </ul>
          </>
        )}
        {more && (
          <div ref={sentinel} class="members-more" role="status">
            {loading && (
              <>
                <span class="typing-dots" aria-hidden="true">
                  <span />
                  <span />
                  <span />
                </span>
                Loading more members…
              </>
            )}
          </div>
        )}
      </div>
      {conv.name !== LOBBY && conv.member.value && (
        <div class="panel-foot">
          {mayRename(model, conv.name) && <RenameHere model={model} conv={conv} />}
          <button
            type="button"
            class="btn danger-ghost wide"
            title={`Leave #${conv.name}`}
            onClick={() => model.leaveRoom(conv.name)}
          >
            <span class="truncate">Leave #{conv.name}</span>
          </button>
        </div>
      )}
    </aside>
  );
}

/** An admin's "Rename #room…" at the foot of the members panel, and the field it opens. */
function RenameHere({ model, conv }: { model: ChatModel; conv: Conversation }) {
  const [open, setOpen] = useState(false);
  const button = useRef<HTMLButtonElement>(null);
  const close = () => {
    setOpen(false);
    // The field goes: the keyboard stays here, on the button that opened it.
    setTimeout(() => button.current?.focus());
  };
  if (open) {
    // The room says who renamed it (and the title follows): nothing more to tell here.
    return (
      <RenameRoom model={model} room={conv.name} id="rename-here" onCancel={close} onDone={close} />
    );
  }
  return (
    <button
      ref={button}
      type="button"
      class="btn wide"
      aria-expanded="false"
      title={`Rename #${conv.name}`}
      onClick={() => setOpen(true)}
    >
      <span class="truncate">Rename #{conv.name}…</span>
    </button>
  );
}

/** The search box and its results. */
export function SearchPanel({ model, ui }: { model: ChatModel; ui: UiState }) {
  const input = useRef<HTMLInputElement>(null);
  const scopeRef = useRef<SearchScope>("here");
  const s = model.search.value;
  const conv = model.current.value;
  const focusTick = ui.focusSearch.value;
  const me = model.me.value;
  useEffect(() => {
    input.current?.focus();
    input.current?.select();
  }, [focusTick]);

  const run = () => model.runSearch(input.current?.value ?? "", scopeRef.current);
  const here = !conv
    ? "In this conversation"
    : conv.kind === "room"
    ? `In #${conv.name}`
    : `With ${conv.name}`;
  const scope = s?.scope ?? scopeRef.current;
  return (
    <aside
      class="panel search-panel"
      aria-label="Search"
      onKeyDown={(e) => {
        // From the box or a result: close the search, back to the message box.
        if (e.key === "Escape" && !e.defaultPrevented) {
          e.preventDefault();
          e.stopPropagation();
          ui.panel.value = null;
          ui.focusComposer.value++;
        }
      }}
    >
      <PanelHead ui={ui} title="Search" />
      <form
        class="search-form"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          run();
        }}
      >
        <div class="search-box">
          <SearchIcon size={16} />
          <label for="search-q" class="sr-only">Search messages</label>
          <input
            id="search-q"
            ref={input}
            type="search"
            placeholder="Search messages"
            autocomplete="off"
            defaultValue={s?.q ?? ""}
            maxLength={200}
          />
        </div>
        <fieldset class="scope">
          <legend class="sr-only">Where to search</legend>
          {(["here", "all"] as const).map((v) => (
            <label
              key={v}
              class={scope === v ? "chip active" : "chip"}
              title={v === "here" ? here : undefined}
            >
              <input
                type="radio"
                name="scope"
                value={v}
                checked={scope === v}
                onChange={() => {
                  scopeRef.current = v;
                  if (input.current?.value.trim()) {
                    run();
                  } else if (s) {
                    model.search.value = { ...s, scope: v };
                  }
                }}
              />
              {v === "here" ? here : "All rooms"}
            </label>
          ))}
        </fieldset>
      </form>
      <div class="panel-body" aria-live="polite">
        {s === null
          ? <p class="muted">Find messages by their words. Press Enter to search.</p>
          : s.busy && s.results === null
          ? <p class="muted">Searching…</p>
          : s.results && s.results.length === 0
          ? <p class="muted">No messages match “{s.q}”.</p>
          : s.results && (
            <>
              <p class="muted">
                {s.results.length === 1 ? "1 message" : `${s.results.length} messages`}
                {s.more ? " (the newest: add words to find older ones)" : ""}
                {s.busy ? " · searching…" : ""}
              </p>
              <ul class="results">
                {s.results.map((m) => {
                  const where = m.room !== undefined
                    ? `#${m.room}`
                    : `@${m.from === me ? m.to : m.from}`;
                  return (
                    <li key={`${where}:${m.id}`}>
                      <button
                        type="button"
                        class="result"
                        onClick={() => {
                          model.jumpTo(m);
                          if (matchMedia("(max-width: 1099px)").matches) ui.panel.value = null;
                        }}
                      >
                        <span class="result-meta">
                          <span class="result-where" title={where}>{where}</span>
                          <span class="result-from" title={m.from}>{m.from}</span>
                          <time dateTime={m.ts} title={fullDate(m.ts)}>{shortStamp(m.ts)}</time>
                        </span>
                        <span class="result-text">
                          {highlight(m.text, s.q).map((part, i) =>
                            i % 2 === 1 ? <mark key={i}>{part}</mark> : part
                          )}
                        </span>
                      </button>
                    </li>
                  );
                })}
              </ul>
            </>
          )}
      </div>
    </aside>
  );
}
