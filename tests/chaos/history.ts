/**
 * What a chaos schedule records: every frame each client sent and received,
 * connections opening and closing, faults, and at the end the final state
 * read by fresh clients. The checker (checker.ts) judges only this record.
 *
 * @module
 */
import type { ChatMessage, ServerFrame, WelcomeFrame } from "../../protocol.ts";

/** One recorded event; `i` is its index in {@link History.entries}. */
export type Entry =
  & { i: number; t: number }
  & (
    | {
      kind: "out";
      client: string;
      conn: number;
      frame: Record<string, unknown>;
      /** Only part of the frame was written before the connection was dropped. */
      partial?: boolean;
    }
    | {
      kind: "in";
      client: string;
      conn: number;
      frame: ServerFrame;
      /** For a `joined` or `history` page: the `since` it answers. */
      since?: number;
    }
    | { kind: "open"; client: string; conn: number; node: number }
    | { kind: "close"; client: string; conn: number; why: string }
    | { kind: "fault"; what: string }
    /** `POST /api/files` for the message `ref`: 201 with the file's id, or why not (0: no answer). */
    | { kind: "upload"; client: string; ref: string; status: number; id?: string; why?: string }
  );

/** What a fresh connection of one user read at the end. */
export interface Reading {
  user: string;
  /** Its `welcome` (read markers, unread counts, rooms). */
  welcome: WelcomeFrame;
  /** Conversation key → every message, in its current state, by id. */
  convs: Record<string, ChatMessage[]>;
}

/** A schedule's whole record. */
export interface History {
  seed: number;
  mode: string;
  /** The users of the clients. */
  users: string[];
  entries: Entry[];
  /** Conversation key → its final state (rooms read by the auditor, DMs by a party). */
  final: Record<string, ChatMessage[]>;
  /** Each user's fresh connection at the end. */
  readings: Reading[];
  /** Users with the admin role (they may remove others' messages). */
  admins: string[];
  /** The final read-marker round trip: user → conversation key → the marker set and heard. */
  finalReads: Record<string, Record<string, number>>;
  /**
   * Every file of the final state, downloaded at the end by a member through
   * its link: file id → the bytes as text, or the HTTP status when refused.
   */
  files: Record<string, string | number>;
}

/** Appends entries with their index and time. */
export class Recorder {
  /** Everything recorded so far. */
  readonly entries: Entry[] = [];
  #start = performance.now();

  /** Records `e` and returns its index. */
  add(e: DistributiveOmit<Entry, "i" | "t">): number {
    const i = this.entries.length;
    this.entries.push({ ...e, i, t: Math.round(performance.now() - this.#start) } as Entry);
    return i;
  }
}

/** `Omit` over each member of a union. */
export type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** One line describing an entry, for violation reports. */
export function describeEntry(e: Entry): string {
  const head = `[${e.i}] ${String(e.t).padStart(6)}ms`;
  switch (e.kind) {
    case "out":
      return `${head} ${e.client}/${e.conn} → ${short(e.frame)}${
        e.partial ? " (half, dropped)" : ""
      }`;
    case "in":
      return `${head} ${e.client}/${e.conn} ← ${
        short(e.frame as unknown as Record<string, unknown>)
      }${e.since !== undefined ? ` (since ${e.since})` : ""}`;
    case "open":
      return `${head} ${e.client}/${e.conn} open on node ${e.node}`;
    case "close":
      return `${head} ${e.client}/${e.conn} closed: ${e.why}`;
    case "fault":
      return `${head} FAULT ${e.what}`;
    case "upload":
      return `${head} ${e.client} upload for ${e.ref}: ${e.status}${e.id ? ` ${e.id}` : ""}${
        e.why ? ` (${e.why})` : ""
      }`;
  }
}

function short(f: Record<string, unknown>): string {
  const copy: Record<string, unknown> = { ...f };
  for (const k of ["history", "messages"]) {
    const list = copy[k] as ChatMessage[] | undefined;
    if (Array.isArray(list)) copy[k] = list.map((m) => `${m.id}@${m.seq}`).join(",");
  }
  delete copy.token;
  delete copy.ts;
  delete copy.online;
  delete copy.members;
  delete copy.limits;
  const text = JSON.stringify(copy);
  return text.length > 300 ? text.slice(0, 300) + "…" : text;
}
