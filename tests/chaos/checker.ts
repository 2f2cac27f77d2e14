/**
 * The history checker: judges a chaos schedule's record (history.ts) against
 * the guarantees of docs/protocol.md, docs/persistence.md and
 * docs/scaling.md, and names each violation with the events around it.
 *
 * - every acknowledged message, edit, delete and reaction is in the final state;
 * - on one connection, each conversation's live changes come in position
 *   order, without duplicates;
 * - no silent holes: every position of a conversation the client is in was
 *   delivered live or covered by a `since` page (a `gap` page excuses it);
 * - two clients never see different changes at one position;
 * - every client ends (after catching up) with exactly the final state, and
 *   fresh readers on any node agree on it;
 * - nothing appears that nobody sent, a refused message never appears, and
 *   nothing is stored twice;
 * - read markers are values the user sent, and unread counts agree with them.
 *
 * @module
 */
import type { ChangeFrame, ChatMessage, ServerFrame } from "../../protocol.ts";
import { fileBytes } from "./actor.ts";
import { describeEntry, type Entry, type History } from "./history.ts";
import { convKey, ConvView, describeState, dmKey, type MsgState, stateOf } from "./view.ts";

/** One broken guarantee. */
export interface Violation {
  /** Which guarantee (a short name: `lost`, `order`, `hole`, `state`…). */
  rule: string;
  /** What was seen, with ids and positions. */
  message: string;
  /** The entry it was seen at (for the events around it). */
  at?: number;
  /** The client concerned. */
  client?: string;
}

/** What the record holds, counted (for the report). */
export interface Stats {
  acked: Record<"send" | "edit" | "delete" | "react", number>;
  /** Of the acknowledged: replies, messages with files, and admins' deletes of others' messages. */
  ackedParts: { replies: number; files: number; removals: number };
  refused: number;
  unanswered: number;
  pages: number;
  gaps: number;
  connections: number;
  faults: number;
  finalMessages: number;
}

/** The checker's verdict. */
export interface Verdict {
  violations: Violation[];
  stats: Stats;
}

type Kind = "send" | "edit" | "delete" | "react";

/** A request with a `ref`, its attempts and how it ended. */
interface Request {
  client: string;
  kind: Kind;
  conv: string;
  frame: Record<string, unknown>;
  /** Entry indexes of the attempts (a resend is another attempt). */
  attempts: number[];
  /** The last definite answer. */
  outcome?: { ok: true; id: number; seq: number; at: number } | {
    ok: false;
    code: string;
    at: number;
  };
}

/** Checks a whole record; returns every violation found and the counts. */
export function check(h: History): Verdict {
  return new Checker(h).run();
}

