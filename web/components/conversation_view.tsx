/**
 * The open conversation: the message list (history, day lines, notices,
 * the "new" line, own messages still on their way; each message with its
 * reply quote, reactions, actions, or as a tombstone once deleted), who is
 * typing, and the composer (with the reply being written and the files
 * attached — picked, pasted or dropped; Up arrow edits one's last message).
 *
 * @module
 */
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { type ChatMessage, wireLength } from "../../protocol.ts";
import type { Conversation, Notice, Pending } from "../conversation.ts";
import { type ChatModel, FAILED_FILES_TOAST, STORE_NOTICE } from "../model.ts";
import { postingClosed } from "../room_kind.ts";
import { routeHash } from "../route.ts";
import { bytes, insertMention, mentionAt } from "../text.ts";
import { clock, dayKey, dayLabel, fullDate } from "../time.ts";
import type { UiState } from "../ui.ts";
import {
  AttachButton,
  DropZone,
  Lightbox,
  MessageFiles,
  pastedFiles,
  UploadTray,
} from "./attachments.tsx";
import { Avatar } from "./avatar.tsx";
import { ArrowDownIcon, LockIcon, SendIcon } from "./icons.tsx";
import {
  MessageDialogs,
  MessageEditor,
  MessageToolbar,
  openSheet,
  Reactions,
  ReplyBar,
  ReplyQuote,
  useLongPress,
} from "./message_actions.tsx";
import { MessageText } from "./message_text.tsx";
import {
  MENTION_LIST_ID,
  type MentionOption,
  mentionOptionId,
  mentionOptions,
  MentionPicker,
} from "./mention_picker.tsx";

/** Messages from one sender this close together share one header. */
const GROUP_MS = 5 * 60 * 1000;

type Row =
  | { kind: "day"; key: string; label: string }
  | { kind: "msg"; key: string; m: ChatMessage; grouped: boolean }
  | { kind: "notice"; key: string; n: Notice }
  | { kind: "divider"; key: string }
  | { kind: "pending"; key: string; p: Pending; grouped: boolean };

/** Lays out messages, notices, day lines and the "new" line in order. */
function rows(conv: Conversation, me: string | null): Row[] {
  const out: Row[] = [];
  const msgs = conv.messages.value;
  const notices = [...conv.notices.value].sort((a, b) => a.after - b.after);
  const divider = conv.divider.value;
  let day = "";
  let prev: { from: string; t: number } | null = null;
  let ni = 0;
  let dividerShown = false;
  const dayLine = (ts: string) => {
    if (!ts) return;
    const k = dayKey(ts);
    if (k !== day) {
      day = k;
      out.push({ kind: "day", key: `d${k}`, label: dayLabel(ts) });
      prev = null;
    }
  };
  const notice = (n: Notice, i: number) => {
    dayLine(n.ts);
    out.push({ kind: "notice", key: `n${i}`, n });
    prev = null;
  };
  for (const m of msgs) {
    while (ni < notices.length && notices[ni].after < m.id) notice(notices[ni], ni++);
    dayLine(m.ts);
    if (!dividerShown && m.id > divider && m.from !== me) {
      out.push({ kind: "divider", key: "new" });
      dividerShown = true;
      prev = null;
    }
    const t = Date.parse(m.ts);
    const p = prev as { from: string; t: number } | null;
    const grouped = p !== null && p.from === m.from && t - p.t < GROUP_MS;
    out.push({ kind: "msg", key: `m${m.id}`, m, grouped });
    prev = { from: m.from, t };
  }
  while (ni < notices.length) notice(notices[ni], ni++);
  for (const p of conv.pending.value) {
    dayLine(p.ts);
    const t = Date.parse(p.ts);
    const q = prev as { from: string; t: number } | null;
    const grouped = q !== null && q.from === me && t - q.t < GROUP_MS;
    out.push({ kind: "pending", key: `p${p.ref}`, p, grouped });
    prev = { from: me ?? "", t };
  }
  return out;
}

