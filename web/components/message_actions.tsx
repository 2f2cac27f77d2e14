/**
 * What can be done with a message once it is sent: the toolbar that shows on
 * hover or keyboard focus (react, reply, edit and delete for one's own —
 * admins delete anyone's —, copy text, copy link), the same actions as a sheet after a long-press on a
 * phone, reaction chips, the emoji picker, editing in place, the quote of
 * the message a reply answers, and the question before a delete.
 *
 * The picker, the sheet and the question are modal `<dialog>`s: focus stays
 * inside, Escape closes them, and closing gives focus back to where it was.
 *
 * @module
 */
import { signal } from "@preact/signals";
import type { ComponentChildren } from "preact";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { type ChatMessage, checkEmoji, type ReplyRef, snippetOf } from "../../protocol.ts";
import type { Conversation } from "../conversation.ts";
import { type Block, type Inline, markdown } from "../markdown.ts";
import type { ChatModel } from "../model.ts";
import { messageRights } from "../room_kind.ts";
import { clock } from "../time.ts";
import type { UiState } from "../ui.ts";
import { filesLine, filesText } from "../uploads.ts";
import {
  CloseIcon,
  CopyIcon,
  LinkIcon,
  PencilIcon,
  ReplyIcon,
  SmileIcon,
  TrashIcon,
} from "./icons.tsx";

// ---------------------------------------------------------------------------
// Emoji

/** The picker's compact common set, with names for screen readers and tooltips. */
export const COMMON_EMOJI: readonly (readonly [string, string])[] = [
  ["👍", "thumbs up"],
  ["👎", "thumbs down"],
  ["❤️", "red heart"],
  ["😂", "face with tears of joy"],
  ["😮", "face with open mouth"],
  ["😢", "crying face"],
  ["🎉", "party popper"],
  ["🙏", "folded hands"],
  ["👀", "eyes"],
  ["🔥", "fire"],
  ["✅", "check mark"],
  ["❌", "cross mark"],
  ["💯", "hundred points"],
  ["🚀", "rocket"],
  ["👏", "clapping hands"],
  ["🤔", "thinking face"],
  ["😄", "grinning face"],
  ["😍", "smiling face with heart-eyes"],
  ["😅", "grinning face with sweat"],
  ["🙌", "raising hands"],
  ["💪", "flexed biceps"],
  ["⭐", "star"],
  ["☕", "hot beverage"],
  ["👋", "waving hand"],
];

const NAMES = new Map(COMMON_EMOJI);
/** Picker rows hold this many emoji (Up and Down move by a row). */
const PER_ROW = 8;

/** The emoji offered first: the recently used ones, then the common ones. */
function quickEmoji(model: ChatModel, n: number): string[] {
  const out = [...model.recentEmoji.value];
  for (const [e] of COMMON_EMOJI) if (!out.includes(e)) out.push(e);
  return out.slice(0, n);
}