class Checker {
  readonly #h: History;
  readonly #v: Violation[] = [];
  readonly #requests = new Map<string, Request>();
  /** client → conv → view, replayed from the frames. */
  readonly #views = new Map<string, Map<string, ConvView>>();
  /** `client/conn/conv` → highest position seen live. */
  readonly #high = new Map<string, number>();
  /** `client/conn/conv` → highest position a `joined` page reflected. */
  readonly #joinedHigh = new Map<string, number>();
  /** `client conv#id`: a `deleted` came for a message the client never had. */
  /** `client conv#id`: a live `deleted` came for the message. */
  readonly #liveDeletes = new Set<string>();
  /** `client conv` → covered intervals [lo, hi] (inclusive), with where. */
  readonly #cover = new Map<string, { lo: number; hi: number; at: number; gap: boolean }[]>();
  /** conv → position → what happened there (a signature) and where seen. */
  readonly #log = new Map<string, Map<number, { sig: string; at: number }>>();
  /** conv → message id → its original text and sender. */
  readonly #origin = new Map<string, Map<number, { from: string; text: string; at: number }>>();
  /** client → conv → read marker ids sent. */
  readonly #reads = new Map<string, Map<string, Set<number>>>();
  readonly #stats: Stats = {
    acked: { send: 0, edit: 0, delete: 0, react: 0 },
    ackedParts: { replies: 0, files: 0, removals: 0 },
    refused: 0,
    unanswered: 0,
    pages: 0,
    gaps: 0,
    connections: 0,
    faults: 0,
    finalMessages: 0,
  };
  readonly #final = new Map<string, Map<number, MsgState>>();

  constructor(h: History) {
    this.#h = h;
    for (const [conv, msgs] of Object.entries(h.final)) {
      this.#final.set(conv, new Map(msgs.map((m) => [m.id, stateOf(m)])));
      this.#stats.finalMessages += msgs.length;
    }
  }

  run(): Verdict {
    for (const e of this.#h.entries) this.#entry(e);
    this.#acknowledged();
    this.#provenance();
    this.#refusals();
    this.#holes();
    this.#views_();
    this.#readings();
    this.#files();
    for (const r of this.#requests.values()) {
      if (r.outcome?.ok) {
        this.#stats.acked[r.kind]++;
        const parts = this.#stats.ackedParts;
        if (r.frame.replyTo !== undefined) parts.replies++;
        if (r.frame.files !== undefined) parts.files++;
        if (r.kind === "delete" && this.#final.get(r.conv)?.get(r.outcome.id)?.removed) {
          parts.removals++;
        }
      } else if (r.outcome) this.#stats.refused++;
      else this.#stats.unanswered++;
    }
    return { violations: this.#v, stats: this.#stats };
  }

  #fail(rule: string, message: string, at?: number, client?: string): void {
    this.#v.push({ rule, message, at, client });
  }

  // ---------------------------------------------------------------------
  // Replaying the entries

  #entry(e: Entry): void {
    if (e.kind === "fault") this.#stats.faults++;
    if (e.kind === "open") this.#stats.connections++;
    if (e.kind === "out") this.#out(e);
    if (e.kind === "in") this.#in(e);
  }

  #out(e: Extract<Entry, { kind: "out" }>): void {
    const f = e.frame;
    const type = f.type as string;
    if (type === "read") {
      const conv = convKey(e.client, f as { room?: string; to?: string });
      const byConv = this.#reads.get(e.client) ?? new Map<string, Set<number>>();
      this.#reads.set(e.client, byConv);
      const ids = byConv.get(conv) ?? new Set<number>();
      byConv.set(conv, ids);
      ids.add(f.id as number);
      return;
    }
    const kind = type === "send" || type === "edit" || type === "delete" || type === "react"
      ? type
      : null;
    if (!kind || typeof f.ref !== "string") return;
    const key = `${e.client} ${f.ref}`;
    let r = this.#requests.get(key);
    if (!r) {
      r = {
        client: e.client,
        kind,
        conv: convKey(e.client, f as { room?: string; to?: string }),
        frame: f,
        attempts: [],
      };
      this.#requests.set(key, r);
    }
    // A frame cut off halfway never reached the server as a frame.
    if (!e.partial) r.attempts.push(e.i);
  }

  #in(e: Extract<Entry, { kind: "in" }>): void {
    const f = e.frame;
    switch (f.type) {
      case "message":
        return this.#message(e, f);
      case "edited":
      case "deleted":
      case "reaction":
        return this.#change(e, f);
      case "joined":
        return this.#page(e, `#${f.room}`, f.history, f.seq, f.gap === true, true);
      case "history":
        return this.#page(e, convKey(e.client, f), f.messages, f.seq, f.gap === true, false);
      case "error": {
        const r = f.ref === undefined ? undefined : this.#requests.get(`${e.client} ${f.ref}`);
        if (r && !r.outcome?.ok) r.outcome = { ok: false, code: f.code, at: e.i };
        return;
      }
    }
  }

  #view(client: string, conv: string): ConvView {
    const byConv = this.#views.get(client) ?? new Map<string, ConvView>();
    this.#views.set(client, byConv);
    let v = byConv.get(conv);
    if (!v) {
      v = new ConvView();
      byConv.set(conv, v);
    }
    return v;
  }

  #message(e: Extract<Entry, { kind: "in" }>, m: ChatMessage & { type: "message" }): void {
    const conv = convKey(e.client, m);
    const own = m.ref !== undefined ? this.#requests.get(`${e.client} ${m.ref}`) : undefined;
    if (own) this.#ack(own, m.id, m.seq, e.i);
    if (m.ref === undefined && m.seq !== m.id) {
      this.#fail(
        "order",
        `${conv}: a live new message #${m.id} carries position ${m.seq}`,
        e.i,
        e.client,
      );
    }
    // A resend's answer is the stored message as it is now: not a live position.
    const resent = own !== undefined && own.attempts.length > 1;
    this.#live(e, conv, m.seq, m.ref !== undefined, !resent);
    if (m.seq === m.id) this.#created(conv, m, e.i);
    this.#view(e.client, conv).applyMessage(m);
  }

  #change(e: Extract<Entry, { kind: "in" }>, f: ChangeFrame): void {
    const conv = convKey(e.client, f);
    const own = f.ref !== undefined ? this.#requests.get(`${e.client} ${f.ref}`) : undefined;
    if (own) this.#ack(own, f.id, f.seq, e.i);
    if (f.seq === 0) return;
    this.#live(e, conv, f.seq, f.ref !== undefined, true);
    const sig = f.type === "edited"
      ? `edit #${f.id} ${JSON.stringify(f.text)}`
      : f.type === "deleted"
      ? `delete #${f.id}`
      : `react #${f.id} ${f.emoji} ${f.user} ${f.on ? "on" : "off"}`;
    this.#position(conv, f.seq, sig, e.i);
    this.#view(e.client, conv).applyChange(f);
    if (f.type === "deleted") this.#liveDeletes.add(`${e.client} ${conv}#${f.id}`);
  }

  #ack(r: Request, id: number, seq: number, at: number): void {
    if (r.outcome?.ok && r.kind === "send" && r.outcome.id !== id) {
      this.#fail(
        "duplicate",
        `${r.conv}: ${r.client}'s message ref ${r.frame.ref} was acknowledged as #${r.outcome.id} and again as #${id}`,
        at,
        r.client,
      );
    }
    if (r.outcome?.ok && r.kind === "send") return;
    r.outcome = { ok: true, id, seq, at };
  }

  /** A live frame on one connection: in position order, once. */
  #live(
    e: Extract<Entry, { kind: "in" }>,
    conv: string,
    seq: number,
    own: boolean,
    advances: boolean,
  ): void {
    const key = `${e.client}/${e.conn}/${conv}`;
    const high = this.#high.get(key) ?? 0;
    const reflected = this.#joinedHigh.get(key) ?? 0;
    // The sender's own copy may repeat what a `joined` page reflected: it is the acknowledgement.
    if (!own && seq <= high) {
      this.#fail(
        "order",
        `${conv}: ${e.client} received position ${seq} after ${high} on one connection (duplicate or out of order)`,
        e.i,
        e.client,
      );
    } else if (!own && seq <= reflected) {
      this.#fail(
        "repeat",
        `${conv}: ${e.client} received position ${seq} live after a joined page that reflected up to ${reflected}`,
        e.i,
        e.client,
      );
    }
    if (advances) this.#high.set(key, Math.max(high, seq));
    this.#covered(e.client, conv, seq, seq, e.i, false);
  }

  #page(
    e: Extract<Entry, { kind: "in" }>,
    conv: string,
    messages: ChatMessage[],
    seq: number,
    gap: boolean,
    joined: boolean,
  ): void {
    if (e.since === undefined) {
      for (const m of messages) this.#view(e.client, conv).applyMessage(m);
      return;
    }
    this.#stats.pages++;
    for (const m of messages) {
      if (m.seq <= e.since || m.seq > seq) {
        this.#fail(
          "page",
          `${conv}: a page after ${e.since} up to ${seq} holds #${m.id} at position ${m.seq}`,
          e.i,
          e.client,
        );
      }
      if (m.seq === m.id) this.#created(conv, m, e.i);
    }
    if (gap) {
      this.#stats.gaps++;
      // The client reloads the conversation afresh (as the protocol asks).
      this.#views.get(e.client)?.delete(conv);
    }
    this.#covered(e.client, conv, e.since + 1, seq, e.i, gap);
    if (joined) {
      const key = `${e.client}/${e.conn}/${conv}`;
      this.#joinedHigh.set(key, Math.max(this.#joinedHigh.get(key) ?? 0, seq));
    }
    const view = this.#view(e.client, conv);
    for (const m of messages) view.applyMessage(m);
  }

  #covered(client: string, conv: string, lo: number, hi: number, at: number, gap: boolean): void {
    if (hi < lo) return;
    const key = `${client} ${conv}`;
    const list = this.#cover.get(key) ?? [];
    this.#cover.set(key, list);
    list.push({ lo, hi, at, gap });
  }

  /** A message seen in its first state: position `id` created it. */
  #created(conv: string, m: ChatMessage, at: number): void {
    if (m.deleted || m.edited !== undefined || m.reactions !== undefined) return;
    this.#position(conv, m.id, `message #${m.id} from ${m.from} ${JSON.stringify(m.text)}`, at);
    const byId = this.#origin.get(conv) ?? new Map();
    this.#origin.set(conv, byId);
    if (!byId.has(m.id)) byId.set(m.id, { from: m.from, text: m.text, at });
  }

  #position(conv: string, seq: number, sig: string, at: number): void {
    const byPos = this.#log.get(conv) ?? new Map<number, { sig: string; at: number }>();
    this.#log.set(conv, byPos);
    const seen = byPos.get(seq);
    if (!seen) byPos.set(seq, { sig, at });
    else if (seen.sig !== sig) {
      this.#fail(
        "order",
        `${conv}: position ${seq} is "${seen.sig}" (entry ${seen.at}) and also "${sig}"`,
        at,
      );
    }
  }

  // ---------------------------------------------------------------------
  // After the replay

  #requestsOf(kind: Kind, conv: string, id: number, pick?: (r: Request) => boolean): Request[] {
    return [...this.#requests.values()].filter((r) =>
      r.kind === kind && r.conv === conv && r.frame.id === id && (!pick || pick(r))
    );
  }

  /** Could this request have taken effect after position `seq`? */
  #maybeAfter(r: Request, seq: number): boolean {
    if (!r.outcome) return true;
    if (!r.outcome.ok) return this.#uncertain(r.outcome.code);
    return r.outcome.seq > seq || r.outcome.seq === 0;
  }

  /** `unavailable` with Redis may follow a stored write (docs/scaling.md, the one corner). */
  #uncertain(code: string): boolean {
    return code === "unavailable" && this.#h.mode === "redis";
  }

  #acknowledged(): void {
    for (const r of this.#requests.values()) {
      if (!r.outcome?.ok) continue;
      const { id, seq, at } = r.outcome;
      const fm = this.#final.get(r.conv)?.get(id);
      const what = `${r.conv} #${id}`;
      if (!fm) {
        this.#fail(
          "lost",
          `${r.client}'s acknowledged ${r.kind} of ${what} is not in the final state`,
          at,
          r.client,
        );
        continue;
      }
      if (r.kind === "send") {
        if (fm.from !== r.client) {
          this.#fail(
            "lost",
            `${what} acknowledged to ${r.client} is ${fm.from}'s in the final state`,
            at,
            r.client,
          );
        }
        const texts = new Set([
          r.frame.text,
          ...this.#requestsOf("edit", r.conv, id).map((e) => e.frame.text),
        ]);
        if (!fm.deleted && !texts.has(fm.text)) {
          this.#fail(
            "lost",
            `${what}: final text ${JSON.stringify(fm.text)} was never sent for it`,
            at,
            r.client,
          );
        }
        this.#sameParts(r, fm, what, at);
      } else if (r.kind === "delete") {
        if (!fm.deleted) {
          this.#fail(
            "lost",
            `${r.client}'s acknowledged delete of ${what} is undone`,
            at,
            r.client,
          );
        }
      } else if (r.kind === "edit" && seq > 0 && !fm.deleted && fm.text !== r.frame.text) {
        const later = this.#requestsOf(
          "edit",
          r.conv,
          id,
          (o) => o !== r && o.frame.text === fm.text && this.#maybeAfter(o, seq),
        );
        if (later.length === 0) {
          this.#fail(
            "lost",
            `${r.client}'s acknowledged edit of ${what} at position ${seq} (${
              JSON.stringify(r.frame.text)
            }) is lost: final text ${JSON.stringify(fm.text)}`,
            at,
            r.client,
          );
        }
      } else if (r.kind === "react" && seq > 0 && !fm.deleted) {
        const on = r.frame.on !== false;
        const emoji = r.frame.emoji as string;
        const present = fm.reactions.some(([e, who]) => e === emoji && who.includes(r.client));
        if (present !== on) {
          const later = this.#requestsOf(
            "react",
            r.conv,
            id,
            (o) =>
              o !== r && o.client === r.client && o.frame.emoji === emoji &&
              (o.frame.on !== false) === present && this.#maybeAfter(o, seq),
          );
          if (later.length === 0) {
            this.#fail(
              "lost",
              `${r.client}'s acknowledged reaction ${emoji} ${
                on ? "on" : "off"
              } to ${what} at position ${seq} is lost`,
              at,
              r.client,
            );
          }
        }
      }
    }
  }

  /** A kept message answers what its send named and carries the files it named, in order. */
  #sameParts(r: Request, fm: MsgState, what: string, at?: number): void {
    if (fm.deleted) return;
    const replyTo = (r.frame.replyTo as number | undefined) ?? 0;
    if (fm.replyTo !== replyTo) {
      this.#fail(
        "lost",
        `${what} answers #${
          fm.replyTo || "nothing"
        } in the final state, but ${r.client} sent it answering #${replyTo || "nothing"}`,
        at,
        r.client,
      );
    }
    const files = (r.frame.files as string[] | undefined) ?? [];
    if (fm.files.join(",") !== files.join(",")) {
      this.#fail(
        "lost",
        `${what} carries files [${fm.files}] in the final state, but ${r.client} sent [${files}]`,
        at,
        r.client,
      );
    }
  }

  /** Nothing in the final state that nobody sent; nothing stored twice. */
  #provenance(): void {
    for (const [conv, msgs] of this.#final) {
      const texts = new Map<string, number>();
      for (const fm of msgs.values()) {
        const sends = [...this.#requests.values()].filter((r) =>
          r.kind === "send" && r.conv === conv && r.client === fm.from
        );
        const acked = sends.find((r) => r.outcome?.ok && r.outcome.id === fm.id);
        const origin = this.#origin.get(conv)?.get(fm.id);
        const original = acked?.frame.text ?? origin?.text ??
          (!fm.deleted && !fm.edited ? fm.text : undefined);
        if (original !== undefined) {
          const send = sends.find((r) => r.frame.text === original);
          if (!send) {
            this.#fail(
              "unsent",
              `${conv}: ${describeState(fm)} was never sent by ${fm.from}`,
              origin?.at,
            );
          } else this.#sameParts(send, fm, `${conv} #${fm.id}`, origin?.at);
          const twin = texts.get(original as string);
          if (twin !== undefined) {
            this.#fail(
              "duplicate",
              `${conv}: ${JSON.stringify(original)} is stored twice, as #${twin} and #${fm.id}`,
              origin?.at,
            );
          }
          texts.set(original as string, fm.id);
        }
        if (
          fm.edited && !fm.deleted &&
          !this.#requestsOf("edit", conv, fm.id).some((r) =>
            r.frame.text === fm.text && r.client === fm.from
          )
        ) {
          this.#fail("unsent", `${conv}: ${describeState(fm)}: nobody sent that edit`);
        }
        if (fm.deleted) {
          // The author deletes; an admin removes someone else's (the tombstone says which).
          const asked = this.#requestsOf("delete", conv, fm.id).filter((r) =>
            fm.removed
              ? r.client !== fm.from && this.#h.admins.includes(r.client)
              : r.client === fm.from
          );
          if (asked.length === 0) {
            this.#fail(
              "unsent",
              `${conv}: #${fm.id} is ${
                fm.removed ? "removed by an admin" : "deleted by its author"
              } but nobody who may asked`,
            );
          }
        }
        for (const [emoji, who] of fm.reactions) {
          for (const u of who) {
            const asked = this.#requestsOf(
              "react",
              conv,
              fm.id,
              (r) => r.client === u && r.frame.emoji === emoji && r.frame.on !== false,
            );
            if (asked.length === 0) {
              this.#fail("unsent", `${conv}: ${u}'s ${emoji} on #${fm.id} was never sent`);
            }
          }
        }
      }
    }
  }

  /** A message refused for good never appears, anywhere. */
  #refusals(): void {
    const seen = new Map<string, string>();
    for (const [conv, byId] of this.#origin) {
      for (const [id, o] of byId) seen.set(o.text, `${conv} #${id}`);
    }
    for (const [conv, msgs] of this.#final) {
      for (const fm of msgs.values()) if (!fm.deleted) seen.set(fm.text, `${conv} #${fm.id}`);
    }
    for (const r of this.#requests.values()) {
      if (r.kind !== "send" || !r.outcome || r.outcome.ok || this.#uncertain(r.outcome.code)) {
        continue;
      }
      const where = seen.get(r.frame.text as string);
      if (where !== undefined) {
        this.#fail(
          "refused",
          `${r.client}'s message ref ${r.frame.ref} was refused (${r.outcome.code}) yet appears as ${where}`,
          r.outcome.at,
          r.client,
        );
      }
    }
  }

  /** Every position of a conversation a client is in was delivered or covered by a page. */
  #holes(): void {
    for (const reading of this.#h.readings) {
      const client = reading.user;
      for (const conv of this.#memberConvs(client)) {
        const last = Math.max(0, ...[...(this.#final.get(conv)?.values() ?? [])].map((m) => m.seq));
        const spans = [...(this.#cover.get(`${client} ${conv}`) ?? [])].sort((a, b) => a.lo - b.lo);
        const covered = new Set<number>();
        for (const s of spans) for (let p = s.lo; p <= Math.min(s.hi, last); p++) covered.add(p);
        for (let p = 1; p <= last; p++) {
          if (covered.has(p) || this.#forgotten(client, conv, p)) continue;
          const after = spans.find((s) => s.lo > p);
          this.#fail(
            "hole",
            `${conv}: ${client} never received position ${p} (of ${last}) live or in a page, and no page said gap`,
            after?.at,
            client,
          );
          break;
        }
      }
    }
  }

  /**
   * Position `p` belongs to a message whose delete the client received live
   * (its creation, or a change between it and the delete): the Redis feed
   * forgets those positions when the message is deleted, so a node catching
   * up from it skips them (docs/scaling.md); the `deleted` brings the tombstone.
   */
  #forgotten(client: string, conv: string, p: number): boolean {
    if (this.#h.mode !== "redis") return false;
    for (const fm of this.#final.get(conv)?.values() ?? []) {
      if (!fm.deleted || !this.#liveDeletes.has(`${client} ${conv}#${fm.id}`)) continue;
      if (p === fm.id) return true;
      const sig = this.#log.get(conv)?.get(p)?.sig;
      if (
        sig !== undefined
          ? sig.includes(` #${fm.id} `) || sig.endsWith(` #${fm.id}`)
          : p > fm.id && p < fm.seq
      ) {
        return true;
      }
    }
    return false;
  }

  #memberConvs(client: string): string[] {
    const reading = this.#h.readings.find((r) => r.user === client);
    const rooms = (reading?.welcome.rooms ?? []).map((r) => `#${r}`);
    const dms = this.#h.users.filter((u) => u !== client).map((u) => dmKey(client, u))
      .filter((k) => (this.#final.get(k)?.size ?? 0) > 0);
    return [...rooms, ...dms];
  }

  /** Every client, caught up, holds exactly the final state. */
  #views_(): void {
    for (const reading of this.#h.readings) {
      const client = reading.user;
      for (const conv of this.#memberConvs(client)) {
        const view = this.#views.get(client)?.get(conv);
        const finalMsgs = [...(this.#final.get(conv)?.values() ?? [])];
        const mine = view?.lines() ?? [];
        const want = finalMsgs.sort((a, b) => a.id - b.id).map(describeState);
        const diff = firstDiff(mine, want);
        if (diff) {
          this.#fail(
            "state",
            `${conv}: ${client} ends with ${diff.got} where the final state has ${diff.want}`,
            this.#lastAbout(client, conv, Number(/^#(\d+)@/.exec(diff.got)?.[1] ?? NaN)),
            client,
          );
        }
      }
    }
  }

  /** The last frame the client received about message `id` (else its last entry). */
  #lastAbout(client: string, conv: string, id: number): number | undefined {
    let last: number | undefined;
    for (let i = this.#h.entries.length - 1; i >= 0; i--) {
      const e = this.#h.entries[i];
      if (!("client" in e) || e.client !== client) continue;
      last ??= i;
      if (e.kind !== "in") continue;
      const f = e.frame;
      const about = f.type === "message" || f.type === "edited" || f.type === "deleted" ||
          f.type === "reaction"
        ? f.id === id && convKey(client, f) === conv
        : f.type === "joined" || f.type === "history"
        ? convKey(client, f) === conv &&
          (f.type === "joined" ? f.history : f.messages).some((m) => m.id === id)
        : false;
      if (about) return i;
    }
    return last;
  }

  /** Fresh readers agree with the final state; unread counts agree with read markers. */
  /** Every file of the final state downloads, through its link, as the bytes its uploader sent. */
  #files(): void {
    const uploads = new Map<string, { client: string; ref: string }>();
    for (const e of this.#h.entries) {
      if (e.kind === "upload" && e.id) uploads.set(e.id, { client: e.client, ref: e.ref });
    }
    for (const [conv, msgs] of this.#final) {
      for (const fm of msgs.values()) {
        for (const id of fm.files) {
          const up = uploads.get(id);
          const got = this.#h.files[id];
          if (!up) {
            this.#fail("unsent", `${conv} #${fm.id} carries file ${id}, which nobody uploaded`);
          } else if (up.client !== fm.from) {
            this.#fail(
              "unsent",
              `${conv} #${fm.id} from ${fm.from} carries ${up.client}'s file ${id}`,
            );
          } else if (got !== fileBytes(up.ref)) {
            this.#fail(
              "file",
              `${conv} #${fm.id}: file ${id} downloads as ${
                typeof got === "number" ? `HTTP ${got}` : JSON.stringify(String(got).slice(0, 60))
              }, not the bytes ${up.client} uploaded for ${up.ref}`,
            );
          }
        }
      }
    }
  }

  #readings(): void {
    for (const reading of this.#h.readings) {
      const user = reading.user;
      for (const [conv, msgs] of Object.entries(reading.convs)) {
        const want = [...(this.#final.get(conv)?.values() ?? [])].sort((a, b) => a.id - b.id)
          .map(describeState);
        const diff = firstDiff(
          msgs.map(stateOf).sort((a, b) => a.id - b.id).map(describeState),
          want,
        );
        if (diff) {
          this.#fail(
            "state",
            `${conv}: a fresh reader of ${user} sees ${diff.got} where the final state has ${diff.want}`,
          );
        }
      }
      const finalReads = this.#h.finalReads[user] ?? {};
      for (const c of reading.welcome.conversations) {
        const conv = c.room !== undefined ? `#${c.room}` : dmKey(user, c.to!);
        if (conv in finalReads && c.read !== finalReads[conv]) {
          this.#fail(
            "read",
            `${conv}: ${user} set its read marker to ${
              finalReads[conv]
            } at the end and heard it back, but a fresh connection reads ${c.read}`,
          );
        }
        const msgs = [...(this.#final.get(conv)?.values() ?? [])];
        const sent = this.#reads.get(user)?.get(conv) ?? new Set<number>();
        if (c.read !== 0 && !sent.has(c.read)) {
          this.#fail(
            "read",
            `${conv}: ${user}'s read marker is ${c.read}, which ${user} never sent (sent: ${
              [...sent].join(",") || "none"
            })`,
          );
        }
        const unread = Math.min(
          100,
          msgs.filter((m) => m.id > c.read && m.from !== user && !m.deleted).length,
        );
        if (c.unread !== unread) {
          this.#fail(
            "read",
            `${conv}: ${user} has ${c.unread} unread after marker ${c.read}, but the final state has ${unread}`,
          );
        }
        const last = Math.max(0, ...msgs.map((m) => m.id));
        const seq = Math.max(0, ...msgs.map((m) => m.seq));
        if (c.last !== last || c.seq !== seq) {
          this.#fail(
            "read",
            `${conv}: ${user}'s welcome says last ${c.last} seq ${c.seq}, the final state ${last} and ${seq}`,
          );
        }
      }
    }
  }
}

