// This module is browser compatible.
/**
 * The web client's state and its connection: {@link ChatModel} owns the
 * WebSocket, turns server frames into signals the components read, and keeps
 * the session alive across dropped connections (backoff, token re-auth, and
 * `since` catch-up with no duplicates and no gaps).
 *
 * It touches no DOM: the page hands it storage, visibility and a notifier, so
 * the same model runs in Deno tests against a real server.
 *
 * @module
 */
import { batch, computed, effect, type ReadonlySignal, signal } from "@preact/signals";
import {
  applyPresence,
  type AuthFrame,
  type ChatMessage,
  type ClientFrame,
  CloseCode,
  type HistoryFrame,
  type HistoryPageFrame,
  isReservedName,
  type JoinedFrame,
  LOBBY,
  MAX_PAGE,
  type MessageFrame,
  NAME_PATTERN,
  presenceCount,
  type RegisterFrame,
  type ServerFrame,
  splitFrames,
  type WelcomeFrame,
} from "../server/protocol.ts";
import { Conversation, convKey, type HistoryKind, type Pending } from "./conversation.ts";
import { mentions } from "./text.ts";

/** What `/api/info` says about the server. */
export interface ServerInfo {
  mode: "open" | "login";
  signup: boolean;
  version?: string;
}

/** The state of the connection, for the status indicator. */
export type ConnState = "offline" | "connecting" | "open" | "waiting";

/** A short message shown at the bottom of the screen. */
export interface Toast {
  id: number;
  text: string;
}

/** A desktop notification to show. */
export interface Alert {
  title: string;
  body: string;
  /** Conversation key, so a click can open it. */
  key: string;
}

/** What the model needs from its surroundings. */
export interface ChatEnv {
  /** `http(s)://host:port` of the chat server. */
  origin: string;
  /** Where the session token is kept (the page's localStorage). */
  storage: Pick<Storage, "getItem" | "setItem" | "removeItem">;
  /** Shows a desktop notification. @default {no notifications} */
  notify?: (alert: Alert) => void;
  /** Milliseconds before the first reconnect attempt. @default {500} */
  backoff?: number;
  /** Longest wait between reconnect attempts. @default {15000} */
  maxBackoff?: number;
  /** Milliseconds between keep-alive pings. @default {25000} */
  pingInterval?: number;
}

/** Where a search looks: the open conversation or everything. */
export type SearchScope = "here" | "all";

/** Search state. */
export interface SearchState {
  q: string;
  scope: SearchScope;
  /** Key of the conversation searched (scope "here"). */
  key: string | null;
  busy: boolean;
  results: ChatMessage[] | null;
  /** Older matches exist than the server sent: the query should be narrowed. */
  more?: boolean;
}

const TOKEN_KEY = "chat.token";
const USER_KEY = "chat.user";
const ACTIVE_KEY = "chat.active";
/** Typing flags older than this are dropped even without an `active:false`. */
const TYPING_TTL = 6000;
/** Send `typing` again after this long while the user keeps typing. */
const TYPING_RESEND = 3000;

/** The chat client: state as signals, actions as methods. */
export class ChatModel {
  /** `/api/info`, once fetched. */
  readonly info = signal<ServerInfo | null>(null);
  /** Which screen to show. */
  readonly phase = signal<"loading" | "signin" | "chat">("loading");
  /** The signed-in user. */
  readonly me = signal<string | null>(null);
  /** Connection state. */
  readonly conn = signal<ConnState>("offline");
  /** The socket is open and the welcome arrived. */
  readonly ready = signal(false);
  /** Seconds until the next reconnect attempt (state `waiting`). */
  readonly retryIn = signal(0);
  /** Why the last connection ended, when it matters to the user. */
  readonly connNote = signal<string | null>(null);
  /** The server's answer to a sign-in attempt. */
  readonly authError = signal<string | null>(null);
  /** A sign-in attempt is on its way. */
  readonly busy = signal(false);
  /** Conversations by key (`#room`, `@peer`). */
  readonly convs = signal<ReadonlyMap<string, Conversation>>(new Map());
  /** Key of the open conversation. */
  readonly active = signal<string | null>(null);
  /** Users online anywhere. */
  readonly online = signal<ReadonlySet<string>>(new Set());
  /** Users online in all, when the chat is too large to send their names (else null). */
  readonly onlineCount = signal<number | null>(null);
  /** Rooms that exist, once listed. */
  readonly roomList = signal<{ name: string; members: number }[] | null>(null);
  /** The current search. */
  readonly search = signal<SearchState | null>(null);
  /** Messages for the toast area. */
  readonly toasts = signal<Toast[]>([]);
  /** Whether the page is visible (reads are only marked while it is). */
  readonly visible = signal(true);