/** "you", "you and bob", "alice, bob and you", "alice, bob, carol and 4 others". */
export function reactedBy(users: string[], me: string | null): string {
  const names = users.map((u) => (u === me ? "you" : u));
  if (names.length === 1) return names[0];
  if (names.length <= 6) return `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
  return `${names.slice(0, 5).join(", ")} and ${names.length - 5} others`;
}

/** A sentence may start with "you", never with a changed name: names keep their case. */
function capital(text: string): string {
  return text.startsWith("you") ? `Y${text.slice(1)}` : text;
}

// ---------------------------------------------------------------------------
// Which dialog is open

/** A dialog about one message of one conversation. */
type Overlay =
  | {
    kind: "picker";
    key: string;
    id: number;
    /** Where the button that opened it is, to show the picker beside it. */
    anchor: DOMRect | null;
  }
  | { kind: "sheet" | "confirm"; key: string; id: number };

/** The dialog showing (one at a time for the page). */
const overlay = signal<Overlay | null>(null);

/** Opens the emoji picker for a message, beside `from` when given. */
export function openPicker(conv: Conversation, id: number, from?: Element): void {
  overlay.value = {
    kind: "picker",
    key: conv.key,
    id,
    anchor: from?.getBoundingClientRect() ?? null,
  };
}

/** Opens the actions of a message as a sheet (after a long-press on a phone). */
export function openSheet(conv: Conversation, id: number): void {
  overlay.value = { kind: "sheet", key: conv.key, id };
}

/** Asks before deleting one of the user's messages. */
export function confirmDelete(conv: Conversation, id: number): void {
  overlay.value = { kind: "confirm", key: conv.key, id };
}

/** The words of running text, without its Markdown. */
function inlineText(parts: Inline[]): string {
  return parts.map((p) => p.t === "br" ? " " : "children" in p ? inlineText(p.children) : p.text)
    .join("");
}

/** The words of Markdown blocks, one line. */
function blocksText(blocks: Block[]): string {
  return blocks.map((b) =>
    b.t === "p"
      ? inlineText(b.children)
      : b.t === "pre"
      ? b.text
      : b.t === "quote"
      ? blocksText(b.children)
      : b.t === "list"
      ? b.items.map((i) => blocksText(i.children)).join(" ")
      : ""
  ).join(" ");
}

/**
 * What a quote shows of a message: its words without the Markdown around
 * them (no fences, stars or `>`), on one line, shortened as the server
 * shortens snippets.
 */
export function plainSnippet(text: string): string {
  return snippetOf(blocksText(markdown(text)));
}

/**
 * A message on one line, wherever it is previewed (a reply's quote, the
 * question before a delete): its words, or for a message of files alone
 * its files ("🖼️ photo.jpg", "📎 3 files").
 */
export function previewOf(m: Pick<ChatMessage, "text" | "files">): string {
  const words = plainSnippet(m.text);
  return words !== "" ? words : snippetOf(filesLine(m.files ?? []));
}

/**
 * What a quote says of a message of files alone that is not loaded: the
 * server's snippet is its words, and it has none.
 */
const FILES_ONLY = "📎 Files";

/**
 * The words a quote shows: from the original when it is loaded (its line
 * breaks tell code from text, its files show when it has no words), else
 * from the snippet the server sent.
 */
function quoted(conv: Conversation, r: ReplyRef): string {
  const original = conv.find(r.id);
  if (original && !original.deleted) return previewOf(original);
  const words = plainSnippet(r.snippet);
  return words === "" && !r.deleted ? FILES_ONLY : words;
}

/** Shows why an action could not be done, the way the app shows other errors. */
function report(model: ChatModel, problem: string | null): void {
  if (problem !== null) model.toast(problem);
}

/** Copies `text`, saying so in a toast. */
async function copy(model: ChatModel, text: string, done: string, what: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
    model.toast(done, "copied");
  } catch {
    // No clipboard (a page served over plain http on another host): show it to copy by hand.
    globalThis.prompt?.(`Copy this ${what}:`, text);
  }
}

/** Copies the full link of a message (`hash`: its page hash). */
export function copyLink(model: ChatModel, hash: string): Promise<void> {
  return copy(model, new URL(hash, location.href).href, "Link copied", "link");
}

/**
 * Copies the text of a message as it was written; a message of files alone
 * gives their names, one a line ("📎 report.pdf").
 */
export function copyText(model: ChatModel, m: Pick<ChatMessage, "text" | "files">): Promise<void> {
  if (namesOnly(m)) {
    return copy(model, filesText(m.files!), "File names copied", "text");
  }
  return copy(model, m.text, "Text copied", "text");
}

/** A message of files alone: copying it gives their names (see {@link copyText}). */
function namesOnly(m: Pick<ChatMessage, "text" | "files">): boolean {
  return m.text === "" && (m.files?.length ?? 0) > 0;
}

/** How the actions name a message: "your message at 10:04", "the message from bob at 10:04". */
function about(m: ChatMessage, me: string | null): string {
  return m.from === me
    ? `your message at ${clock(m.ts)}`
    : `the message from ${m.from} at ${clock(m.ts)}`;
}

// ---------------------------------------------------------------------------
// The toolbar, the chips, the quote

/**
 * The toolbar of a message: shown while the pointer is over the message or
 * the keyboard focus is in it (every button is in the Tab order). `href` is
 * the message's link.
 */
export function MessageToolbar(
  { model, ui, conv, m, href }: {
    model: ChatModel;
    ui: UiState;
    conv: Conversation;
    m: ChatMessage;
    href: string;
  },
) {
  const me = model.me.value;
  const own = m.from === me;
  const what = about(m, me);
  const may = rights(model, conv);
  // Admins remove anyone's message in a conversation they are in (the server checks).
  const deletable = (own || model.role.value === "admin") && may.delete;
  return (
    <div class="msg-actions" role="group" aria-label={`Actions on ${what}`}>
      {may.react && (
        <button
          type="button"
          class="icon-btn small"
          aria-label={`Add a reaction to ${what}`}
          aria-haspopup="dialog"
          title="Add a reaction"
          onClick={(e) => openPicker(conv, m.id, e.currentTarget)}
        >
          <SmileIcon />
        </button>
      )}
      {may.reply && (
        <button
          type="button"
          class="icon-btn small"
          aria-label={`Reply to ${what}`}
          title="Reply"
          onClick={() => {
            model.reply(conv, m.id);
            ui.focusComposer.value++;
          }}
        >
          <ReplyIcon />
        </button>
      )}
      {own && may.edit && (
        <button
          type="button"
          class="icon-btn small"
          aria-label={`Edit ${what}`}
          title="Edit"
          onClick={() => (conv.editing.value = m.id)}
        >
          <PencilIcon />
        </button>
      )}
      {deletable && (
        <button
          type="button"
          class="icon-btn small danger"
          aria-label={`Delete ${what}`}
          aria-haspopup="dialog"
          title="Delete"
          onClick={() => confirmDelete(conv, m.id)}
        >
          <TrashIcon />
        </button>
      )}
      <button
        type="button"
        class="icon-btn small"
        aria-label={namesOnly(m) ? `Copy the file names of ${what}` : `Copy the text of ${what}`}
        title={namesOnly(m) ? "Copy file names" : "Copy text"}
        onClick={() => copyText(model, m)}
      >
        <CopyIcon />
      </button>
      <button
        type="button"
        class="icon-btn small"
        aria-label={`Copy link to the message from ${m.from} at ${clock(m.ts)}`}
        title="Copy link"
        onClick={() => copyLink(model, href)}
      >
        <LinkIcon />
      </button>
    </div>
  );
}

/**
 * The reactions under a message: one chip per emoji with its count (the
 * title says who); a chip toggles the user's own; the last button adds one.
 */
export function Reactions(
  { model, conv, m }: { model: ChatModel; conv: Conversation; m: ChatMessage },
) {
  const me = model.me.value;
  const entries = Object.entries(m.reactions ?? {});
  if (entries.length === 0) return null;
  return (
    <div class="reactions" role="group" aria-label="Reactions">
      {entries.map(([emoji, users]) => {
        const mine = me !== null && users.includes(me);
        const who = reactedBy(users, me);
        return (
          <button
            key={emoji}
            type="button"
            class={`reaction${mine ? " mine" : ""}`}
            aria-pressed={mine}
            aria-label={`${emoji} ${users.length}: ${who}`}
            title={`${capital(who)} reacted with ${emoji}`}
            data-emoji={emoji}
            onClick={() => report(model, model.react(conv, m.id, emoji))}
          >
            <span class="reaction-emoji" aria-hidden="true">{emoji}</span>
            <span class="reaction-count" aria-hidden="true">{users.length}</span>
          </button>
        );
      })}
      <button
        type="button"
        class="reaction add"
        aria-label={`Add a reaction to ${about(m, me)}`}
        aria-haspopup="dialog"
        title="Add a reaction"
        onClick={(e) => openPicker(conv, m.id, e.currentTarget)}
      >
        <SmileIcon />
        <span aria-hidden="true">+</span>
      </button>
    </div>
  );
}

/** The message a reply answers, above the reply: a click scrolls to it. */
export function ReplyQuote(
  { model, conv, r }: { model: ChatModel; conv: Conversation; r: ReplyRef },
) {
  // The reference does not say who deleted it: the original, when loaded, does.
  const text = r.deleted
    ? conv.find(r.id)?.removed ? "message removed by an admin" : "message deleted"
    : quoted(conv, r);
  return (
    <button
      type="button"
      class="reply-quote"
      aria-label={`In reply to ${r.from}: ${text}. Show that message`}
      title="Show the message this answers"
      onClick={() => model.showMessage(conv, r.id)}
    >
      <ReplyIcon size={14} />
      <span class="reply-from">{r.from}</span>
      <span class={`reply-snippet${r.deleted ? " gone" : ""}`}>{text}</span>
    </button>
  );
}

/** Above the composer while writing a reply: what it answers, and × to stop replying. */
export function ReplyBar(
  { ui, conv, r }: { ui: UiState; conv: Conversation; r: ReplyRef },
) {
  return (
    <div class="reply-bar" role="status">
      <ReplyIcon size={14} />
      <span class="reply-bar-text">
        Replying to <strong class="reply-from">{r.from}</strong>
        <span class="reply-snippet">{quoted(conv, r)}</span>
      </span>
      <button
        type="button"
        class="icon-btn small"
        aria-label={`Cancel the reply to ${r.from}`}
        title="Cancel the reply (Escape)"
        onClick={() => {
          conv.replyTo.value = null;
          ui.focusComposer.value++;
        }}
      >
        <CloseIcon />
      </button>
    </div>
  );
}

// ---------------------------------------------------------------------------
// Editing in place

/** Grows a textarea with its text, up to the CSS max-height. */
function fit(el: HTMLTextAreaElement | null): void {
  if (!el) return;
  el.style.height = "auto";
  el.style.height = `${el.scrollHeight}px`;
}

/**
 * One of the user's messages, edited where it is: Enter saves, Shift+Enter
 * starts a new line, Escape cancels; then the keyboard goes back to the
 * message box.
 */
export function MessageEditor(
  { model, ui, conv, m }: { model: ChatModel; ui: UiState; conv: Conversation; m: ChatMessage },
) {
  const [text, setText] = useState(m.text);
  const [error, setError] = useState<string | null>(null);
  const ref = useRef<HTMLTextAreaElement>(null);
  // Before the browser paints or takes input: done later, the caret could jump to
  // the end under keys (or a paste) that came in first, appending instead of replacing.
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    el.focus();
    el.setSelectionRange(el.value.length, el.value.length);
  }, []);
  useLayoutEffect(() => fit(ref.current), [text]);
  const close = () => {
    conv.editing.value = null;
    ui.focusComposer.value++;
  };
  const save = () => {
    const problem = model.edit(conv, m.id, text);
    if (problem !== null) setError(problem);
    else close();
  };
  const id = `edit-${m.id}`;
  return (
    <div class="msg-editor">
      <label class="sr-only" for={id}>Edit your message</label>
      <textarea
        id={id}
        ref={ref}
        rows={1}
        value={text}
        placeholder={m.files?.length ? "No text: the files stay" : undefined}
        aria-describedby={`${id}-hint${error ? ` ${id}-error` : ""}`}
        aria-invalid={error ? "true" : undefined}
        onInput={(e) => {
          setText((e.currentTarget as HTMLTextAreaElement).value);
          setError(null);
        }}
        onKeyDown={(e) => {
          if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
            e.preventDefault();
            save();
          } else if (e.key === "Escape" && !e.isComposing) {
            // Only the edit: not the drawer or a panel behind it.
            e.preventDefault();
            close();
          }
        }}
      />
      {error && <p id={`${id}-error`} class="form-error" role="alert">{error}</p>}
      <p id={`${id}-hint`} class="editor-hint">
        Escape to <button type="button" class="link" onClick={close}>cancel</button>
        <span aria-hidden="true">·</span>
        Enter to <button type="button" class="link" onClick={save}>save</button>
      </p>
    </div>
  );
}

// ---------------------------------------------------------------------------
// Long-press

/** Milliseconds a finger rests on a message before its actions open. */
const LONG_PRESS = 450;
/** A finger that moves further (CSS px) is scrolling, not pressing. */
const SLOP = 10;

/**
 * Touch handlers that call `open` when a finger rests on an element (not on
 * a control inside it); the click and the browser's menu that would follow
 * are cancelled then.
 */
export function useLongPress(open: () => void) {
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const start = useRef<{ x: number; y: number } | null>(null);
  const fired = useRef(false);
  const cancel = () => {
    clearTimeout(timer.current);
    timer.current = undefined;
    start.current = null;
  };
  useEffect(() => cancel, []);
  return {
    onTouchStart(e: TouchEvent) {
      fired.current = false;
      const target = e.target as Element | null;
      if (e.touches.length !== 1 || target?.closest("a, button, textarea, input, .msg-editor")) {
        cancel();
        return;
      }
      const t = e.touches[0];
      start.current = { x: t.clientX, y: t.clientY };
      clearTimeout(timer.current);
      timer.current = setTimeout(() => {
        timer.current = undefined;
        fired.current = true;
        open();
      }, LONG_PRESS);
    },
    onTouchMove(e: TouchEvent) {
      const s = start.current;
      const t = e.touches[0];
      if (s && t && Math.hypot(t.clientX - s.x, t.clientY - s.y) > SLOP) cancel();
    },
    onTouchEnd(e: TouchEvent) {
      cancel();
      if (fired.current && e.cancelable) e.preventDefault();
    },
    onTouchCancel: cancel,
    onContextMenu(e: MouseEvent) {
      // The browser's own menu for a long-press: ours opened instead.
      if (fired.current || timer.current !== undefined) e.preventDefault();
    },
  };
}

// ---------------------------------------------------------------------------
// Dialogs

/** A `<dialog>` shown modal while mounted; Escape or a click beside it closes it. */
function Dialog(
  { class: cls, label, labelledBy, children, onMount }: {
    class: string;
    label?: string;
    labelledBy?: string;
    children: ComponentChildren;
    onMount?: (d: HTMLDialogElement) => void;
  },
) {
  const ref = useRef<HTMLDialogElement>(null);
  // The `close` event comes later, maybe after another dialog took this
  // one's place (the sheet's "More reactions"): only this one's is cleared.
  const mine = useRef(overlay.peek());
  const dismiss = () => {
    if (overlay.peek() === mine.current) overlay.value = null;
  };
  useLayoutEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    if (d) onMount?.(d);
    return () => d?.close();
  }, []);
  return (
    <dialog
      ref={ref}
      class={cls}
      aria-label={label}
      aria-labelledby={labelledBy}
      onClose={dismiss}
      onClick={(e) => {
        // A click on the backdrop lands on the dialog element itself.
        if (e.target === ref.current) dismiss();
      }}
    >
      {children}
    </dialog>
  );
}

/** Moves the focus among the emoji buttons of a picker with the arrow keys. */
function arrowKeys(e: KeyboardEvent): void {
  const step = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -PER_ROW, ArrowDown: PER_ROW }[e.key];
  const current = document.activeElement as HTMLElement | null;
  if (step === undefined || !current?.classList.contains("emoji")) return;
  const all = [...(e.currentTarget as HTMLElement).querySelectorAll<HTMLElement>("button.emoji")];
  const at = all.indexOf(current);
  const next = all[Math.min(all.length - 1, Math.max(0, at + step))];
  if (next) {
    e.preventDefault();
    next.focus();
  }
}

function EmojiButton(
  { emoji, mine, onPick }: { emoji: string; mine: boolean; onPick: (emoji: string) => void },
) {
  const name = NAMES.get(emoji) ?? emoji;
  return (
    <button
      type="button"
      class={`emoji${mine ? " mine" : ""}`}
      aria-label={name}
      aria-pressed={mine}
      title={name}
      onClick={() => onPick(emoji)}
    >
      {emoji}
    </button>
  );
}

/**
 * The emoji picker: recently used, a compact common set, and a field for
 * any other emoji (the system's emoji keyboard). Arrow keys move between
 * emoji; an emoji the user reacted with already is marked, and picking it
 * takes the reaction back.
 */
function EmojiPicker(
  { model, conv, m, anchor }: {
    model: ChatModel;
    conv: Conversation;
    m: ChatMessage;
    anchor: DOMRect | null;
  },
) {
  const [other, setOther] = useState("");
  const [error, setError] = useState<string | null>(null);
  const me = model.me.value ?? "";
  const mine = (e: string) => m.reactions?.[e]?.includes(me) === true;
  const recent = model.recentEmoji.value;
  const pick = (emoji: string) => {
    overlay.value = null;
    report(model, model.react(conv, m.id, emoji));
  };
  const place = (d: HTMLDialogElement) => {
    d.querySelector<HTMLElement>("button.emoji")?.focus();
    // Beside the button that opened it; on a phone (or without one) the CSS
    // shows it as a sheet at the bottom.
    if (!anchor || matchMedia("(max-width: 767px)").matches) return;
    const box = d.getBoundingClientRect();
    const below = anchor.bottom + 6;
    const top = below + box.height <= innerHeight - 8
      ? below
      : Math.max(8, anchor.top - 6 - box.height);
    const left = Math.min(Math.max(8, anchor.right - box.width), innerWidth - box.width - 8);
    d.classList.add("anchored");
    d.style.top = `${top}px`;
    d.style.left = `${left}px`;
  };
  return (
    <Dialog class="emoji-picker" label="Add a reaction" onMount={place}>
      <div class="picker-body" onKeyDown={arrowKeys}>
        {recent.length > 0 && (
          <>
            <h3 class="picker-head" id="picker-recent">Recently used</h3>
            <div class="emoji-grid" role="group" aria-labelledby="picker-recent">
              {recent.map((e) => <EmojiButton key={e} emoji={e} mine={mine(e)} onPick={pick} />)}
            </div>
          </>
        )}
        <h3 class="picker-head" id="picker-common">Common</h3>
        <div class="emoji-grid" role="group" aria-labelledby="picker-common">
          {COMMON_EMOJI.map(([e]) => (
            <EmojiButton
              key={e}
              emoji={e}
              mine={mine(e)}
              onPick={pick}
            />
          ))}
        </div>
      </div>
      <form
        class="emoji-other"
        onSubmit={(e) => {
          e.preventDefault();
          const typed = other.trim();
          try {
            pick(checkEmoji(typed));
          } catch {
            setError(typed === "" ? "Type an emoji first" : "That is not one emoji");
          }
        }}
      >
        <label class="sr-only" for="emoji-other">Any other emoji</label>
        <input
          id="emoji-other"
          placeholder="Any other emoji"
          autocomplete="off"
          maxLength={32}
          value={other}
          aria-invalid={error ? "true" : undefined}
          aria-describedby="emoji-other-error"
          onInput={(e) => {
            setOther((e.currentTarget as HTMLInputElement).value);
            setError(null);
          }}
        />
        <button type="submit" class="btn small">Add</button>
        <p id="emoji-other-error" class="picker-error" role="alert" hidden={!error}>{error}</p>
      </form>
    </Dialog>
  );
}

/** A phone's long-press on a message: quick reactions and every action, as a sheet. */
function ActionSheet(
  { model, ui, conv, m, href }: {
    model: ChatModel;
    ui: UiState;
    conv: Conversation;
    m: ChatMessage;
    href: string;
  },
) {
  const me = model.me.value;
  const own = m.from === me;
  const may = rights(model, conv);
  const deletable = (own || model.role.value === "admin") && may.delete;
  const then = (fn: () => void) => () => {
    overlay.value = null;
    fn();
  };
  return (
    <Dialog class="sheet" label={`Actions on ${about(m, me)}`}>
      <div class="sheet-emoji" role="group" aria-label="React" hidden={!may.react}>
        {quickEmoji(model, 6).map((e) => (
          <EmojiButton
            key={e}
            emoji={e}
            mine={m.reactions?.[e]?.includes(me ?? "") === true}
            onPick={(emoji) => {
              overlay.value = null;
              report(model, model.react(conv, m.id, emoji));
            }}
          />
        ))}
        <button
          type="button"
          class="emoji more"
          aria-label="More reactions"
          title="More reactions"
          onClick={() => openPicker(conv, m.id)}
        >
          <SmileIcon size={22} />
        </button>
      </div>
      <div class="sheet-actions">
        {may.reply && (
          <button
            type="button"
            class="sheet-item"
            onClick={then(() => {
              model.reply(conv, m.id);
              ui.focusComposer.value++;
            })}
          >
            <ReplyIcon size={20} /> Reply
          </button>
        )}
        {own && may.edit && (
          <button
            type="button"
            class="sheet-item"
            onClick={then(() => (conv.editing.value = m.id))}
          >
            <PencilIcon /> Edit
          </button>
        )}
        {deletable && (
          <button
            type="button"
            class="sheet-item danger"
            onClick={() => confirmDelete(conv, m.id)}
          >
            <TrashIcon /> Delete
          </button>
        )}
        <button type="button" class="sheet-item" onClick={then(() => copyText(model, m))}>
          <CopyIcon /> {namesOnly(m) ? "Copy file names" : "Copy text"}
        </button>
        <button type="button" class="sheet-item" onClick={then(() => copyLink(model, href))}>
          <LinkIcon /> Copy link
        </button>
        <button type="button" class="sheet-item cancel" onClick={then(() => {})}>
          Cancel
        </button>
      </div>
    </Dialog>
  );
}

/** What this user may do to messages here: a read-only or archived room takes less. */
function rights(model: ChatModel, conv: Conversation) {
  return conv.kind === "room"
    ? messageRights(conv.settings.value, model.role.value === "admin")
    : messageRights({}, false);
}

/** "Delete this message?", naming the files that go with it: "…and its 2 files?". */
export function deleteQuestion(files: number): string {
  if (files === 0) return "Delete this message?";
  return files === 1
    ? "Delete this message and its file?"
    : `Delete this message and its ${files} files?`;
}

/** An admin removing someone else's message: "Remove bob's message?". */
export function removeQuestion(from: string, files: number): string {
  if (files === 0) return `Remove ${from}'s message?`;
  return files === 1
    ? `Remove ${from}'s message and its file?`
    : `Remove ${from}'s message and its ${files} files?`;
}

