/**
 * What one client knows of each conversation, built from the frames it
 * received: the reducer the chaos clients act on and the checker replays.
 * Merging follows docs/protocol.md ("Catching up"): messages merge by `id`,
 * and a change whose `seq` is not newer than the message's own is ignored.
 *
 * @module
 */
import type { ChangeFrame, ChatMessage } from "../../protocol.ts";

/** A message's state as a client shows it. */
export interface MsgState {
  id: number;
  seq: number;
  from: string;
  text: string;
  deleted: boolean;
  /** A tombstone an admin made (someone else's message), not its author. */
  removed: boolean;
  edited: boolean;
  /** The id of the message it answers (0: none). */
  replyTo: number;
  /** Ids of its files, in order (none on a tombstone). */
  files: string[];
  /** Emoji → who reacted, in order; emoji sorted. */
  reactions: [string, string[]][];
}

/**
 * The key of a conversation: `#room`, or `@a|b` for the DM of `a` and `b`
 * (sorted), so both parties name it alike.
 */
export function convKey(me: string, f: { room?: string; to?: string; from?: string }): string {
  if (f.room !== undefined) return `#${f.room}`;
  // A DM message carries both parties; a change or a page names the other one in `to`.
  const other = f.from !== undefined && f.from !== me ? f.from : f.to!;
  return dmKey(me, other);
}

/** The key of the DM between `a` and `b`. */
export function dmKey(a: string, b: string): string {
  return a < b ? `@${a}|${b}` : `@${b}|${a}`;
}

/** A stored message as state (reactions normalized). */
export function stateOf(m: ChatMessage): MsgState {
  return {
    id: m.id,
    seq: m.seq,
    from: m.from,
    text: m.text,
    deleted: m.deleted === true,
    removed: m.removed === true,
    edited: m.edited !== undefined,
    replyTo: m.replyTo?.id ?? 0,
    files: (m.files ?? []).map((f) => f.id),
    reactions: Object.entries(m.reactions ?? {}).filter(([, who]) => who.length > 0)
      .sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0),
  };
}

/** One line per message, for comparing states and printing them. */
export function describeState(s: MsgState): string {
  const r = s.reactions.map(([e, who]) => `${e}:${who.join(",")}`).join(" ");
  const deleted = s.removed ? "(removed)" : "(deleted)";
  return `#${s.id}@${s.seq} ${s.from} ${s.deleted ? deleted : JSON.stringify(s.text)}${
    s.edited ? " (edited)" : ""
  }${s.replyTo ? ` ↩${s.replyTo}` : ""}${s.files.length ? ` +${s.files.join(",")}` : ""}${
    r ? ` [${r}]` : ""
  }`;
}

/** One conversation as a client holds it. */
export class ConvView {
  /** Messages by id. */
  readonly messages: Map<number, MsgState> = new Map();
  /**
   * Changes to messages not held yet, by id: a `history` page is not held
   * back like a `joined` one, so a live change may overtake the page that
   * brings its message (docs/reliability.md, found 4).
   */
  readonly #early = new Map<number, ChangeFrame[]>();

  /**
   * Merges a message (live, or from a page) by id. A message is a whole
   * state, so it also replaces a held one at the same position: that one may
   * have been built by a live change applied, during a catch-up, on top of a
   * state that missed an earlier change (docs/reliability.md, found 4).
   */
  applyMessage(m: ChatMessage): void {
    const cur = this.messages.get(m.id);
    if (cur && cur.seq > m.seq) return;
    this.messages.set(m.id, stateOf(m));
    const early = this.#early.get(m.id);
    if (early) {
      this.#early.delete(m.id);
      for (const f of early.sort((a, b) => a.seq - b.seq)) this.applyChange(f);
    }
  }

  /**
   * Applies a change; false when it names a message this view does not hold
   * (the client learns it from a page instead). A `deleted` of a message never
   * held places its tombstone (its `from` says whose; with Redis, a node
   * catching up from the feed may hear only that of a message created and
   * deleted meanwhile).
   */
  applyChange(f: ChangeFrame): boolean {
    if (f.seq === 0) return true;
    const cur = this.messages.get(f.id);
    if (!cur && f.type === "deleted" && f.from !== undefined) {
      this.#early.delete(f.id);
      this.messages.set(f.id, {
        id: f.id,
        seq: f.seq,
        from: f.from,
        text: "",
        deleted: true,
        removed: f.removed === true,
        edited: false,
        replyTo: 0,
        files: [],
        reactions: [],
      });
      return false;
    }
    if (!cur) {
      const early = this.#early.get(f.id) ?? [];
      this.#early.set(f.id, early);
      early.push(f);
      return false;
    }
    if (cur.seq >= f.seq) return true;
    const next: MsgState = {
      ...cur,
      seq: f.seq,
      reactions: cur.reactions.map(([e, w]) => [e, [...w]]),
    };
    if (f.type === "edited") {
      next.text = f.text;
      next.edited = true;
    } else if (f.type === "deleted") {
      next.text = "";
      next.deleted = true;
      next.removed = f.removed === true;
      next.edited = false;
      next.reactions = [];
      next.files = [];
      next.replyTo = 0;
    } else {
      next.reactions = react(next.reactions, f.emoji, f.user, f.on);
    }
    this.messages.set(f.id, next);
    return true;
  }

  /** The messages by id, as lines (see {@link describeState}). */
  lines(): string[] {
    return [...this.messages.values()].sort((a, b) => a.id - b.id).map(describeState);
  }

  /** The highest position any message holds (0 when empty). */
  get seq(): number {
    let s = 0;
    for (const m of this.messages.values()) s = Math.max(s, m.seq);
    return s;
  }
}

function react(
  reactions: [string, string[]][],
  emoji: string,
  user: string,
  on: boolean,
): [string, string[]][] {
  const had = reactions.some(([e, who]) => e === emoji && who.includes(user));
  if (had === on) return reactions;
  const out = reactions.map(([e, who]): [string, string[]] => [
    e,
    who.filter((u) => u !== user || e !== emoji),
  ]);
  if (on) {
    const hit = out.find(([e]) => e === emoji);
    if (hit) hit[1].push(user);
    else out.push([emoji, [user]]);
  }
  return out.filter(([, who]) => who.length > 0).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0);
}