  /** Rooms, the lobby first. */
  readonly rooms: ReadonlySignal<Conversation[]>;
  /** Direct-message conversations, by peer name. */
  readonly dms: ReadonlySignal<Conversation[]>;
  /** The open conversation. */
  readonly current: ReadonlySignal<Conversation | null>;
  /** Unread messages everywhere. */
  readonly unreadTotal: ReadonlySignal<number>;

  #env: ChatEnv;
  #ws: WebSocket | null = null;
  /** Counts sockets, so late events of an old one are ignored. */
  #gen = 0;
  #auth: AuthFrame | RegisterFrame | null = null;
  /** The attempt came from the sign-in form (errors go there, no retry). */
  #interactive = false;
  #welcomed = false;
  #attempt = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #countdown: ReturnType<typeof setInterval> | undefined;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #typingTimer: ReturnType<typeof setInterval> | undefined;
  #readTimer: ReturnType<typeof setTimeout> | undefined;
  #lastFrame = 0;
  #refs = 0;
  #toastId = 0;
  #toastTimers = new Map<number, ReturnType<typeof setTimeout>>();
  #openAfterJoin: string | null = null;
  /** Typing flag we sent: conversation key and when. */
  #typingSent: { key: string; at: number } | null = null;
  /** Message id to scroll to once older pages reach it. */
  #jump: { key: string; id: number; pages: number } | null = null;
  #disposeEffects: (() => void)[] = [];
  #closed = false;