/**
 * "Delete this message?": asked once, in the app's style. An admin removing
 * someone else's message is told that it is someone else's, and what
 * everyone will see instead.
 */
function ConfirmDelete(
  { model, ui, conv, m }: { model: ChatModel; ui: UiState; conv: Conversation; m: ChatMessage },
) {
  const quote = previewOf(m);
  const own = m.from === model.me.value;
  const files = m.files?.length ?? 0;
  return (
    <Dialog class="modal confirm" labelledBy="confirm-title">
      <div class="modal-head">
        <h2 id="confirm-title">
          {own ? deleteQuestion(files) : removeQuestion(m.from, files)}
        </h2>
      </div>
      <div class="modal-section">
        {quote !== "" && <p class="confirm-quote">{quote}</p>}
        <p class="confirm-text">
          {own
            ? "It is deleted for everyone and cannot be brought back."
            : `This is ${m.from}'s message, not yours: as an admin you remove it for everyone, and it cannot be brought back. In its place everyone sees “message removed by an admin”.`}
        </p>
        <div class="form-actions">
          <button type="button" class="btn" onClick={() => (overlay.value = null)}>
            Cancel
          </button>
          <button
            type="button"
            class="btn danger"
            autofocus
            onClick={() => {
              overlay.value = null;
              report(model, model.delete(conv, m.id));
              // The message's buttons are gone with its text: keep the keyboard somewhere useful.
              ui.focusComposer.value++;
            }}
          >
            {own ? "Delete" : "Remove message"}
          </button>
        </div>
      </div>
    </Dialog>
  );
}

/**
 * The message dialog that is open (picker, sheet or question), for a
 * message of `conv`; `hash` gives a message's link.
 */
export function MessageDialogs(
  { model, ui, conv, hash }: {
    model: ChatModel;
    ui: UiState;
    conv: Conversation;
    hash: (m: ChatMessage) => string;
  },
) {
  const o = overlay.value;
  const m = o && o.key === conv.key ? conv.find(o.id) : undefined;
  useEffect(() => {
    // Its message went (deleted, or another conversation opened): so does the dialog.
    if (o && (!m || m.deleted)) overlay.value = null;
  });
  if (!o || !m || m.deleted) return null;
  switch (o.kind) {
    case "picker":
      return <EmojiPicker key={`p${m.id}`} model={model} conv={conv} m={m} anchor={o.anchor} />;
    case "sheet":
      return (
        <ActionSheet
          key={`s${m.id}`}
          model={model}
          ui={ui}
          conv={conv}
          m={m}
          href={hash(m)}
        />
      );
    case "confirm":
      return <ConfirmDelete key={`c${m.id}`} model={model} ui={ui} conv={conv} m={m} />;
  }
}