function Message(
  { model, ui, conv, m, grouped }: {
    model: ChatModel;
    ui: UiState;
    conv: Conversation;
    m: ChatMessage;
    grouped: boolean;
  },
) {
  const me = model.me.value;
  const own = m.from === me;
  const editing = !m.deleted && conv.editing.value === m.id;
  const press = useLongPress(() => {
    if (!m.deleted && conv.editing.peek() !== m.id) openSheet(conv, m.id);
  });
  const cls = `msg${grouped ? " grouped" : ""}${own ? " own" : ""}${
    !own && model.mentionsMe(conv, m) ? " mentions-me" : ""
  }${m.deleted ? " deleted" : ""}${editing ? " editing" : ""}`;
  const href = messageHash(m, me);
  // A message of files alone that was edited (its text removed): the mark goes
  // beside the time, or after the files where no header shows — not on a line of its own.
  const filesOnly = m.text === "" && (m.files?.length ?? 0) > 0;
  const edited = m.edited && (
    <span class="edited" title={`Edited ${fullDate(m.edited)}`}>
      {filesOnly ? "(edited)" : " (edited)"}
    </span>
  );
  return (
    <li class={cls} data-id={m.id} data-from={m.from} {...press}>
      <div class="msg-side">
        {grouped
          ? (
            <>
              <span class="sr-only">{m.from}</span>
              <a class="msg-hover-time permalink" href={href} tabIndex={-1}>
                <time dateTime={m.ts} title={fullDate(m.ts)}>{clock(m.ts)}</time>
              </a>
            </>
          )
          : <Avatar name={m.from} />}
      </div>
      <div class="msg-body">
        {!grouped && (
          <div class="msg-meta">
            {own ? <span class="from" title={m.from}>{m.from}</span> : (
              <button
                type="button"
                class="from"
                title={`Message ${m.from} privately`}
                onClick={() => {
                  model.openDm(m.from);
                  ui.focusComposer.value++;
                }}
              >
                {m.from}
              </button>
            )}
            <a class="permalink" href={href} tabIndex={-1}>
              <time dateTime={m.ts} title={fullDate(m.ts)}>{clock(m.ts)}</time>
            </a>
            {filesOnly && !m.deleted && !editing && edited}
          </div>
        )}
        {m.replyTo && !m.deleted && <ReplyQuote model={model} conv={conv} r={m.replyTo} />}
        {m.deleted
          ? (
            <div class="msg-text tombstone">
              {m.removed ? "message removed by an admin" : "message deleted"}
            </div>
          )
          : editing
          ? <MessageEditor model={model} ui={ui} conv={conv} m={m} />
          : !filesOnly && (
            <div class="msg-text">
              {
                /* Keyed by the edit: an edit renders the text afresh (a page catching
                  up once showed the old text and the new one side by side). */
              }
              <MessageText
                key={m.edited ?? 0}
                text={m.text}
                me={me}
                known={(n) => model.knows(n)}
              />
              {edited}
            </div>
          )}
        {!m.deleted && m.files && m.files.length > 0 && (
          <MessageFiles
            files={m.files}
            from={m.from}
            after={filesOnly && grouped && !editing ? edited : undefined}
          />
        )}
        {!m.deleted && <Reactions model={model} conv={conv} m={m} />}
      </div>
      {!m.deleted && !editing && (
        <MessageToolbar model={model} ui={ui} conv={conv} m={m} href={href} />
      )}
    </li>
  );
}

/** The page hash of a message (see route.ts). */
function messageHash(m: ChatMessage, me: string | null): string {
  const key = m.room !== undefined ? `#${m.room}` : `@${m.from === me ? m.to : m.from}`;
  return routeHash(key, m.id, me);
}

/** What an unconfirmed message row says: its class and its words. */
function pendingState(model: ChatModel, p: Pending): { cls: string; text: string } {
  if (p.state === "failed") return { cls: "failed", text: "Not sent" };
  if (!model.ready.value) return { cls: "waiting", text: "Waiting for the connection…" };
  if (p.state === "queued" && p.attempts !== undefined) {
    return { cls: "retrying", text: STORE_NOTICE };
  }
  // Queued behind others or on its way: the same to the user.
  return { cls: "sending", text: "Sending…" };
}

