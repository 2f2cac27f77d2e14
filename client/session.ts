/**
 * One user's connection to a chat server, kept alive: sign-in, a queue of
 * requests answered in order, client-side pacing under the server's rate
 * limit, reconnection with backoff, and resumption (`join` with `since`)
 * so that nothing sent while away is missed or shown twice.
 *
 * Requests go out one at a time and each waits for its answer (a send for
 * the echo carrying its `ref`). That keeps messages in order, lets a
 * `rate_limited` error be pinned on the request it refused, and costs little:
 * the server's rate limit is lower than what one round trip a message allows
 * on any usable connection.
 *
 * @module
 */
import {
  applyChange,
  type BannedFrame,
  type ChangeFrame,
  type ChatMessage,
  type ClientFrame,
  CloseCode,
  type DeletedFrame,
  type EditedFrame,
  type ErrorCode,
  type ErrorFrame,
  type FileInfo,
  type HistoryPageFrame,
  type InvitedFrame,
  type JoinedFrame,
  type KickedFrame,
  type LeftFrame,
  type ReactionFrame,
  type RoomKind,
  type RoomRenamedFrame,
  type RoomSettingsChangedFrame,
  type RoomsListFrame,
  sameMessageState,
  type ServerFrame,
  splitFrames,
  type UnbannedFrame,
  type WelcomeFrame,
} from "../protocol.ts";
import { closeSentence, describeConnectError } from "./format.ts";

type Timer = ReturnType<typeof setTimeout>;

/** A conversation: a room, or a direct-message peer. */
export type Target = { room: string; to?: undefined } | { to: string; room?: undefined };

/** An error the server reported for a request, with its code. */
export class ServerError extends Error {
  /** The server's error code. */
  readonly code: ErrorCode | "closed";
  /** Builds the error. */
  constructor(code: ErrorCode | "closed", message: string) {
    super(message);
    this.name = "ServerError";
    this.code = code;
  }
}

/** Options for {@link ConnectError}. */
export interface ConnectErrorOptions {
  /** The server refused a session token (not a name or password). @default {false} */
  token?: boolean;
}

/** The first connection failed; `code` says why. */
export class ConnectError extends Error {
  /** `auth_failed`, `name_taken`, or `network` for anything below the chat protocol. */
  readonly code: ErrorCode | "network";
  /** Whether it was a session token the server refused; the session has dropped it. */
  readonly token: boolean;
  /** Builds the error. */
  constructor(code: ErrorCode | "network", message: string, options: ConnectErrorOptions = {}) {
    super(message);
    this.name = "ConnectError";
    this.code = code;
    this.token = options.token ?? false;
  }
}

/** What the session tells its user interface. */
export type SessionEvent =
  /** Signed in; `reconnect` after a dropped connection. */
  | { type: "welcome"; welcome: WelcomeFrame; reconnect: boolean }
  /**
   * Caught up after a reconnect: `missed` new messages were fetched, and
   * `changed` messages had changed (each reported as `updated`).
   */
  | { type: "resumed"; missed: number; changed: number }
  /**
   * The server renewed the session's token after a password change: `mine`
   * when it answers this client's {@link Session.passwd}, else the password
   * was changed from another connection of the same session.
   */
  | { type: "token"; user: string; token: string; mine: boolean }
  /** The connection dropped; the next attempt is in `retryMs`. */
  | { type: "disconnected"; message: string; retryMs: number }
  /** A message not seen before: live, or fetched while resuming (`replay`). */
  | { type: "message"; message: ChatMessage; replay: boolean }
  /**
   * A live change to a message (`edited`, `deleted`, `reaction`); `before`
   * and `message` (the state after it) when the client holds the message,
   * `message` alone for the tombstone of a deleted one it never held.
   */
  | { type: "change"; change: ChangeFrame; before?: ChatMessage; message?: ChatMessage }
  /**
   * A message that changed while the client was away, in its current
   * state; `before` is the copy the client held, if it held one.
   */
  | { type: "updated"; message: ChatMessage; before?: ChatMessage }
  /**
   * Room `room` is called `name` from now on, and everything the session
   * kept under the old name is under the new one (the rooms the user is in,
   * the held messages, the catch-up position, requests not yet answered).
   * `by` is the admin who renamed it; absent when the session found out on
   * reconnecting (renamed while it was away). Told once per rename, also for
   * the session's own {@link Session.renameRoom}.
   */
  | { type: "renamed"; room: string; name: string; by?: string }
  /** A frame no request was waiting for (system, typing, presence, errors…). */
  | { type: "frame"; frame: ServerFrame }
  /** Something the user should know that is not a server frame. */
  | { type: "notice"; message: string }
  /** The session cannot go on (sign-in refused, gave up reconnecting). */
  | { type: "fatal"; message: string };

/** Options for {@link Session}. */
export interface SessionOptions {
  /** The WebSocket URL (see `normalizeUrl`). */
  url: string;
  /** Who signs in. */
  username: string;
  /** The password (login mode); omitted in open mode. */
  password?: string;
  /**
   * A saved session token to sign in with instead of the name and password.
   * If the server refuses it, {@link Session.start} rejects with a
   * {@link ConnectError} whose `token` is true.
   */
  token?: string;
  /**
   * A token the server gave this client earlier for the same user, even an
   * expired or refused one, sent along with a password sign-in: the server
   * then counts wrong passwords tried by others apart from this device.
   * @default {token}
   */
  device?: string;
  /** Receives everything that happens. */
  onEvent: (event: SessionEvent) => void;
  /** First reconnection delay in milliseconds; it doubles up to `maxBackoff`. @default {500} */
  backoff?: number;
  /** Longest reconnection delay in milliseconds. @default {15000} */
  maxBackoff?: number;
  /** Give up after this many milliseconds without a connection. @default {Infinity} */
  giveUpAfter?: number;
  /** Frames per second the client allows itself (the server's default). @default {20} */
  rate?: number;
  /** Frames the client sends in a burst (the server's default). @default {60} */
  burst?: number;
  /** Milliseconds between keep-alive pings. @default {25000} */
  keepAlive?: number;
  /** Milliseconds to wait for a pong, or for a connection to open. @default {10000} */
  timeout?: number;
}

