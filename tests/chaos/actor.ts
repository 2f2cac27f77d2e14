/**
 * A chaos client: one user with one connection at a time that sends
 * (replies and files too), edits, deletes (an admin also others' messages),
 * reacts, reads, joins and leaves, and behaves as
 * docs/protocol.md asks after every drop — reconnects with its token,
 * resumes every conversation with `since` (paging while `more`), reloads
 * after a `gap`, and resends unacknowledged messages with the same `ref`.
 * Everything it sends and receives goes into the {@link Recorder}.
 *
 * @module
 */
import { type ChatMessage, type ServerFrame, splitFrames } from "../../protocol.ts";
import { type Deployment, passwordOf, sleep } from "./cluster.ts";
import type { Recorder } from "./history.ts";
import type { Rng } from "./prng.ts";
import { convKey, ConvView, dmKey } from "./view.ts";
import { Wire } from "./wire.ts";

/** Rooms the schedules use besides `general`. */
export const ROOMS = ["general", "r1", "r2"] as const;
const EMOJI = ["👍", "🎉", "❤️"] as const;
const CONNECT_MS = 2_000;
const WELCOME_MS = 5_000;

/** What an action does. */
export type Action =
  | "send"
  | "reply"
  | "file"
  | "dm"
  | "edit"
  | "delete"
  | "react"
  | "read"
  | "member"
  | "drop"
  | "half";

type Frame = Record<string, unknown>;

/** How a chaos client behaves. */
export interface ActorOptions {
  /** An admin: deletes others' messages in rooms too. @default {false} */
  admin?: boolean;
}

/** The bytes of the file a client uploads with its `ref`: the checker expects them back. */
export function fileBytes(ref: string): string {
  return `file of ${ref}\n`.repeat(8);
}

/** One chaos client. */
export class Actor {
  readonly name: string;
  readonly peers: string[];
  node: number;
  readonly #dep: Deployment;
  readonly #rec: Recorder;
  #wire: Wire | null = null;
  #conn = 0;
  #token: string | null = null;
  #ready = false;
  #stopped = false;
  #n = 0;
  #gaps = 0;
  readonly #views = new Map<string, ConvView>();
  readonly #cursors = new Map<string, number>();
  /** conv → the `since` of the page request outstanding on this connection. */
  readonly #paging = new Map<string, number>();
  readonly #rooms = new Set<string>(["general"]);
  /** Rooms it asked to leave and has not heard `left` for (on this connection). */
  readonly #leaving = new Set<string>();
  /** Requests with a ref waiting for their answer on this connection. */
  readonly #pending = new Map<string, Frame>();
  /** Messages to send again with the same ref (no answer, or `unavailable`). */
  readonly #resend = new Map<string, Frame>();
  #connecting: Promise<void> | null = null;
  #pongs = 0;
  #changed = new Set<() => void>();

  readonly #admin: boolean;

  constructor(
    name: string,
    peers: string[],
    node: number,
    env: { dep: Deployment; rec: Recorder },
    options: ActorOptions = {},
  ) {
    this.name = name;
    this.#admin = options.admin ?? false;
    this.peers = peers;
    this.node = node;
    this.#dep = env.dep;
    this.#rec = env.rec;
  }

  /** Whether it is signed in and may act. */
  get ready(): boolean {
    return this.#ready && this.#wire !== null && !this.#wire.closed;
  }

  /** Its session token (once signed in). */
  get token(): string | null {
    return this.#token;
  }