function PendingMessage(
  { model, ui, conv, p, grouped }: {
    model: ChatModel;
    ui: UiState;
    conv: Conversation;
    p: Pending;
    grouped: boolean;
  },
) {
  const me = model.me.value ?? "";
  const state = pendingState(model, p);
  // The row goes away with its buttons: keep the keyboard in the message box.
  const after = () => ui.focusComposer.value++;
  return (
    <li class={`msg own pending ${state.cls}${grouped ? " grouped" : ""}`} data-ref={p.ref}>
      <div class="msg-side">{!grouped && <Avatar name={me} />}</div>
      <div class="msg-body">
        {!grouped && (
          <div class="msg-meta">
            <span class="from" title={me}>{me}</span>
            <time dateTime={p.ts}>{clock(p.ts)}</time>
          </div>
        )}
        {p.replyTo && <ReplyQuote model={model} conv={conv} r={p.replyTo} />}
        {(p.text !== "" || !p.files?.length) && (
          <div class="msg-text">
            <MessageText text={p.text} me={me} />
          </div>
        )}
        {p.files && p.files.length > 0 && <MessageFiles files={p.files} from={me} />}
        <div class="msg-state">
          {p.state === "failed"
            ? (
              <>
                <span class="error-text" role="alert">Not sent: {p.error}</span>
                <button
                  type="button"
                  class="link"
                  onClick={() => {
                    model.resend(conv, p.ref);
                    after();
                  }}
                >
                  Retry
                </button>
                <button
                  type="button"
                  class="link"
                  onClick={() => {
                    model.discard(conv, p.ref);
                    after();
                  }}
                >
                  Delete
                </button>
              </>
            )
            : state.text}
        </div>
      </div>
    </li>
  );
}