function firstDiff(got: string[], want: string[]): { got: string; want: string } | null {
  for (let i = 0; i < Math.max(got.length, want.length); i++) {
    if (got[i] !== want[i]) {
      return { got: got[i] ?? "nothing more", want: want[i] ?? "nothing more" };
    }
  }
  return null;
}

/**
 * A violation with what is needed to replay it: the seed and mode, and the
 * events around it (the same client's, and faults).
 */
export function describeViolation(h: History, v: Violation, around = 12): string {
  const lines = [`seed ${h.seed} (--mode ${h.mode}): ${v.rule}: ${v.message}`];
  if (v.at !== undefined) {
    const near = h.entries.slice(Math.max(0, v.at - 400), v.at + 40).filter((e) =>
      e.kind === "fault" || ("client" in e && (v.client === undefined || e.client === v.client)) &&
        !(e.kind === "in" && isNoise(e.frame))
    );
    const k = near.findIndex((e) => e.i === v.at);
    for (const e of near.slice(Math.max(0, k - around), k + 4)) {
      lines.push(`  ${e.i === v.at ? ">" : " "} ${describeEntry(e)}`);
    }
  }
  return lines.join("\n");
}

function isNoise(f: ServerFrame): boolean {
  return f.type === "presence" || f.type === "typing" || f.type === "system" || f.type === "pong";
}