  /** Rooms it knows itself to be in. */
  get rooms(): string[] {
    return [...this.#rooms];
  }

  /** Connects (retrying until signed in or stopped). */
  connect(): Promise<void> {
    this.#connecting ??= this.#connectLoop().finally(() => this.#connecting = null);
    return this.#connecting;
  }

  async #connectLoop(): Promise<void> {
    for (let attempt = 0; !this.#stopped; attempt++) {
      const port = this.#dep.port(this.node);
      if (port !== null) {
        try {
          await this.#open(port);
          return;
        } catch {
          // Down, paused or refused: try again, on the next node when there are several.
        }
      }
      if (this.#dep.size > 1 && attempt % 2 === 1) this.node = (this.node + 1) % this.#dep.size;
      await sleep(Math.min(50 * 2 ** Math.min(attempt, 4), 500));
    }
  }

  async #open(port: number): Promise<void> {
    const wire = await Wire.connect(port, CONNECT_MS);
    const conn = ++this.#conn;
    this.#wire = wire;
    this.#rec.add({ kind: "open", client: this.name, conn, node: this.node });
    const welcome = Promise.withResolvers<void>();
    const timer = setTimeout(() => wire.drop("no welcome in time"), WELCOME_MS);
    wire.onText = (text) => {
      for (const f of splitFrames(text)) {
        this.#receive(conn, f);
        if (f.type === "welcome") {
          this.#token = f.token;
          this.#rooms.clear();
          for (const r of f.rooms) this.#rooms.add(r);
          // At once, before the frames behind it: until a page answers, live
          // frames must not move the cursors past what was missed.
          this.#ready = true;
          this.#catchUp();
          welcome.resolve();
        }
      }
      this.#wake();
    };
    wire.onClose = (why) => {
      clearTimeout(timer);
      this.#rec.add({ kind: "close", client: this.name, conn, why });
      this.#closed();
      welcome.reject(new Error(why));
      this.#wake();
    };
    this.#send(
      this.#token
        ? { type: "auth", token: this.#token }
        : { type: "auth", username: this.name, password: passwordOf(this.name) },
    );
    await welcome.promise;
    clearTimeout(timer);
    for (const f of this.#resend.values()) this.#request(f);
    this.#resend.clear();
  }

  /** The connection ended: what waited for an answer may or may not have been done. */
  #closed(): void {
    this.#ready = false;
    this.#wire = null;
    for (const [ref, f] of this.#pending) if (f.type === "send") this.#resend.set(ref, f);
    this.#pending.clear();
    this.#paging.clear();
    this.#leaving.clear();
    if (!this.#stopped) this.connect();
  }

  /** Asks for everything after its cursor in every conversation it is in. */
  #catchUp(): void {
    for (const room of this.#rooms) this.#page(`#${room}`, { type: "join", room }, true);
    for (const peer of this.peers) {
      this.#page(dmKey(this.name, peer), { type: "history", to: peer }, false);
    }
  }

  #page(conv: string, frame: Frame, join: boolean, since = this.#cursors.get(conv) ?? 0): void {
    if (this.#paging.has(conv)) return;
    this.#paging.set(conv, since);
    this.#send(join ? { ...frame, since } : { ...frame, since, limit: 200 });
  }

  #send(frame: Frame): boolean {
    const wire = this.#wire;
    if (!wire || wire.closed) return false;
    this.#rec.add({ kind: "out", client: this.name, conn: this.#conn, frame });
    return wire.send(JSON.stringify(frame));
  }

  #request(frame: Frame): void {
    this.#pending.set(frame.ref as string, frame);
    if (!this.#send(frame) && frame.type === "send") {
      this.#pending.delete(frame.ref as string);
      this.#resend.set(frame.ref as string, frame);
    }
  }

