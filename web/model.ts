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
 * Messages live: `edited`, `deleted` and `reaction` frames change the loaded
 * copies (merged by `seq`), and each conversation keeps the position it is
 * up to date with (`Conversation.cursor`) so that a reconnect catches up on
 * changes exactly as on new messages.
 *
 * @module
 */
import { batch, computed, effect, type ReadonlySignal, signal, untracked } from "@preact/signals";
import {
  applyPresence,
  type AuthFrame,
  type BanFrame,
  type BannedFrame,
  type ChangeFrame,
  type ChatMessage,
  type ClientFrame,
  CloseCode,
  DEFAULT_DM_LEVEL,
  DEFAULT_ROOM_LEVEL,
  DEFAULT_SEND_LIMITS,
  type DirectoryEntry,
  type ErrorFrame,
  type FileInfo,
  type HistoryFrame,
  type HistoryPageFrame,
  type InvitedFrame,
  type InviteFrame,
  isReservedName,
  type JoinedFrame,
  type KickedFrame,
  type KickFrame,
  LOBBY,
  MAX_FILES,
  MAX_PAGE,
  MAX_REACTIONS,
  mentionsIn,
  type MessageFrame,
  NAME_PATTERN,
  type NotifyLevel,
  type NotifyLevelEventFrame,
  presenceCount,
  type PushInfo,
  type PushSubscriptionInfo,
  type RegisterFrame,
  type RenameRoomFrame,
  type ReplyRef,
  type RoomKind,
  roomMentionRefusal,
  type RoomRename,
  type RoomRenamedFrame,
  type RoomSettingsChangedFrame,
  type RoomSettingsFrame,
  type SendFrame,
  type SendLimits,
  type ServerFrame,
  splitFrames,
  type UnbanFrame,
  type UnbannedFrame,
  type UsersListFrame,
  type WelcomeFrame,
  wireLength,
} from "../protocol.ts";
import { isRoute, parseRoute, type Route, routeHash } from "./route.ts";
import {
  Conversation,
  convKey,
  type HistoryKind,
  type Pending,
  replyRefOf,
} from "./conversation.ts";
import { Pacer } from "./pacer.ts";
import { kindNotices, kindOf, sameKind } from "./room_kind.ts";
import { bytes, segments } from "./text.ts";
import {
  defaultUploader,
  filesLine,
  overLimit,
  parseFileInfo,
  type Uploader,
  type UploadHandle,
  uploadProblem,
  uploadUrl,
} from "./uploads.ts";
import {
  type DraftMap,
  loadDrafts,
  loadUnsent,
  saveDrafts,
  saveUnsent,
  type UnsentMap,
} from "./unsent.ts";

/** What `/api/info` says about the server. */
export interface ServerInfo {
  mode: "open" | "login";
  signup: boolean;
  version?: string;
  /** The largest file the server takes, in bytes (absent from servers without files). */
  maxUpload?: number;
}

/** What a push request answers when it never reached the server. */
export const PUSH_NOT_CONNECTED = "Not connected: try again in a moment";
/** What a push request answers when the connection closed before the answer. */
export const PUSH_CONNECTION_LOST = "The connection was lost before the server answered: try again";

/** The state of the connection, for the status indicator. */
export type ConnState = "offline" | "connecting" | "open" | "waiting";

/** A short message shown at the bottom of the screen. */
export interface Toast {
  id: number;
  text: string;
  /** Toasts with the same key replace each other instead of piling up. */
  key: string;
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
  /**
   * Shows a desktop notification (through the service worker). It may throw
   * or reject: the model catches and logs that, so a failing notification
   * never stops the frames after it. @default {no notifications}
   */
  notify?: (alert: Alert) => unknown;
  /** Milliseconds before the first reconnect attempt. @default {500} */
  backoff?: number;
  /** Longest wait between reconnect attempts. @default {15000} */
  maxBackoff?: number;
  /** Milliseconds between keep-alive pings. @default {25000} */
  pingInterval?: number;
  /** Sends files to the server. @default {XMLHttpRequest in a page, else fetch} */
  upload?: Uploader;
}

/**
 * A file attached in the composer: on its way to the server, there, or
 * refused. Sending the message takes the ones that are there.
 */
export interface Upload {
  /** Unique in the page. */
  key: number;
  /** The name as picked (the server's cleaned name once it is there). */
  name: string;
  /** Bytes. */
  size: number;
  /** The browser's guess at the type, for the icon until the server says. */
  mime: string;
  /** The file itself: for the preview and for a retry. */
  blob: Blob;
  state: "uploading" | "done" | "failed";
  /** Bytes sent so far. */
  loaded: number;
  /** Why it failed, in the user's words. */
  error?: string;
  /** Trying again may help (the network, a busy or full server). */
  retry?: boolean;
  /** The file as the server keeps it, once there. */
  file?: FileInfo;
}

/** A file given to {@link ChatModel.attach}: a `File`, or any blob with a name. */
export type Attachable = Blob & { readonly name?: string };

/** Where a search looks: the open conversation or everything. */
export type SearchScope = "here" | "all";

/** People who have an account, as the server last listed them for `q`. */
export interface PeopleState {
  q: string;
  users: DirectoryEntry[];
  /** More matched than the server sent: narrow with a longer `q`. */
  more: boolean;
}

/** A password change on its way, refused, or done. */
export interface PasswdState {
  busy: boolean;
  error: string | null;
  done: boolean;
}

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

/** Where the session token is kept (other tabs watch it: see `adoptToken`). */
export const TOKEN_KEY = "chat.token";
/** Where the signed-in user's name is kept beside the token. */
export const USER_KEY = "chat.user";
const ACTIVE_KEY = "chat.active";
const LIMITS_KEY = "chat.limits";
/** The reaction emoji this browser used last, most recent first. */
const EMOJI_KEY = "chat.emoji";
/** How many recently used emoji are kept. */
const RECENT_EMOJI = 8;
/** Edits, deletes and reactions whose answer is awaited, at most (for their refusals). */
const MAX_CHANGES = 200;
/**
 * The last token this device was given for a user (kept after sign-out): it
 * proves a password sign-in comes from a device the user has used before,
 * which the server never slows down for someone else's wrong guesses.
 */
const DEVICE_KEY = "chat.device";
/** What a server announces when it does not say (its defaults). */
const DEFAULT_LIMITS: SendLimits = DEFAULT_SEND_LIMITS;
/** Frames other than messages waiting for their turn; more are dropped. */
const MAX_WAITING_FRAMES = 1000;
/** Milliseconds a draft waits before it is saved while the user types. */
const DRAFT_SAVE_DELAY = 400;
/** First wait before sending again a message the server could not store; it doubles. */
const STORE_RETRY = 1000;
/** Longest wait before sending again a message the server could not store. */
const MAX_STORE_RETRY = 30_000;
/** Shown while messages wait for their turn within the server's limits. */
export const PACE_NOTICE = "You're sending messages too fast — they'll go out in a moment";
/** Shown on a message the server could not store, until it is sent again. */
export const STORE_NOTICE = "The server couldn't store your message — it will be retried";
/** Milliseconds to wait for the server to say who has a name. */
const LOOKUP_TIMEOUT = 10_000;
/** How long a page of a room's members is waited for before it may be asked again (ms). */
const MEMBERS_WAIT = 15_000;
/** Typing flags older than this are dropped even without an `active:false`. */
const TYPING_TTL = 6000;
/** Send `typing` again after this long while the user keeps typing. */
const TYPING_RESEND = 3000;
/** Uploads on their way at once; more wait (the server takes 4 per user at a time). */
const MAX_UPLOADS = 3;
/** Send `typing` again this soon after a message (which cleared the flag) at the earliest. */
const TYPING_AFTER_SEND = 1000;

/** The key of the toast that says why a message with failed files did not go. */
export const FAILED_FILES_TOAST = "failed-files";

/**
 * The server's answer to an admin's `ban`, `unban`, `kick`, `room_settings`
 * or `rename_room`, or to a member's `invite`.
 */
export type ModerationAnswer =
  | BannedFrame
  | UnbannedFrame
  | KickedFrame
  | InvitedFrame
  | RoomSettingsChangedFrame
  | RoomRenamedFrame;

/** Renames the app follows in a session, at most (old links, late answers). */
const MAX_RENAMES = 100;

/** A room as the `rooms` list shows it. */
export type ListedRoom = { name: string; members: number; topic?: string } & RoomKind;

/** The chat client: state as signals, actions as methods. */
export class ChatModel {
  /** `/api/info`, once fetched. */
  readonly info = signal<ServerInfo | null>(null);
  /** Which screen to show. */
  readonly phase = signal<"loading" | "signin" | "chat">("loading");
  /** The signed-in user. */
  readonly me = signal<string | null>(null);
  /** The user's role, from the welcome (login mode); null in open mode or before it. */
  readonly role = signal<"admin" | "member" | null>(null);
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
  /**
   * The server's words when it shut this user out with a ban ("You are
   * banned from this chat until …"): the sign-in screen shows them, and the
   * app stops reconnecting until someone signs in again.
   */
  readonly banned = signal<string | null>(null);
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
  readonly roomList = signal<ListedRoom[] | null>(null);
  /** Everyone with an account (open mode: seen recently), as last listed. */
  readonly people = signal<PeopleState | null>(null);
  /** The latest list of people matching a `q` (for when {@link people} was cut short). */
  readonly peopleFound = signal<PeopleState | null>(null);
  /** The password change under way, or its outcome. */
  readonly passwd = signal<PasswdState | null>(null);
  /** The current search. */
  readonly search = signal<SearchState | null>(null);
  /** Messages for the toast area. */
  readonly toasts = signal<Toast[]>([]);
  /** Whether the page is visible (reads are only marked while it is). */
  readonly visible = signal(true);
  /** Web Push as the server offers it (from `welcome`), or null when it is off. */
  readonly push = signal<PushInfo | null>(null);
  /** Notification levels set by the user, by conversation key (the defaults are not listed). */
  readonly levels = signal<ReadonlyMap<string, NotifyLevel>>(new Map());
  /** What the server lets this connection send (from `welcome`; the last known before it). */
  readonly limits = signal<SendLimits>(DEFAULT_LIMITS);
  /** Reaction emoji used lately on this browser, most recent first. */
  readonly recentEmoji = signal<string[]>([]);
  /** Files attached in each conversation's composer (by key), in the order attached. */
  readonly uploads = signal<ReadonlyMap<string, readonly Upload[]>>(new Map());
  /** Conversations whose message waits for its uploads to finish, then goes. */
  readonly sendWaiting = signal<ReadonlySet<string>>(new Set());