/** The scrolling message list. */
export function MessageList(
  { model, ui, conv }: { model: ChatModel; ui: UiState; conv: Conversation },
) {
  const ref = useRef<HTMLDivElement>(null);
  const snap = useRef({ first: -1, height: 0, top: 0, placed: false });
  const me = model.me.value;
  const list = rows(conv, me);
  const first = conv.messages.value[0]?.id ?? 0;
  const hasOlder = conv.hasOlder.value;
  const loaded = conv.loaded.value;
  const atBottom = conv.atBottom.value;
  const focus = conv.focus.value;
  const unread = conv.unread.value;

  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    const s = snap.current;
    if (!s.placed && first > 0) {
      // First sight of the messages: start at the "New" line when it would be
      // above the screen, else at the end.
      s.placed = true;
      el.scrollTop = el.scrollHeight;
      const line = el.querySelector<HTMLElement>(".divider");
      if (line && line.offsetTop < el.scrollTop) {
        el.scrollTop = line.offsetTop - 8;
        conv.atBottom.value = false;
      }
    } else if (s.first === -1 || conv.atBottom.peek()) el.scrollTop = el.scrollHeight;
    else if (first < s.first) el.scrollTop = s.top + (el.scrollHeight - s.height);
    s.first = first;
    s.height = el.scrollHeight;
    s.top = el.scrollTop;
    // Not enough to scroll yet: fetch older messages until there is.
    if (hasOlder && el.scrollHeight <= el.clientHeight + 80) model.loadOlder(conv);
  });

  useEffect(() => {
    const el = ref.current;
    if (!el || typeof ResizeObserver === "undefined") return;
    const ro = new ResizeObserver(() => {
      if (conv.atBottom.peek()) el.scrollTop = el.scrollHeight;
    });
    ro.observe(el);
    return () => ro.disconnect();
  }, [conv]);

  useEffect(() => {
    if (focus === null) return;
    const el = ref.current;
    const node = el?.querySelector<HTMLElement>(`[data-id="${focus}"]`);
    conv.focus.value = null;
    if (!el || !node) return;
    node.scrollIntoView({ block: "center" });
    // A short conversation does not scroll at all: then it is read to its end.
    conv.atBottom.value = el.scrollHeight - el.scrollTop - el.clientHeight < 48;
    // Restart the highlight even when the same message was found before.
    for (const old of el.querySelectorAll(".flash")) old.classList.remove("flash");
    void node.offsetWidth;
    node.classList.add("flash");
  }, [focus]);

  // When focus moved last: the browser scrolls a focused element into view,
  // and that scroll must not load older messages (which would move the view
  // under the keyboard user). Scrolling does; so does "Load older messages".
  const focusedAt = useRef(-Infinity);
  const onScroll = () => {
    const el = ref.current;
    if (!el) return;
    const bottom = el.scrollHeight - el.scrollTop - el.clientHeight < 48;
    if (conv.atBottom.peek() !== bottom) conv.atBottom.value = bottom;
    snap.current.top = el.scrollTop;
    snap.current.height = el.scrollHeight;
    if (el.scrollTop < 300 && performance.now() - focusedAt.current > 500) model.loadOlder(conv);
  };

  const toBottom = () => {
    const el = ref.current;
    if (!el) return;
    el.scrollTop = el.scrollHeight;
    conv.atBottom.value = true;
  };

  const title = conv.kind === "room" ? `#${conv.name}` : conv.name;
  return (
    <div class="list-wrap">
      <div
        class="messages"
        ref={ref}
        onScroll={onScroll}
        onFocusIn={() => (focusedAt.current = performance.now())}
        role="log"
        aria-label={`Messages in ${title}`}
        aria-live="polite"
        aria-relevant="additions"
        tabIndex={0}
      >
        {!loaded
          ? (
            <p class="list-status">
              {conv.member.value ? "Loading messages…" : `Join #${conv.name} to see its messages.`}
            </p>
          )
          : hasOlder
          ? (
            <p class="list-status">
              {conv.loadingOlder.value ? "Loading older messages…" : (
                <button
                  type="button"
                  class="link"
                  onClick={() => model.loadOlder(conv)}
                >
                  Load older messages
                </button>
              )}
            </p>
          )
          : (
            <div class="list-start">
              <h2>{conv.kind === "room" ? `Welcome to #${conv.name}` : conv.name}</h2>
              <p>
                {conv.kind === "room"
                  ? `This is the start of #${conv.name}.`
                  : `This is the start of your conversation with ${conv.name}.`}
              </p>
            </div>
          )}
        <ol class="message-rows">
          {list.map((r) => {
            switch (r.kind) {
              case "day":
                return (
                  <li key={r.key} class="day" role="separator">
                    <span>{r.label}</span>
                  </li>
                );
              case "divider":
                return (
                  <li key={r.key} class="divider" role="separator">
                    <span>New</span>
                  </li>
                );
              case "notice":
                return (
                  <li key={r.key} class={`notice ${r.n.kind}`}>
                    {r.n.text}
                    {r.n.ts && <time dateTime={r.n.ts}>{clock(r.n.ts)}</time>}
                  </li>
                );
              case "msg":
                return (
                  <Message
                    key={r.key}
                    model={model}
                    ui={ui}
                    conv={conv}
                    m={r.m}
                    grouped={r.grouped}
                  />
                );
              case "pending":
                return (
                  <PendingMessage
                    key={r.key}
                    model={model}
                    ui={ui}
                    conv={conv}
                    p={r.p}
                    grouped={r.grouped}
                  />
                );
            }
          })}
        </ol>
      </div>
      <MessageDialogs
        model={model}
        ui={ui}
        conv={conv}
        hash={(m) => messageHash(m, model.me.value)}
      />
      <Lightbox />
      {!atBottom && (
        <button type="button" class="jump" onClick={toBottom}>
          <ArrowDownIcon />
          {unread > 0 ? `${unread} new` : "Latest"}
        </button>
      )}
    </div>
  );
}