  #receive(conn: number, f: ServerFrame): void {
    const page = f.type === "joined" || f.type === "history";
    const conv = page ? convKey(this.name, f) : "";
    const since = page ? this.#paging.get(conv) : undefined;
    if (page) this.#paging.delete(conv);
    this.#rec.add({
      kind: "in",
      client: this.name,
      conn,
      frame: f,
      ...(since !== undefined ? { since } : {}),
    });
    switch (f.type) {
      case "pong":
        this.#pongs++;
        return;
      case "joined":
        this.#rooms.add(f.room);
        return this.#paged(conv, since, f.history, f.seq, f.more, f.gap, {
          type: "history",
          room: f.room,
        });
      case "history":
        return this.#paged(
          conv,
          since,
          f.messages,
          f.seq,
          f.more,
          f.gap,
          f.room !== undefined ? { type: "history", room: f.room } : { type: "history", to: f.to },
        );
      case "left":
        this.#rooms.delete(f.room);
        this.#leaving.delete(f.room);
        this.#paging.delete(`#${f.room}`);
        return;
      case "message":
      case "edited":
      case "deleted":
      case "reaction": {
        if (f.ref !== undefined) this.#pending.delete(f.ref);
        const c = convKey(this.name, f);
        const view = this.#view(c);
        if (f.type === "message") view.applyMessage(f);
        else view.applyChange(f);
        // While paging, the pages move the cursor (docs/protocol.md, "Catching up").
        if (!this.#paging.has(c) && f.seq > (this.#cursors.get(c) ?? 0)) {
          this.#cursors.set(c, f.seq);
        }
        return;
      }
      case "error": {
        if (f.ref === undefined) return;
        const req = this.#pending.get(f.ref);
        this.#pending.delete(f.ref);
        if (req?.type === "send" && f.code === "unavailable") this.#resend.set(f.ref, req);
        return;
      }
    }
  }

  #paged(
    conv: string,
    since: number | undefined,
    messages: ChatMessage[],
    seq: number,
    more: boolean | undefined,
    gap: boolean | undefined,
    next: Frame,
  ): void {
    if (since === undefined) return;
    if (gap && this.#gaps++ < 3) {
      // The view may be stale: load the conversation afresh.
      this.#views.delete(conv);
      this.#cursors.delete(conv);
      this.#page(conv, next, false, 0);
      return;
    }
    const view = this.#view(conv);
    for (const m of messages) view.applyMessage(m);
    if (more) this.#page(conv, next, false, seq);
    else this.#cursors.set(conv, seq);
  }

  #view(conv: string): ConvView {
    let v = this.#views.get(conv);
    if (!v) {
      v = new ConvView();
      this.#views.set(conv, v);
    }
    return v;
  }

  #target(conv: string): Frame {
    if (conv.startsWith("#")) return { room: conv.slice(1) };
    const [a, b] = conv.slice(1).split("|");
    return { to: a === this.name ? b : a };
  }

  /** Where it may write: its rooms (but one it is leaving) and its DMs. */
  #convs(): string[] {
    return [
      ...this.#writable().map((r) => `#${r}`),
      ...this.peers.map((p) => dmKey(this.name, p)),
    ];
  }

  #writable(): string[] {
    return [...this.#rooms].filter((r) => !this.#leaving.has(r)).sort();
  }

  /** Does one action, its choices drawn from `rng`; skipped while not signed in. */
  async act(action: Action, rng: Rng): Promise<void> {
    const n = ++this.#n;
    const ref = `${this.name}.${n}`;
    if (action === "send" || action === "dm") {
      const frame = action === "send"
        ? { type: "send", room: rng.pick(this.#writable()), text: `${this.name} says ${n}`, ref }
        : { type: "send", to: rng.pick(this.peers), text: `${this.name} whispers ${n}`, ref };
      // Offline, a message waits to be sent once connected, as in a real client.
      if (!this.ready) this.#resend.set(ref, frame);
      else this.#request(frame);
      return;
    }
    if (!this.ready) return;
    switch (action) {
      case "half": {
        const frame = { type: "send", room: "general", text: `${this.name} half ${n}`, ref };
        this.#rec.add({ kind: "out", client: this.name, conn: this.#conn, frame, partial: true });
        // The server never gets it; the client sends it again once reconnected.
        this.#resend.set(ref, frame);
        return await this.#wire!.sendHalfAndDrop(JSON.stringify(frame), 0.2 + rng.next() * 0.6);
      }
      case "drop":
        return this.#wire!.drop("client dropped its connection");
      case "member": {
        const room = rng.pick(["r1", "r2"]);
        if (this.#rooms.has(room)) {
          // Even with requests to the room unanswered: they are answered all
          // the same (docs/reliability.md, found 1).
          this.#leaving.add(room);
          this.#send({ type: "leave", room });
        } else this.#page(`#${room}`, { type: "join", room }, true);
        return;
      }
    }
    if (action === "file") return await this.#sendFile(rng, n, ref);
    // An admin removes others' messages in rooms (not in DMs: there a party deletes only its own).
    const anyone = (conv: string) =>
      action === "react" || action === "read" || action === "reply" ||
      (action === "delete" && this.#admin && conv.startsWith("#"));
    const choices = this.#convs().flatMap((conv) =>
      [...(this.#views.get(conv)?.messages.values() ?? [])]
        .filter((m) => !m.deleted && (anyone(conv) || m.from === this.name))
        .map((m) => ({ conv, m }))
    );
    if (choices.length === 0) return;
    const { conv, m } = rng.pick(choices);
    const target = this.#target(conv);
    if (action === "reply") {
      this.#request({
        type: "send",
        ...target,
        text: `${this.name} answers ${n}`,
        replyTo: m.id,
        ref,
      });
    } else if (action === "edit") {
      this.#request({ type: "edit", ...target, id: m.id, text: `${this.name} edits ${n}`, ref });
    } else if (action === "delete") {
      this.#request({ type: "delete", ...target, id: m.id, ref });
    } else if (action === "react") {
      const emoji = rng.pick(EMOJI);
      const on = !m.reactions.some(([e, who]) => e === emoji && who.includes(this.name));
      this.#request({ type: "react", ...target, id: m.id, emoji, on, ref });
    } else if (action === "read") {
      const last = Math.max(...[...this.#views.get(conv)!.messages.keys()]);
      this.#send({ type: "read", ...target, id: last });
    }
  }

  /**
   * Uploads a small file (`POST /api/files`, its bearer token) and sends it
   * in a message to one of its conversations. A failed upload (a node down
   * or paused) is no message: nothing to check.
   */
  async #sendFile(rng: Rng, n: number, ref: string): Promise<void> {
    const conv = rng.pick(this.#convs());
    const port = this.#dep.port(this.node);
    if (port === null || this.#token === null) return;
    let id: string;
    try {
      const res = await fetch(`http://127.0.0.1:${port}/api/files?name=${ref}.txt`, {
        method: "POST",
        headers: { authorization: `Bearer ${this.#token}` },
        body: fileBytes(ref),
        signal: AbortSignal.timeout(3_000),
      });
      if (res.status !== 201) {
        await res.body?.cancel();
        this.#rec.add({ kind: "upload", client: this.name, ref, status: res.status });
        return;
      }
      id = (await res.json()).id;
    } catch (err) {
      this.#rec.add({ kind: "upload", client: this.name, ref, status: 0, why: String(err) });
      return;
    }
    this.#rec.add({ kind: "upload", client: this.name, ref, status: 201, id });
    const frame = {
      type: "send",
      ...this.#target(conv),
      text: `${this.name} files ${n}`,
      files: [id],
      ref,
    };
    if (!this.ready) this.#resend.set(ref, frame);
    else this.#request(frame);
  }

  /**
   * The final read-marker round trip: marks each conversation read up to its
   * newest message, and waits until a second connection of the same user
   * hears each marker — so the store has it (the server tells the user's
   * other connections after writing it). Resolves the markers set, by
   * conversation key.
   */
  async readAll(timeout: number): Promise<Record<string, number>> {
    const port = this.#dep.port((this.node + 1) % this.#dep.size)!;
    const echo = await Wire.connect(port, CONNECT_MS);
    const heard = new Map<string, number>();
    let welcomed = false;
    let wake = () => {};
    echo.onText = (text) => {
      for (const f of splitFrames(text)) {
        if (f.type === "welcome") welcomed = true;
        if (f.type === "read") heard.set(convKey(this.name, f), f.id);
      }
      wake();
    };
    echo.onClose = () => wake();
    const deadline = Date.now() + timeout;
    const until = async (what: string, ok: () => boolean) => {
      while (!ok()) {
        if (echo.closed || Date.now() > deadline) {
          throw new Error(`${this.name}'s read-marker round trip: ${what}`);
        }
        await new Promise<void>((r) => {
          const t = setTimeout(r, 100);
          wake = () => {
            clearTimeout(t);
            r();
          };
        });
      }
    };
    const set: Record<string, number> = {};
    try {
      echo.send(JSON.stringify({ type: "auth", token: this.#token }));
      await until("the second connection got no welcome", () => welcomed);
      for (const conv of this.#convs()) {
        const ids = [...(this.#views.get(conv)?.messages.keys() ?? [])];
        if (ids.length === 0) continue;
        set[conv] = Math.max(...ids);
        this.#send({ type: "read", ...this.#target(conv), id: set[conv] });
      }
      await until(
        `markers not heard: want ${JSON.stringify(set)}, heard ${
          JSON.stringify(Object.fromEntries(heard))
        }`,
        () => Object.entries(set).every(([c, id]) => heard.get(c) === id),
      );
      return set;
    } finally {
      echo.drop("round trip done");
      await echo.done;
    }
  }

  /**
   * After the faults healed: signed in, every resend answered, caught up in
   * every conversation, and everything sent to it before a ping arrived.
   * Throws (naming what is missing) when that takes longer than `timeout`.
   */
  async settle(timeout: number): Promise<void> {
    const deadline = Date.now() + timeout;
    const wait = async (what: string, ok: () => boolean) => {
      while (!ok()) {
        if (Date.now() > deadline) throw new Error(`${this.name}: ${what} (${this.#state()})`);
        await this.#next(deadline);
      }
    };
    await wait("not signed in again", () => this.ready);
    // A page whose answer never came (an error carries no ref to say which): start afresh.
    const pagesBy = Date.now() + 3_000;
    while (this.#paging.size > 0 && this.ready && Date.now() < pagesBy) await this.#next(pagesBy);
    if (this.#paging.size > 0) this.#wire?.drop("pages unanswered: resuming afresh");
    await wait("not signed in again", () => this.ready);
    for (let round = 0; round < 20 && this.#resend.size + this.#pending.size > 0; round++) {
      await wait("sends unanswered", () => this.#pending.size === 0 || !this.ready);
      await wait("not signed in again", () => this.ready);
      for (const f of this.#resend.values()) this.#request(f);
      this.#resend.clear();
    }
    await wait("sends unanswered", () => this.#pending.size === 0 && this.#resend.size === 0);
    this.#catchUp();
    await wait("not caught up", () => this.#paging.size === 0 && this.ready);
    const pongs = this.#pongs;
    this.#send({ type: "ping" });
    await wait("no pong", () => this.#pongs > pongs);
  }

  #state(): string {
    return `ready ${this.ready}, pending ${[...this.#pending.keys()]}, resend ${[
      ...this.#resend.keys(),
    ]}, paging ${[...this.#paging.keys()]}`;
  }

  #wake(): void {
    for (const w of this.#changed) w();
  }

  #next(deadline: number): Promise<void> {
    return new Promise((resolve) => {
      const changed = this.#changed;
      const t = setTimeout(done, Math.max(0, Math.min(deadline - Date.now(), 200)));
      function done() {
        clearTimeout(t);
        changed.delete(done);
        resolve();
      }
      changed.add(done);
    });
  }

  /** Refs still waiting for their answer on the open connection. */
  unanswered(): string[] {
    return this.ready ? [...this.#pending.keys()] : [];
  }

  /** Stops reconnecting and closes its connection. */
  async stop(): Promise<void> {
    this.#stopped = true;
    const wire = this.#wire;
    wire?.drop("stopped");
    await this.#connecting?.catch(() => {});
    await wire?.done;
  }
}