  /** Rooms, the lobby first. */
  readonly rooms: ReadonlySignal<Conversation[]>;
  /** Direct-message conversations, by peer name. */
  readonly dms: ReadonlySignal<Conversation[]>;
  /** The open conversation. */
  readonly current: ReadonlySignal<Conversation | null>;
  /** Unread messages everywhere. */
  readonly unreadTotal: ReadonlySignal<number>;
  /**
   * Files on their way to the server, in every conversation: the page warns
   * before it goes while there are any (they would be lost).
   */
  readonly uploading: ReadonlySignal<number>;

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
  #toastId = 0;
  #toastTimers = new Map<number, ReturnType<typeof setTimeout>>();
  /** The wait for each room's page of members on its way (see {@link loadMoreMembers}). */
  #membersTimers = new Map<Conversation, ReturnType<typeof setTimeout>>();
  #openAfterJoin: string | null = null;
  /** Typing flag we sent: conversation key and when. */
  #typingSent: { key: string; at: number; cleared?: boolean } | null = null;
  #typingLater: ReturnType<typeof setTimeout> | undefined;
  /** Message id to scroll to once older pages reach it. */
  #jump: { key: string; id: number; pages: number } | null = null;
  /** A link (page hash) followed before the connection was ready: opened after the welcome. */
  #link: string | null = null;
  /** People lookups waiting for the `users` reply to their `q`. */
  #lookups = new Map<string, ((f: UsersListFrame | null | "late") => void)[]>();
  /** People invited to a room (by key, lower case) this session: not hinted at again. */
  #invited = new Map<string, Set<string>>();
  /** Bumped with every invitation, so that the hint about them updates. */
  #invites = signal(0);
  /** The `ref` of the password change on its way. */
  #passwdRef: string | null = null;
  /** Push requests waiting for the server's answer, by ref. */
  #pushWaits = new Map<string, (error: string | null) => void>();
  /** Level changes sent and not answered yet: what to put back if refused. */
  #levelRefs = new Map<string, { key: string; before: NotifyLevel }>();
  #disposeEffects: (() => void)[] = [];
  #closed = false;
  /** Whose unsent messages and drafts are loaded, and saved as they change. */
  #owner = signal<string | null>(null);
  /** Sends within the limits of the current connection (null while there is none). */
  #pacer: Pacer | null = null;
  /** Frames other than messages waiting for a token, in order. */
  #frames: ClientFrame[] = [];
  #pumpTimer: ReturnType<typeof setTimeout> | undefined;
  #pumpDue = 0;
  /** Conversations whose read marker moved locally and is still to be sent. */
  #readsDue = new Set<string>();
  /** Refs of the unsent messages as last written to storage. */
  #unsentSaved = new Set<string>();
  /** Drafts as last written to storage, and the write that waits. */
  #draftsSaved: DraftMap = new Map();
  #draftTimer: ReturnType<typeof setTimeout> | undefined;
  #draftWrite: (() => void) | null = null;
  #storageWarned = false;
  /** Admin frames (ban, unban, kick) on their way, by ref: their answer settles the promise. */
  #moderating = new Map<string, {
    resolve: (f: ModerationAnswer) => void;
    reject: (err: Error) => void;
  }>();
  /** Who added this user to a room (an `invited`), until the room's `joined` says so there. */
  #addedBy = new Map<string, string>();
  /** The socket (its generation) on which the server said the user is banned. */
  #bannedGen = -1;
  /** Edits, deletes and reactions on their way, by ref: what the server may refuse. */
  #changes = new Map<string, "edit" | "delete" | "react">();
  /** Uploads on their way, by {@link Upload.key}. */
  #uploading = new Map<number, UploadHandle>();
  /** Uploads waiting for one of those to end (the server takes a few per user at once). */
  #uploadQueue: { key: string; u: Upload }[] = [];
  #uploadKey = 0;
  /**
   * Rooms renamed this session, old key to new key: links to the old name
   * and answers about it still find the room (until a room of the old name
   * is joined).
   */
  #renamed = new Map<string, string>();
  /** Messages on their way when their room was renamed: a refusal sends them again. */
  #sentBeforeRename = new Set<string>();

  /** Creates the model; call {@link start} to load the session. */
  constructor(env: ChatEnv) {
    this.#env = env;
    this.limits.value = savedLimits(env.storage);
    this.recentEmoji.value = savedEmoji(env.storage);
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
    this.uploading = computed(() => {
      let n = 0;
      for (const list of this.uploads.value.values()) {
        for (const u of list) if (u.state === "uploading") n++;
      }
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
    // Unsent messages are saved the moment they change, drafts once the typing
    // pauses (and at once when one is cleared: it was sent).
    this.#disposeEffects.push(effect(() => {
      const owner = this.#owner.value;
      const unsent: UnsentMap = new Map();
      for (const c of this.convs.value.values()) {
        const list = c.pending.value;
        if (list.length > 0) unsent.set(c.key, list);
      }
      if (owner === null) return;
      if (!saveUnsent(this.#env.storage, owner, unsent, this.#unsentSaved)) this.#storageFull();
      this.#unsentSaved = new Set([...unsent.values()].flat().map((p) => p.ref));
    }));
    this.#disposeEffects.push(effect(() => {
      const owner = this.#owner.value;
      const drafts: DraftMap = new Map();
      for (const c of this.convs.value.values()) {
        const text = c.draft.value;
        if (text !== "") drafts.set(c.key, text);
      }
      if (owner === null) return;
      // The write that waited is outdated now, whatever happens below: run
      // when the page goes away, it would save a draft sent meanwhile.
      clearTimeout(this.#draftTimer);
      this.#draftTimer = undefined;
      this.#draftWrite = null;
      const write = () => {
        this.#draftWrite = null;
        this.#draftTimer = undefined;
        const previous = this.#draftsSaved;
        this.#draftsSaved = drafts;
        if (!saveDrafts(this.#env.storage, owner, drafts, previous)) this.#storageFull();
      };
      const cleared = [...this.#draftsSaved.keys()].some((k) => !drafts.has(k));
      if (cleared) write();
      else if (!sameDrafts(drafts, this.#draftsSaved)) {
        this.#draftWrite = write;
        this.#draftTimer = setTimeout(write, DRAFT_SAVE_DELAY);
      }
    }));
  }

  // ---------------------------------------------------------------------------
  // Session

  /** Asks the server how sign-in works and resumes a saved session. */
  async start(): Promise<void> {
    const token = this.#env.storage.getItem(TOKEN_KEY);
    if (token) this.#resume(token);
    await this.loadInfo();
    if (!token && !this.#closed) this.phase.value = "signin";
  }

  /**
   * Signs in with a session token the server handed out some other way (an
   * invite link made the account): kept as the saved session is, and used
   * the way a saved session is resumed.
   */
  useSession(user: string, token: string): void {
    if (this.#closed) return;
    this.#disconnect();
    this.#reset();
    this.#env.storage.setItem(TOKEN_KEY, token);
    this.#env.storage.setItem(USER_KEY, user);
    this.authError.value = null;
    this.connNote.value = null;
    this.#resume(token);
  }

  /** The session token this page signs in with (for the HTTP API), or null. */
  sessionToken(): string | null {
    return this.#auth?.type === "auth" && this.#auth.token
      ? this.#auth.token
      : this.#env.storage.getItem(TOKEN_KEY);
  }

  /** Shows the app at once with what was not sent yet and connects with `token`. */
  #resume(token: string): void {
    // The welcome fills in the rest.
    const user = this.#env.storage.getItem(USER_KEY);
    batch(() => {
      this.me.value = user;
      this.phase.value = "chat";
      if (user !== null) {
        this.#adopt(user);
        const saved = this.#env.storage.getItem(`${ACTIVE_KEY}.${user}`);
        if (saved !== null && this.convs.value.has(saved)) this.open(saved);
      }
    });
    this.#connect({ type: "auth", token }, false);
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
      const next: ServerInfo = {
        mode: info.mode,
        signup: info.signup === true,
        version: info.version,
      };
      if (Number.isSafeInteger(info.maxUpload) && info.maxUpload! > 0) {
        next.maxUpload = info.maxUpload;
      }
      this.info.value = next;
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
    const device = password === undefined
      ? null
      : this.#env.storage.getItem(`${DEVICE_KEY}.${username.toLowerCase()}`);
    if (device) frame.device = device;
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

  /**
   * Another tab stored a session token (it signed in, or changed the
   * password and so signed this tab out): a tab at the sign-in form uses it.
   */
  adoptToken(token: string): void {
    if (this.#closed || this.phase.peek() !== "signin" || this.busy.peek()) return;
    this.authError.value = null;
    this.#connect({ type: "auth", token }, false);
  }

  /** Reconnects now instead of waiting for the backoff. */
  retryNow(): void {
    if (this.conn.value !== "waiting" || !this.#auth) return;
    this.#clearRetry();
    this.#connect(this.#auth, false);
  }

  /** Writes a draft change that waits to be saved (call when the page goes away). */
  saveDrafts(): void {
    clearTimeout(this.#draftTimer);
    this.#draftTimer = undefined;
    this.#draftWrite?.();
  }

  /** Closes the connection and stops every timer (tests, page unload). */
  close(): void {
    this.saveDrafts();
    this.#closed = true;
    this.#disconnect();
    clearTimeout(this.#readTimer);
    clearInterval(this.#typingTimer);
    this.#typingTimer = undefined;
    clearTimeout(this.#typingLater);
    this.#typingLater = undefined;
    clearTimeout(this.#draftTimer);
    for (const t of this.#toastTimers.values()) clearTimeout(t);
    this.#toastTimers.clear();
    for (const t of this.#membersTimers.values()) clearTimeout(t);
    this.#membersTimers.clear();
    for (const d of this.#disposeEffects) d();
    this.#disposeEffects = [];
    this.#abortUploads();
  }

  /**
   * Sets whether the page is visible; coming back reconnects at once. The
   * server hears it too: it pushes only to users with no visible page.
   */
  setVisible(visible: boolean): void {
    const changed = this.visible.peek() !== visible;
    this.visible.value = visible;
    if (changed) this.#send({ type: "visible", visible });
    if (visible) this.retryNow();
  }

  /**
   * Whether a message from someone else is for the user: it names them, or,
   * in a room, says `@room`/`@here` (the one rule, {@link mentionsIn}, as the
   * server's pushes). In a room larger than the server's `roomMentionMax`
   * only an admin's `@room` reaches everyone; who sent it as an admin is not
   * known here, so there it counts only where the room takes `@room` from
   * admins alone (`restrictRoomMentions`).
   */
  mentionsMe(conv: Conversation, m: { from: string; text: string }): boolean {
    const me = this.me.peek();
    if (!me || m.from.toLowerCase() === me.toLowerCase()) return false;
    const found = mentionsIn(m.text);
    if (found.names.includes(me.toLowerCase())) return true;
    if (!found.room || conv.kind !== "room") return false;
    const max = this.limits.peek().roomMentionMax ?? 0;
    if (max === 0 || conv.settings.peek().restrictRoomMentions) return true;
    return Math.max(conv.memberCount.peek() ?? 0, conv.members.peek().length) <= max;
  }

  /** How much of conversation `key` notifies: the user's choice or the default. */
  levelOf(key: string): NotifyLevel {
    return this.levels.value.get(key) ??
      (key.startsWith("@") ? DEFAULT_DM_LEVEL : DEFAULT_ROOM_LEVEL);
  }

  /**
   * Sets the notification level of conversation `key` (pushes and in-app
   * notifications, on every device of the user). Shown at once; put back
   * with a toast if the server refuses.
   */
  setLevel(key: string, level: NotifyLevel): void {
    const before = this.levelOf(key);
    if (before === level) return;
    const conv = this.convs.value.get(key);
    if (!conv) return;
    const ref = newRef();
    const target = conv.kind === "room" ? { room: conv.name } : { to: conv.name };
    if (!this.#send({ type: "notify_level", level, ref, ...target })) {
      this.toast("Not connected: try again once the chat is back", "level");
      return;
    }
    this.#levelRefs.set(ref, { key, before });
    this.#applyLevel(key, level);
  }

  #applyLevel(key: string, level: NotifyLevel): void {
    const next = new Map(this.levels.value);
    if (level === (key.startsWith("@") ? DEFAULT_DM_LEVEL : DEFAULT_ROOM_LEVEL)) next.delete(key);
    else next.set(key, level);
    this.levels.value = next;
  }

  #onLevel(f: NotifyLevelEventFrame): void {
    if (f.ref !== undefined) this.#levelRefs.delete(f.ref);
    this.#applyLevel(this.#current(convKey(f)), f.level);
  }

  /**
   * Keeps this device's push subscription on the server (for the signed-in
   * session). Resolves null once the server has it, else why not.
   */
  pushSubscribe(subscription: PushSubscriptionInfo): Promise<string | null> {
    return this.#pushRequest({ type: "push_subscribe", subscription, ref: newRef() });
  }

  /** Asks the server to forget a push subscription of this user's. */
  pushUnsubscribe(endpoint: string): Promise<string | null> {
    return this.#pushRequest({ type: "push_unsubscribe", endpoint, ref: newRef() });
  }

  #pushRequest(
    frame: ClientFrame & { type: "push_subscribe" | "push_unsubscribe"; ref: string },
  ): Promise<string | null> {
    if (!this.#send(frame)) return Promise.resolve(PUSH_NOT_CONNECTED);
    return new Promise((resolve) => this.#pushWaits.set(frame.ref, resolve));
  }

  // ---------------------------------------------------------------------------
  // Conversations

  /**
   * Opens a conversation by key (a room's old key, from before a rename this
   * session, opens it under its new name), loading its history when needed.
   */
  open(at: string): void {
    const conv = this.convs.value.get(this.#current(at));
    if (!conv) return;
    const key = conv.key;
    const before = this.current.peek();
    batch(() => {
      this.#stopTyping();
      this.active.value = key;
      conv.divider.value = conv.read.value < conv.newest ? conv.read.value : Infinity;
      conv.atBottom.value = true;
    });
    // A room only looked at through a link goes once the user looks elsewhere.
    if (
      before && before !== conv && before.kind === "room" && !before.member.value &&
      !before.loaded.value && before.pending.value.length === 0
    ) this.#drop(before);
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

  /**
   * Joins (creating if new) a room and opens it; `opts.private` creates it
   * private (the server ignores it for a room that exists).
   */
  joinRoom(room: string, opts: { private?: boolean } = {}): string | null {
    const problem = nameProblem(room, "room name");
    if (problem) return problem;
    const conv = this.convs.value.get(`#${room}`);
    if (conv?.member.value) {
      this.open(conv.key);
      return null;
    }
    if (!this.ready.value) return "You are offline: try again when the connection is back";
    this.#openAfterJoin = room;
    if (conv?.loaded.value) {
      // Back in a room still listed for its unsent messages: catch up from where it was.
      conv.resuming = true;
      this.#send({ type: "join", room, since: conv.cursor });
    } else if (opts.private) this.#send({ type: "join", room, private: true });
    else this.#send({ type: "join", room });
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

  /**
   * Sends a message to the open conversation. It shows at once, is kept (in
   * storage too, across reloads) until the server confirms it, and goes out
   * in the order written, as fast as the server's limits allow. `replyTo`
   * names the message it answers; `files` are uploads it carries (then the
   * text may be empty). Returns why it cannot be sent (too long, not in the
   * room, too many files), or null.
   */
  send(
    text: string,
    conv: Conversation | null = this.current.value,
    replyTo?: ReplyRef | null,
    files: readonly FileInfo[] = [],
  ): string | null {
    if (!conv || (text.trim() === "" && files.length === 0)) return null;
    const problem = (text.trim() === "" ? null : this.tooLong(text)) ?? this.#notIn(conv) ??
      (files.length > MAX_FILES ? tooManyFiles() : null);
    if (problem !== null) return problem;
    // A message of files alone has no text at all (not blanks).
    const p: Pending = {
      ref: newRef(),
      text: text.trim() === "" ? "" : text,
      ts: new Date().toISOString(),
      state: "queued",
    };
    if (replyTo) p.replyTo = replyTo;
    if (files.length > 0) p.files = [...files];
    conv.pending.value = [...conv.pending.value, p];
    // The server clears the typing flag when the message arrives. Typing on
    // sets it again, but not with every message of a quick run.
    if (this.#typingSent) this.#typingSent = { ...this.#typingSent, cleared: true };
    this.#pump();
    return null;
  }

  /**
   * Sends what the composer of `conv` holds: its text, the message it
   * answers and the files uploaded in it; then empties it. While uploads
   * are still on their way the message waits for them (see
   * {@link sendWaiting}) and goes once the last one is there — or not at
   * all if one fails, which then says why. Returns why it cannot be sent,
   * or null.
   */
  submit(conv: Conversation): string | null {
    const list = this.uploads.value.get(conv.key) ?? [];
    const text = conv.draft.value;
    if (text.trim() === "" && list.length === 0) return null;
    const failed = list.filter((u) => u.state === "failed");
    if (failed.length > 0) {
      return failedProblem(failed, text.trim() !== "" || failed.length < list.length);
    }
    const problem = (text.trim() === "" ? null : this.tooLong(text)) ?? this.#notIn(conv);
    if (problem !== null) return problem;
    if (list.some((u) => u.state === "uploading")) {
      this.#setWaiting(conv.key, true);
      return null;
    }
    this.#setWaiting(conv.key, false);
    const files = list.flatMap((u) => u.file ? [u.file] : []);
    const refused = this.send(text, conv, conv.replyTo.value, files);
    if (refused !== null) return refused;
    batch(() => {
      conv.draft.value = "";
      conv.replyTo.value = null;
      conv.atBottom.value = true;
      this.#setUploads(conv.key, []);
    });
    return null;
  }

  /**
   * Attaches files to the composer of `conv`: each starts uploading at once
   * and shows with its progress. Beyond {@link MAX_FILES} for one message
   * the rest are left out, with a toast that says so.
   */
  attach(conv: Conversation, files: Iterable<Attachable>): void {
    const list = [...(this.uploads.value.get(conv.key) ?? [])];
    const room = MAX_FILES - list.filter((u) => u.state !== "failed").length;
    const picked = [...files];
    if (picked.length > room) {
      this.toast(
        `${tooManyFiles()}: ${
          room <= 0 ? "send these first" : `the other ${picked.length - room} were left out`
        }`,
        "files",
      );
    }
    const started: Upload[] = [];
    for (const blob of picked.slice(0, Math.max(0, room))) {
      const u: Upload = {
        key: ++this.#uploadKey,
        name: blob.name || defaultName(blob.type),
        size: blob.size,
        mime: blob.type,
        blob,
        state: "uploading",
        loaded: 0,
      };
      const max = this.info.peek()?.maxUpload;
      if (blob.size === 0) {
        Object.assign(u, { state: "failed", error: "This file is empty", retry: false });
      } else if (max !== undefined && blob.size > max) {
        // Known too large: not a byte goes to the server.
        Object.assign(u, {
          state: "failed",
          error: overLimit(u.name, blob.size, max),
          retry: false,
        });
      } else started.push(u);
      list.push(u);
    }
    this.#setUploads(conv.key, list);
    for (const u of started) this.#upload(conv.key, u);
  }

  /** Stops an upload on its way, or takes a file out of the composer. */
  removeUpload(conv: Conversation, key: number): void {
    this.#uploading.get(key)?.abort();
    this.#uploading.delete(key);
    this.#uploadQueue = this.#uploadQueue.filter((q) => q.u.key !== key);
    this.#nextUpload();
    const list = this.uploads.value.get(conv.key) ?? [];
    // Taking a file out changes the message: it no longer goes by itself.
    this.#setWaiting(conv.key, false);
    const left = list.filter((u) => u.key !== key);
    this.#setUploads(conv.key, left);
    // The toast that asked for the failed files to go has done its work.
    if (!left.some((u) => u.state === "failed")) {
      const t = this.toasts.peek().find((t) => t.key === FAILED_FILES_TOAST);
      if (t) this.dismissToast(t.id);
    }
  }

  /** The message of `conv` no longer goes by itself once its uploads finish (Escape). */
  stopWaiting(conv: Conversation): void {
    this.#setWaiting(conv.key, false);
  }

  /** Uploads again a file that failed. */
  retryUpload(conv: Conversation, key: number): void {
    const u = this.uploads.value.get(conv.key)?.find((x) => x.key === key);
    if (!u || u.state !== "failed" || u.blob.size === 0) return;
    const again: Upload = { ...u, state: "uploading", loaded: 0, error: undefined, retry: false };
    this.#patchUpload(conv.key, key, again);
    this.#upload(conv.key, again);
  }

  /** Sends one upload now, or once fewer are on their way. */
  #upload(key: string, u: Upload): void {
    this.#uploadQueue.push({ key, u });
    this.#nextUpload();
  }

  /** Starts the uploads that wait, as far as {@link MAX_UPLOADS} allows. */
  #nextUpload(): void {
    while (this.#uploading.size < MAX_UPLOADS && this.#uploadQueue.length > 0) {
      const { key, u } = this.#uploadQueue.shift()!;
      this.#startUpload(key, u);
    }
  }

  /** Sends one upload and records how it went. */
  async #startUpload(key: string, u: Upload): Promise<void> {
    const token = this.#auth?.type === "auth"
      ? this.#auth.token
      : this.#env.storage.getItem(TOKEN_KEY);
    const upload = this.#env.upload ?? defaultUploader();
    let last = 0;
    const handle = upload({
      url: uploadUrl(this.#env.origin, u.name),
      token: token ?? "",
      body: u.blob,
      onProgress: (loaded) => {
        // A progress bar moves in steps of 1 %: no more signal changes than that.
        if (loaded - last < u.size / 100 && loaded < u.size) return;
        last = loaded;
        this.#patchUpload(key, u.key, { loaded });
      },
    });
    this.#uploading.set(u.key, handle);
    const res = await handle.done;
    // Removed meanwhile (cancelled, sent, signed out): nothing to record.
    if (this.#uploading.get(u.key) !== handle) return;
    this.#uploading.delete(u.key);
    this.#nextUpload();
    const file = res.status === 201 ? parseFileInfo(res.text) : null;
    if (file) {
      this.#patchUpload(key, u.key, { state: "done", loaded: u.size, file, name: file.name });
    } else {
      const problem = res.status === 201
        ? { text: "The server's answer was not understood: retry", retry: true }
        : uploadProblem(res);
      this.#patchUpload(key, u.key, { state: "failed", error: problem.text, retry: problem.retry });
    }
    this.#uploadsSettled(key);
  }

  /** An upload ended or went: a message waiting for the uploads may go, or cannot. */
  #uploadsSettled(at: string): void {
    const key = this.#current(at);
    if (!this.sendWaiting.value.has(key)) return;
    const list = this.uploads.value.get(key) ?? [];
    if (list.some((u) => u.state === "uploading")) return;
    const conv = this.convs.value.get(key);
    if (!conv || list.some((u) => u.state === "failed")) {
      // The failed file says why on its chip; the text stays in the box.
      this.#setWaiting(key, false);
      return;
    }
    const problem = this.submit(conv);
    if (problem !== null) {
      this.#setWaiting(key, false);
      this.toast(problem);
    }
  }

  #setWaiting(key: string, on: boolean): void {
    const cur = this.sendWaiting.value;
    if (cur.has(key) === on) return;
    const next = new Set(cur);
    if (on) next.add(key);
    else next.delete(key);
    this.sendWaiting.value = next;
  }

  #setUploads(key: string, list: Upload[]): void {
    const next = new Map(this.uploads.value);
    if (list.length > 0) next.set(key, list);
    else next.delete(key);
    this.uploads.value = next;
  }

  #patchUpload(at: string, uploadKey: number, patch: Partial<Upload>): void {
    // The room may have been renamed while the file was on its way.
    const key = this.#current(at);
    const list = this.uploads.value.get(key);
    if (!list?.some((u) => u.key === uploadKey)) return;
    this.#setUploads(key, list.map((u) => u.key === uploadKey ? { ...u, ...patch } : u));
  }

  /** Stops every upload and empties every composer's files (sign-out, close). */
  #abortUploads(): void {
    const handles = [...this.#uploading.values()];
    this.#uploading.clear();
    this.#uploadQueue = [];
    for (const h of handles) h.abort();
    if (this.uploads.peek().size > 0) this.uploads.value = new Map();
    if (this.sendWaiting.peek().size > 0) this.sendWaiting.value = new Set();
  }

  /**
   * Why `text` is too long to send, counted as the server counts it
   * ({@link wireLength}) against `limits.maxMessage`; null when it fits.
   */
  tooLong(text: string): string | null {
    const over = wireLength(text) - this.limits.value.maxMessage;
    return over > 0 ? `This message is too long (${bytes(over)} over the limit)` : null;
  }

  /** Sends a message that was not sent again, keeping its `ref`. */
  resend(conv: Conversation, ref: string): void {
    const p = conv.pending.value.find((x) => x.ref === ref);
    if (!p || p.state !== "failed") return;
    const problem = this.#notIn(conv) ?? this.tooLong(p.text);
    if (problem !== null) {
      this.#updatePending(conv, ref, { error: problem });
      return;
    }
    this.#updatePending(conv, ref, {
      state: "queued",
      error: undefined,
      retryAt: undefined,
      attempts: undefined,
    });
    this.#pump();
  }

  /** Deletes a message that was not sent (from storage too). */
  discard(conv: Conversation, ref: string): void {
    const p = conv.pending.value.find((x) => x.ref === ref);
    if (!p || p.state === "sending") return;
    conv.pending.value = conv.pending.value.filter((x) => x.ref !== ref);
    // A room the user left was only kept for its unsent messages.
    if (!conv.member.value && conv.pending.value.length === 0) this.#drop(conv);
  }

  /**
   * Replaces the text of one of the user's messages (`edited` comes back to
   * every member). The same text changes nothing. Returns why it cannot be
   * edited (empty without files, too long, a member's `@room` where only
   * admins may use it, offline), or null. A message with files may be left
   * without text.
   */
  edit(conv: Conversation, id: number, text: string): string | null {
    const m = conv.find(id);
    if (!m || m.deleted) return "That message no longer exists";
    // A message with files may lose its words (the files stay); one without would be empty.
    if (text.trim() === "") {
      if (!m.files?.length) return "A message cannot be empty: delete it instead";
      text = "";
    }
    if (text === m.text) return null;
    const problem = this.tooLong(text) ??
      (conv.kind === "room"
        ? roomMentionRefusal(conv.name, conv.settings.value, {
          admin: this.role.value === "admin",
          text,
        })
        : null);
    if (problem !== null) return problem;
    return this.#change(conv, { type: "edit", id, text, ...conv.target });
  }

  /** Deletes one of the user's messages for everyone: it stays as a tombstone. */
  delete(conv: Conversation, id: number): string | null {
    const m = conv.find(id);
    if (!m || m.deleted) return null;
    return this.#change(conv, { type: "delete", id, ...conv.target });
  }

  /**
   * Toggles the user's reaction `emoji` on a message: adds it, or removes it
   * when the user reacted so already. Returns why it cannot, or null.
   */
  react(conv: Conversation, id: number, emoji: string): string | null {
    const m = conv.find(id);
    if (!m || m.deleted) return "That message no longer exists";
    const users = m.reactions?.[emoji];
    const on = !users?.includes(this.me.value ?? "");
    if (on && !users && Object.keys(m.reactions ?? {}).length >= MAX_REACTIONS) {
      return tooManyReactions();
    }
    const problem = this.#change(conv, { type: "react", id, emoji, on, ...conv.target });
    if (problem === null && on) this.#usedEmoji(emoji);
    return problem;
  }

  /**
   * Makes the composer of `conv` answer message `id` (shown above it until
   * sent or cancelled), or with null stops replying.
   */
  reply(conv: Conversation, id: number | null): void {
    const m = id === null ? undefined : conv.find(id);
    conv.replyTo.value = m && !m.deleted ? replyRefOf(m) : null;
    if (m) conv.editing.value = null;
  }

  /**
   * Scrolls to a message of `conv` (a reply's original), loading older pages
   * until it is there.
   */
  showMessage(conv: Conversation, id: number): void {
    if (this.active.value !== conv.key) this.open(conv.key);
    this.#jump = { key: conv.key, id, pages: 0 };
    this.#continueJump(conv);
  }

  /**
   * Sends an admin's `ban`, `unban`, `kick` or `room_settings` (or anyone's
   * `invite`) over the connection and resolves the server's answer
   * (`banned`, `unbanned`, `kicked`, `room_settings`, `invited`); rejects
   * with the server's words when it refuses (an admin as the target,
   * oneself, a member asking) or when the connection is not there.
   */
  moderate(frame: BanFrame): Promise<BannedFrame>;
  moderate(frame: UnbanFrame): Promise<UnbannedFrame>;
  moderate(frame: KickFrame): Promise<KickedFrame>;
  moderate(frame: RoomSettingsFrame): Promise<RoomSettingsChangedFrame>;
  moderate(frame: InviteFrame): Promise<InvitedFrame>;
  moderate(frame: RenameRoomFrame): Promise<RoomRenamedFrame>;
  moderate(
    frame: BanFrame | UnbanFrame | KickFrame | RoomSettingsFrame | InviteFrame | RenameRoomFrame,
  ): Promise<ModerationAnswer> {
    const ref = newRef();
    if (!this.ready.value || !this.#send({ ...frame, ref })) {
      return Promise.reject(new Error("You are offline: try again when the connection is back"));
    }
    return new Promise((resolve, reject) => this.#moderating.set(ref, { resolve, reject }));
  }

  /**
   * Adds `user` to room `room` (the way into a private room): resolves the
   * server's `invited`, rejects with its words (no such person, already in).
   */
  addToRoom(room: string, user: string): Promise<InvitedFrame> {
    return this.moderate({ type: "invite", room, user });
  }

  /** An admin sets or clears a room's flags: resolves the room's kind afterwards. */
  roomSettings(
    room: string,
    change: Pick<
      RoomSettingsFrame,
      "private" | "readOnly" | "archived" | "autoJoin" | "restrictRoomMentions"
    >,
  ): Promise<RoomSettingsChangedFrame> {
    return this.moderate({ type: "room_settings", room, ...change });
  }

  /**
   * An admin renames room `room` to `name` (a valid room name: see
   * `slugify`): resolves the server's `room_renamed` once everything of the
   * room is under the new name (in this app too), rejects with the server's
   * words (the name is taken, `general`, not an admin).
   */
  renameRoom(room: string, name: string): Promise<RoomRenamedFrame> {
    const problem = nameProblem(name, "room name") ??
      (name === room ? `#${room} has that name already` : null);
    if (problem !== null) return Promise.reject(new Error(problem));
    return this.moderate({ type: "rename_room", room, name });
  }

  /**
   * Where a link (a page hash) to a room renamed this session points now
   * (`#/old/42` → `#/new/42`), or null when it names no such room — or a room
   * of the old name the user has joined since.
   */
  movedLink(hash: string): string | null {
    const route = parseRoute(hash, this.me.peek());
    if (route === null || route.key[0] !== "#") return null;
    const key = this.#current(route.key);
    return key === route.key ? null : routeHash(key, route.id);
  }

  /**
   * The key a conversation has now: `key` itself while the app holds it, else
   * where the renames of this session took it.
   */
  #current(key: string): string {
    let at = key;
    // A rename of a rename is followed; a cycle (a→b, b→a) stops at the start.
    for (let i = 0; i < MAX_RENAMES && !this.convs.peek().has(at); i++) {
      const next = this.#renamed.get(at);
      if (next === undefined || next === key) break;
      at = next;
    }
    return at;
  }

  /** Sends an edit, a delete or a reaction, remembering its ref for the answer. */
  #change(
    conv: Conversation,
    frame: ClientFrame & { type: "edit" | "delete" | "react" },
  ): string | null {
    const offline = "You are offline: try again when the connection is back";
    if (!this.ready.value) return offline;
    if (!conv.member.value) return notInRoom(conv.name);
    const ref = newRef();
    if (!this.#send({ ...frame, ref })) return offline;
    this.#changes.set(ref, frame.type);
    // A change with nothing to do (a reaction that is already so) gets no answer: forget the oldest.
    if (this.#changes.size > MAX_CHANGES) this.#changes.delete(this.#changes.keys().next().value!);
    return null;
  }

  /** Puts `emoji` first among the recently used ones (kept in storage). */
  #usedEmoji(emoji: string): void {
    const list = [emoji, ...this.recentEmoji.value.filter((e) => e !== emoji)].slice(
      0,
      RECENT_EMOJI,
    );
    this.recentEmoji.value = list;
    try {
      this.#env.storage.setItem(EMOJI_KEY, JSON.stringify(list));
    } catch {
      // Only a convenience: the list lasts as long as the page.
    }
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
    if (sent && sent.key === conv.key) {
      const wait = sent.at + (sent.cleared ? TYPING_AFTER_SEND : TYPING_RESEND) - now;
      if (wait > 0) {
        // Just after a message: the flag follows if the user is still typing then.
        if (sent.cleared && this.#typingLater === undefined) {
          this.#typingLater = setTimeout(() => {
            this.#typingLater = undefined;
            if (this.current.value === conv) this.typing(conv.draft.value);
          }, wait);
        }
        return;
      }
    }
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
    this.#follow({ key, id: m.id });
  }

  /**
   * Follows a link (a page hash, see route.ts): opens its conversation —
   * joining the room or starting the direct conversation when needed — and
   * scrolls to its message. Before the connection is ready, it waits for it.
   * Returns false when the hash is not a link to a conversation.
   */
  followLink(hash: string): boolean {
    if (!this.ready.value) {
      if (!isRoute(hash)) return false;
      this.#link = hash;
      return true;
    }
    const route = parseRoute(hash, this.me.value);
    if (route === null) return false;
    this.#follow(route);
    return true;
  }

  #follow(route: Route): void {
    const id = route.id;
    // A link to a room renamed this session opens it under its new name.
    const key = route.key[0] === "#" ? this.#current(route.key) : route.key;
    if (id === undefined && this.active.value === key) return;
    if (key[0] === "@") {
      this.#followDm(key.slice(1), id);
      return;
    }
    // A room the user is not in shows with "Join": a link alone joins nothing.
    const conv = this.convs.value.get(key) ?? this.#ensure(key, false);
    this.open(key);
    if (id === undefined) return;
    this.#jump = { key, id, pages: 0 };
    if (conv.member.value) this.#continueJump(conv);
  }

  /** Opens the direct conversation a link names, once the server says who that is. */
  async #followDm(peer: string, id?: number): Promise<void> {
    let name = peer;
    if (!this.convs.value.has(`@${peer}`)) {
      try {
        const who = await this.findPerson(peer);
        if (who === null) {
          this.toast(`There's no one called “${peer}” here`);
          return;
        }
        name = who.name;
      } catch (err) {
        this.toast((err as Error).message);
        return;
      }
    }
    const conv = this.#ensure(`@${name}`);
    this.open(conv.key);
    if (id === undefined) return;
    this.#jump = { key: conv.key, id, pages: 0 };
    this.#continueJump(conv);
  }

  /**
   * Opens the next (`1`) or previous (`-1`) conversation in the sidebar's
   * order, or only among those with unread messages.
   */
  step(dir: 1 | -1, unreadOnly = false): void {
    const all = [...this.rooms.value, ...this.dms.value];
    if (all.length === 0) return;
    const n = all.length;
    const found = all.findIndex((c) => c.key === this.active.value);
    // With none open, the first step lands on the first (or the last) one.
    const at = found !== -1 ? found : dir === 1 ? -1 : n;
    for (let i = 1; i <= n; i++) {
      const c = all[(((at + dir * i) % n) + n) % n];
      if (!unreadOnly || (c.unread.value > 0 && c.key !== this.active.value)) {
        this.open(c.key);
        return;
      }
    }
  }

  /** Asks for the people with an account, all of them or those matching `q`. */
  listPeople(q = ""): void {
    this.#send(q === "" ? { type: "users" } : { type: "users", q });
  }

  /**
   * Who `name` is (ignoring case), asking the server when the list at hand
   * cannot tell; null when nobody has that name.
   */
  async findPerson(name: string): Promise<DirectoryEntry | null> {
    const lower = name.toLowerCase();
    const me = this.me.value;
    if (me !== null && me.toLowerCase() === lower) return { name: me, online: true };
    const match = (s: PeopleState | null) =>
      s?.users.find((u) => u.name.toLowerCase() === lower) ?? null;
    const known = match(this.people.value) ?? match(this.peopleFound.value);
    if (known) return known;
    const full = this.people.value;
    if (full !== null && !full.more) return null;
    // Longer than any name: nobody has it (and the server would refuse the question).
    if (lower.length > 32) return null;
    const q = lower;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const reply = await new Promise<UsersListFrame | null | "late">((resolve) => {
      const list = this.#lookups.get(q) ?? [];
      list.push(resolve);
      this.#lookups.set(q, list);
      if (list.length === 1 && !this.#send({ type: "users", q })) {
        this.#lookups.delete(q);
        resolve(null);
      }
      // An answer refused (the server busy) never comes: do not wait forever.
      timer = setTimeout(() => {
        const waiting = this.#lookups.get(q)?.filter((r) => r !== resolve) ?? [];
        if (waiting.length > 0) this.#lookups.set(q, waiting);
        else this.#lookups.delete(q);
        resolve("late");
      }, LOOKUP_TIMEOUT);
    }).finally(() => clearTimeout(timer));
    if (reply === null) throw new Error("You are offline: try again when the connection is back");
    if (reply === "late") throw new Error("The server did not answer in time: try again");
    return reply.users.find((u) => u.name.toLowerCase() === lower) ?? null;
  }

  /**
   * Whether `name` is someone with an account, as far as this client knows:
   * true until the list of people has arrived (mentions show as mentions).
   */
  knows(name: string): boolean {
    const lower = name.toLowerCase();
    const people = this.people.value;
    if (people === null || people.more) return true;
    if (this.me.value?.toLowerCase() === lower) return true;
    if (people.users.some((u) => u.name.toLowerCase() === lower)) return true;
    for (const u of this.online.value) if (u.toLowerCase() === lower) return true;
    return false;
  }

  /**
   * Asks for the next page of room `conv`'s members (after the last name
   * loaded): one page at a time, none once every member is loaded.
   */
  loadMoreMembers(conv: Conversation): void {
    if (conv.kind !== "room" || !conv.member.peek()) return;
    const ref = newRef();
    const page = conv.askMembers(ref, Date.now(), MEMBERS_WAIT);
    if (page === null) return;
    if (!this.#send({ type: "members", room: conv.name, ...page, ref })) {
      conv.cancelMembers(ref);
      return;
    }
    // No answer (a connection lost on the way): the panel may ask again.
    clearTimeout(this.#membersTimers.get(conv));
    this.#membersTimers.set(
      conv,
      setTimeout(() => {
        this.#membersTimers.delete(conv);
        conv.cancelMembers(ref);
      }, MEMBERS_WAIT),
    );
  }

  /**
   * People `text` mentions who exist but are not in room `conv` (so will not
   * see it); empty outside rooms, in the lobby, while the list of people is
   * unknown, or while the room's members are not all loaded.
   */
  absentMentions(conv: Conversation, text: string): string[] {
    // Read so that an invitation sent updates whoever shows this list.
    this.#invites.value;
    if (conv.kind !== "room" || conv.name === LOBBY || !conv.membersComplete.value) return [];
    if (!text.includes("@") || this.people.value === null) return [];
    const members = new Set(conv.members.value.map((m) => m.toLowerCase()));
    for (const u of this.#invited.get(conv.key) ?? []) members.add(u);
    const out = new Map<string, string>();
    for (const s of segments(text)) {
      if (s.kind !== "mention") continue;
      const lower = s.name.toLowerCase();
      if (members.has(lower) || out.has(lower)) continue;
      const who = this.people.value.users.find((u) => u.name.toLowerCase() === lower);
      if (who) out.set(lower, who.name);
    }
    return [...out.values()];
  }

  /**
   * Invites `user` to room `room` with a direct message holding a link that
   * opens (and joins) it — or, for a private room (whose link would not let
   * them in), adds them to it with an `invite` frame.
   */
  invite(user: string, room: string): void {
    if (this.convs.value.get(`#${room}`)?.settings.value.private) {
      this.addToRoom(room, user).then(
        (f) => this.toast(`Added ${f.user ?? user} to #${room}`, "invite"),
        (err: Error) => this.toast(err.message, "invite"),
      );
      this.#invitedNow(user, room);
      return;
    }
    const url = new URL(routeHash(`#${room}`), this.#env.origin + "/").href;
    this.send(`Join me in #${room}: ${url}`, this.#ensure(`@${user}`));
    this.#invitedNow(user, room);
    this.toast(`Invited ${user} to #${room}`, "invite");
  }

  /** Asked once: the hint about `user` in `room` goes. */
  #invitedNow(user: string, room: string): void {
    const invited = this.#invited.get(`#${room}`) ?? new Set<string>();
    invited.add(user.toLowerCase());
    this.#invited.set(`#${room}`, invited);
    this.#invites.value++;
  }

  /** Sets (or with `""` clears) the topic of a room the user is in. */
  setTopic(room: string, topic: string): void {
    this.#send({ type: "topic", room, topic });
  }

  /** Marks every conversation read, here and on the user's other devices. */
  markAllRead(): void {
    if (!this.ready.value) return;
    batch(() => {
      for (const c of this.convs.value.values()) {
        const newest = Math.max(c.newest, c.last.value);
        if (newest > c.read.value) c.read.value = newest;
      }
    });
    this.#send({ type: "read_all" });
  }

  /**
   * Changes the user's password: the server checks the current one, signs
   * out every other session, and hands this one a fresh token. The outcome
   * shows in {@link passwd}.
   */
  changePassword(current: string, password: string): void {
    if (password.length < 8) {
      this.passwd.value = {
        busy: false,
        error: "The new password is too short: use at least 8 characters",
        done: false,
      };
      return;
    }
    if (!this.ready.value) {
      this.passwd.value = {
        busy: false,
        error: "You are offline: try again when the connection is back",
        done: false,
      };
      return;
    }
    const ref = newRef();
    this.#passwdRef = ref;
    this.passwd.value = { busy: true, error: null, done: false };
    this.#send({ type: "passwd", current, password, ref });
  }

  /** Hides a toast. */
  dismissToast(id: number): void {
    clearTimeout(this.#toastTimers.get(id));
    this.#toastTimers.delete(id);
    this.toasts.value = this.toasts.value.filter((t) => t.id !== id);
  }

  /**
   * Shows a toast for a few seconds. One with the same `key` (by default the
   * same text) already showing is kept up longer instead of repeated.
   */
  toast(text: string, key: string = text): void {
    const list = this.toasts.peek();
    const same = list.find((t) => t.key === key);
    const id = same?.id ?? ++this.#toastId;
    if (same) {
      clearTimeout(this.#toastTimers.get(id));
      if (same.text !== text) {
        this.toasts.value = list.map((t) => t.id === id ? { ...t, text } : t);
      }
    } else this.toasts.value = [...list.slice(-2), { id, text, key }];
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
        this.banned.value = null;
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
        for (const f of frames) {
          // One frame that cannot be applied must not cost the rest of the batch.
          try {
            this.#onFrame(f);
          } catch (err) {
            // deno-lint-ignore no-console
            console.error(`Cannot apply a "${f.type}" frame:`, err);
          }
        }
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
    this.#stopPump();
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
    this.#unanswered();
  }

  /** Questions the connection that ended will never answer. */
  #unanswered(): void {
    this.#dropLookups();
    for (const done of this.#pushWaits.values()) {
      done(PUSH_CONNECTION_LOST);
    }
    this.#pushWaits.clear();
    this.#levelRefs.clear();
    this.#changes.clear();
    const moderating = [...this.#moderating.values()];
    this.#moderating.clear();
    for (const m of moderating) {
      m.reject(
        new Error(
          "The connection was lost before the server answered: check the list, then try again",
        ),
      );
    }
    if (this.#passwdRef !== null) {
      this.#passwdRef = null;
      this.passwd.value = {
        busy: false,
        error:
          "The connection was lost before the server answered: the password may have changed. If your current password stops working, use the new one",
        done: false,
      };
    }
  }

  #onClose(gen: number, code: number): void {
    if (gen !== this.#gen) return;
    this.#ws = null;
    this.#unanswered();
    clearInterval(this.#pingTimer);
    this.#pingTimer = undefined;
    this.#stopPump();
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
        c.synced = false;
        // Maybe stored, maybe not: sent again with the same ref once back,
        // which the server answers with the stored copy if it has one.
        if (c.pending.value.some((p) => p.state === "sending")) {
          c.pending.value = c.pending.value.map((p) =>
            p.state === "sending" ? { ...p, state: "queued" } : p
          );
        }
      }
      if (this.search.value?.busy) this.search.value = { ...this.search.value, busy: false };
    });
    this.#typingSent = null;
    clearTimeout(this.#typingLater);
    this.#typingLater = undefined;
    if (this.#closed) return;
    if (code === CloseCode.Banned || this.#bannedGen === gen) {
      // Banned (the error frame before the close said until when and why):
      // trying again would only be refused, so the app stops and says so.
      // The token stays: once the ban ends a reload resumes the session.
      if (!this.#interactive) {
        batch(() => {
          this.#reset();
          this.banned.value ??= "You are banned from this chat";
          this.phase.value = "signin";
        });
      }
      return;
    }
    if (code === CloseCode.AuthFailed || (code === CloseCode.NameTaken && !welcomed)) {
      // The server said why in an error frame (shown by #onError).
      if (!this.#interactive) {
        // Another tab changed the password: its new token is this tab's too
        // (and if it is not there yet, `adoptToken` brings it when it comes).
        const stored = this.#env.storage.getItem(TOKEN_KEY);
        const used = this.#auth?.type === "auth" ? this.#auth.token : undefined;
        if (code === CloseCode.AuthFailed && stored && used && stored !== used) {
          this.authError.value = null;
          this.#connect({ type: "auth", token: stored }, false);
          return;
        }
        if (stored === used) this.#env.storage.removeItem(TOKEN_KEY);
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

  /**
   * Sends a frame other than a message now if the limits allow, else queues
   * it behind the others (typing flags and pings are dropped instead: late,
   * they are worth nothing). False when there is no connection or the frame
   * was dropped.
   */
  #send(frame: ClientFrame): boolean {
    const ws = this.#ws;
    const pacer = this.#pacer;
    if (!ws || ws.readyState !== WebSocket.OPEN || !this.#welcomed || !pacer) return false;
    // Typing flags and pings never take the tokens messages wait for.
    const optional = frame.type === "typing" || frame.type === "ping";
    if (this.#frames.length === 0 && pacer.take(optional ? pacer.reserve : 0)) {
      ws.send(JSON.stringify(frame));
      return true;
    }
    if (optional) return false;
    if (this.#frames.length >= MAX_WAITING_FRAMES) return false;
    this.#frames.push(frame);
    this.#schedulePump(pacer.delay());
    return true;
  }

  /**
   * Sends what waits, as far as the limits allow: frames other than messages
   * first, then messages — in the order written within each conversation,
   * oldest first across them, leaving a reserve for the other frames — and
   * comes back when the next one may go.
   */
  #pump(): void {
    clearTimeout(this.#pumpTimer);
    this.#pumpTimer = undefined;
    const ws = this.#ws;
    const pacer = this.#pacer;
    if (!ws || ws.readyState !== WebSocket.OPEN || !this.#welcomed || !pacer) return;
    while (this.#frames.length > 0) {
      if (!pacer.take()) {
        this.#schedulePump(pacer.delay());
        return;
      }
      ws.send(JSON.stringify(this.#frames.shift()));
    }
    let held = false;
    batch(() => {
      const now = Date.now();
      while (true) {
        const next = this.#nextMessage(now);
        if (next === null) break;
        if (typeof next === "number") {
          this.#schedulePump(next - now);
          break;
        }
        if (!pacer.take(pacer.reserve)) {
          held = true;
          this.#schedulePump(pacer.delay(pacer.reserve));
          break;
        }
        const { conv, p } = next;
        this.#updatePending(conv, p.ref, { state: "sending", retryAt: undefined });
        const send: SendFrame = { type: "send", text: p.text, ref: p.ref, ...conv.target };
        if (p.replyTo) send.replyTo = p.replyTo.id;
        if (p.files && p.files.length > 0) send.files = p.files.map((f) => f.id);
        ws.send(JSON.stringify(send));
      }
    });
    if (held) this.toast(PACE_NOTICE, "pace");
  }

  /**
   * The next message to send: the first queued one of each conversation that
   * has caught up (unless it waits for a retry, which holds back the ones
   * after it), the oldest of those. A number is when one will be due.
   */
  #nextMessage(now: number): { conv: Conversation; p: Pending } | number | null {
    let best: { conv: Conversation; p: Pending } | null = null;
    let soonest = Infinity;
    for (const conv of this.convs.value.values()) {
      if (!conv.synced || !conv.member.value) continue;
      for (const p of conv.pending.value) {
        if (p.state !== "queued") continue;
        if (p.retryAt !== undefined && p.retryAt > now) soonest = Math.min(soonest, p.retryAt);
        else if (!best || p.ts < best.p.ts) best = { conv, p };
        break;
      }
    }
    return best ?? (soonest < Infinity ? soonest : null);
  }

  #schedulePump(ms: number): void {
    const due = Date.now() + Math.max(0, ms);
    if (this.#pumpTimer !== undefined && this.#pumpDue <= due) return;
    clearTimeout(this.#pumpTimer);
    this.#pumpDue = due;
    this.#pumpTimer = setTimeout(() => {
      this.#pumpTimer = undefined;
      this.#pump();
    }, Math.max(0, ms));
  }

  /** Forgets the connection's limits and what waited to go out on it. */
  #stopPump(): void {
    clearTimeout(this.#pumpTimer);
    this.#pumpTimer = undefined;
    this.#pacer = null;
    this.#frames = [];
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
        const conv = this.convs.value.get(`#${f.room}`);
        // An admin removed the user (a kick): say who, as the room goes.
        if (f.by !== undefined) {
          this.toast(`${f.by} removed you from #${f.room}`, `kicked:${f.room}`);
        }
        if (!conv) return;
        if (conv.pending.value.length > 0) this.#leftWithUnsent(conv);
        else this.#drop(conv);
        return;
      }
      case "history":
        return this.#onHistory(f);
      case "edited":
      case "deleted":
      case "reaction":
        return this.#onChange(f);
      case "system": {
        if (f.event === "shutdown") {
          this.connNote.value = "The server is restarting";
          return;
        }
        const conv = f.room !== undefined
          ? this.convs.value.get(this.#current(`#${f.room}`))
          : undefined;
        if (!conv || !f.user) return;
        if (f.event === "join") conv.memberJoined(f.user);
        else conv.memberLeft(f.user);
        conv.notice(
          f.event === "join" ? "join" : "leave",
          f.event === "join"
            ? f.by !== undefined
              ? `${f.by} added ${f.user} to #${conv.name}`
              : `${f.user} joined #${conv.name}`
            : f.by !== undefined
            ? `${f.by} removed ${f.user} from #${conv.name}`
            : `${f.user} left #${conv.name}`,
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
        const conv = this.convs.value.get(this.#current(convKey(f)));
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
      case "users":
        return this.#onUsers(f);
      case "members": {
        // A page asked for before a rename or a new `joined` is not taken.
        const conv = this.convs.value.get(this.#current(`#${f.room}`));
        if (conv?.takeMembers(f)) {
          clearTimeout(this.#membersTimers.get(conv));
          this.#membersTimers.delete(conv);
        }
        return;
      }
      case "member_count": {
        // A large room's joins and leaves, counted instead of announced one by one.
        // Before the room's `joined` (which counts them too) the loaded names would look cut short.
        const conv = this.convs.value.get(this.#current(`#${f.room}`));
        if (conv && conv.memberCount.peek() !== null) conv.memberCount.value = f.count;
        return;
      }
      case "topic": {
        const conv = this.convs.value.get(this.#current(`#${f.room}`));
        if (!conv) return;
        conv.topic.value = f.topic;
        conv.notice(
          "topic",
          f.topic === "" ? `${f.user} cleared the topic` : `${f.user} set the topic: ${f.topic}`,
          f.ts,
        );
        return;
      }
      case "passwd":
        return this.#onPasswd(f.token, f.ref);
      case "role":
        this.role.value = f.role;
        return;
      case "invited":
        if (f.user === undefined) {
          // Someone added this user: said now, and in the room once its `joined` follows.
          this.#addedBy.set(f.room, f.by);
          this.toast(`${f.by} added you to #${f.room}`, `invited:${f.room}`);
          return;
        }
        return this.#answer(f);
      case "room_settings": {
        const conv = this.convs.value.get(`#${f.room}`);
        const kind = kindOf(f.settings);
        if (conv && !sameKind(conv.settings.value, kind)) {
          for (const text of kindNotices(f.room, f.by, conv.settings.value, kind)) {
            conv.notice("settings", text, new Date().toISOString());
          }
          conv.settings.value = kind;
        }
        const listed = this.roomList.value;
        if (listed?.some((r) => r.name === f.room)) {
          this.roomList.value = listed.map((r) =>
            r.name === f.room
              ? {
                name: r.name,
                members: r.members,
                ...(r.topic ? { topic: r.topic } : {}),
                ...kind,
              }
              : r
          );
        }
        return this.#answer(f);
      }
      case "room_renamed":
        return this.#onRenamed(f);
      case "banned":
      case "unbanned":
      case "kicked": {
        const waiting = f.ref === undefined ? undefined : this.#moderating.get(f.ref);
        if (waiting === undefined) return;
        this.#moderating.delete(f.ref!);
        waiting.resolve(f);
        return;
      }
      case "pong":
        return;
      case "notify_level":
        return this.#onLevel(f);
      case "push_subscribed":
      case "push_unsubscribed": {
        const done = f.ref === undefined ? undefined : this.#pushWaits.get(f.ref);
        if (!done) return;
        this.#pushWaits.delete(f.ref!);
        done(null);
        return;
      }
      case "error":
        return this.#onError(f);
    }
  }

  /**
   * A room was renamed: it is the same room under another name, so
   * everything the app holds under the old name moves to the new one, and
   * the room says who renamed it (a toast too, when it is open).
   */
  #onRenamed(f: RoomRenamedFrame): void {
    const open = this.active.value === `#${f.room}`;
    const conv = this.#followRename(f.room, f.name);
    if (conv) {
      const text = `${f.by || "An admin"} renamed #${f.room} to #${f.name}`;
      conv.notice("rename", text, new Date().toISOString());
      if (open) this.toast(text, `renamed:${f.name}`);
    }
    this.#answer(f);
  }

  /**
   * Rooms renamed while this device was away (`welcome.renamed`, newest
   * first): each one the app holds under its old name moves to the name now
   * as a live rename moves it, with a line that says so; links to any of the
   * old names follow for the rest of the session. `rooms` are the user's
   * rooms now: a name among them is a room of its own, never moved.
   */
  #followRenamesAway(renamed: readonly RoomRename[], rooms: ReadonlySet<string>): void {
    const now = new Date().toISOString();
    const moved = new Set<string>();
    // Oldest first: the newest renames are remembered last, so they are the last forgotten.
    for (const { room, name } of [...renamed].reverse()) {
      // Two old names for one room (a device away through both): the first one moved keeps it.
      if (rooms.has(room) || !rooms.has(name) || moved.has(name)) continue;
      const conv = this.#followRename(room, name);
      if (!conv) continue;
      moved.add(name);
      conv.notice("rename", `#${room} was renamed to #${name} while you were away`, now);
    }
  }

  /**
   * The room `room` is called `name` now: links and late frames of the old
   * name find it from now on, and what the app keeps under the old name —
   * the conversation (see {@link #moveRoom}), its row in the room browser,
   * search results, a join or an "added you" under way — moves to the new
   * one. Returns the conversation moved, if the app held one.
   */
  #followRename(room: string, name: string): Conversation | undefined {
    const from = `#${room}`;
    const to = `#${name}`;
    // Older renames that led to the old name now lead on to the new one.
    for (const [k, v] of this.#renamed) if (v === from) this.#renamed.set(k, to);
    this.#renamed.delete(to);
    this.#renamed.set(from, to);
    if (this.#renamed.size > MAX_RENAMES) this.#renamed.delete(this.#renamed.keys().next().value!);
    const conv = this.convs.value.get(from);
    if (conv) this.#moveRoom(conv, name);
    // The server moved the room's notification level with it.
    const level = this.levels.value.get(from);
    if (level !== undefined) {
      const levels = new Map(this.levels.value);
      levels.delete(from);
      levels.set(to, level);
      this.levels.value = levels;
    }
    const listed = this.roomList.value;
    if (listed?.some((r) => r.name === room)) {
      this.roomList.value = listed.map((r) => r.name === room ? { ...r, name } : r);
    }
    const s = this.search.value;
    if (s && (s.key === from || s.results?.some((m) => m.room === room))) {
      this.search.value = {
        ...s,
        key: s.key === from ? to : s.key,
        results: s.results?.map((m) => m.room === room ? { ...m, room: name } : m) ?? null,
      };
    }
    if (this.#openAfterJoin === room) this.#openAfterJoin = name;
    const by = this.#addedBy.get(room);
    if (by !== undefined) {
      this.#addedBy.delete(room);
      this.#addedBy.set(name, by);
    }
    return conv;
  }

  /**
   * Files `conv` under the name `name`: the conversation object stays (its
   * messages, unsent ones, draft, read marker, members, topic, kind, the
   * place the reader is at), and whatever is kept by its key elsewhere — the
   * composer's files, reads and typing flags due, the open conversation, a
   * jump under way — moves with it. Unsent messages and the draft are saved
   * under the new key by the effects that watch them.
   */
  #moveRoom(conv: Conversation, name: string): void {
    const from = conv.key;
    const to = `#${name}`;
    if (from === to) return;
    // Sent under the old name and not confirmed: a refusal for that name is no reason to give up.
    for (const p of conv.pending.value) {
      if (p.state === "sending") this.#sentBeforeRename.add(p.ref);
    }
    batch(() => {
      conv.rename(name);
      const next = new Map<string, Conversation>();
      // What the app held under the new name gives way: a room looked at through a link
      // (not joined), or after an absence a room that had the name before and is elsewhere now.
      for (const [k, c] of this.convs.value) if (k !== from && k !== to) next.set(k, c);
      next.set(to, conv);
      this.convs.value = next;
      this.#moveKeyed(from, to);
    });
  }

  /** What the app keeps by conversation key outside the conversation moves from `from` to `to`. */
  #moveKeyed(from: string, to: string): void {
    batch(() => {
      const files = this.uploads.value.get(from);
      if (files) {
        const up = new Map(this.uploads.value);
        up.delete(from);
        up.set(to, files);
        this.uploads.value = up;
      }
      if (this.sendWaiting.value.has(from)) {
        const waiting = new Set(this.sendWaiting.value);
        waiting.delete(from);
        waiting.add(to);
        this.sendWaiting.value = waiting;
      }
      if (this.active.value === from) {
        this.active.value = to;
        if (this.me.value) this.#env.storage.setItem(`${ACTIVE_KEY}.${this.me.value}`, to);
      }
    });
    for (const q of this.#uploadQueue) if (q.key === from) q.key = to;
    if (this.#readsDue.delete(from)) this.#readsDue.add(to);
    const invited = this.#invited.get(from);
    if (invited) {
      this.#invited.delete(from);
      this.#invited.set(to, invited);
    }
    if (this.#typingSent?.key === from) this.#typingSent = { ...this.#typingSent, key: to };
    if (this.#jump?.key === from) this.#jump = { ...this.#jump, key: to };
  }

  /** Settles the `moderate()` waiting for this answer, if any. */
  #answer(f: ModerationAnswer): void {
    const waiting = f.ref === undefined ? undefined : this.#moderating.get(f.ref);
    if (waiting === undefined) return;
    this.#moderating.delete(f.ref!);
    waiting.resolve(f);
  }

  #onUsers(f: UsersListFrame): void {
    const q = f.q ?? "";
    const state: PeopleState = { q, users: f.users, more: f.more === true };
    if (q === "") this.people.value = state;
    else this.peopleFound.value = state;
    const waiting = this.#lookups.get(q);
    this.#lookups.delete(q);
    for (const resolve of waiting ?? []) resolve(f);
  }

  #onPasswd(token: string, ref: string | undefined): void {
    const storage = this.#env.storage;
    storage.setItem(TOKEN_KEY, token);
    this.#auth = { type: "auth", token };
    const me = this.me.value;
    if (me) this.#saveDevice(me, token);
    if (ref !== undefined && ref === this.#passwdRef) {
      this.#passwdRef = null;
      this.passwd.value = { busy: false, error: null, done: true };
    }
  }

  #saveDevice(user: string, token: string): void {
    try {
      this.#env.storage.setItem(`${DEVICE_KEY}.${user.toLowerCase()}`, token);
    } catch {
      // Only a shortcut past the sign-in throttle: nothing is lost without it.
    }
  }

  #onWelcome(f: WelcomeFrame): void {
    const storage = this.#env.storage;
    if (this.me.value !== null && this.me.value !== f.user) this.#reset();
    this.#adopt(f.user);
    this.#welcomed = true;
    this.#attempt = 0;
    this.#interactive = false;
    this.#auth = { type: "auth", token: f.token };
    storage.setItem(TOKEN_KEY, f.token);
    storage.setItem(USER_KEY, f.user);
    this.#saveDevice(f.user, f.token);
    this.me.value = f.user;
    this.role.value = f.role ?? null;
    this.phase.value = "chat";
    this.authError.value = null;
    this.banned.value = null;
    this.connNote.value = null;
    this.busy.value = false;
    this.online.value = new Set(f.online);
    this.onlineCount.value = presenceCount(f);
    const limits = f.limits ?? DEFAULT_LIMITS;
    this.limits.value = limits;
    try {
      storage.setItem(LIMITS_KEY, JSON.stringify(limits));
    } catch {
      // Only a default until the next welcome.
    }

    const rooms = new Set(f.rooms);
    // Before anything else: what the app holds under an old name is the renamed room's.
    this.#followRenamesAway(f.renamed ?? [], rooms);
    const convs = new Map(this.convs.value);
    for (const [key, c] of convs) {
      if (c.kind !== "room") continue;
      if (rooms.has(c.name)) c.member.value = true;
      else if (!f.more) {
        // Left on another device while this one was away (unless the welcome
        // was cut short and simply did not list it): kept while it holds
        // messages that were not sent, which say why.
        if (c.pending.value.length > 0) this.#leftWithUnsent(c);
        else convs.delete(key);
      }
    }
    for (const c of f.conversations) {
      const key = convKey(c);
      let conv = convs.get(key);
      if (!conv) convs.set(key, conv = new Conversation(key, this.me));
      if (c.last > conv.last.value) conv.last.value = c.last;
      if (c.read > conv.read.value) conv.read.value = c.read;
      conv.unreadBase.value = {
        count: c.unread ?? Math.max(0, c.last - c.read),
        last: c.last,
      };
    }
    for (const room of f.rooms) {
      const key = `#${room}`;
      if (!convs.has(key)) convs.set(key, new Conversation(key, this.me));
    }
    this.convs.value = convs;

    this.push.value = f.push ?? null;
    const levels = new Map<string, NotifyLevel>();
    for (const [key, level] of Object.entries(f.levels ?? {})) levels.set(key, level);
    this.levels.value = levels;

    this.conn.value = "open";
    this.ready.value = true;
    // The server counted the sign-in frame already.
    this.#pacer = new Pacer(limits, { used: 1 });
    this.#startPing();

    for (const conv of convs.values()) {
      conv.synced = false;
      if (conv.kind === "room") {
        if (!conv.member.value) continue;
        // Resume from what we hold, or load the latest page.
        conv.resuming = conv.loaded.value;
        this.#send(
          conv.loaded.value
            ? { type: "join", room: conv.name, since: conv.cursor }
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

    // Started offline, the page never heard how sign-in works: asked now, for signing out.
    if (this.info.peek() === null) this.loadInfo();
    // A page opened in the background must say so, or it holds back the pushes.
    this.#send({ type: "visible", visible: this.visible.peek() });
    // Who has an account: for the people lists and for telling real mentions.
    this.#send({ type: "users" });

    const active = this.active.value;
    const link = this.#link === null ? null : parseRoute(this.#link, f.user);
    this.#link = null;
    if (link !== null) this.#follow(link);
    else if (active === null || !convs.has(active)) {
      // The room open before a reload, under its name now if it was renamed meanwhile.
      const saved = storage.getItem(`${ACTIVE_KEY}.${f.user}`);
      const key = saved === null ? null : this.#current(saved);
      this.open(key !== null && convs.has(key) ? key : `#${LOBBY}`);
    } else if (!this.current.value?.loaded.value && this.current.value?.kind === "dm") {
      this.#history(this.current.value, "initial");
    }
  }

  #onJoined(f: JoinedFrame): void {
    const key = `#${f.room}`;
    // The name is a room of the user's again: its links are its own.
    this.#renamed.delete(key);
    const conv = this.#ensure(key);
    const wasMember = conv.member.value && conv.loaded.value;
    conv.member.value = true;
    const resumed = conv.resuming;
    const before = conv.newest;
    // The first page again (a reconnect, a rejoin): the panel pages on from there.
    conv.resetMembers(f.members, f.memberCount);
    conv.topic.value = f.topic ?? "";
    conv.settings.value = kindOf(f);
    conv.add(f.history, resumed);
    if (f.gap) {
      conv.notice("gap", "Some messages from while you were away are no longer kept", "", before);
    }
    if (!resumed) {
      conv.hasOlder.value = f.history.length > 0 && f.history[0].id > 1;
      conv.loaded.value = true;
      if (this.#openAfterJoin === f.room && !wasMember) {
        // Just joined: what was said before is history, not unread.
        const newest = Math.max(conv.newest, conv.last.value);
        if (newest > conv.read.value) {
          conv.read.value = newest;
          this.#readsDue.add(key);
          this.#scheduleRead();
        }
      }
    }
    // Where the reply brings the conversation: the next `since`.
    const seq = f.seq ?? Math.max(conv.cursor, conv.newest);
    if (f.more && (!resumed || seq > conv.cursor)) {
      conv.resuming = true;
      conv.cursor = seq;
      this.#history(conv, "since");
    } else {
      conv.cursor = resumed ? Math.max(conv.cursor, seq) : seq;
      conv.resuming = false;
      this.#flushPending(conv);
    }
    const by = this.#addedBy.get(f.room);
    if (by !== undefined) {
      this.#addedBy.delete(f.room);
      conv.notice("join", `${by} added you to #${f.room}`, new Date().toISOString());
    }
    if (this.#openAfterJoin === f.room) {
      this.#openAfterJoin = null;
      this.open(key);
    }
    if (this.#jump?.key === key) this.#continueJump(conv);
  }

  #onHistory(f: HistoryPageFrame): void {
    const conv = this.convs.value.get(this.#current(convKey(f)));
    if (!conv) return;
    const kind = conv.inflight;
    conv.inflight = null;
    const before = conv.newest;
    conv.add(f.messages, kind === "since");
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
          before,
        );
      }
      const seq = f.seq ?? Math.max(conv.cursor, conv.newest);
      // A page that brings nothing further would be asked for forever.
      if (f.more && seq > conv.cursor) {
        conv.cursor = seq;
        conv.queue.unshift("since");
      } else {
        conv.cursor = Math.max(conv.cursor, seq);
        conv.resuming = false;
        this.#flushPending(conv);
      }
    } else if (kind === "initial") {
      conv.hasOlder.value = f.more;
      conv.loaded.value = true;
      conv.cursor = f.seq ?? Math.max(conv.cursor, conv.newest);
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
    // A frame about a room renamed meanwhile is about the room under its new name.
    const key = f.room !== undefined ? this.#current(`#${f.room}`) : `@${own ? f.to : f.from}`;
    const conv = f.room !== undefined ? this.convs.value.get(key) : this.#ensure(key);
    if (!conv) return;
    if (f.ref !== undefined) {
      this.#sentBeforeRename.delete(f.ref);
      const before = conv.pending.value;
      const after = before.filter((p) => p.ref !== f.ref);
      if (after.length !== before.length) conv.pending.value = after;
    }
    // Live frames arrive in `seq` order: they move the cursor, except while a
    // catch-up is on its way (its pages say where they bring it).
    const inOrder = conv.loaded.value && !conv.resuming;
    const lastBefore = Math.max(conv.last.value, conv.newest);
    conv.add([f]);
    const seq = f.seq ?? f.id;
    if (inOrder && seq > conv.cursor) conv.cursor = seq;
    if (!conv.loaded.value && conv.kind === "dm" && this.active.value === key) {
      this.#history(conv, "initial");
    }
    conv.setTyping(f.from, null);
    if (own) {
      // Writing in a conversation means having read it (one read frame for a
      // run of messages: every frame counts against the limits).
      if (f.ref !== undefined && f.id > conv.read.value) {
        conv.read.value = f.id;
        this.#readsDue.add(conv.key);
        // Once the last of a run is confirmed: its tokens are better spent on messages.
        if (!conv.pending.value.some((p) => p.state !== "failed")) this.#scheduleRead();
      } else if (conv.read.value >= lastBefore && f.id > conv.read.value) {
        // Written on another device by someone who had read everything before it.
        conv.read.value = f.id;
      }
      return;
    }
    const hidden = !this.visible.value;
    const level = this.levelOf(key);
    if (hidden && (level === "all" || (level === "mentions" && this.mentionsMe(conv, f)))) {
      // A message of files alone says what they are.
      const text = f.text !== "" ? f.text : filesLine(f.files ?? []);
      this.#notify({
        title: conv.kind === "dm" ? `${f.from} (direct message)` : `${f.from} in #${conv.name}`,
        body: text.length > 200 ? `${text.slice(0, 200)}…` : text,
        key,
      });
    }
  }

  /** Hands an alert to the page; whatever goes wrong there is logged, never thrown. */
  #notify(alert: Alert): void {
    const fail = (err: unknown) => {
      // deno-lint-ignore no-console
      console.warn("Cannot show a notification:", err);
    };
    try {
      const done = this.#env.notify?.(alert);
      if (done instanceof Promise) done.then(undefined, fail);
    } catch (err) {
      fail(err);
    }
  }

  /**
   * A message was edited, deleted or reacted to. Only the loaded copy
   * changes (an older one comes in its current state with its page), or a
   * deleted one never held gets its tombstone; it never counts as unread
   * and never notifies.
   */
  #onChange(f: ChangeFrame): void {
    if (f.ref !== undefined) this.#changes.delete(f.ref);
    const conv = this.convs.value.get(this.#current(convKey(f)));
    if (!conv) return;
    conv.change(f);
    if (conv.loaded.value && !conv.resuming && f.seq > conv.cursor) conv.cursor = f.seq;
  }

  #onError(f: ServerFrame & { type: "error" }): void {
    const waiting = f.ref === undefined ? undefined : this.#pushWaits.get(f.ref);
    if (waiting) {
      this.#pushWaits.delete(f.ref!);
      waiting(f.message);
      return;
    }
    const level = f.ref === undefined ? undefined : this.#levelRefs.get(f.ref);
    if (level) {
      this.#levelRefs.delete(f.ref!);
      this.#applyLevel(level.key, level.before);
      this.toast(`Cannot change the notifications: ${f.message}`, "level");
      return;
    }
    if (f.ref !== undefined && f.ref === this.#passwdRef) {
      this.#passwdRef = null;
      // The server's words: a wrong password, an account changed meanwhile, a wait.
      this.passwd.value = { busy: false, error: f.message, done: false };
      return;
    }
    if (f.ref !== undefined && this.#moderating.has(f.ref)) {
      const waiting = this.#moderating.get(f.ref)!;
      this.#moderating.delete(f.ref);
      waiting.reject(new Error(f.message));
      return;
    }
    if (f.code === "banned") {
      // A 4011 close follows: shown on the sign-in screen, and no retry.
      this.banned.value = f.message;
      this.#bannedGen = this.#gen;
      return;
    }
    if (!this.#welcomed || f.code === "auth_failed") {
      // Shown on the sign-in form (a 4003 close follows an auth_failed).
      this.authError.value = f.message;
      return;
    }
    if (f.ref !== undefined && this.#changes.has(f.ref)) {
      const kind = this.#changes.get(f.ref)!;
      this.#changes.delete(f.ref);
      this.toast(changeRefused(f, kind), "change");
      return;
    }
    if (f.ref !== undefined) {
      // A page of members refused: asked for again only when the limits were the reason.
      for (const conv of this.convs.value.values()) {
        if (conv.cancelMembers(f.ref, f.code !== "rate_limited")) {
          clearTimeout(this.#membersTimers.get(conv));
          this.#membersTimers.delete(conv);
          if (f.code !== "rate_limited") return;
          break;
        }
      }
    }
    if (f.code === "rate_limited") return this.#onRateLimited(f);
    if (f.ref !== undefined) {
      for (const conv of this.convs.value.values()) {
        const p = conv.pending.value.find((x) => x.ref === f.ref);
        if (!p) continue;
        if (this.#sentBeforeRename.delete(f.ref) && f.code !== "too_large") {
          // Refused for the room's old name: it goes again, with its ref, under the new one.
          this.#updatePending(conv, f.ref, { state: "queued" });
          this.#pump();
          return;
        }
        if (f.code === "unavailable") {
          // Not stored this time: sent again later, holding back the ones after it.
          const attempts = (p.attempts ?? 0) + 1;
          const wait = Math.min(MAX_STORE_RETRY, STORE_RETRY * 2 ** (attempts - 1));
          this.#updatePending(conv, f.ref, {
            state: "queued",
            attempts,
            retryAt: Date.now() + wait,
          });
          this.#pump();
        } else {
          this.#updatePending(conv, f.ref, { state: "failed", error: this.#reason(f, conv, p) });
        }
        return;
      }
    }
    if (f.code === "unknown_user") {
      // A direct conversation with someone who does not exist: drop it if empty.
      for (const conv of this.convs.value.values()) {
        if (
          conv.kind === "dm" && conv.inflight === "initial" && conv.newest === 0 &&
          conv.pending.value.length === 0
        ) {
          const next = new Map(this.convs.value);
          next.delete(conv.key);
          this.convs.value = next;
          if (this.active.value === conv.key) this.open(`#${LOBBY}`);
          break;
        }
      }
    }
    if (
      this.#openAfterJoin !== null && (f.code === "bad_request" || f.code === "unknown_room")
    ) this.#openAfterJoin = null;
    if (this.search.value?.busy) this.search.value = { ...this.search.value, busy: false };
    this.toast(f.message);
  }

  /**
   * The server dropped a frame for going too fast: nothing more for the time
   * it says, and the message it names — or, when it names none, every message
   * not confirmed yet — goes back in the queue for then. A message that did
   * get stored is confirmed meanwhile, or recognized by its ref when sent
   * again.
   */
  #onRateLimited(f: ErrorFrame): void {
    const wait = Math.max(1, f.retryAfter ?? 1) * 1000;
    this.#pacer?.pause(wait);
    const due = Date.now() + wait;
    let requeued = false;
    batch(() => {
      for (const conv of this.convs.value.values()) {
        if (!conv.pending.value.some((p) => p.state === "sending")) continue;
        conv.pending.value = conv.pending.value.map((p) => {
          if (p.state !== "sending" || (f.ref !== undefined && p.ref !== f.ref)) return p;
          requeued = true;
          return { ...p, state: "queued", retryAt: due };
        });
      }
    });
    const waiting = requeued ||
      [...this.convs.value.values()].some((c) => c.pending.value.some((p) => p.state !== "failed"));
    if (requeued) this.#pump();
    if (this.search.value?.busy) this.search.value = { ...this.search.value, busy: false };
    // Messages wait: say so in words, once. Otherwise the server's reason (a busy search).
    this.toast(waiting ? PACE_NOTICE : f.message, "pace");
  }

  /** Why the server refused a message, in the user's words. */
  #reason(f: ErrorFrame, conv: Conversation, p: Pending): string {
    if (f.code === "too_large") {
      const over = wireLength(p.text) - this.limits.value.maxMessage;
      return over > 0
        ? `This message is too long (${bytes(over)} over the limit)`
        : "This message is too long for the server";
    }
    if (f.code === "unknown_room") return notInRoom(conv.name);
    if (f.code === "unknown_file") {
      return "Its files are no longer on the server (a file not sent within an hour is removed): delete this message and attach them again";
    }
    return f.message;
  }

  // ---------------------------------------------------------------------------
  // Plumbing

  #ensure(key: string, member = true): Conversation {
    const existing = this.convs.value.get(key);
    if (existing) return existing;
    const conv = new Conversation(key, this.me);
    conv.member.value = member;
    // A new direct conversation has nothing to catch up on.
    if (conv.kind === "dm" && this.ready.value) conv.synced = true;
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
      frame.since = conv.cursor;
      frame.limit = MAX_PAGE;
    } else frame.limit = 50;
    if (this.#send(frame)) conv.inflight = kind;
    else if (kind === "older") conv.loadingOlder.value = false;
  }

  /**
   * The conversation caught up on this connection: what waited for it may go
   * out. A message that was on its way when the connection dropped goes again
   * with its ref; the server answers with the stored copy if it has one.
   */
  #flushPending(conv: Conversation): void {
    conv.synced = true;
    this.#pump();
  }

  /**
   * The user is no longer in a room that holds unsent messages: the room
   * stays listed, and its messages are marked as not sent with the reason.
   */
  #leftWithUnsent(conv: Conversation): void {
    const error = notInRoom(conv.name);
    batch(() => {
      conv.member.value = false;
      conv.synced = false;
      conv.pending.value = conv.pending.value.map((p) =>
        p.state === "queued" ? { ...p, state: "failed", error, retryAt: undefined } : p
      );
    });
  }

  /** Takes a conversation off the list. */
  #drop(conv: Conversation): void {
    if (this.convs.value.get(conv.key) !== conv) return;
    const next = new Map(this.convs.value);
    next.delete(conv.key);
    this.convs.value = next;
    if (this.active.value === conv.key) this.open(`#${LOBBY}`);
  }

  /** Why nothing can be sent in `conv` right now, or null. */
  #notIn(conv: Conversation): string | null {
    return conv.member.value ? null : notInRoom(conv.name);
  }

  /**
   * Loads `user`'s unsent messages and drafts into their conversations
   * (creating those) and saves them as they change from now on.
   */
  #adopt(user: string): void {
    const owner = this.#owner.peek();
    if (owner !== null && owner.toLowerCase() === user.toLowerCase()) return;
    const unsent = loadUnsent(this.#env.storage, user);
    const drafts = loadDrafts(this.#env.storage, user);
    batch(() => {
      const convs = new Map(this.convs.value);
      for (const key of new Set([...unsent.keys(), ...drafts.keys()])) {
        let conv = convs.get(key);
        if (!conv) convs.set(key, conv = new Conversation(key, this.me));
        const restored = unsent.get(key);
        if (restored) {
          const refs = new Set(restored.map((p) => p.ref));
          conv.pending.value = [
            ...restored,
            ...conv.pending.value.filter((p) => !refs.has(p.ref)),
          ];
        }
        const draft = drafts.get(key);
        if (draft !== undefined && conv.draft.value === "") conv.draft.value = draft;
      }
      this.#draftsSaved = drafts;
      this.#unsentSaved = new Set([...unsent.values()].flat().map((p) => p.ref));
      this.convs.value = convs;
      this.#owner.value = user;
    });
  }

  #storageFull(): void {
    if (this.#storageWarned) return;
    this.#storageWarned = true;
    untracked(() =>
      this.toast(
        "Unsent messages and drafts cannot be kept on this device (its storage is full or off): they are lost if the page closes",
      )
    );
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
    if (conv.loadingOlder.value || conv.inflight !== null) return;
    this.#jump = null;
    this.toast("That message is no longer here: it may have been too old to keep");
  }

  #stopTyping(): void {
    const sent = this.#typingSent;
    this.#typingSent = null;
    clearTimeout(this.#typingLater);
    this.#typingLater = undefined;
    // A message cleared the flag on the server already.
    if (!sent || sent.cleared) return;
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
      for (const key of this.#readsDue) {
        const c = this.convs.value.get(key);
        if (c?.pending.value.some((p) => p.state !== "failed")) continue;
        this.#readsDue.delete(key);
        if (c && this.ready.value) this.#send({ type: "read", id: c.read.value, ...c.target });
      }
      const conv = this.current.value;
      if (!conv || !this.ready.value || !this.visible.value || !conv.atBottom.value) return;
      const newest = conv.newest;
      if (newest <= conv.read.value) return;
      if (this.#send({ type: "read", id: newest, ...conv.target })) conv.read.value = newest;
    }, 150);
  }

  /** Forgets everything about the signed-in user. */
  #reset(): void {
    // What the user left unsent stays in storage, theirs alone, for their next sign-in.
    this.saveDrafts();
    this.#readsDue.clear();
    this.#addedBy.clear();
    this.#renamed.clear();
    this.#sentBeforeRename.clear();
    this.#abortUploads();
    batch(() => {
      this.#owner.value = null;
      this.#draftsSaved = new Map();
      this.#unsentSaved = new Set();
      this.me.value = null;
      this.role.value = null;
      this.convs.value = new Map();
      this.active.value = null;
      this.online.value = new Set();
      this.roomList.value = null;
      this.search.value = null;
      this.#auth = null;
      this.#jump = null;
      this.#link = null;
      this.#openAfterJoin = null;
      this.people.value = null;
      this.peopleFound.value = null;
      this.passwd.value = null;
      this.#passwdRef = null;
      this.push.value = null;
      this.levels.value = new Map();
    });
    this.#dropLookups();
  }

  /** People lookups the server will not answer now: they fail as "offline". */
  #dropLookups(): void {
    for (const waiting of this.#lookups.values()) for (const resolve of waiting) resolve(null);
    this.#lookups.clear();
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

/** Why the server refused an edit, a delete or a reaction, in the user's words. */
function changeRefused(f: ErrorFrame, kind: "edit" | "delete" | "react"): string {
  switch (f.code) {
    case "forbidden":
      return kind === "edit"
        ? "You can only edit your own messages"
        : kind === "delete"
        ? "You can only delete your own messages"
        : f.message;
    case "unknown_message":
      return "That message no longer exists";
    case "too_many_reactions":
      return tooManyReactions();
    case "too_large":
      return "The edited message is too long";
    case "rate_limited":
      return "You're going too fast: try again in a moment";
    default:
      return f.message;
  }
}

/**
 * Why the composer's message cannot go while `failed` files are in it: a
 * file that cannot be uploaded (too large, empty, refused) must be removed,
 * one that failed on the way may be retried. `rest`: the message has more
 * (text or other files), which goes once the failed ones are out.
 */
function failedProblem(failed: readonly Upload[], rest: boolean): string {
  const retry = failed.some((u) => u.retry);
  const one = failed.length === 1;
  const what = one ? `“${failed[0].name}”` : `${failed.length} files`;
  const then = rest ? " to send the rest" : "";
  if (retry) {
    return `${what} ${one ? "was" : "were"} not uploaded: retry ${one ? "it" : "them"} or remove ${
      one ? "it" : "them"
    }${then || " first"}`;
  }
  return `${what} cannot be sent: remove ${one ? "it" : "them"}${then}`;
}

function tooManyFiles(): string {
  return `A message carries at most ${MAX_FILES} files`;
}

/** A name for a pasted file that has none ("image.png"). */
function defaultName(type: string): string {
  const ext = /^image\/(png|jpeg|gif|webp)$/.exec(type)?.[1];
  return ext ? `image.${ext === "jpeg" ? "jpg" : ext}` : "file";
}

function tooManyReactions(): string {
  return `A message can have at most ${MAX_REACTIONS} different reactions`;
}

/** The recently used reaction emoji kept on this browser. */
function savedEmoji(storage: ChatEnv["storage"]): string[] {
  try {
    const v = JSON.parse(storage.getItem(EMOJI_KEY) ?? "[]");
    if (Array.isArray(v)) {
      return v.filter((e) => typeof e === "string" && e.length > 0 && e.length <= 32).slice(
        0,
        RECENT_EMOJI,
      );
    }
  } catch {
    // Unreadable: none.
  }
  return [];
}

function notInRoom(room: string): string {
  return `You're not in #${room} any more: join it again, then retry`;
}

/** A random message ref (33 characters): unique across reloads and devices. */
function newRef(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return `w${Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("")}`;
}

function sameDrafts(a: DraftMap, b: DraftMap): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

/** The limits the last welcome announced, kept for before the next one. */
function savedLimits(storage: ChatEnv["storage"]): SendLimits {
  try {
    const v = JSON.parse(storage.getItem(LIMITS_KEY) ?? "null");
    if (
      v && Number.isInteger(v.rate) && v.rate > 0 && Number.isInteger(v.burst) && v.burst > 0 &&
      Number.isInteger(v.maxMessage) && v.maxMessage > 0
    ) return { rate: v.rate, burst: v.burst, maxMessage: v.maxMessage };
  } catch {
    // Unreadable: the defaults.
  }
  return DEFAULT_LIMITS;
}