/** "bob is typing…" (kept in the layout while empty, so nothing jumps). */
export function TypingLine({ conv }: { conv: Conversation }) {
  const names = [...conv.typing.value.keys()].sort();
  let text = "";
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length === 3) text = `${names[0]}, ${names[1]} and ${names[2]} are typing…`;
  else if (names.length > 3) {
    text = `${names[0]}, ${names[1]} and ${names.length - 2} others are typing…`;
  }
  return (
    <div class="typing" aria-live="polite">
      {text && (
        <>
          <span class="typing-dots" aria-hidden="true">
            <span />
            <span />
            <span />
          </span>
          <span class="typing-text" title={text}>{text}</span>
        </>
      )}
    </div>
  );
}

/** Shown instead of the message box in a room the user is no longer in. */
function JoinBar({ model, conv }: { model: ChatModel; conv: Conversation }) {
  return (
    <div class="composer join-bar" role="status">
      <span>You're not in #{conv.name}{conv.loaded.value ? " any more" : ""}.</span>
      <button
        type="button"
        class="btn small"
        disabled={!model.ready.value}
        onClick={() => model.joinRoom(conv.name)}
      >
        Join #{conv.name}
      </button>
    </div>
  );
}

/**
 * The message box: Enter sends, Shift+Enter starts a new line. Near the
 * largest message the server takes, a counter shows the bytes left (counted
 * as the server counts them); above it, sending is off until the text is
 * shortened. `@` at the start of a word opens the list of people to mention
 * (see mention_picker.tsx): while it is open, ↑/↓ choose, Enter or Tab put
 * the name in, Escape closes it.
 */