  /** Creates the model; call {@link start} to load the session. */
  constructor(env: ChatEnv) {
    this.#env = env;
    this.rooms = computed(() =>
      [...this.convs.value.values()]
        .filter((c) => c.kind === "room")
        .sort((a, b) => a.name === LOBBY ? -1 : b.name === LOBBY ? 1 : a.name.localeCompare(b.name))
    );
    this.dms = computed(() =>
      [...this.convs.value.values()]
        .filter((c) => c.kind === "dm")
        .sort((a, b) => a.name.localeCompare(b.name))
    );
    this.current = computed(() => {
      const key = this.active.value;
      return key === null ? null : this.convs.value.get(key) ?? null;
    });
    this.unreadTotal = computed(() => {
      let n = 0;
      for (const c of this.convs.value.values()) n += c.unread.value;
      return n;
    });
    // Mark the open conversation read while the page is visible and the list
    // is scrolled to its end.
    this.#disposeEffects.push(effect(() => {
      const conv = this.current.value;
      if (!conv || !this.ready.value || !this.visible.value || !conv.atBottom.value) return;
      const msgs = conv.messages.value;
      const newest = msgs.length > 0 ? msgs[msgs.length - 1].id : 0;
      if (newest > conv.read.value) this.#scheduleRead();
    }));
  }

  // ---------------------------------------------------------------------------
  // Session

  /** Asks the server how sign-in works and resumes a saved session. */
  async start(): Promise<void> {
    const token = this.#env.storage.getItem(TOKEN_KEY);
    if (token) {
      // Show the app straight away; the welcome fills it in.
      this.me.value = this.#env.storage.getItem(USER_KEY);
      this.phase.value = "chat";
      this.#connect({ type: "auth", token }, false);
    }
    await this.loadInfo();
    if (!token && !this.#closed) this.phase.value = "signin";
  }

  /** Fetches `/api/info` (retried by the sign-in form when it fails). */
  async loadInfo(): Promise<void> {
    try {
      const res = await fetch(new URL("/api/info", this.#env.origin));
      if (!res.ok) {
        await res.body?.cancel();
        throw new Error(`status ${res.status}`);
      }
      const info = await res.json() as ServerInfo;
      this.info.value = { mode: info.mode, signup: info.signup === true, version: info.version };
    } catch {
      this.info.value = null;
    }
  }

  /** Signs in with a name (open mode) or a name and password. */
  signIn(username: string, password?: string): void {
    const problem = nameProblem(username, "username");
    if (problem) {
      this.authError.value = problem;
      return;
    }
    const frame: AuthFrame = password === undefined
      ? { type: "auth", username }
      : { type: "auth", username, password };
    this.#connect(frame, true);
  }

  /** Creates an account (where the server allows sign-up) and signs in. */
  register(username: string, password: string): void {
    const problem = nameProblem(username, "username") ??
      (password.length < 8 ? "The password is too short: use at least 8 characters" : null);
    if (problem) {
      this.authError.value = problem;
      return;
    }
    this.#connect({ type: "register", username, password }, true);
  }

  /**
   * Signs out: the server revokes the session (every tab and device using it;
   * in open mode the name is released), and this device forgets it.
   */
  signOut(): void {
    const token = this.#env.storage.getItem(TOKEN_KEY);
    if (token) {
      // Best effort: keepalive lets it finish even if the page goes away.
      fetch(new URL("/api/signout", this.#env.origin), {
        method: "POST",
        headers: { authorization: `Bearer ${token}` },
        keepalive: true,
      }).then((res) => res.body?.cancel(), () => {});
    }
    this.#env.storage.removeItem(TOKEN_KEY);
    this.#env.storage.removeItem(USER_KEY);
    this.#disconnect();
    batch(() => {
      this.#reset();
      this.authError.value = null;
      this.connNote.value = null;
      this.phase.value = "signin";
    });
  }

  /** Reconnects now instead of waiting for the backoff. */
  retryNow(): void {
    if (this.conn.value !== "waiting" || !this.#auth) return;
    this.#clearRetry();
    this.#connect(this.#auth, false);
  }

  /** Closes the connection and stops every timer (tests, page unload). */
  close(): void {
    this.#closed = true;
    this.#disconnect();
    clearTimeout(this.#readTimer);
    clearInterval(this.#typingTimer);
    this.#typingTimer = undefined;
    for (const t of this.#toastTimers.values()) clearTimeout(t);
    this.#toastTimers.clear();
    for (const d of this.#disposeEffects) d();
    this.#disposeEffects = [];
  }

  /** Sets whether the page is visible; coming back reconnects at once. */
  setVisible(visible: boolean): void {
    this.visible.value = visible;
    if (visible) this.retryNow();
  }

  // ---------------------------------------------------------------------------
  // Conversations

  /** Opens a conversation by key, loading its history when needed. */
  open(key: string): void {
    const conv = this.convs.value.get(key);
    if (!conv) return;
    batch(() => {
      this.#stopTyping();
      this.active.value = key;
      conv.divider.value = conv.read.value < conv.newest ? conv.read.value : Infinity;
      conv.atBottom.value = true;
    });
    if (this.me.value) this.#env.storage.setItem(`${ACTIVE_KEY}.${this.me.value}`, key);
    if (!conv.loaded.value && conv.kind === "dm" && this.ready.value) {
      this.#history(conv, "initial");
    }
  }

  /** Opens (creating if needed) the direct conversation with `user`. */
  openDm(user: string): string | null {
    const problem = nameProblem(user, "username");
    if (problem) return problem;
    this.open(this.#ensure(`@${user}`).key);
    return null;
  }

  /** Joins (creating if new) a room and opens it. */
  joinRoom(room: string): string | null {
    const problem = nameProblem(room, "room name");
    if (problem) return problem;
    if (this.convs.value.has(`#${room}`)) {
      this.open(`#${room}`);
      return null;
    }
    if (!this.ready.value) return "You are offline: try again when the connection is back";
    this.#openAfterJoin = room;
    this.#send({ type: "join", room });
    return null;
  }

  /** Leaves a room on every device. */
  leaveRoom(room: string): void {
    this.#send({ type: "leave", room });
  }

  /** Asks for the list of rooms (answered into {@link roomList}). */
  listRooms(): void {
    this.roomList.value = null;
    this.#send({ type: "rooms" });
  }

  /** Loads the page before the oldest loaded message of the open conversation. */
  loadOlder(conv: Conversation | null = this.current.value): void {
    if (!conv || !conv.hasOlder.value || conv.loadingOlder.value || !this.ready.value) return;
    conv.loadingOlder.value = true;
    this.#history(conv, "older");
  }

  /** Sends a message to the open conversation; it shows at once as pending. */
  send(text: string): void {
    const conv = this.current.value;
    if (!conv || text.trim() === "") return;
    const ref = `c${Date.now().toString(36)}${(++this.#refs).toString(36)}`;
    const canSend = this.ready.value && !conv.resuming;
    conv.pending.value = [...conv.pending.value, {
      ref,
      text,
      ts: new Date().toISOString(),
      state: canSend ? "sending" : "queued",
      after: conv.newest,
    }];
    this.#typingSent = null;
    if (canSend) this.#send({ type: "send", text, ref, ...conv.target });
  }

  /** Sends a refused or queued message again. */
  resend(conv: Conversation, ref: string): void {
    const p = conv.pending.value.find((x) => x.ref === ref);
    if (!p) return;
    const canSend = this.ready.value && !conv.resuming;
    this.#updatePending(conv, ref, {
      state: canSend ? "sending" : "queued",
      error: undefined,
      after: conv.newest,
    });
    if (canSend) this.#send({ type: "send", text: p.text, ref, ...conv.target });
  }

  /** Drops a message that was not sent. */
  discard(conv: Conversation, ref: string): void {
    conv.pending.value = conv.pending.value.filter((p) => p.ref !== ref);
  }

  /**
   * Tells the others the user is typing (at most every 3 s), or stopped
   * (when the input empties).
   */
  typing(text: string): void {
    const conv = this.current.value;
    if (!conv || !this.ready.value) return;
    const now = Date.now();
    if (text.trim() === "") {
      this.#stopTyping();
      return;
    }
    const sent = this.#typingSent;
    if (sent && sent.key === conv.key && now - sent.at < TYPING_RESEND) return;
    if (sent && sent.key !== conv.key) this.#stopTyping();
    this.#typingSent = { key: conv.key, at: now };
    this.#send({ type: "typing", active: true, ...conv.target });
  }

  /** Searches the open conversation or everything the user can see. */
  runSearch(q: string, scope: SearchScope): void {
    const text = q.trim();
    if (text === "") {
      this.search.value = null;
      return;
    }
    const conv = scope === "here" ? this.current.value : null;
    this.search.value = {
      q: text,
      scope,
      key: conv?.key ?? null,
      busy: true,
      results: this.search.value?.results ?? null,
    };
    this.#send({ type: "search", q: text, limit: 50, ...(conv ? conv.target : {}) });
  }

  /** Closes the search results. */
  clearSearch(): void {
    this.search.value = null;
  }

  /** Opens the conversation of a message and scrolls to it (loading older pages as needed). */
  jumpTo(m: ChatMessage): void {
    const me = this.me.value;
    const key = m.room !== undefined ? `#${m.room}` : `@${m.from === me ? m.to : m.from}`;
    const conv = this.convs.value.get(key) ?? (m.room === undefined ? this.#ensure(key) : null);
    if (!conv) return;
    this.open(key);
    this.#jump = { key, id: m.id, pages: 0 };
    this.#continueJump(conv);
  }

  /** Hides a toast. */
  dismissToast(id: number): void {
    clearTimeout(this.#toastTimers.get(id));
    this.#toastTimers.delete(id);
    this.toasts.value = this.toasts.value.filter((t) => t.id !== id);
  }

  /** Shows a toast for a few seconds. */
  toast(text: string): void {
    const id = ++this.#toastId;
    this.toasts.value = [...this.toasts.value.slice(-2), { id, text }];
    this.#toastTimers.set(id, setTimeout(() => this.dismissToast(id), 6000));
  }

  // ---------------------------------------------------------------------------
  // Connection

  #connect(auth: AuthFrame | RegisterFrame, interactive: boolean): void {
    if (this.#closed) return;
    this.#disconnect();
    this.#auth = auth;
    this.#interactive = interactive;
    this.#welcomed = false;
    const gen = ++this.#gen;
    const url = new URL("/ws", this.#env.origin);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    let ws: WebSocket;
    try {
      ws = new WebSocket(url);
    } catch {
      this.#onClose(gen, 1006);
      return;
    }
    this.#ws = ws;
    batch(() => {
      this.conn.value = "connecting";
      if (interactive) {
        this.busy.value = true;
        this.authError.value = null;
      }
    });
    ws.onopen = () => {
      if (gen !== this.#gen) return;
      this.#lastFrame = Date.now();
      ws.send(JSON.stringify(auth));
    };
    ws.onmessage = (e) => {
      if (gen !== this.#gen || typeof e.data !== "string") return;
      this.#lastFrame = Date.now();
      let frames: ServerFrame[];
      try {
        frames = splitFrames(e.data);
      } catch {
        return;
      }
      batch(() => {
        for (const f of frames) this.#onFrame(f);
      });
    };
    ws.onclose = (e) => this.#onClose(gen, e.code);
    ws.onerror = () => {};
  }

  /** Closes the socket without reconnecting. */
  #disconnect(): void {
    this.#clearRetry();
    clearInterval(this.#pingTimer);
    this.#pingTimer = undefined;
    const ws = this.#ws;
    this.#ws = null;
    this.#gen++;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      try {
        ws.close(1000);
      } catch {
        // Already closing.
      }
    }
    batch(() => {
      this.ready.value = false;
      this.conn.value = "offline";
      this.busy.value = false;
    });
  }

  #onClose(gen: number, code: number): void {
    if (gen !== this.#gen) return;
    this.#ws = null;
    clearInterval(this.#pingTimer);
    this.#pingTimer = undefined;
    const welcomed = this.#welcomed;
    batch(() => {
      this.ready.value = false;
      this.busy.value = false;
      this.conn.value = "offline";
      // Who is online is unknown until the next welcome.
      this.online.value = new Set();
      for (const c of this.convs.value.values()) {
        c.expireTyping();
        c.inflight = null;
        c.queue = [];
        c.loadingOlder.value = false;
        if (c.pending.value.some((p) => p.state === "sending")) {
          c.pending.value = c.pending.value.map((p) =>
            p.state === "sending" ? { ...p, unsure: true } : p
          );
        }
      }
      if (this.search.value?.busy) this.search.value = { ...this.search.value, busy: false };
    });
    this.#typingSent = null;
    if (this.#closed) return;
    if (code === CloseCode.AuthFailed || (code === CloseCode.NameTaken && !welcomed)) {
      // The server said why in an error frame (shown by #onError).
      if (!this.#interactive) {
        this.#env.storage.removeItem(TOKEN_KEY);
        batch(() => {
          this.#reset();
          this.authError.value ??= "Your session has ended: sign in again";
          this.phase.value = "signin";
        });
      }
      return;
    }
    if (this.#interactive && !welcomed) {
      this.authError.value ??= "Could not reach the server: check your connection and try again";
      return;
    }
    this.#scheduleRetry(code);
  }

  #scheduleRetry(code: number): void {
    const base = this.#env.backoff ?? 500;
    const max = this.#env.maxBackoff ?? 15_000;
    const attempt = this.#attempt++;
    let delay = Math.min(max, base * 2 ** attempt);
    if (code === CloseCode.RateLimited) delay = Math.max(delay, 5000);
    delay = Math.round(delay * (0.75 + Math.random() * 0.5));
    const due = Date.now() + delay;
    this.conn.value = "waiting";
    this.retryIn.value = Math.ceil(delay / 1000);
    this.#countdown = setInterval(() => {
      this.retryIn.value = Math.max(0, Math.ceil((due - Date.now()) / 1000));
    }, 1000);
    this.#retryTimer = setTimeout(() => {
      this.#clearRetry();
      if (this.#auth) this.#connect(this.#auth, false);
    }, delay);
  }

  #clearRetry(): void {
    clearTimeout(this.#retryTimer);
    clearInterval(this.#countdown);
    this.#retryTimer = this.#countdown = undefined;
  }

  #send(frame: ClientFrame): boolean {
    const ws = this.#ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || !this.#welcomed) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  /** Pings now and then; a connection that stays silent is dropped and retried. */
  #startPing(): void {
    const every = this.#env.pingInterval ?? 25_000;
    clearInterval(this.#pingTimer);
    this.#pingTimer = setInterval(() => {
      const ws = this.#ws;
      if (!ws) return;
      if (Date.now() - this.#lastFrame > every * 2) {
        // No pong for two rounds: the network is gone without a close.
        const gen = this.#gen;
        ws.onopen = ws.onmessage = ws.onclose = null;
        try {
          ws.close();
        } catch {
          // Already closing.
        }
        this.#onClose(gen, 1006);
        return;
      }
      this.#send({ type: "ping" });
    }, every);
  }

  // ---------------------------------------------------------------------------
  // Frames

  #onFrame(f: ServerFrame): void {
    switch (f.type) {
      case "welcome":
        return this.#onWelcome(f);
      case "message":
        return this.#onMessage(f);
      case "joined":
        return this.#onJoined(f);
      case "left": {
        const key = `#${f.room}`;
        if (!this.convs.value.has(key)) return;
        const next = new Map(this.convs.value);
        next.delete(key);
        this.convs.value = next;
        if (this.active.value === key) this.open(`#${LOBBY}`);
        return;
      }
      case "history":
        return this.#onHistory(f);
      case "system": {
        if (f.event === "shutdown") {
          this.connNote.value = "The server is restarting";
          return;
        }
        const conv = f.room !== undefined ? this.convs.value.get(`#${f.room}`) : undefined;
        if (!conv || !f.user) return;
        const members = new Set(conv.members.value);
        const count = conv.memberCount.value;
        if (f.event === "join") members.add(f.user);
        else members.delete(f.user);
        batch(() => {
          // A very large room's list is partial: its count moves on its own.
          if (count !== null) conv.memberCount.value = count + (f.event === "join" ? 1 : -1);
          conv.members.value = [...members].sort();
        });
        conv.notice(
          f.event === "join" ? "join" : "leave",
          `${f.user} ${f.event === "join" ? "joined" : "left"} #${conv.name}`,
          f.ts,
        );
        return;
      }
      case "typing": {
        const key = f.room !== undefined ? `#${f.room}` : `@${f.user}`;
        const conv = this.convs.value.get(key);
        if (!conv || f.user === this.me.value) return;
        conv.setTyping(f.user, f.active ? Date.now() + TYPING_TTL : null);
        if (f.active) this.#watchTyping();
        return;
      }
      case "presence":
        this.online.value = applyPresence(this.online.value, f);
        this.onlineCount.value = presenceCount(f);
        return;
      case "rooms":
        this.roomList.value = f.rooms;
        return;
      case "read": {
        const conv = this.convs.value.get(convKey(f));
        if (conv && f.id > conv.read.value) conv.read.value = f.id;
        return;
      }
      case "search": {
        const s = this.search.value;
        if (s && s.q === f.q) {
          this.search.value = { ...s, busy: false, results: f.messages, more: f.more === true };
        }
        return;
      }
      case "pong":
        return;
      case "error":
        return this.#onError(f);
    }
  }

  #onWelcome(f: WelcomeFrame): void {
    const storage = this.#env.storage;
    if (this.me.value !== null && this.me.value !== f.user) this.#reset();
    this.#welcomed = true;
    this.#attempt = 0;
    this.#interactive = false;
    this.#auth = { type: "auth", token: f.token };
    storage.setItem(TOKEN_KEY, f.token);
    storage.setItem(USER_KEY, f.user);
    this.me.value = f.user;
    this.phase.value = "chat";
    this.authError.value = null;
    this.connNote.value = null;
    this.busy.value = false;
    this.online.value = new Set(f.online);
    this.onlineCount.value = presenceCount(f);

    const convs = new Map(this.convs.value);
    const rooms = new Set(f.rooms);
    for (const [key, c] of convs) {
      // Left on another device while this one was away (unless the welcome
      // was cut short and simply did not list it).
      if (c.kind === "room" && !rooms.has(c.name) && !f.more) convs.delete(key);
    }
    for (const c of f.conversations) {
      const key = convKey(c);
      let conv = convs.get(key);
      if (!conv) convs.set(key, conv = new Conversation(key, this.me));
      if (c.last > conv.last.value) conv.last.value = c.last;
      if (c.read > conv.read.value) conv.read.value = c.read;
    }
    for (const room of f.rooms) {
      const key = `#${room}`;
      if (!convs.has(key)) convs.set(key, new Conversation(key, this.me));
    }
    this.convs.value = convs;

    this.conn.value = "open";
    this.ready.value = true;
    this.#startPing();

    for (const conv of convs.values()) {
      if (conv.kind === "room") {
        // Resume from what we hold, or load the latest page.
        conv.resuming = conv.loaded.value;
        this.#send(
          conv.loaded.value
            ? { type: "join", room: conv.name, since: conv.syncedTo }
            : { type: "join", room: conv.name },
        );
      } else if (conv.loaded.value) {
        conv.resuming = true;
        this.#history(conv, "since");
      } else {
        conv.resuming = false;
        this.#flushPending(conv);
      }
    }

    const active = this.active.value;
    if (active === null || !convs.has(active)) {
      const saved = storage.getItem(`${ACTIVE_KEY}.${f.user}`);
      this.open(saved && convs.has(saved) ? saved : `#${LOBBY}`);
    } else if (!this.current.value?.loaded.value && this.current.value?.kind === "dm") {
      this.#history(this.current.value, "initial");
    }
  }

  #onJoined(f: JoinedFrame): void {
    const key = `#${f.room}`;
    const conv = this.#ensure(key);
    const resumed = conv.resuming;
    const before = conv.syncedTo;
    conv.members.value = [...f.members].sort();
    conv.memberCount.value = f.memberCount ?? null;
    conv.add(f.history);
    if (f.gap) {
      conv.notice("gap", "Some messages from while you were away are no longer kept", "", before);
    }
    if (!resumed) {
      conv.hasOlder.value = f.history.length > 0 && f.history[0].id > 1;
      conv.loaded.value = true;
    }
    if (f.more) {
      conv.resuming = true;
      conv.syncedTo = f.history.length > 0 ? f.history[f.history.length - 1].id : conv.syncedTo;
      this.#history(conv, "since");
    } else {
      conv.syncedTo = Math.max(conv.syncedTo, conv.newest);
      conv.resuming = false;
      this.#flushPending(conv);
    }
    if (this.#openAfterJoin === f.room) {
      this.#openAfterJoin = null;
      this.open(key);
    }
  }

  #onHistory(f: HistoryPageFrame): void {
    const conv = this.convs.value.get(convKey(f));
    if (!conv) return;
    const kind = conv.inflight;
    conv.inflight = null;
    conv.add(f.messages);
    if (kind === "older") {
      conv.hasOlder.value = f.more;
      conv.loadingOlder.value = false;
      if (f.messages.length === 0) conv.hasOlder.value = false;
    } else if (kind === "since") {
      if (f.gap) {
        conv.notice(
          "gap",
          "Some messages from while you were away are no longer kept",
          "",
          conv.syncedTo,
        );
      }
      if (f.more && f.messages.length > 0) {
        conv.syncedTo = f.messages[f.messages.length - 1].id;
        conv.queue.unshift("since");
      } else {
        conv.syncedTo = Math.max(conv.syncedTo, conv.newest);
        conv.resuming = false;
        this.#flushPending(conv);
      }
    } else if (kind === "initial") {
      conv.hasOlder.value = f.more;
      conv.loaded.value = true;
      conv.syncedTo = Math.max(conv.syncedTo, conv.newest);
      conv.resuming = false;
      if (this.active.value === conv.key) {
        conv.divider.value = conv.read.value < conv.newest ? conv.read.value : Infinity;
      }
      this.#flushPending(conv);
    }
    const next = conv.queue.shift();
    if (next) this.#history(conv, next);
    if (this.#jump?.key === conv.key) this.#continueJump(conv);
  }

  #onMessage(f: MessageFrame): void {
    const me = this.me.value;
    const own = f.from === me;
    const key = f.room !== undefined ? `#${f.room}` : `@${own ? f.to : f.from}`;
    const conv = f.room !== undefined ? this.convs.value.get(key) : this.#ensure(key);
    if (!conv) return;
    if (f.ref !== undefined) {
      const before = conv.pending.value;
      const after = before.filter((p) => p.ref !== f.ref);
      if (after.length !== before.length) conv.pending.value = after;
    }
    const wasSynced = conv.loaded.value && !conv.resuming && conv.syncedTo >= conv.newest;
    conv.add([f]);
    if (wasSynced && f.id > conv.syncedTo) conv.syncedTo = f.id;
    if (!conv.loaded.value && conv.kind === "dm" && this.active.value === key) {
      this.#history(conv, "initial");
    }
    conv.setTyping(f.from, null);
    if (own) {
      // Writing in a conversation means having read it.
      if (f.ref !== undefined && f.id > conv.read.value) {
        conv.read.value = f.id;
        this.#send({ type: "read", id: f.id, ...conv.target });
      } else if (conv.read.value === f.id - 1) conv.read.value = f.id;
      return;
    }
    const hidden = !this.visible.value;
    if (hidden && (conv.kind === "dm" || mentions(f.text, me))) {
      this.#env.notify?.({
        title: conv.kind === "dm" ? `${f.from} (direct message)` : `${f.from} in #${conv.name}`,
        body: f.text.length > 200 ? `${f.text.slice(0, 200)}…` : f.text,
        key,
      });
    }
  }

  #onError(f: ServerFrame & { type: "error" }): void {
    if (!this.#welcomed || f.code === "auth_failed") {
      // Shown on the sign-in form (a 4003 close follows an auth_failed).
      this.authError.value = f.message;
      return;
    }
    if (f.ref !== undefined) {
      for (const conv of this.convs.value.values()) {
        if (conv.pending.value.some((p) => p.ref === f.ref)) {
          this.#updatePending(conv, f.ref, { state: "failed", error: f.message });
          return;
        }
      }
    }
    if (f.code === "unknown_user") {
      // A direct conversation with someone who does not exist: drop it if empty.
      for (const conv of this.convs.value.values()) {
        if (conv.kind === "dm" && conv.inflight === "initial" && conv.newest === 0) {
          const next = new Map(this.convs.value);
          next.delete(conv.key);
          this.convs.value = next;
          if (this.active.value === conv.key) this.open(`#${LOBBY}`);
          break;
        }
      }
    }
    if (this.#openAfterJoin !== null && f.code === "bad_request") this.#openAfterJoin = null;
    if (this.search.value?.busy) this.search.value = { ...this.search.value, busy: false };
    this.toast(f.message);
  }

  // ---------------------------------------------------------------------------
  // Plumbing

  #ensure(key: string): Conversation {
    const existing = this.convs.value.get(key);
    if (existing) return existing;
    const conv = new Conversation(key, this.me);
    const next = new Map(this.convs.value);
    next.set(key, conv);
    this.convs.value = next;
    return conv;
  }

  /** Queues a history request; one is on its way per conversation at a time. */
  #history(conv: Conversation, kind: HistoryKind): void {
    if (conv.inflight !== null) {
      if (!conv.queue.includes(kind) && conv.inflight !== kind) conv.queue.push(kind);
      return;
    }
    const frame: HistoryFrame = { type: "history", ...conv.target };
    if (kind === "older") {
      frame.before = conv.oldest || undefined;
      frame.limit = 50;
    } else if (kind === "since") {
      frame.since = conv.syncedTo;
      frame.limit = MAX_PAGE;
    } else frame.limit = 50;
    if (this.#send(frame)) conv.inflight = kind;
    else if (kind === "older") conv.loadingOlder.value = false;
  }

  /** Sends what waited for the conversation to catch up; drops what already arrived. */
  #flushPending(conv: Conversation): void {
    const list = conv.pending.value;
    if (list.length === 0 || !this.ready.value) return;
    const me = this.me.value;
    const claimed = new Set<number>();
    const keep = [];
    let changed = false;
    for (const p of list) {
      if (p.unsure) {
        const found = conv.messages.value.find((m) =>
          m.id > p.after && m.from === me && m.text === p.text && !claimed.has(m.id)
        );
        if (found) {
          claimed.add(found.id);
          changed = true;
          continue;
        }
      }
      if (p.state === "queued" || p.unsure) {
        keep.push({ ...p, state: "sending" as const, unsure: undefined });
        this.#send({ type: "send", text: p.text, ref: p.ref, ...conv.target });
        changed = true;
      } else keep.push(p);
    }
    if (changed) conv.pending.value = keep;
  }

  #updatePending(conv: Conversation, ref: string, patch: Partial<Pending>): void {
    conv.pending.value = conv.pending.value.map((p) => p.ref === ref ? { ...p, ...patch } : p);
  }

  #continueJump(conv: Conversation): void {
    const jump = this.#jump;
    if (!jump || jump.key !== conv.key) return;
    const msgs = conv.messages.value;
    if (msgs.some((m) => m.id === jump.id)) {
      this.#jump = null;
      conv.focus.value = jump.id;
      return;
    }
    if (!conv.loaded.value) {
      if (conv.kind === "dm" && conv.inflight === null) this.#history(conv, "initial");
      return;
    }
    if (conv.oldest > jump.id && conv.hasOlder.value && jump.pages < 20) {
      jump.pages++;
      this.loadOlder(conv);
      return;
    }
    this.#jump = null;
  }

  #stopTyping(): void {
    const sent = this.#typingSent;
    this.#typingSent = null;
    if (!sent) return;
    const conv = this.convs.value.get(sent.key);
    if (conv) this.#send({ type: "typing", active: false, ...conv.target });
  }

  /** Expires typing flags whose `active:false` never came. */
  #watchTyping(): void {
    if (this.#typingTimer !== undefined) return;
    this.#typingTimer = setInterval(() => {
      const now = Date.now();
      let any = false;
      batch(() => {
        for (const c of this.convs.value.values()) {
          c.expireTyping(now);
          if (c.typing.value.size > 0) any = true;
        }
      });
      if (!any) {
        clearInterval(this.#typingTimer);
        this.#typingTimer = undefined;
      }
    }, 1000);
  }

  #scheduleRead(): void {
    if (this.#readTimer !== undefined) return;
    this.#readTimer = setTimeout(() => {
      this.#readTimer = undefined;
      const conv = this.current.value;
      if (!conv || !this.ready.value || !this.visible.value || !conv.atBottom.value) return;
      const newest = conv.newest;
      if (newest <= conv.read.value) return;
      if (this.#send({ type: "read", id: newest, ...conv.target })) conv.read.value = newest;
    }, 150);
  }

  /** Forgets everything about the signed-in user. */
  #reset(): void {
    batch(() => {
      this.me.value = null;
      this.convs.value = new Map();
      this.active.value = null;
      this.online.value = new Set();
      this.roomList.value = null;
      this.search.value = null;
      this.#auth = null;
      this.#jump = null;
      this.#openAfterJoin = null;
    });
  }
}

/** Why `name` is not a valid user or room name, or null. */
export function nameProblem(name: string, what: string): string | null {
  if (name === "") return `Enter a ${what}`;
  if (!NAME_PATTERN.test(name)) {
    return `Invalid ${what} "${name.slice(0, 40)}": use 1-32 letters, digits, - or _`;
  }
  if (what === "username" && isReservedName(name)) {
    return `The name "${name}" is reserved: choose another`;
  }
  return null;
}