interface Request {
  frame: ClientFrame & { ref?: string };
  /** Whether a frame answers this request. */
  match: (f: ServerFrame) => boolean;
  /** Called with `null` when a change request had nothing to change. */
  resolve: (f: ServerFrame | null) => void;
  reject: (err: Error) => void;
  /** Sent on the current connection (a reply may still come). */
  sent: boolean;
  /** Sent on an earlier connection that dropped before the answer. */
  uncertain: boolean;
  /**
   * Sent under a room's old name, renamed before the answer came: a refusal
   * because of the old name is not the answer, the request goes again.
   */
  renamed?: boolean;
  /** `unavailable` answers so far (retried a few times). */
  failures: number;
  /** An edit, delete or reaction (settled by a catch-up that shows it, see `#settleUncertainChange`). */
  change: boolean;
}

/** How many messages per conversation are held, to drop duplicates and merge changes. */
const SEEN = 2000;

/**
 * Requests about a room that follow it when it is renamed before they are
 * answered. Not a `join` (the user asked for that name, which is free now)
 * nor a `rename_room` (the room it meant is gone under that name).
 */
const FOLLOW_RENAME: ReadonlySet<ClientFrame["type"]> = new Set([
  "send",
  "edit",
  "delete",
  "react",
  "history",
  "invite",
  "kick",
  "room_settings",
  "leave",
]);

/** A message's position: its `seq` (an older server sends ids only). */
function seqOf(m: { id: number; seq?: number }): number {
  return m.seq ?? m.id;
}

/** Whether a message's state already shows what a change request asked for. */
function reflects(m: ChatMessage, frame: ClientFrame, user: string): boolean {
  switch (frame.type) {
    case "edit":
      return !m.deleted && m.edited !== undefined && m.text === frame.text;
    case "delete":
      return m.deleted === true;
    case "react":
      return (m.reactions?.[frame.emoji]?.includes(user) ?? false) === frame.on;
    default:
      return false;
  }
}

/**
 * The tombstone of a message known only from its `deleted` frame, or null
 * when the frame does not say whose it was and when (an older server's). In
 * a DM, `to` is the other party of the author.
 */
function tombstoneOf(f: DeletedFrame, me: string): ChatMessage | null {
  const { from, ts } = f;
  if (from === undefined || ts === undefined) return null;
  const where = f.room !== undefined ? { room: f.room } : { to: from === me ? f.to! : me };
  const stone: ChatMessage = {
    id: f.id,
    seq: f.seq,
    ...where,
    from,
    text: "",
    ts,
    deleted: true,
  };
  if (f.removed) stone.removed = true;
  return stone;
}

/** A conversation's key on the client: the room, or `@peer`. */
export function convOf(msg: { room?: string; to?: string; from?: string }, me: string): string {
  if (msg.room !== undefined) return msg.room;
  const peer = msg.from === me || msg.from === undefined ? msg.to! : msg.from;
  return `@${peer}`;
}

function targetKey(t: Target): string {
  return t.room !== undefined ? t.room : `@${t.to}`;
}

/** A chat connection that stays up; see the module documentation. */
export class Session {
  #opts: Required<Omit<SessionOptions, "password" | "token" | "device">> & { password?: string };
  #ws: WebSocket | null = null;
  #token: string | null = null;
  /** The latest token of this user, kept when refused: see {@link SessionOptions.device}. */
  #device: string | null = null;
  #user: string;
  /** How the server signs people in, from its latest welcome. */
  #mode: WelcomeFrame["mode"] | null = null;
  /** The server's sentence for why it is about to close with 4003. */
  #authError: string | null = null;
  /** The server's sentence for why it is about to close with 4011 (a ban). */
  #banError: string | null = null;
  #ready = false;
  #closed = false;
  #closedReason = "The client is closed";
  #everConnected = false;
  #queue: Request[] = [];
  #inflight: Request | null = null;
  #retryTimer: Timer | undefined;
  #pumpTimer: Timer | undefined;
  #reconnectTimer: Timer | undefined;
  #pingTimer: Timer | undefined;
  #pongTimer: Timer | undefined;
  #attempt = 0;
  #downSince = 0;
  /**
   * Refs are `<random>-<n>`: unique across runs too, since the server answers
   * a send whose ref it has seen (with the same text) with the stored message.
   */
  #refPrefix = crypto.randomUUID().replaceAll("-", "").slice(0, 16);
  #refs = 0;
  #tokens: number;
  #refilled = Date.now();
  /**
   * Per conversation, the position (`seq`) up to which the client has seen
   * every new message and change: the `since` of the next catch-up.
   */
  #cursor = new Map<string, number>();
  /** Recently seen messages per conversation, id → the message as it is now. */
  #seen = new Map<string, Map<number, ChatMessage>>();
  /** Rooms the user is in, as far as this client knows. */
  #rooms = new Set<string>();
  /** The latest rename applied (`old\nnew`), so that a second frame of it is no news. */
  #lastRename = "";
  /** Frames that arrived while resuming, handled once the gaps are filled. */
  #held: ServerFrame[] | null = null;
  #idle: (() => void)[] = [];
  #closeWaiters: (() => void)[] = [];