export function Composer(
  { model, ui, conv }: { model: ChatModel; ui: UiState; conv: Conversation },
) {
  const ref = useRef<HTMLTextAreaElement>(null);
  const focusTick = ui.focusComposer.value;
  const draft = conv.draft.value;
  const reply = conv.replyTo.value;
  const limit = model.limits.value.maxMessage;
  // A read-only room (for members) or an archived one (for everyone) takes no messages.
  const closed = conv.kind === "room"
    ? postingClosed(conv.name, conv.settings.value, model.role.value === "admin")
    : null;

  useEffect(() => {
    const coarse = typeof matchMedia === "function" && matchMedia("(pointer: coarse)").matches;
    if (!coarse) ref.current?.focus();
  }, [focusTick, conv]);

  useLayoutEffect(() => fit(ref.current), [draft]);

  // The mention being typed (its "@" and the letters after it), while its list is open.
  const [typing, setTyping] = useState<{ start: number; query: string; active: number } | null>(
    null,
  );
  // Where the "@" was whose list Escape closed: it stays closed for that mention.
  const dismissed = useRef<number | null>(null);
  // Where the caret goes once a picked name is in the box.
  const caretAfter = useRef<number | null>(null);
  useLayoutEffect(() => {
    const el = ref.current;
    if (el && caretAfter.current !== null) {
      el.setSelectionRange(caretAfter.current, caretAfter.current);
    }
    caretAfter.current = null;
  }, [draft]);
  useEffect(() => {
    setTyping(null);
    dismissed.current = null;
  }, [conv]);
  /** Opens, moves or closes the list for where the caret is now. */
  const lookAtCaret = () => {
    const el = ref.current;
    const at = el && el.selectionStart === el.selectionEnd
      ? mentionAt(el.value, el.selectionStart)
      : null;
    if (at === null || dismissed.current !== at.start) dismissed.current = null;
    if (at === null || dismissed.current !== null) return setTyping(null);
    setTyping((t) => t && t.start === at.start && t.query === at.query ? t : { ...at, active: 0 });
  };

  // Toasts float above the message box, however tall its chips make it.
  const form = useRef<HTMLFormElement>(null);
  useLayoutEffect(() => {
    const el = form.current;
    if (!el || typeof ResizeObserver !== "function") return;
    const root = document.documentElement;
    const place = () => {
      const above = Math.round(innerHeight - el.getBoundingClientRect().top) + 12;
      root.style.setProperty("--above-composer", `${above}px`);
    };
    const ro = new ResizeObserver(place);
    ro.observe(el);
    addEventListener("resize", place);
    place();
    return () => {
      ro.disconnect();
      removeEventListener("resize", place);
      root.style.removeProperty("--above-composer");
    };
  }, [conv, conv.member.value, closed]);

  if (!conv.member.value) return <JoinBar model={model} conv={conv} />;
  if (closed !== null) {
    return (
      <div class="composer join-bar closed-bar" role="status" data-closed={conv.name}>
        <LockIcon />
        <span>{closed}</span>
      </div>
    );
  }

  // Counting is linear in the text: only worth it once the text could be near the limit.
  const used = draft.length * 3 >= limit * 0.9 ? wireLength(draft) : 0;
  const left = limit - used;
  const near = used >= limit * 0.9;
  const over = left < 0;

  const uploads = model.uploads.value.get(conv.key) ?? [];
  const waiting = model.sendWaiting.value.has(conv.key);
  const failed = uploads.some((u) => u.state === "failed");
  // Text, or files (uploaded or on their way: Enter then waits for them).
  const something = draft.trim() !== "" || uploads.length > 0;

  // Enter while files upload: the message goes once they are there.
  const submit = () => {
    const problem = model.submit(conv);
    // Too long or not in the room show where they are; a file not uploaded needs saying.
    if (problem !== null && failed) model.toast(problem, FAILED_FILES_TOAST);
  };

  const label = conv.kind === "room" ? `Message #${conv.name}` : `Message ${conv.name}`;
  const absent = model.absentMentions(conv, draft);

  // The list shows while the text still holds the mention it was opened for.
  const current = typing && draft.startsWith(`@${typing.query}`, typing.start) ? typing : null;
  const options = current ? mentionOptions(model, conv, current.query) : [];
  const open = current !== null && options.length > 0;
  const active = open ? Math.min(current.active, options.length - 1) : -1;
  const pickMention = (o: MentionOption) => {
    if (!current) return;
    const next = insertMention(conv.draft.peek(), current.start, o.name);
    setTyping(null);
    ref.current?.focus();
    if (next.text === conv.draft.peek()) {
      // The same text (the name was typed in full): no new draft moves the caret, so here.
      ref.current?.setSelectionRange(next.caret, next.caret);
      return;
    }
    caretAfter.current = next.caret;
    conv.draft.value = next.text;
    model.typing(next.text);
  };
  return (
    <>
      {absent.length > 0 && (
        <div class="mention-hint" role="status">
          <span>
            {absent.length === 1
              ? `${absent[0]} isn't in #${conv.name}, so they won't see this.`
              : `${absent.slice(0, -1).join(", ")} and ${
                absent[absent.length - 1]
              } aren't in #${conv.name}, so they won't see this.`}
          </span>
          <button
            type="button"
            class="btn small"
            onClick={() => {
              for (const user of absent) model.invite(user, conv.name);
              ui.focusComposer.value++;
            }}
          >
            {absent.length === 1 ? "Invite them" : "Invite them all"}
          </button>
        </div>
      )}
      {reply && <ReplyBar ui={ui} conv={conv} r={reply} />}
      <DropZone model={model} conv={conv} />
      <form
        ref={form}
        class={`composer${over ? " too-long" : ""}${reply ? " replying" : ""}${
          uploads.length > 0 ? " with-files" : ""
        }`}
        onSubmit={(e) => {
          e.preventDefault();
          submit();
          ref.current?.focus();
        }}
      >
        {open && (
          <MentionPicker
            conv={conv}
            options={options}
            active={active}
            onPick={pickMention}
            onActive={(i) => setTyping({ ...current, active: i })}
          />
        )}
        <UploadTray model={model} ui={ui} conv={conv} />
        <AttachButton model={model} ui={ui} conv={conv} />
        <label for="composer" class="sr-only">{label}</label>
        <textarea
          id="composer"
          ref={ref}
          rows={1}
          placeholder={label}
          value={draft}
          aria-describedby={near ? "composer-hint composer-count" : "composer-hint"}
          aria-invalid={over ? "true" : undefined}
          enterkeyhint="send"
          aria-autocomplete="list"
          aria-expanded={open}
          aria-controls={open ? MENTION_LIST_ID : undefined}
          aria-activedescendant={open ? mentionOptionId(active) : undefined}
          onInput={(e) => {
            const v = (e.currentTarget as HTMLTextAreaElement).value;
            conv.draft.value = v;
            model.typing(v);
            lookAtCaret();
          }}
          onClick={lookAtCaret}
          onKeyUp={(e) => {
            if (["ArrowLeft", "ArrowRight", "Home", "End"].includes(e.key)) lookAtCaret();
          }}
          onBlur={() => setTyping(null)}
          onPaste={(e) => {
            // A screenshot or copied files are attached; text pastes as text.
            const files = pastedFiles(e);
            if (files.length === 0) return;
            e.preventDefault();
            model.attach(conv, files);
          }}
          onKeyDown={(e) => {
            const plain = !e.shiftKey && !e.altKey && !e.ctrlKey && !e.metaKey && !e.isComposing;
            // The open list of names takes its keys first (never while an IME composes).
            if (open && plain && e.keyCode !== 229) {
              const n = options.length;
              if (e.key === "ArrowDown" || e.key === "ArrowUp") {
                e.preventDefault();
                const step = e.key === "ArrowDown" ? 1 : -1;
                setTyping({ ...current, active: (active + step + n) % n });
                return;
              }
              if (e.key === "Enter" || e.key === "Tab") {
                e.preventDefault();
                pickMention(options[active]);
                return;
              }
              if (e.key === "Escape") {
                // Closes the list only: a second Escape does what it always did.
                e.preventDefault();
                dismissed.current = current.start;
                setTyping(null);
                return;
              }
            }
            if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
              e.preventDefault();
              submit();
            } else if (e.key === "ArrowUp" && plain && conv.draft.value === "") {
              // Up in an empty box edits one's last message, where it is.
              const last = conv.lastOwn(model.me.value);
              if (last) {
                e.preventDefault();
                conv.editing.value = last.id;
              }
            } else if (e.key === "Escape" && plain && waiting) {
              // The message stays in the box, to be sent with Enter again.
              e.preventDefault();
              model.stopWaiting(conv);
            } else if (e.key === "Escape" && plain && conv.replyTo.value) {
              e.preventDefault();
              conv.replyTo.value = null;
            }
          }}
        />
        <span id="composer-hint" class="sr-only">
          Enter sends, Shift+Enter starts a new line, Up arrow edits your last message. Type @ to
          mention someone. Paste or drop files to attach them.
        </span>
        {/* The placeholder as text, so that a long name ends in an ellipsis (a textarea's cannot). */}
        {draft === "" && <span class="composer-placeholder" aria-hidden="true">{label}</span>}
        {near && (
          <span
            id="composer-count"
            class={`counter${over ? " over" : ""}`}
            role="status"
            title={`Messages can be up to ${limit} bytes (most characters take 1, accented letters 2, emoji 4; quotes, backslashes, tabs and line breaks 2)`}
          >
            {over ? `${bytes(-left)} too long` : `${bytes(left)} left`}
          </span>
        )}
        <button
          type="submit"
          class="send"
          aria-label="Send"
          title={over
            ? `Too long to send: shorten it by ${bytes(-left)}`
            : failed
            ? "Retry or remove the files that were not uploaded first"
            : waiting
            ? "Sends when the uploads finish"
            : undefined}
          disabled={!something || over || failed || waiting}
        >
          <SendIcon />
        </button>
      </form>
    </>
  );
}

/** Grows the textarea with its text, up to the CSS max-height. */
function fit(el: HTMLTextAreaElement | null): void {
  if (!el) return;
  el.style.height = "auto";
  el.style.height = `${el.scrollHeight}px`;
}