  /** Creates a session; {@link Session.start} connects. */
  constructor(options: SessionOptions) {
    this.#opts = {
      backoff: 500,
      maxBackoff: 15_000,
      giveUpAfter: Infinity,
      rate: 20,
      burst: 60,
      keepAlive: 25_000,
      timeout: 10_000,
      ...options,
    };
    this.#user = options.username;
    this.#token = options.token ?? null;
    this.#device = options.device ?? options.token ?? null;
    this.#tokens = this.#opts.burst;
  }

  /** The signed-in user. */
  get user(): string {
    return this.#user;
  }

  /**
   * The session's token, from the latest `welcome` or password change: what
   * the server's HTTP side takes as `Authorization: Bearer TOKEN` (uploads,
   * downloads). `null` before the first sign-in.
   */
  get token(): string | null {
    return this.#token;
  }

  /** Whether the connection is up and caught up. */
  get ready(): boolean {
    return this.#ready;
  }

  /** Rooms the user is in. */
  get rooms(): ReadonlySet<string> {
    return this.#rooms;
  }

  /** Requests not answered yet (queued or in flight). */
  get pending(): number {
    return this.#queue.length + (this.#inflight ? 1 : 0);
  }

  /**
   * Connects and signs in.
   *
   * @throws {ConnectError} when the server cannot be reached or refuses the sign-in.
   */
  async start(): Promise<WelcomeFrame> {
    const welcome = await this.#connect(false);
    this.#everConnected = true;
    return welcome;
  }

  /**
   * Sends a message (answering message `replyTo` of the same conversation,
   * if given, and carrying the uploaded `files`, by id); resolves with the
   * stored message once the server acknowledged it. `text` may be "" when
   * there are files.
   *
   * @throws {ServerError} `unknown_file` when a file is not the user's
   * upload, or was sent already.
   */
  send(
    target: Target,
    text: string,
    options: { replyTo?: number; files?: string[] } = {},
  ): Promise<ChatMessage> {
    const ref = `${this.#refPrefix}-${++this.#refs}`;
    const frame = { type: "send", ...target, text, ref } as ClientFrame & { ref: string };
    if (options.replyTo !== undefined) (frame as { replyTo?: number }).replyTo = options.replyTo;
    if (options.files?.length) (frame as { files?: string[] }).files = [...options.files];
    return this.#request(frame, (f) => f.type === "message" && f.ref === ref).then((f) =>
      stripType(f as ServerFrame & { type: "message" })
    );
  }

  /**
   * Replaces the text of the user's message `id`; resolves the `edited`
   * frame.
   *
   * @throws {ServerError} `forbidden` (someone else's, or too late),
   * `unknown_message`, `bad_request`.
   */
  async edit(target: Target, id: number, text: string): Promise<EditedFrame | null> {
    return await this.#change({ type: "edit", ...target, id, text }, "edited") as EditedFrame;
  }

  /**
   * Deletes the user's message `id`; resolves the `deleted` frame, or `null`
   * when it was deleted already.
   *
   * @throws {ServerError} `forbidden`, `unknown_message`.
   */
  async delete(target: Target, id: number): Promise<DeletedFrame | null> {
    return await this.#change({ type: "delete", ...target, id }, "deleted") as DeletedFrame;
  }

  /**
   * Adds (`on`) or removes the user's reaction `emoji` to message `id`;
   * resolves the `reaction` frame, or `null` when it was so already.
   *
   * @throws {ServerError} `unknown_message`, `too_many_reactions`, `bad_request`.
   */
  async react(
    target: Target,
    id: number,
    emoji: string,
    on: boolean,
  ): Promise<ReactionFrame | null> {
    return await this.#change({ type: "react", ...target, id, emoji, on }, "reaction") as
      | ReactionFrame
      | null;
  }

  #change(
    body: ClientFrame & { type: "edit" | "delete" | "react" },
    answer: ChangeFrame["type"],
  ): Promise<ServerFrame | null> {
    const ref = `${this.#refPrefix}-${++this.#refs}`;
    // The answer at seq 0 says the server had nothing to do.
    return this.#request(
      { ...body, ref } as ClientFrame,
      (f) => f.type === answer && (f as ChangeFrame).ref === ref,
      true,
    ).then((f) => f && (f as ChangeFrame).seq === 0 ? null : f);
  }

  /** The message `id` of a conversation as the client holds it (recent ones only). */
  message(target: Target, id: number): ChatMessage | undefined {
    return this.#seen.get(targetKey(target))?.get(id);
  }

  /**
   * The files of a conversation's messages among those held (not deleted),
   * newest message first: what `/download` picks from.
   */
  files(target: Target): FileInfo[] {
    const held = [...this.#seen.get(targetKey(target))?.values() ?? []]
      .filter((m) => !m.deleted && m.files !== undefined)
      .sort((a, b) => b.id - a.id);
    return held.flatMap((m) => m.files!);
  }

  /** The user's newest message of a conversation that is not deleted, among those held. */
  lastOwn(target: Target): ChatMessage | undefined {
    let last: ChatMessage | undefined;
    for (const m of this.#seen.get(targetKey(target))?.values() ?? []) {
      if (m.from === this.#user && !m.deleted && (last === undefined || m.id > last.id)) last = m;
    }
    return last;
  }

  /**
   * Message `id` of a conversation as it is now: the held copy, else asked
   * of the server (a one-message history page); `null` when it is not kept.
   */
  async fetchMessage(target: Target, id: number): Promise<ChatMessage | null> {
    const held = this.message(target, id);
    if (held) return held;
    const page = await this.history(target, { before: id + 1, limit: 1 });
    const m = page.messages.find((m) => m.id === id);
    return m ?? null;
  }

  /**
   * Joins a room (creating it if new, private when `options.private`);
   * resolves the `joined` frame.
   */
  async join(
    room: string,
    since?: number,
    options: { private?: boolean } = {},
  ): Promise<JoinedFrame> {
    const frame: ClientFrame = since === undefined
      ? { type: "join", room }
      : { type: "join", room, since };
    if (options.private) frame.private = true;
    const joined = await this.#request(
      frame,
      (f) => f.type === "joined" && f.room === room,
    ) as JoinedFrame;
    this.#rooms.add(room);
    for (const m of joined.history) this.#remember(m);
    this.#advance(room, joined.seq);
    return joined;
  }

  /**
   * Leaves a room; resolves the `left` frame, whose `room` is the room's
   * name now (it may have been renamed before the server answered).
   */
  async leave(room: string): Promise<LeftFrame> {
    // Its room follows a rename before the answer (see `#renamed`).
    const frame: ClientFrame & { type: "leave" } = { type: "leave", room };
    const left = await this.#request(
      frame,
      (f) => f.type === "left" && f.room === frame.room,
    ) as LeftFrame;
    this.#rooms.delete(left.room);
    return left;
  }

  /** Lists the rooms the user can see, with their kinds (private, read-only). */
  async listRooms(): Promise<RoomsListFrame["rooms"]> {
    const f = await this.#request({ type: "rooms" }, (f) => f.type === "rooms");
    return (f as RoomsListFrame).rooms;
  }

  /**
   * Adds `user` to `room` (which the user is in); resolves the `invited` answer.
   *
   * @throws {ServerError} `unknown_room`, `unknown_user`, `bad_request`
   * (already a member), `forbidden` (archived).
   */
  async invite(room: string, user: string): Promise<InvitedFrame> {
    const ref = this.#ref();
    return await this.#request(
      { type: "invite", room, user, ref },
      (f) => f.type === "invited" && f.ref === ref,
    ) as InvitedFrame;
  }

  /**
   * Admins: removes `user` from `room`; resolves the `kicked` answer.
   *
   * @throws {ServerError} `forbidden`, `unknown_user`, `unknown_room`, `bad_request`.
   */
  async kick(room: string, user: string): Promise<KickedFrame> {
    const ref = this.#ref();
    return await this.#request(
      { type: "kick", room, user, ref },
      (f) => f.type === "kicked" && f.ref === ref,
    ) as KickedFrame;
  }

  /**
   * Admins: bans `user` from the chat for `duration` seconds (else until
   * lifted), telling them `reason`; resolves the `banned` answer.
   *
   * @throws {ServerError} `forbidden` (not an admin, or an admin as target),
   * `unknown_user`, `bad_request`.
   */
  async ban(
    user: string,
    options: { duration?: number; reason?: string } = {},
  ): Promise<BannedFrame> {
    const ref = this.#ref();
    const frame: ClientFrame = { type: "ban", user, ref };
    if (options.duration !== undefined) frame.duration = options.duration;
    if (options.reason !== undefined) frame.reason = options.reason;
    return await this.#request(frame, (f) => f.type === "banned" && f.ref === ref) as BannedFrame;
  }

  /** Admins: lifts `user`'s ban; resolves the answer (`ok` false when there was none). */
  async unban(user: string): Promise<UnbannedFrame> {
    const ref = this.#ref();
    return await this.#request(
      { type: "unban", user, ref },
      (f) => f.type === "unbanned" && f.ref === ref,
    ) as UnbannedFrame;
  }

  /**
   * Admins: sets or clears settings of `room`; resolves the answer, whose
   * `settings` is the room's whole kind afterwards.
   *
   * @throws {ServerError} `forbidden`, `unknown_room`, `bad_request`.
   */
  async roomSettings(
    room: string,
    settings: { [K in keyof RoomKind]?: boolean },
  ): Promise<RoomSettingsChangedFrame> {
    const ref = this.#ref();
    return await this.#request(
      { type: "room_settings", room, ...settings, ref },
      (f) => f.type === "room_settings" && f.ref === ref,
    ) as RoomSettingsChangedFrame;
  }

  /**
   * Admins: renames `room` to `name`; resolves the `room_renamed` answer.
   * By then the session has moved what it keeps of the room to the new name
   * and told a `renamed` event.
   *
   * @throws {ServerError} `forbidden` (not an admin), `unknown_room` (none,
   * or a private room the user is not in), `name_taken`, `bad_request` (an
   * invalid name, or the lobby, which keeps its name).
   */
  async renameRoom(room: string, name: string): Promise<RoomRenamedFrame> {
    const ref = this.#ref();
    return await this.#request(
      { type: "rename_room", room, name, ref },
      (f) => f.type === "room_renamed" && f.ref === ref,
    ) as RoomRenamedFrame;
  }

  #ref(): string {
    return `${this.#refPrefix}-${++this.#refs}`;
  }

  /** The last `limit` messages of a conversation (or those after `since`). */
  async history(
    target: Target,
    query: { limit: number; since?: number; before?: number },
  ): Promise<HistoryPageFrame> {
    const frame = { type: "history", ...target, ...query } as ClientFrame;
    // The frame's room, not `target`'s: it follows a rename (see `#renamed`).
    const page = await this.#request(
      frame,
      (f) => f.type === "history" && convOf(f, this.#user) === targetKey(frame as Target),
    ) as HistoryPageFrame;
    // Held for /react and /edit; the cursor stays: it moves with what arrives live.
    for (const m of page.messages) this.#remember(m, false);
    return page;
  }

  /**
   * Changes the user's password (login mode); resolves once the server
   * changed it. Every other session of the user is signed out then, and this
   * one goes on with a new token (reported as a `token` event). Never sent
   * twice on its own: each try costs the server a password check.
   *
   * @throws {ServerError} `auth_failed` for a wrong current password,
   * `bad_request` for a new one the server does not accept, `rate_limited`
   * after too many tries.
   */
  async passwd(current: string, password: string): Promise<void> {
    const ref = `${this.#refPrefix}-${++this.#refs}`;
    await this.#request(
      { type: "passwd", current, password, ref },
      (f) => f.type === "passwd" && f.ref === ref,
    );
    // Signing in again with a password (should the token be refused) takes the new one.
    if (this.#opts.password !== undefined) this.#opts.password = password;
  }

  /** Searches what the user can see. */
  async search(q: string, limit = 50): Promise<ChatMessage[]> {
    const f = await this.#request(
      { type: "search", q, limit },
      (f) => f.type === "search" && f.q === q,
    );
    return (f as ServerFrame & { type: "search" }).messages;
  }

  /**
   * Tells others the user is typing; best effort, skipped when the
   * connection is down or the client is close to its rate limit.
   */
  typing(target: Target, active: boolean): void {
    if (!this.#ready || this.#inflight !== null || this.#refill() < this.#opts.burst / 2) return;
    this.#tokens--;
    this.#raw({ type: "typing", ...target, active } as ClientFrame);
  }

  /** Resolves when every request has been answered. */
  drained(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Closes the connection for good. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#ready = false;
    this.#stopTimers();
    clearTimeout(this.#reconnectTimer);
    this.#rejectAll(new ServerError("closed", "The client was closed"));
    const ws = this.#ws;
    if (ws && (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING)) {
      const closed = new Promise<void>((resolve) => this.#closeWaiters.push(resolve));
      ws.close(1000, "bye");
      let timer: Timer | undefined;
      await Promise.race([closed, new Promise((r) => (timer = setTimeout(r, 2000)))]);
      clearTimeout(timer);
    }
    this.#ws = null;
  }

  // -------------------------------------------------------------------------
  // Connecting

  #connect(reconnect: boolean): Promise<WelcomeFrame> {
    const url = this.#opts.url;
    let ws: WebSocket;
    try {
      ws = new WebSocket(url);
    } catch (err) {
      return Promise.reject(new ConnectError("network", describeConnectError(url, String(err))));
    }
    this.#ws = ws;
    this.#tokens = this.#opts.burst;
    this.#refilled = Date.now();
    const { promise, resolve, reject } = Promise.withResolvers<WelcomeFrame>();
    let lastError: ErrorFrame | null = null;
    let networkError = "";
    let welcomed = false;
    let usedToken = false;
    const openTimer = setTimeout(() => {
      networkError = "timed out";
      ws.close();
      fail(new ConnectError("network", describeConnectError(url, "timed out")));
    }, this.#opts.timeout);
    const fail = (err: Error) => {
      clearTimeout(openTimer);
      ws.onopen =
        ws.onmessage =
        ws.onerror =
        ws.onclose =
          null;
      if (this.#ws === ws) this.#ws = null;
      for (const w of this.#closeWaiters.splice(0)) w();
      reject(err);
    };
    ws.onopen = () => {
      usedToken = this.#token !== null;
      this.#tokens--;
      const password = this.#opts.password;
      this.#raw(
        usedToken
          ? { type: "auth", token: this.#token! }
          : password === undefined
          ? { type: "auth", username: this.#user }
          : this.#device === null
          ? { type: "auth", username: this.#user, password }
          : { type: "auth", username: this.#user, password, device: this.#device },
      );
    };
    ws.onerror = (e) => {
      networkError = (e as ErrorEvent).message ?? "";
    };
    ws.onmessage = (e) => {
      if (typeof e.data !== "string") return;
      let frames: ServerFrame[];
      try {
        frames = splitFrames(e.data);
      } catch {
        // A server bug, not the user's problem: say so once per frame and go on.
        this.#opts.onEvent({ type: "notice", message: "The server sent a frame that is not JSON" });
        return;
      }
      for (let i = 0; i < frames.length; i++) {
        const f = frames[i];
        if (welcomed) {
          this.#onFrame(f);
        } else if (f.type === "error") {
          lastError = f;
        } else if (f.type === "welcome") {
          welcomed = true;
          clearTimeout(openTimer);
          ws.onclose = (ev) => this.#onClose(ws, ev.code, ev.reason);
          ws.onerror = null;
          this.#welcome(f, reconnect);
          resolve(f);
        }
      }
    };
    ws.onclose = (e) => {
      const le = lastError as ErrorFrame | null;
      if (usedToken && e.code === CloseCode.AuthFailed) {
        // The token is no longer valid (signed out, expired, new secret,
        // changed password): never offer it again.
        this.#token = null;
        fail(
          new ConnectError(
            "auth_failed",
            le?.message ?? "Your session has expired or is no longer valid: sign in again",
            { token: true },
          ),
        );
        return;
      }
      if (le) {
        fail(new ConnectError(le.code, le.message));
      } else if (e.code === 0 || e.code === 1006 || networkError) {
        fail(new ConnectError("network", describeConnectError(url, networkError || "")));
      } else fail(new ConnectError("unavailable", closeSentence(e.code, e.reason)));
    };
    return promise;
  }

  #welcome(welcome: WelcomeFrame, reconnect: boolean): void {
    this.#token = welcome.token;
    this.#device = welcome.token;
    this.#user = welcome.user;
    this.#mode = welcome.mode;
    this.#authError = null;
    this.#attempt = 0;
    this.#downSince = 0;
    this.#startKeepAlive();
    const resets: string[] = [];
    for (const c of welcome.conversations) {
      const key = c.room !== undefined ? c.room : `@${c.to}`;
      const known = this.#cursor.get(key);
      const seq = c.seq ?? c.last;
      if (known === undefined) {
        // New to this client: a room joined elsewhere starts from now; a
        // DM that began while away is fetched in full when resuming.
        if (!reconnect || c.room !== undefined) this.#cursor.set(key, seq);
      } else if (seq < known) {
        // The server lost history (a restart without --data): positions start over.
        this.#cursor.set(key, seq);
        this.#seen.delete(key);
        resets.push(c.room !== undefined ? `#${c.room}` : `your messages with ${c.to}`);
      }
    }
    if (!reconnect) {
      for (const r of welcome.rooms) this.#rooms.add(r);
    }
    this.#opts.onEvent({ type: "welcome", welcome, reconnect });
    if (resets.length > 0) {
      this.#opts.onEvent({
        type: "notice",
        message: `The server no longer has the earlier messages of ${
          resets.join(", ")
        } (it restarted without keeping history)`,
      });
    }
    if (!reconnect) {
      this.#ready = true;
      this.#pump();
      return;
    }
    this.#held = [];
    this.#resume(welcome).then(
      ({ missed, changed }) => {
        const held = this.#held ?? [];
        this.#held = null;
        for (const f of held) this.#onFrame(f);
        this.#ready = true;
        this.#opts.onEvent({ type: "resumed", missed, changed });
        this.#pump();
      },
      () => {
        // The connection dropped while resuming; the next welcome resumes again.
        this.#held = null;
      },
    );
  }

  /**
   * Fetches what was missed in every room and DM: the messages created and
   * changed after each conversation's cursor, merged by id with the held
   * ones. Resolves how many were new, and how many had changed.
   */
  async #resume(welcome: WelcomeFrame): Promise<{ missed: number; changed: number }> {
    let missed = 0;
    let changed = 0;
    /**
     * `from`: the cursor the catch-up started from. A message with an id at
     * or below it was created before and has changed since; one above it is
     * new, whichever page it comes in (pages go by `seq`, not by id).
     */
    const deliver = (messages: ChatMessage[], from: number) => {
      for (const m of messages) {
        const seen = this.#remember(m);
        if (seen.kind === "same") continue;
        if (seen.kind === "new" && m.id > from) {
          this.#settleUncertain(m);
          missed++;
          this.#opts.onEvent({ type: "message", message: m, replay: true });
          continue;
        }
        // Created before `since`, changed after it.
        const before = seen.kind === "changed" ? seen.before : undefined;
        this.#settleUncertainChange(m);
        changed++;
        this.#opts.onEvent(
          before ? { type: "updated", message: m, before } : { type: "updated", message: m },
        );
      }
    };
    /** Pages forward from `since` while the server has more; resolves the new cursor. */
    const pageOn = async (target: Target, from: number, since: number, more: boolean) => {
      while (more) {
        const page = await this.#direct(
          { type: "history", ...target, since, limit: 200 } as ClientFrame,
          (f) => f.type === "history" && convOf(f, this.#user) === targetKey(target),
        ) as HistoryPageFrame;
        if (page.gap && target.to !== undefined) this.#gapNotice(`your messages with ${target.to}`);
        deliver(page.messages, from);
        const next = page.seq ?? page.messages.at(-1)?.seq ?? since;
        more = page.more && page.messages.length > 0 && next > since;
        since = Math.max(since, next);
      }
      return since;
    };
    const member = new Set(welcome.rooms);
    // Before anything is joined: a renamed room must not be joined (and so
    // made again, empty) under its old name.
    this.#applyRenames(welcome);
    for (const r of welcome.rooms) this.#rooms.add(r);
    for (const room of [...this.#rooms]) {
      const since = this.#cursor.get(room) ?? 0;
      let joined: JoinedFrame;
      try {
        // A room the server no longer counts the user in (it restarted
        // without keeping state) is joined again; its recent messages are
        // compared with what was shown, as ids may have started over.
        joined = await this.#direct(
          member.has(room) ? { type: "join", room, since } : { type: "join", room },
          (f) => f.type === "joined" && f.room === room,
        ) as JoinedFrame;
      } catch (err) {
        if (err instanceof ServerError && err.code !== "closed") {
          this.#rooms.delete(room);
          this.#opts.onEvent({
            type: "notice",
            message: `Could not rejoin #${room}: ${err.message}`,
          });
          continue;
        }
        throw err;
      }
      if (joined.gap) this.#gapNotice(`#${room}`);
      deliver(joined.history, since);
      const next = Math.max(since, joined.seq ?? joined.history.at(-1)?.seq ?? since);
      this.#advance(room, await pageOn({ room }, since, next, joined.more ?? false));
    }
    for (const c of welcome.conversations) {
      if (c.to === undefined) continue;
      const key = `@${c.to}`;
      const since = this.#cursor.get(key) ?? 0;
      this.#advance(key, await pageOn({ to: c.to }, since, since, (c.seq ?? c.last) > since));
    }
    return { missed, changed };
  }

  /**
   * Rooms renamed while the client was away, as the welcome lists them
   * (`renamed`): each old name the session keeps something under, and which
   * the user is not in now, is moved to the room's name now (see `#renamed`)
   * and told as a `renamed` event without `by`. An old name the user is in
   * again is a new room of that name, and stays.
   */
  #applyRenames(welcome: WelcomeFrame): void {
    const member = new Set(welcome.rooms);
    // A rename told on an earlier connection is no reason to skip one now.
    this.#lastRename = "";
    for (const { room, name } of welcome.renamed ?? []) {
      if (member.has(room) || !this.#keeps(room)) continue;
      this.#renamed(room, name);
      this.#opts.onEvent({ type: "renamed", room, name });
    }
  }

  /** Whether the session keeps anything under room `room`: membership, position or messages. */
  #keeps(room: string): boolean {
    return this.#rooms.has(room) || this.#cursor.has(room) || this.#seen.has(room);
  }

  #gapNotice(what: string): void {
    this.#opts.onEvent({
      type: "notice",
      message: `Some messages of ${what} from while you were away are no longer kept`,
    });
  }

  /**
   * A message from before a reconnect matching the send that was in flight
   * when the connection dropped: the send did arrive, so it is not repeated.
   */
  #settleUncertain(m: ChatMessage): void {
    const r = this.#inflight ?? this.#queue[0];
    if (!r || !r.uncertain || r.frame.type !== "send") return;
    const f = r.frame as ClientFrame & { type: "send" };
    if (m.from !== this.#user || m.text !== f.text) return;
    // A message of files alone is told apart by its files (its text is "").
    if ((m.files ?? []).map((x) => x.id).join() !== (f.files ?? []).join()) return;
    if (convOf(m, this.#user) !== targetKey(f as Target)) return;
    if (this.#inflight === r) this.#inflight = null;
    else this.#queue.shift();
    r.resolve({ type: "message", ...m });
  }

  /**
   * A changed message from a catch-up that already shows what the change
   * request in flight when the connection dropped asked for: it arrived, so
   * it is not sent again (the server would have nothing to do).
   */
  #settleUncertainChange(m: ChatMessage): void {
    const r = this.#inflight ?? this.#queue[0];
    if (!r || !r.uncertain || !r.change) return;
    const f = r.frame as ClientFrame & { id: number } & Target;
    if (f.id !== m.id || convOf(m, this.#user) !== targetKey(f)) return;
    if (!reflects(m, r.frame, this.#user)) return;
    if (this.#inflight === r) this.#inflight = null;
    else this.#queue.shift();
    r.resolve(null);
  }

  #onClose(ws: WebSocket, code: number, reason: string): void {
    if (this.#ws !== ws) return;
    this.#ws = null;
    for (const w of this.#closeWaiters.splice(0)) w();
    if (this.#closed) return;
    if (code === CloseCode.AuthFailed) {
      // Signed out, or the account changed: the session is over, and
      // signing in again on our own would undo a sign-out.
      this.#fatal(this.#authError ?? closeSentence(code, reason));
      return;
    }
    if (code === CloseCode.Banned) {
      // Banned by an admin: signing in again would only be refused.
      this.#fatal(this.#banError ?? closeSentence(code, reason));
      return;
    }
    this.#lost(closeSentence(code, reason), code);
  }

  /** The connection is gone: keep what is pending and try again later. */
  #lost(message: string, code = 1006): void {
    this.#ready = false;
    this.#held = null;
    this.#stopTimers();
    const r = this.#inflight;
    if (r?.sent && r.frame.type === "passwd") {
      // Not repeated: the server may have changed the password already.
      this.#inflight = null;
      r.reject(
        new ServerError(
          "closed",
          "The connection dropped before the server answered: the password may have changed",
        ),
      );
    } else if (r) {
      this.#inflight = null;
      if (r.sent) r.uncertain = true;
      r.sent = false;
      this.#queue.unshift(r);
    }
    for (const d of this.#directs.splice(0)) d.reject(new ServerError("closed", message));
    if (this.#downSince === 0) this.#downSince = Date.now();
    const delay = code === CloseCode.GoingAway || code === CloseCode.RateLimited
      ? Math.max(this.#delay(), 1000)
      : this.#delay();
    this.#opts.onEvent({ type: "disconnected", message, retryMs: delay });
    this.#scheduleReconnect(delay);
  }

  #delay(): number {
    const base = Math.min(this.#opts.maxBackoff, this.#opts.backoff * 2 ** this.#attempt);
    this.#attempt++;
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  #scheduleReconnect(delay: number): void {
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnect().catch((err) => this.#fatal(`Reconnecting failed: ${err?.message ?? err}`));
    }, delay);
  }

  async #reconnect(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.#connect(true);
    } catch (err) {
      if (this.#closed) return;
      const e = err as ConnectError;
      if (e.token && !(this.#mode === "login" && this.#opts.password === undefined)) {
        // Sign in again with what the user gave, once (the token is gone).
        return this.#scheduleReconnect(0);
      }
      if (
        e.code === "auth_failed" || e.code === "signup_disabled" || e.code === "name_taken" ||
        e.code === "banned"
      ) {
        return this.#fatal(e.message);
      }
      if (Date.now() - this.#downSince > this.#opts.giveUpAfter) {
        return this.#fatal(
          `${e.message}: gave up after ${Math.round(this.#opts.giveUpAfter / 1000)} s`,
        );
      }
      const delay = this.#delay();
      this.#opts.onEvent({ type: "disconnected", message: e.message, retryMs: delay });
      this.#scheduleReconnect(delay);
    }
  }

  #fatal(message: string): void {
    this.#closed = true;
    this.#closedReason = message;
    this.#ready = false;
    this.#stopTimers();
    this.#rejectAll(new ServerError("closed", message));
    this.#opts.onEvent({ type: "fatal", message });
  }

  #rejectAll(err: Error): void {
    const all = [...(this.#inflight ? [this.#inflight] : []), ...this.#queue, ...this.#directs];
    this.#inflight = null;
    this.#queue = [];
    this.#directs = [];
    clearTimeout(this.#retryTimer);
    for (const r of all) r.reject(err);
    for (const w of this.#idle.splice(0)) w();
  }

  // -------------------------------------------------------------------------
  // Keep-alive

  #startKeepAlive(): void {
    this.#stopTimers();
    this.#pingTimer = setInterval(() => {
      if (this.#ws?.readyState !== WebSocket.OPEN || this.#pongTimer !== undefined) return;
      this.#raw({ type: "ping" });
      this.#pongTimer = setTimeout(() => {
        this.#pongTimer = undefined;
        const ws = this.#ws;
        if (!ws) return;
        // No answer: the connection is dead even if TCP has not noticed.
        ws.onclose = ws.onmessage = ws.onerror = null;
        try {
          ws.close();
        } catch { /* already closing */ }
        this.#ws = null;
        this.#lost("The server stopped answering");
      }, this.#opts.timeout);
    }, this.#opts.keepAlive);
  }

  #stopTimers(): void {
    clearInterval(this.#pingTimer);
    clearTimeout(this.#pongTimer);
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#pumpTimer);
    this.#pingTimer =
      this.#pongTimer =
      this.#retryTimer =
      this.#pumpTimer =
        undefined;
  }

  // -------------------------------------------------------------------------
  // Requests

  #request(frame: ClientFrame, match: (f: ServerFrame) => boolean): Promise<ServerFrame>;
  #request(
    frame: ClientFrame,
    match: (f: ServerFrame) => boolean,
    change: true,
  ): Promise<ServerFrame | null>;
  #request(
    frame: ClientFrame,
    match: (f: ServerFrame) => boolean,
    change = false,
  ): Promise<ServerFrame | null> {
    if (this.#closed) {
      return Promise.reject(new ServerError("closed", this.#closedReason));
    }
    const { promise, resolve, reject } = Promise.withResolvers<ServerFrame | null>();
    this.#queue.push({
      frame,
      match,
      resolve,
      reject,
      sent: false,
      uncertain: false,
      failures: 0,
      change,
    });
    this.#pump();
    return promise;
  }

  /** Requests made while resuming, one at a time: they bypass the queue, which waits. */
  #directs: {
    frame: ClientFrame;
    match: (f: ServerFrame) => boolean;
    resolve: (f: ServerFrame) => void;
    reject: (e: Error) => void;
  }[] = [];

  async #direct(frame: ClientFrame, match: (f: ServerFrame) => boolean): Promise<ServerFrame> {
    while (this.#refill() < 1) {
      await new Promise((r) => setTimeout(r, Math.ceil(1000 / this.#opts.rate)));
    }
    if (this.#ws?.readyState !== WebSocket.OPEN) {
      throw new ServerError("closed", "The connection dropped");
    }
    const { promise, resolve, reject } = Promise.withResolvers<ServerFrame>();
    this.#directs.push({ frame, match, resolve, reject });
    this.#tokens--;
    this.#raw(frame);
    return await promise;
  }

  /** Tokens the client has left under its own rate limit. */
  #refill(): number {
    const now = Date.now();
    this.#tokens = Math.min(
      this.#opts.burst,
      this.#tokens + ((now - this.#refilled) * this.#opts.rate) / 1000,
    );
    this.#refilled = now;
    return this.#tokens;
  }

  #pump(): void {
    if (!this.#ready || this.#inflight !== null || this.#pumpTimer !== undefined) return;
    const next = this.#queue[0];
    if (!next) {
      for (const w of this.#idle.splice(0)) w();
      return;
    }
    if (this.#refill() < 1) {
      const wait = Math.ceil(((1 - this.#tokens) * 1000) / this.#opts.rate);
      this.#pumpTimer = setTimeout(() => {
        this.#pumpTimer = undefined;
        this.#pump();
      }, wait);
      return;
    }
    this.#queue.shift();
    this.#inflight = next;
    this.#transmit(next);
  }

  #transmit(r: Request): void {
    this.#tokens--;
    r.sent = true;
    this.#raw(r.frame);
  }

  #raw(frame: ClientFrame): void {
    const ws = this.#ws;
    if (ws?.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
  }

  #finish(r: Request, err: Error | null, frame?: ServerFrame | null): void {
    if (this.#inflight !== r) return;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#inflight = null;
    if (err) r.reject(err);
    else r.resolve(frame ?? null);
    this.#pump();
  }

  /** Sends the request in flight again after `ms`, unless its answer comes first. */
  #retryLater(r: Request, ms: number): void {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (this.#inflight !== r || !this.#ready) return;
      this.#refill();
      this.#transmit(r);
    }, ms);
  }

  // -------------------------------------------------------------------------
  // Frames

  /**
   * Records a message in its current state: `new` when the client did not
   * hold it, `changed` when it held an older state (`before`), `same` when
   * it held this one. A known id with a different sender or time means the
   * server's ids started over. `advance` moves the conversation's cursor
   * (not for pages of older history).
   */
  #remember(
    m: ChatMessage,
    advance = true,
  ): { kind: "new" } | { kind: "same" } | { kind: "changed"; before: ChatMessage } {
    const key = convOf(m, this.#user);
    let seen = this.#seen.get(key);
    if (!seen) {
      seen = new Map();
      this.#seen.set(key, seen);
    }
    let before = seen.get(m.id);
    if (before !== undefined && (before.from !== m.from || before.ts !== m.ts)) {
      seen.clear();
      this.#cursor.set(key, 0);
      before = undefined;
    }
    if (advance) this.#advance(key, seqOf(m));
    if (before !== undefined) {
      // At the same position a page's whole message wins over a copy a live
      // change was applied to while it was out of date (protocol.md, "Catching up").
      if (seqOf(m) < seqOf(before) || (seqOf(m) === seqOf(before) && sameMessageState(before, m))) {
        return { kind: "same" };
      }
      seen.set(m.id, m);
      return { kind: "changed", before };
    }
    seen.set(m.id, m);
    if (seen.size > SEEN) seen.delete(seen.keys().next().value!);
    return { kind: "new" };
  }

  /** Moves a conversation's cursor forward to `seq`. */
  #advance(key: string, seq: number | undefined): void {
    if (seq !== undefined && seq > (this.#cursor.get(key) ?? 0)) this.#cursor.set(key, seq);
  }

  /**
   * Applies a live change to the held message; `null` when it is not news
   * (the message already shows it, or a catch-up went past it). A delete of
   * a message never held (its creation was missed) is held as its tombstone
   * when the frame says whose it was and when.
   */
  #applyChange(f: ChangeFrame): { before?: ChatMessage; message?: ChatMessage } | null {
    const key = convOf(f, this.#user);
    const held = this.#seen.get(key)?.get(f.id);
    if (held !== undefined) {
      if (f.seq <= seqOf(held)) return null;
      const after = applyChange(held, f);
      this.#seen.get(key)!.set(f.id, after);
      this.#advance(key, f.seq);
      return { before: held, message: after };
    }
    if (f.seq <= (this.#cursor.get(key) ?? 0)) return null;
    this.#advance(key, f.seq);
    const stone = f.type === "deleted" ? tombstoneOf(f, this.#user) : null;
    if (stone === null) return {};
    this.#remember(stone, false);
    return { message: stone };
  }

  #onFrame(f: ServerFrame): void {
    if (f.type === "pong") {
      clearTimeout(this.#pongTimer);
      this.#pongTimer = undefined;
      return;
    }
    if (f.type === "error" && f.code === "auth_failed" && f.ref === undefined) {
      // The close (4003) follows and ends the session with this sentence.
      this.#authError = f.message;
      return;
    }
    if (f.type === "error" && f.code === "banned" && f.ref === undefined) {
      // The close (4011) follows and ends the session with this sentence.
      this.#banError = f.message;
      return;
    }
    const direct = this.#directs.findIndex((d) => d.match(f));
    if (direct !== -1) {
      this.#directs.splice(direct, 1)[0].resolve(f);
      return;
    }
    if (f.type === "error" && this.#directs.length > 0) {
      const d = this.#directs[0];
      if (f.code === "rate_limited") {
        // A server stricter than the client's pacing: send it again later.
        this.#tokens = 0;
        clearTimeout(this.#retryTimer);
        this.#retryTimer = setTimeout(() => {
          this.#retryTimer = undefined;
          if (this.#directs[0] === d) this.#raw(d.frame);
        }, Math.max(1, f.retryAfter ?? 1) * 1000);
        return;
      }
      this.#directs.shift();
      d.reject(new ServerError(f.code, f.message));
      return;
    }
    if (this.#held !== null) {
      this.#held.push(f);
      return;
    }
    const r = this.#inflight;
    if (f.type === "passwd") {
      this.#token = this.#device = f.token;
      const mine = r !== null && r.match(f);
      this.#opts.onEvent({ type: "token", user: this.#user, token: f.token, mine });
      if (mine) this.#finish(r, null, f);
      return;
    }
    if (r && f.type === "error" && this.#errorFor(r, f)) return;
    if (!r && f.type === "error" && f.code === "rate_limited" && f.ref === undefined) {
      // A typing flag or ping was dropped: nothing to repeat, just slow down.
      this.#tokens = 0;
      return;
    }
    if (f.type === "message") {
      const message = stripType(f);
      const fresh = this.#remember(message).kind === "new";
      if (r && r.match(f)) this.#finish(r, null, f);
      if (fresh) this.#opts.onEvent({ type: "message", message, replay: false });
      return;
    }
    if (f.type === "edited" || f.type === "deleted" || f.type === "reaction") {
      const news = this.#applyChange(f);
      if (r && r.match(f)) this.#finish(r, null, f);
      if (news) this.#opts.onEvent({ type: "change", change: f, ...news });
      return;
    }
    if (f.type === "room_renamed") {
      const news = this.#renamed(f.room, f.name);
      if (r && r.match(f)) this.#finish(r, null, f);
      if (news) this.#opts.onEvent({ type: "renamed", room: f.room, name: f.name, by: f.by });
      return;
    }
    if (r && r.match(f)) {
      this.#finish(r, null, f);
      return;
    }
    if (f.type === "joined") {
      // Joined on another connection of the same user.
      this.#rooms.add(f.room);
      for (const m of f.history) this.#remember(m);
      this.#advance(f.room, f.seq);
    } else if (f.type === "left") this.#rooms.delete(f.room);
    this.#opts.onEvent({ type: "frame", frame: f });
  }

  /**
   * Moves what the session keeps of room `room` to `name`: membership,
   * catch-up position, held messages, and the requests not answered yet
   * that follow a rename. `false` when this rename was applied already (its
   * answer and a broadcast of it both came).
   */
  #renamed(room: string, name: string): boolean {
    const key = `${room}\n${name}`;
    if (this.#lastRename === key && !this.#rooms.has(room)) return false;
    this.#lastRename = key;
    if (this.#rooms.delete(room)) this.#rooms.add(name);
    // Anything kept under the new name was an earlier room's of that name.
    const cursor = this.#cursor.get(room);
    const seen = this.#seen.get(room);
    for (const k of [room, name]) {
      this.#cursor.delete(k);
      this.#seen.delete(k);
    }
    if (cursor !== undefined) this.#cursor.set(name, cursor);
    if (seen !== undefined) {
      this.#seen.set(name, new Map([...seen].map(([id, m]) => [id, { ...m, room: name }])));
    }
    for (const r of [...(this.#inflight ? [this.#inflight] : []), ...this.#queue]) {
      const frame = r.frame as { type: ClientFrame["type"]; room?: string };
      if (frame.room !== room || !FOLLOW_RENAME.has(frame.type)) continue;
      frame.room = name;
      if (r.sent) r.renamed = true;
    }
    return true;
  }

  /** Applies an error to the request in flight; `false` when it is not about it. */
  #errorFor(r: Request, f: ErrorFrame): boolean {
    const ref = r.frame.ref;
    // A password change refused by the server is the user's to try again:
    // every try costs a password check and counts against a throttle.
    const once = r.frame.type === "passwd";
    if (f.code === "rate_limited" && (f.ref === undefined || (f.ref === ref && !once))) {
      // The server dropped a frame; it can only be this one, or a typing
      // flag, in which case the answer arrives before the retry.
      this.#tokens = 0;
      this.#retryLater(r, Math.max(1, f.retryAfter ?? 1) * 1000);
      return true;
    }
    if (ref !== undefined && f.ref !== ref) return false;
    if (r.renamed) {
      // Refused under the room's old name, sent before the rename reached
      // this client: once more, under the new one.
      r.renamed = false;
      this.#retryLater(r, 0);
      return true;
    }
    if (f.code === "unavailable" && r.failures < 5 && !once) {
      r.failures++;
      this.#retryLater(r, 1000 * 2 ** r.failures);
      return true;
    }
    this.#finish(r, new ServerError(f.code, f.message));
    return true;
  }
}

function stripType(f: ServerFrame & { type: "message" }): ChatMessage {
  const { type: _, ...m } = f;
  return m;
}
