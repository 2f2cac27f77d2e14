// This module is browser compatible.
/**
 * The wire protocol: frame types shared by the server, the web client, the
 * terminal client and the benchmarks, and the parser that turns a client's
 * text frame into a typed, validated value.
 *
 * Client → server frames are one JSON object each. Server → client frames may
 * carry several JSON objects separated by `\n` (see {@link splitFrames}).
 *
 * @module
 */

/** Rooms and usernames: 1-32 letters, digits, `-` or `_`. */
export const NAME_PATTERN: RegExp = /^[A-Za-z0-9_-]{1,32}$/;

/**
 * Usernames nobody may take at sign-up or in open mode, in any case: they
 * would pass for the server or address everyone.
 */
export const RESERVED_NAMES: readonly string[] = [
  "admin",
  "system",
  "root",
  "server",
  "everyone",
  "here",
  "room",
  "chat",
];

/** Whether `name` is one of {@link RESERVED_NAMES}, ignoring case. */
export function isReservedName(name: string): boolean {
  return RESERVED_NAMES.includes(name.toLowerCase());
}

/** Largest client frame the server reads, in bytes. */
export const MAX_FRAME_BYTES = 64 * 1024;

/**
 * Default largest message text (`--max-message`), in bytes as the text
 * travels: UTF-8, with `"`, `\\`, newlines and tabs counted twice, as JSON
 * escapes them (see {@link wireLength}).
 */
export const DEFAULT_MAX_MESSAGE_BYTES = 4096;

/** Longest room topic, in bytes as it travels ({@link wireLength}). */
export const MAX_TOPIC_BYTES = 300;

/** Most people one `users` reply lists. */
export const MAX_DIRECTORY = 500;

/**
 * The send limits a server has unless told otherwise (`--rate`, `--burst`,
 * `--max-message`): the server's config and the web app (before a `welcome`
 * says) both read them here.
 */
export const DEFAULT_SEND_LIMITS: Readonly<SendLimits> = {
  rate: 20,
  burst: 60,
  maxMessage: DEFAULT_MAX_MESSAGE_BYTES,
};

/** Largest `limit` a `history` or `search` request may ask for. */
export const MAX_PAGE = 200;

/** Messages replayed in a `joined` frame when no `since` is given. */
export const JOIN_REPLAY = 50;

/**
 * Members a `joined` frame lists at most (the first ones by name); a
 * `members` request pages through the rest, up to {@link MAX_PAGE} a page.
 */
export const MEMBERS_PAGE = 100;

/** The room every user belongs to. */
export const LOBBY = "general";

/** Most different emoji one message may carry as reactions. */
export const MAX_REACTIONS = 20;

/**
 * Most reactions one message may carry in all (people × emoji): bounds the
 * size of a message however large its room.
 */
export const MAX_REACTIONS_TOTAL = 1000;

/** Characters of the original a reply quotes (`replyTo.snippet`). */
export const SNIPPET_CHARS = 200;

/** Unread counts in `welcome` stop at this many (shown as "99+"). */
export const UNREAD_CAP = 100;

/** Longest reaction emoji, in UTF-8 bytes (the longest standard sequences take 35). */
export const MAX_EMOJI_BYTES = 64;

/** Error codes carried by `error` frames. */
export type ErrorCode =
  | "bad_request"
  | "auth_failed"
  | "not_authenticated"
  | "name_taken"
  | "too_large"
  | "rate_limited"
  | "limit_reached"
  | "unknown_room"
  | "unknown_user"
  | "unavailable"
  | "signup_disabled"
  | "forbidden"
  | "unknown_message"
  | "too_many_reactions"
  | "unknown_file"
  | "banned"
  | "bad_endpoint";

/** WebSocket close codes the server uses (4000-4999 are the application's). */
export const CloseCode = {
  /** The server is going away (shutdown or restart); reconnect later. */
  GoingAway: 1001,
  /** No `auth` frame arrived in time, or a frame came before it. */
  NotAuthenticated: 4001,
  /** Credentials or token were rejected, the user was removed, or the session signed out. */
  AuthFailed: 4003,
  /** The client did not read its frames fast enough; reconnect and resume. */
  SlowConsumer: 4008,
  /** A frame sent before sign-in was invalid, too large or binary. */
  BadFrame: 4002,
  /** Open mode: the name is held by someone else (or reserved). */
  NameTaken: 4009,
  /** An admin banned the user from the chat; they cannot sign in until unbanned. */
  Banned: 4011,
  /** Too many connections or frames; wait and reconnect. */
  RateLimited: 4029,
} as const;

// ---------------------------------------------------------------------------
// Client → server

/** `{"type":"auth",...}`: the first frame; a password, a name (open mode) or a token. */
export interface AuthFrame {
  /** Always `"auth"`. */
  type: "auth";
  /** Login mode: the account name; open mode: the name to use. */
  username?: string;
  /** Login mode: the account's password. */
  password?: string;
  /** A token from an earlier `welcome`, instead of a password. */
  token?: string;
  /**
   * With a password: a token this device was given earlier for the same user
   * (expired or signed out is fine). Such a sign-in is throttled per device
   * instead of per username, so others guessing the password never slow the
   * real user down.
   */
  device?: string;
}
/** `{"type":"register",...}`: create an account, where the server allows signup. */
export interface RegisterFrame {
  /** Always `"register"`. */
  type: "register";
  /** The new account's name: 1-32 letters, digits, - or _. */
  username: string;
  /** The new account's password. */
  password: string;
}
/** A conversation is a room or a direct-message peer (`to`). */
export type Target = { room: string; to?: undefined } | {
  to: string;
  room?: undefined;
};
/** Join (and create, if new) a room; `since` asks for what was missed. */
export interface JoinFrame {
  /** Always `"join"`. */
  type: "join";
  /** The room's name: 1-32 letters, digits, - or _. */
  room: string;
  /**
   * The conversation position (`seq`) the client is up to date with: the
   * `joined` reply brings what was created or changed after it.
   */
  since?: number;
  /**
   * Create the room private (only when it does not exist yet): only its
   * members see it, and they add others with `invite`.
   */
  private?: boolean;
}
/** Leave a room for all of the user's connections. */
export interface LeaveFrame {
  /** Always `"leave"`. */
  type: "leave";
  /** The room to leave. */
  room: string;
}
/** List the rooms that exist. */
export interface RoomsFrame {
  /** Always `"rooms"`. */
  type: "rooms";
}
/**
 * Send a message to a room or a user; `ref` is echoed on the sender's copy;
 * `replyTo` names a message of the same conversation it answers.
 */
export type SendFrame = {
  type: "send";
  /** The text; may be empty (`""`) when `files` is set. */
  text: string;
  ref?: string;
  replyTo?: number;
  /**
   * Ids of the sender's own uploads (`POST /api/files`), at most
   * {@link MAX_FILES}, each not yet sent: the message carries them.
   */
  files?: string[];
} & Target;
/**
 * Replace the text of one's own message. Blank text is `""`, which the
 * server accepts only for a message with files (the files stay).
 */
export type EditFrame = { type: "edit"; id: number; text: string; ref?: string } & Target;
/** Delete one's own message: it stays as a tombstone, its text is gone. */
export type DeleteFrame = { type: "delete"; id: number; ref?: string } & Target;
/** Add (`on: true`) or remove one's reaction to a message. */
export type ReactFrame = {
  type: "react";
  id: number;
  emoji: string;
  on: boolean;
  ref?: string;
} & Target;
/** Typing indicator for a room or a DM. */
export type TypingFrame = { type: "typing"; active: boolean } & Target;
/**
 * A page of history: messages older than `before` (an id), or everything
 * created or changed after the position `since` (a `seq`).
 */
export type HistoryFrame = {
  type: "history";
  before?: number;
  since?: number;
  limit?: number;
} & Target;
/** The user has read a conversation up to `id`. */
export type ReadFrame = { type: "read"; id: number } & Target;
/** Full-text search over what the user can see. */
export interface SearchFrame {
  /** Always `"search"`. */
  type: "search";
  /** The words to look for. */
  q: string;
  /** Search only this room. */
  room?: string;
  /** Search only the direct messages with this user. */
  to?: string;
  /** Most results to return. */
  limit?: number;
}
/** Keep-alive; answered with `pong`. */
export interface PingFrame {
  /** Always `"ping"`. */
  type: "ping";
}
/** Everyone who has an account (open mode: everyone seen recently), optionally filtered. */
export interface UsersFrame {
  /** Always `"users"`. */
  type: "users";
  /** Only names containing this text, ignoring case. */
  q?: string;
}
/** A page of a room's members, by name, after `after`; members of the room only. */
export interface MembersFrame {
  /** Always `"members"`. */
  type: "members";
  /** The room. */
  room: string;
  /** Only names after this one (the last name of the previous page). */
  after?: string;
  /** Most names to return (1 to {@link MAX_PAGE}; default {@link MEMBERS_PAGE}). */
  limit?: number;
  /** Echoed on an error about this request. */
  ref?: string;
}
/** Sets (or, with `""`, clears) a room's topic; members only. */
export interface TopicFrame {
  /** Always `"topic"`. */
  type: "topic";
  /** The room whose topic changes. */
  room: string;
  /** The new topic; `""` clears it. */
  topic: string;
}
/** Changes the user's own password (login mode); other sessions are signed out. */
export interface PasswdFrame {
  /** Always `"passwd"`. */
  type: "passwd";
  /** The current password. */
  current: string;
  /** The new password. */
  password: string;
  /** Echoed on the reply. */
  ref?: string;
}
/** Longest ban reason, in characters. */
export const MAX_BAN_REASON = 200;

/** Longest ban, in seconds (ten years); a ban without a duration lasts until lifted. */
export const MAX_BAN_SECONDS = 10 * 365 * 24 * 3600;

/**
 * Admins only: bans a user from the whole chat. Their connections on every
 * node close with {@link CloseCode.Banned}; they cannot sign in, and their
 * tokens do not work, until the ban ends or is lifted.
 */
export interface BanFrame {
  /** Always `"ban"`. */
  type: "ban";
  /** Who is banned. */
  user: string;
  /** Why, shown to them (at most {@link MAX_BAN_REASON} characters). */
  reason?: string;
  /** How long, in seconds; absent: until unbanned. */
  duration?: number;
  /** Echoed on the reply. */
  ref?: string;
}
/** Admins only: lifts a user's ban. */
export interface UnbanFrame {
  /** Always `"unban"`. */
  type: "unban";
  /** Whose ban ends. */
  user: string;
  /** Echoed on the reply. */
  ref?: string;
}
/**
 * A member of a room adds `user` to it (the way into a private room): they
 * become a member at once and their connections get `invited`.
 */
export interface InviteFrame {
  /** Always `"invite"`. */
  type: "invite";
  /** The room (the asker must be a member). */
  room: string;
  /** Who is added. */
  user: string;
  /** Echoed on the reply. */
  ref?: string;
}
/** Admins only: changes what kind of room a room is; each field given is set or cleared. */
export interface RoomSettingsFrame {
  /** Always `"room_settings"`. */
  type: "room_settings";
  /** The room. */
  room: string;
  /** Members only see it. */
  private?: boolean;
  /** Only admins may send (announcements). */
  readOnly?: boolean;
  /** Kept, read-only for everyone, out of the rooms list. */
  archived?: boolean;
  /** New accounts join it, as they join `general`. */
  autoJoin?: boolean;
  /** Only admins may notify everyone in it with `@room` or `@here` (see {@link mentionsRoom}). */
  restrictRoomMentions?: boolean;
  /** Echoed on the reply. */
  ref?: string;
}
/**
 * Admins only: renames a room. Its history, members, read markers, topic,
 * settings and files go with it; every member is told (`room_renamed`).
 */
export interface RenameRoomFrame {
  /** Always `"rename_room"`. */
  type: "rename_room";
  /** The room's name now. */
  room: string;
  /** Its new name (no room may have it). */
  name: string;
  /** Echoed on the reply. */
  ref?: string;
}
/** Admins only: removes a user from a room (they may join a public room again). */
export interface KickFrame {
  /** Always `"kick"`. */
  type: "kick";
  /** The room. */
  room: string;
  /** Who is removed from it. */
  user: string;
  /** Echoed on the reply. */
  ref?: string;
}
/** Marks every conversation of the user read up to its newest message. */
export interface ReadAllFrame {
  /** Always `"read_all"`. */
  type: "read_all";
}
/**
 * Whether this connection's page is visible now. A connection that never
 * says counts as visible (the terminal client never says); the server sends
 * no push to a user who has a visible connection anywhere. No answer.
 */
export interface VisibleFrame {
  /** Always `"visible"`. */
  type: "visible";
  /** The page is visible (`document.visibilityState === "visible"`). */
  visible: boolean;
}
/** Longest push endpoint URL, in characters. */
export const MAX_PUSH_ENDPOINT = 1024;
/** Bytes of a subscription's `p256dh` key (an uncompressed P-256 point). */
export const PUSH_P256DH_BYTES = 65;
/** Bytes of a subscription's `auth` secret. */
export const PUSH_AUTH_BYTES = 16;
/** A browser's push subscription, as `PushSubscription.toJSON()` gives it. */
export interface PushSubscriptionInfo {
  /** The push service's URL for this device (https). */
  endpoint: string;
  /** The keys the payload is encrypted for (RFC 8291), base64url without padding. */
  keys: {
    /** The device's public key: an uncompressed P-256 point ({@link PUSH_P256DH_BYTES} bytes). */
    p256dh: string;
    /** The shared authentication secret ({@link PUSH_AUTH_BYTES} bytes). */
    auth: string;
  };
}
/**
 * Keep this device's push subscription for the signed-in user and session
 * (signing that session out removes it); answered with `push_subscribed`.
 * Subscribing an endpoint again replaces its keys.
 */
export interface PushSubscribeFrame {
  /** Always `"push_subscribe"`. */
  type: "push_subscribe";
  /** The subscription. */
  subscription: PushSubscriptionInfo;
  /** Echoed on the reply. */
  ref?: string;
}
/** Forget one of the user's own push subscriptions; answered with `push_unsubscribed`. */
export interface PushUnsubscribeFrame {
  /** Always `"push_unsubscribe"`. */
  type: "push_unsubscribe";
  /** The subscription's endpoint. */
  endpoint: string;
  /** Echoed on the reply. */
  ref?: string;
}
/** How much of a conversation notifies the user (pushes and in-app notifications). */
export type NotifyLevel = "all" | "mentions" | "none";
/** The level of a room (default `"mentions"`) or a DM (default `"all"`). */
export const DEFAULT_ROOM_LEVEL: NotifyLevel = "mentions";
/** The level of a direct-message conversation nobody set. */
export const DEFAULT_DM_LEVEL: NotifyLevel = "all";
/**
 * Set the user's notification level of a room they are in or of the DMs
 * with a user; every connection of the user gets the `notify_level` back.
 */
export type NotifyLevelFrame = {
  type: "notify_level";
  level: NotifyLevel;
  ref?: string;
} & Target;

/** Every frame a client may send. */
export type ClientFrame =
  | AuthFrame
  | RegisterFrame
  | JoinFrame
  | LeaveFrame
  | RoomsFrame
  | SendFrame
  | EditFrame
  | DeleteFrame
  | ReactFrame
  | TypingFrame
  | HistoryFrame
  | ReadFrame
  | SearchFrame
  | PingFrame
  | UsersFrame
  | MembersFrame
  | TopicFrame
  | PasswdFrame
  | ReadAllFrame
  | BanFrame
  | UnbanFrame
  | KickFrame
  | InviteFrame
  | RoomSettingsFrame
  | RenameRoomFrame
  | VisibleFrame
  | PushSubscribeFrame
  | PushUnsubscribeFrame
  | NotifyLevelFrame;

// ---------------------------------------------------------------------------
// Server → client

/** The message a reply answers, as it is now. */
export interface ReplyRef {
  /** The original's id. */
  id: number;
  /** Who wrote the original. */
  from: string;
  /** The original's first {@link SNIPPET_CHARS} characters, one line; `""` once deleted. */
  snippet: string;
  /** The original was deleted. */
  deleted?: true;
}

/** A stored chat message, as delivered, in its current state. */
export interface ChatMessage {
  /**
   * The message's position in its conversation when it was created: ids only
   * grow, but skip the positions edits, deletes and reactions took.
   */
  id: number;
  /** The position of the message's latest change (its `id` until it changes). */
  seq: number;
  /** Set for room messages. */
  room?: string;
  /** Set for direct messages: the recipient. */
  to?: string;
  /** Who sent it. */
  from: string;
  /** The message text. */
  text: string;
  /** ISO-8601 UTC. */
  ts: string;
  /** Only on the sender's own copy. */
  ref?: string;
  /** ISO-8601 UTC: when the text was last edited. */
  edited?: string;
  /** The message was deleted: a tombstone with empty text. */
  deleted?: true;
  /** On a tombstone: an admin removed the message (someone else's), not its author. */
  removed?: true;
  /** Emoji → who reacted with it, in the order they did; absent when none. */
  reactions?: Record<string, string[]>;
  /** The message this one answers. */
  replyTo?: ReplyRef;
  /** Attached files, in the order they were sent; absent when none (and on a tombstone). */
  files?: FileInfo[];
}

/**
 * A file attached to a message (see docs/protocol.md, "Files"). The type is
 * decided by the server from the file's bytes, never from the name.
 */
export interface FileInfo {
  /** Unguessable id (22 characters, base64url). */
  id: string;
  /** The file name, cleaned by the server (no paths, controls or bidi overrides; ≤ 255 bytes). */
  name: string;
  /** Size in bytes, as stored (photos are stored without their metadata). */
  size: number;
  /** Media type sniffed from the bytes (`image/png`, `application/pdf`, `application/octet-stream`…). */
  type: string;
  /**
   * Where the receiving user downloads it: a path on the server, signed for
   * that user and checked against the conversation's members on every
   * request. Set on every frame the server sends; absent only inside the store.
   */
  url?: string;
  /** Images: width in pixels, as the picture shows (orientation applied). */
  width?: number;
  /** Images: height in pixels, as the picture shows. */
  height?: number;
}

/** Most files one message carries. */
export const MAX_FILES = 10;

/** What a file id looks like: 22 base64url characters (128 random bits). */
export const FILE_ID = /^[A-Za-z0-9_-]{22}$/;
/** The limits a `welcome` announces (`--rate`, `--burst`, `--max-message`). */
export interface SendLimits {
  /** Frames per second a connection may send, sustained (every frame counts). */
  rate: number;
  /** Frames a connection may send in a burst. */
  burst: number;
  /** Largest message text, in bytes as it travels ({@link wireLength}). */
  maxMessage: number;
  /**
   * Rooms with more members than this take `@room`/`@here` from admins only
   * (anyone else's is an ordinary word there); absent: rooms of any size.
   */
  roomMentionMax?: number;
}

/** A conversation the user has, with its newest id and read marker. */
export interface Conversation {
  /** The room, for a room conversation. */
  room?: string;
  /** The peer, for a direct-message conversation. */
  to?: string;
  /** Newest message id (0 when empty). */
  last: number;
  /** Read marker: the newest id the user has read. */
  read: number;
  /** The conversation's position: its latest creation or change (0 when empty). */
  seq: number;
  /**
   * Messages from others after `read` that are not deleted, counted up to
   * {@link UNREAD_CAP}.
   */
  unread: number;
}
/** Sent once after a successful `auth`. */
export interface WelcomeFrame {
  /** Always `"welcome"`. */
  type: "welcome";
  /** The signed-in name, as the account spells it. */
  user: string;
  /** Token to sign in with next time instead of a password. */
  token: string;
  /** Rooms the user is a member of. */
  rooms: string[];
  /** Everyone online (empty above 500 online users: see `onlineCount`). */
  online: string[];
  /** Set instead of a list when more than 500 users are online. */
  onlineCount?: number;
  /** `"login"` when the server has accounts, else `"open"`. */
  mode: "open" | "login";
  /** The user's role (login mode only): admins manage people, invites and rooms. */
  role?: "admin" | "member";
  /** What this connection may send: clients pace themselves to stay within it. */
  limits: SendLimits;
  /** Rooms first, then direct messages (unread first), as many as fit in one reply. */
  conversations: Conversation[];
  /** Some direct-message conversations did not fit; they show up as messages arrive. */
  more?: boolean;
  /**
   * Rooms of the user's renamed lately (`rename_room`), newest first: a name
   * the client may hold from before it was away (`room`) and the room's name
   * now (`name`). A client moves what it keeps under `room` to `name`; a name
   * the user is in now (a new room of an old name) is never listed. Absent
   * when there are none.
   */
  renamed?: RoomRename[];
  /** Web Push, when the server has it on (absent when it is off). */
  push?: PushInfo;
  /**
   * The user's notification levels that differ from the default, keyed
   * `#room` or `@user`; absent when there are none.
   */
  levels?: Record<string, NotifyLevel>;
}
/** What a client needs to subscribe to pushes (see {@link WelcomeFrame.push}). */
export interface PushInfo {
  /** The server's VAPID public key: an uncompressed P-256 point, base64url (`applicationServerKey`). */
  key: string;
  /** Pushes carry no message text or room name ("New message from bob"). */
  contentFree: boolean;
}
/**
 * What a push carries (encrypted, RFC 8291) to the web app's service worker:
 * a message to show, or word that the user read a conversation elsewhere.
 */
export type PushPayload = PushMessagePayload | PushReadPayload;
/** A message that should notify: one notification per conversation (`conv` is its tag). */
export interface PushMessagePayload {
  /** Payload version. */
  v: 1;
  /** Always `"message"`. */
  kind: "message";
  /** The conversation key as the web app uses it: `#room` or `@peer`. */
  conv: string;
  /** The message's id. */
  id: number;
  /** Who wrote it. */
  from: string;
  /** The notification's title (`"bob in #dev"`; content-free: `"New message from bob"`). */
  title: string;
  /** The message's text, shortened (content-free: `""`). */
  body: string;
  /** Where a click opens the app: `/#/dev/42` or `/#/@bob`. */
  url: string;
}
/** The user read `conv` up to `id` on some device: close its notifications. */
export interface PushReadPayload {
  /** Payload version. */
  v: 1;
  /** Always `"read"`. */
  kind: "read";
  /** The conversation key: `#room` or `@peer`. */
  conv: string;
  /** Read up to this id. */
  id: number;
}
/** A room's old name and its name now (see {@link WelcomeFrame.renamed}). */
export interface RoomRename {
  /** The old name. */
  room: string;
  /** The room's name now. */
  name: string;
}
/** A chat message in a room or a DM. */
export type MessageFrame = { type: "message" } & ChatMessage;
/** The user is in `room` (after a join, on any of its connections). */
export interface JoinedFrame {
  /** Always `"joined"`. */
  type: "joined";
  /** The room joined. */
  room: string;
  /**
   * The first members by name: at most {@link MEMBERS_PAGE}, fewer when the
   * reply's size requires; page on with a `members` request.
   */
  members: string[];
  /**
   * How many members the room has (more than `members` holds when it is cut
   * short). Always sent; servers before it sent it only when cut short.
   */
  memberCount?: number;
  /** The room's topic, when it has one. */
  topic?: string;
  /** Only members see the room. */
  private?: true;
  /** Only admins may send in it. */
  readOnly?: true;
  /** Archived: read-only for everyone. */
  archived?: true;
  /** A default room: new accounts join it. */
  autoJoin?: true;
  /** Only admins may use `@room` and `@here` in it. */
  restrictRoomMentions?: true;
  /**
   * The newest messages (by id); or, after the join's `since`, every message
   * created or changed since, in its current state, by `seq`.
   */
  history: ChatMessage[];
  /** More messages than fitted follow; page with `history` and `since: seq`. */
  more?: boolean;
  /** Some changes after `since` are no longer known: what the client holds may be stale. */
  gap?: boolean;
  /** The position this reply brings the client up to: the next `since`. */
  seq: number;
}
/** The user left `room` (on any of its connections). */
export interface LeftFrame {
  /** Always `"left"`. */
  type: "left";
  /** The room left. */
  room: string;
  /** The admin who removed the user (a `kick`), when it was not the user's own leave. */
  by?: string;
}
/** Someone else joined or left a room; or the server is shutting down. */
export interface SystemFrame {
  /** Always `"system"`. */
  type: "system";
  /** The room, for `join` and `leave`. */
  room?: string;
  /** What happened. */
  event: "join" | "leave" | "shutdown";
  /** Who joined or left. */
  user?: string;
  /** For a `leave`: the admin who removed them (a `kick`). */
  by?: string;
  /** ISO-8601 UTC. */
  ts: string;
}
/** Someone else started or stopped typing. */
export type TypingEventFrame = {
  type: "typing";
  user: string;
  active: boolean;
} & Target;
/**
 * Who is online (each user once, however many connections). While few users
 * are online (at most 200) the frame lists them all in `online`; above that it
 * carries `count` and the users whose status changed since the previous
 * presence frame (docs/protocol.md, "Presence at scale").
 */
export type PresenceFrame = PresenceListFrame | PresenceDeltaFrame;
/** Everyone online, sorted. */
export interface PresenceListFrame {
  /** Always `"presence"`. */
  type: "presence";
  /** Everyone online, sorted. */
  online: string[];
  /** Absent: this is the full list. */
  count?: undefined;
}
/** Changes since the previous presence frame, for large chats. */
export interface PresenceDeltaFrame {
  /** Always `"presence"`. */
  type: "presence";
  /** Number of users online now (above 500, `added` and `removed` are empty). */
  count: number;
  /** Users now online (sorted); some may already be in the client's list. */
  added: string[];
  /** Users now offline (sorted); some may already be missing from it. */
  removed: string[];
  /** Absent: this frame carries changes only. */
  online?: undefined;
}
/**
 * Who is online after a `presence` frame: the frame's list, or `online` with
 * the frame's changes applied (see docs/protocol.md, "Presence at scale").
 */
export function applyPresence(online: ReadonlySet<string>, frame: PresenceFrame): Set<string> {
  if (frame.online !== undefined) return new Set(frame.online);
  const next = new Set(online);
  for (const u of frame.added) next.add(u);
  for (const u of frame.removed) next.delete(u);
  return next;
}

/**
 * How many users are online in all when a frame carries only the count
 * (very large chats), else `null`: the names are then the whole story.
 */
export function presenceCount(frame: PresenceFrame | WelcomeFrame): number | null {
  if (frame.type === "welcome") return frame.onlineCount ?? null;
  return frame.online === undefined && frame.added.length === 0 && frame.removed.length === 0
    ? frame.count
    : null;
}

/** Rooms that exist, with member counts (and topics, where set). */
export interface RoomsListFrame {
  /** Always `"rooms"`. */
  type: "rooms";
  /**
   * Each room's name, member count, topic (where set) and kind (`private`,
   * `readOnly`, where set); private rooms only for their members, archived
   * ones for nobody.
   */
  rooms: ({ name: string; members: number; topic?: string } & RoomKind)[];
  /** More rooms exist than fitted in one reply. */
  more?: boolean;
}
/**
 * A page of history: by id for `before` (oldest first), by `seq` for
 * `since`. `seq` is the position a `since` page brings the client up to.
 */
export type HistoryPageFrame = {
  type: "history";
  messages: ChatMessage[];
  more: boolean;
  gap?: boolean;
  seq: number;
} & Target;
/**
 * A message's text was edited. In a DM, `to` is the other party as the
 * receiver sees it (as in requests).
 */
export type EditedFrame = {
  type: "edited";
  id: number;
  text: string;
  /** ISO-8601 UTC. */
  editedAt: string;
  seq: number;
  /** On the editor's own copy: the edit's `ref`. */
  ref?: string;
} & Target;
/** A message was deleted: it is a tombstone now. */
export type DeletedFrame = {
  type: "deleted";
  id: number;
  seq: number;
  /**
   * The message's author. With `ts`, what a client that does not hold the
   * message (it missed its creation) needs to place the tombstone at `id`.
   * Absent on an answer at `seq` 0 (a delete of a tombstone) and from older servers.
   */
  from?: string;
  /** When the message was sent (ISO-8601 UTC, as its `ts`); present with `from`. */
  ts?: string;
  /** An admin removed the message (someone else's): the tombstone says so. */
  removed?: true;
  ref?: string;
} & Target;
/** Someone added (`on`) or removed a reaction. */
export type ReactionFrame = {
  type: "reaction";
  id: number;
  emoji: string;
  user: string;
  on: boolean;
  seq: number;
  ref?: string;
} & Target;
/** A frame that changes a message that exists. */
export type ChangeFrame = EditedFrame | DeletedFrame | ReactionFrame;
/** Read marker update (sent to the user's other connections). */
export type ReadEventFrame = { type: "read"; id: number } & Target;
/** Search results, newest first. */
export interface SearchResultFrame {
  /** Always `"search"`. */
  type: "search";
  /** The query, echoed. */
  q: string;
  /** The matching messages, newest first. */
  messages: ChatMessage[];
  /** Older results exist than fitted in one reply: narrow the search. */
  more?: boolean;
}
/** Reply to `ping`. */
export interface PongFrame {
  /** Always `"pong"`. */
  type: "pong";
}
/** Someone in the directory: online now, or when last seen. */
export interface DirectoryEntry {
  /** The name as the account spells it. */
  name: string;
  /** Whether the user is connected now. */
  online: boolean;
  /** ISO-8601 UTC: when the user was last connected (absent if never, or online). */
  seen?: string;
}
/**
 * Reply to `users`: everyone but the asker, online first (by name, ignoring
 * case), then by last seen, newest first; never-seen last.
 */
export interface UsersListFrame {
  /** Always `"users"`. */
  type: "users";
  /** The request's `q`, echoed (absent when it had none). */
  q?: string;
  /** The people found, in the order above. */
  users: DirectoryEntry[];
  /** More people matched than fitted in one reply: narrow with `q`. */
  more?: boolean;
}
/** The answer to a {@link MembersFrame}: names after `after`, sorted. */
export interface MembersPageFrame {
  /** Always `"members"`. */
  type: "members";
  /** The room. */
  room: string;
  /** The request's `after`, echoed (absent when it had none). */
  after?: string;
  /** Members, sorted by name. */
  members: string[];
  /** How many members the room has. */
  count: number;
  /** More names follow: ask again with `after` set to the last one here. */
  more: boolean;
  /** The request's `ref`, echoed. */
  ref?: string;
}
/**
 * How many members a room has now, when joins and leaves are no longer
 * announced one by one (rooms of `--announce-below` members or more): at
 * most once per tick per room, to the room's members.
 */
export interface MemberCountFrame {
  /** Always `"member_count"`. */
  type: "member_count";
  /** The room. */
  room: string;
  /** How many members it has. */
  count: number;
}
/** A room's topic changed (`topic` is `""` when cleared); to the room's members. */
export interface TopicEventFrame {
  /** Always `"topic"`. */
  type: "topic";
  /** The room whose topic changed. */
  room: string;
  /** The new topic; `""` when cleared. */
  topic: string;
  /** Who changed it. */
  user: string;
  /** ISO-8601 UTC. */
  ts: string;
}
/**
 * The password was changed: a fresh token, of a new session, for the asking
 * connection (it stays open); every other connection of the user was signed
 * out, those of the asking session included.
 */
export interface PasswdDoneFrame {
  /** Always `"passwd"`. */
  type: "passwd";
  /** The new session's token. */
  token: string;
  /** The request's `ref`, echoed. */
  ref?: string;
}
/** Something went wrong with a frame; `ref` echoes the frame's `ref`. */
export interface ErrorFrame {
  /** Always `"error"`. */
  type: "error";
  /** What kind of error, for programs. */
  code: ErrorCode;
  /** What went wrong, for people. */
  message: string;
  /** The failing frame's `ref`, echoed. */
  ref?: string;
  /** For `rate_limited`: seconds to wait. */
  retryAfter?: number;
}

/** What kind of room a room is: each flag is absent when off. */
export interface RoomKind {
  /** Only its members see it. */
  private?: true;
  /** Only admins may send in it. */
  readOnly?: true;
  /** Kept and read-only for everyone, out of the rooms list. */
  archived?: true;
  /** New accounts join it (a default room). */
  autoJoin?: true;
  /** Only admins may notify everyone in it with `@room` or `@here` (see {@link mentionsRoom}). */
  restrictRoomMentions?: true;
}
/**
 * `user` was added to `room` by `by` (an `invite`): sent to each of their
 * connections (without `user`) and, as the answer, to the one that asked.
 */
export interface InvitedFrame {
  /** Always `"invited"`. */
  type: "invited";
  /** The room. */
  room: string;
  /** Who was added (in the answer to the asker). */
  user?: string;
  /** Who added them. */
  by: string;
  /** The `invite`'s ref (in the answer). */
  ref?: string;
}
/** A room's kind changed (an admin's `room_settings`): sent to its members and to the admin. */
export interface RoomSettingsChangedFrame {
  /** Always `"room_settings"`. */
  type: "room_settings";
  /** The room. */
  room: string;
  /** Its kind from now on. */
  settings: RoomKind;
  /** The admin who changed it. */
  by: string;
  /** The request's ref (to the admin who asked). */
  ref?: string;
}
/**
 * A room was renamed by an admin (`rename_room`): sent to its members on
 * every node and, as the answer, to the admin. Everything the room had is
 * under `name` from now on; frames about `room` sent before this one are
 * about the same room.
 */
export interface RoomRenamedFrame {
  /** Always `"room_renamed"`. */
  type: "room_renamed";
  /** The room's old name. */
  room: string;
  /** Its new name. */
  name: string;
  /** The admin who renamed it. */
  by: string;
  /** The request's ref (to the admin who asked). */
  ref?: string;
}
/** The answer to an admin's `ban`. */
export interface BannedFrame {
  /** Always `"banned"`. */
  type: "banned";
  /** Who is banned. */
  user: string;
  /** The admin who banned them. */
  by: string;
  /** The reason given, if any. */
  reason?: string;
  /** When the ban ends (ms since the epoch); absent: until unbanned. */
  until?: number;
  /** The `ban`'s ref. */
  ref?: string;
}
/** The answer to an admin's `unban`. */
export interface UnbannedFrame {
  /** Always `"unbanned"`. */
  type: "unbanned";
  /** Whose ban ended. */
  user: string;
  /** False when the user was not banned. */
  ok: boolean;
  /** The `unban`'s ref. */
  ref?: string;
}
/** The answer to an admin's `kick`. */
export interface KickedFrame {
  /** Always `"kicked"`. */
  type: "kicked";
  /** The room. */
  room: string;
  /** Who was removed. */
  user: string;
  /** The `kick`'s ref. */
  ref?: string;
}
/**
 * The user's role changed (an admin promoted or demoted them, or users.json
 * was edited): sent to each of the user's connections.
 */
export interface RoleFrame {
  /** Always `"role"`. */
  type: "role";
  /** The role from now on. */
  role: "admin" | "member";
}

/** The answer to `push_subscribe`. */
export interface PushSubscribedFrame {
  /** Always `"push_subscribed"`. */
  type: "push_subscribed";
  /** The subscription's endpoint. */
  endpoint: string;
  /** The request's ref. */
  ref?: string;
}
/** The answer to `push_unsubscribe` (also when there was no such subscription). */
export interface PushUnsubscribedFrame {
  /** Always `"push_unsubscribed"`. */
  type: "push_unsubscribed";
  /** The endpoint. */
  endpoint: string;
  /** The request's ref. */
  ref?: string;
}
/**
 * The user's notification level of a conversation changed: sent to each of
 * the user's connections on every node (`ref` only to the one that asked).
 */
export type NotifyLevelEventFrame = {
  type: "notify_level";
  level: NotifyLevel;
  ref?: string;
} & Target;

/** Every frame the server may send. */
export type ServerFrame =
  | PushSubscribedFrame
  | PushUnsubscribedFrame
  | NotifyLevelEventFrame
  | WelcomeFrame
  | RoleFrame
  | BannedFrame
  | UnbannedFrame
  | KickedFrame
  | InvitedFrame
  | RoomSettingsChangedFrame
  | RoomRenamedFrame
  | MessageFrame
  | JoinedFrame
  | LeftFrame
  | SystemFrame
  | TypingEventFrame
  | PresenceFrame
  | RoomsListFrame
  | HistoryPageFrame
  | EditedFrame
  | DeletedFrame
  | ReactionFrame
  | ReadEventFrame
  | SearchResultFrame
  | PongFrame
  | UsersListFrame
  | MembersPageFrame
  | MemberCountFrame
  | TopicEventFrame
  | PasswdDoneFrame
  | ErrorFrame;

/**
 * Splits one server text frame into its messages: the server coalesces
 * several messages into one frame, one JSON object per line.
 *
 * @example
 * ```ts
 * import { splitFrames } from "./protocol.ts";
 * const frames = splitFrames('{"type":"pong"}\n{"type":"pong"}');
 * if (frames.length !== 2) throw new Error("expected two");
 * ```
 */
export function splitFrames(data: string): ServerFrame[] {
  const out: ServerFrame[] = [];
  let start = 0;
  while (start < data.length) {
    let end = data.indexOf("\n", start);
    if (end === -1) end = data.length;
    if (end > start) out.push(JSON.parse(data.slice(start, end)));
    start = end + 1;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Parsing

/** A frame that failed validation; `code` and `message` go into the `error` frame. */
export class FrameError extends Error {
  /** The error code to report. */
  readonly code: ErrorCode;
  /** The `ref` of the offending frame, when it had one. */
  readonly ref?: string;
  /** Builds an error for the client. */
  constructor(code: ErrorCode, message: string, ref?: string) {
    super(message);
    this.name = "FrameError";
    this.code = code;
    if (ref !== undefined) this.ref = ref;
  }
}

/** Limits applied while parsing. */
export interface ParseOptions {
  /** Largest message text, in bytes as it travels ({@link wireLength}). @default {4096} */
  maxMessageBytes?: number;
}

/** Number of bytes `text` takes in UTF-8. */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/**
 * Bytes `text` takes inside a JSON string on the wire: its UTF-8 length plus
 * one for each character JSON escapes with a backslash among those message
 * text may hold (`"`, `\\`, newline, tab). The message cap counts this, so a
 * stored message can never grow when a reply carries it.
 */
export function wireLength(text: string): number {
  let bytes = utf8Length(text);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 || c === 0x5c || c === 0x0a || c === 0x09) bytes++;
  }
  return bytes;
}

/**
 * Control characters message text may not hold: C0 except tab and newline
 * (a carriage return is turned into a newline first), DEL and C1. They have
 * no use in a chat line, can hide text in terminals, and JSON turns each into
 * six bytes.
 */
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F]/;

/**
 * The text a `send` frame may carry, normalized: line breaks become `\n`.
 *
 * @throws {FrameError} `bad_request` for control characters, unpaired
 * surrogates or nothing visible; `too_large` past `maxBytes` ({@link wireLength}).
 */
export function checkMessageText(raw: string, maxBytes: number, ref?: string): string {
  const text = raw.includes("\r") ? raw.replace(/\r\n?/g, "\n") : raw;
  if (BLANK.test(text)) bad("Message text is empty", ref);
  if (CONTROL.test(text)) {
    bad("Message text may not contain control characters (other than tab and newline)", ref);
  }
  if (!text.isWellFormed()) bad("Message text is not valid Unicode (an unpaired surrogate)", ref);
  if (text.length * 3 > maxBytes && wireLength(text) > maxBytes) {
    throw new FrameError("too_large", `Message text is longer than ${maxBytes} bytes`, ref);
  }
  return text;
}

type Obj = Record<string, unknown>;

/** The flags a `room_settings` frame may set or clear. */
const SETTINGS = ["private", "readOnly", "archived", "autoJoin", "restrictRoomMentions"] as const;

/** A send's `files`: 1 to {@link MAX_FILES} different file ids, or undefined when absent. */
function fileIds(o: Obj, ref?: string): string[] | undefined {
  const v = o.files;
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) bad('Field "files" must be a list of file ids', ref);
  if (v.length === 0) return undefined;
  if (v.length > MAX_FILES) bad(`A message carries at most ${MAX_FILES} files`, ref);
  for (const id of v) {
    if (typeof id !== "string" || !FILE_ID.test(id)) {
      bad('Field "files" must hold file ids as returned by POST /api/files', ref);
    }
  }
  if (new Set(v).size !== v.length) bad('Field "files" names a file twice', ref);
  return v as string[];
}

function bad(message: string, ref?: string): never {
  throw new FrameError("bad_request", message, ref);
}

function optString(o: Obj, key: string, ref?: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") bad(`Field "${key}" must be a string`, ref);
  return v;
}

function name(o: Obj, key: string, what: string, ref?: string): string {
  const v = o[key];
  if (typeof v !== "string") {
    bad(
      v === undefined ? `Field "${key}" is required` : `Field "${key}" must be a string`,
      ref,
    );
  }
  if (!NAME_PATTERN.test(v)) {
    bad(
      `Invalid ${what} "${v.slice(0, 40)}": use 1-32 letters, digits, - or _`,
      ref,
    );
  }
  return v;
}

function optId(o: Obj, key: string, ref?: string): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    bad(`Field "${key}" must be a non-negative integer`, ref);
  }
  return v;
}

function messageId(o: Obj, ref?: string): number {
  const id = optId(o, "id", ref);
  if (id === undefined) bad('Field "id" is required', ref);
  if (id < 1) bad('Field "id" must be a message id (1 or more)', ref);
  return id;
}

function target(o: Obj, ref?: string): Target {
  const hasRoom = o.room !== undefined && o.room !== null;
  const hasTo = o.to !== undefined && o.to !== null;
  if (hasRoom && hasTo) bad('Give either "room" or "to", not both', ref);
  if (hasTo) return { to: name(o, "to", "username", ref) };
  if (!hasRoom) bad('Field "room" (or "to" for a direct message) is required', ref);
  return { room: name(o, "room", "room name", ref) };
}

function limit(o: Obj, ref?: string): number | undefined {
  const v = optId(o, "limit", ref);
  if (v === undefined) return undefined;
  if (v < 1 || v > MAX_PAGE) {
    bad(`Field "limit" must be between 1 and ${MAX_PAGE}`, ref);
  }
  return v;
}

/**
 * Nothing to show: whitespace, characters meant to be invisible (zero-width
 * spaces and joiners, soft hyphens, fillers, tags, variation selectors, the
 * BOM…) and the blank braille pattern.
 */
const BLANK = /^[\s\p{Default_Ignorable_Code_Point}\u2800]*$/u;

/**
 * Parses and validates one client frame.
 *
 * @throws {FrameError} with code `too_large` or `bad_request`, naming the problem.
 */
export function parseClientFrame(
  data: string,
  options: ParseOptions = {},
): ClientFrame {
  const maxText = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (data.length * 3 > MAX_FRAME_BYTES && utf8Length(data) > MAX_FRAME_BYTES) {
    throw new FrameError(
      "too_large",
      `Frame is larger than ${MAX_FRAME_BYTES} bytes`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    bad("Frame is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    bad("Frame must be a JSON object");
  }
  const o = value as Obj;
  const rawRef = o.ref;
  let ref: string | undefined;
  if (rawRef !== undefined && rawRef !== null) {
    if (typeof rawRef !== "string" || rawRef.length > 64) {
      bad('Field "ref" must be a string of at most 64 characters');
    }
    ref = rawRef;
  }
  const type = o.type;
  if (type === undefined && ("username" in o || "token" in o)) {
    // The seed-era first frame: {"username":…,"password":…}.
    return parseAuth(o);
  }
  if (typeof type !== "string") {
    bad(type === undefined ? 'Field "type" is required' : 'Field "type" must be a string');
  }
  switch (type) {
    case "auth":
      return parseAuth(o);
    case "register": {
      const username = name(o, "username", "username");
      const password = optString(o, "password");
      if (!password) bad('Field "password" is required');
      return { type, username, password };
    }
    case "join": {
      const room = name(o, "room", "room name");
      const since = optId(o, "since");
      const frame: JoinFrame = since === undefined ? { type, room } : { type, room, since };
      if (o.private !== undefined && o.private !== null) {
        if (typeof o.private !== "boolean") bad('Field "private" must be true or false');
        if (o.private) frame.private = true;
      }
      return frame;
    }
    case "invite": {
      const frame: InviteFrame = {
        type,
        room: name(o, "room", "room name", ref),
        user: name(o, "user", "user name", ref),
      };
      if (ref !== undefined) frame.ref = ref;
      return frame;
    }
    case "room_settings": {
      const frame: RoomSettingsFrame = { type, room: name(o, "room", "room name", ref) };
      for (const key of SETTINGS) {
        const v = o[key];
        if (v === undefined || v === null) continue;
        if (typeof v !== "boolean") bad(`Field "${key}" must be true or false`, ref);
        frame[key] = v;
      }
      if (SETTINGS.every((key) => frame[key] === undefined)) {
        bad(
          'Say what to change: "private", "readOnly", "archived", "autoJoin" or "restrictRoomMentions"',
          ref,
        );
      }
      if (ref !== undefined) frame.ref = ref;
      return frame;
    }
    case "rename_room": {
      const frame: RenameRoomFrame = {
        type,
        room: name(o, "room", "room name", ref),
        name: name(o, "name", "room name", ref),
      };
      if (frame.name === frame.room) bad(`#${frame.room} has that name already`, ref);
      if (ref !== undefined) frame.ref = ref;
      return frame;
    }
    case "leave":
      return { type, room: name(o, "room", "room name") };
    case "rooms":
    case "ping":
    case "read_all":
      return { type };
    case "users": {
      const q = optString(o, "q");
      if (q !== undefined && q.length > 32) bad("Search text is longer than 32 characters");
      return q === undefined || q === "" ? { type } : { type, q };
    }
    case "members": {
      const frame: MembersFrame = { type, room: name(o, "room", "room name", ref) };
      if (o.after !== undefined && o.after !== null) {
        frame.after = name(o, "after", "user name", ref);
      }
      const l = limit(o, ref);
      if (l !== undefined) frame.limit = l;
      if (ref !== undefined) frame.ref = ref;
      return frame;
    }
    case "topic": {
      const room = name(o, "room", "room name");
      const raw = o.topic;
      if (typeof raw !== "string") {
        bad(raw === undefined ? 'Field "topic" is required' : 'Field "topic" must be a string');
      }
      return { type, room, topic: checkTopic(raw) };
    }
    case "ban": {
      const user = name(o, "user", "user name", ref);
      const frame: BanFrame = { type, user };
      const reason = optString(o, "reason", ref)?.replace(/\s+/g, " ").trim();
      if (reason) {
        if ([...reason].length > MAX_BAN_REASON) {
          bad(`A reason has at most ${MAX_BAN_REASON} characters`, ref);
        }
        if (CONTROL.test(reason) || BIDI_CONTROL.test(reason)) {
          bad("A reason may not contain control characters", ref);
        }
        frame.reason = reason;
      }
      const duration = o.duration;
      if (duration !== undefined && duration !== null) {
        if (
          typeof duration !== "number" || !Number.isInteger(duration) || duration < 1 ||
          duration > MAX_BAN_SECONDS
        ) {
          bad(
            `Field "duration" must be a whole number of seconds from 1 to ${MAX_BAN_SECONDS}`,
            ref,
          );
        }
        frame.duration = duration;
      }
      if (ref !== undefined) frame.ref = ref;
      return frame;
    }
    case "unban": {
      const frame: UnbanFrame = { type, user: name(o, "user", "user name", ref) };
      if (ref !== undefined) frame.ref = ref;
      return frame;
    }
    case "kick": {
      const frame: KickFrame = {
        type,
        room: name(o, "room", "room name", ref),
        user: name(o, "user", "user name", ref),
      };
      if (ref !== undefined) frame.ref = ref;
      return frame;
    }
    case "passwd": {
      const current = optString(o, "current", ref);
      const password = optString(o, "password", ref);
      if (current === undefined) bad('Field "current" is required', ref);
      if (password === undefined) bad('Field "password" is required', ref);
      if (current.length > 1024 || password.length > 1024) bad("Password is too long", ref);
      const frame: PasswdFrame = { type, current, password };
      if (ref !== undefined) frame.ref = ref;
      return frame;
    }
    case "send": {
      const t = target(o, ref);
      const files = fileIds(o, ref);
      const text = o.text ?? (files ? "" : undefined);
      if (typeof text !== "string") {
        bad(
          text === undefined ? 'Field "text" is required' : 'Field "text" must be a string',
          ref,
        );
      }
      // A message with files may have no text: a blank one is stored as "".
      const checked = files && BLANK.test(text) ? "" : checkMessageText(text, maxText, ref);
      const frame: SendFrame = { type, text: checked, ...t };
      if (ref !== undefined) frame.ref = ref;
      const replyTo = optId(o, "replyTo", ref);
      if (replyTo !== undefined) frame.replyTo = replyTo;
      if (files) frame.files = files;
      return frame;
    }
    case "edit": {
      const t = target(o, ref);
      const id = messageId(o, ref);
      const text = o.text;
      if (typeof text !== "string") {
        bad(
          text === undefined ? 'Field "text" is required' : 'Field "text" must be a string',
          ref,
        );
      }
      // Blank text is "": the hub allows it for a message with files only (it knows the message).
      let checked = "";
      try {
        if (!BLANK.test(text)) checked = checkMessageText(text, maxText, ref);
      } catch (err) {
        // An edit is refused as a bad request whatever is wrong with the text.
        if (err instanceof FrameError && err.code === "too_large") bad(err.message, ref);
        throw err;
      }
      const frame: EditFrame = { type, id, text: checked, ...t };
      if (ref !== undefined) frame.ref = ref;
      return frame;
    }
    case "delete": {
      const frame: DeleteFrame = { type, ...target(o, ref), id: messageId(o, ref) };
      if (ref !== undefined) frame.ref = ref;
      return frame;
    }
    case "react": {
      const t = target(o, ref);
      const id = messageId(o, ref);
      const raw = o.emoji;
      if (typeof raw !== "string") {
        bad(
          raw === undefined ? 'Field "emoji" is required' : 'Field "emoji" must be a string',
          ref,
        );
      }
      const on = o.on ?? true;
      if (typeof on !== "boolean") bad('Field "on" must be true or false', ref);
      const frame: ReactFrame = { type, ...t, id, emoji: checkEmoji(raw, ref), on };
      if (ref !== undefined) frame.ref = ref;
      return frame;
    }
    case "typing": {
      const t = target(o);
      const active = o.active;
      if (typeof active !== "boolean") {
        bad(
          active === undefined
            ? 'Field "active" is required (true or false)'
            : 'Field "active" must be a boolean',
        );
      }
      return { type, active, ...t };
    }
    case "history": {
      const t = target(o);
      const before = optId(o, "before");
      const since = optId(o, "since");
      if (before !== undefined && since !== undefined) {
        bad('Give either "before" or "since", not both');
      }
      const frame: HistoryFrame = { type, ...t };
      if (before !== undefined) frame.before = before;
      if (since !== undefined) frame.since = since;
      const l = limit(o);
      if (l !== undefined) frame.limit = l;
      return frame;
    }
    case "read": {
      const t = target(o);
      const id = optId(o, "id");
      if (id === undefined) bad('Field "id" is required');
      return { type, id, ...t };
    }
    case "search": {
      const q = optString(o, "q");
      if (q === undefined || q.trim() === "") bad('Field "q" is required');
      if (q.length > 200) bad("Search text is longer than 200 characters");
      const frame: SearchFrame = { type, q };
      if (o.room !== undefined && o.room !== null) {
        frame.room = name(o, "room", "room name");
      }
      if (o.to !== undefined && o.to !== null) {
        frame.to = name(o, "to", "username");
      }
      const l = limit(o);
      if (l !== undefined) frame.limit = l;
      return frame;
    }
    case "visible": {
      const visible = o.visible;
      if (typeof visible !== "boolean") {
        bad(
          visible === undefined
            ? 'Field "visible" is required (true or false)'
            : 'Field "visible" must be true or false',
          ref,
        );
      }
      return { type, visible };
    }
    case "push_subscribe": {
      const frame: PushSubscribeFrame = { type, subscription: pushSubscription(o, ref) };
      if (ref !== undefined) frame.ref = ref;
      return frame;
    }
    case "push_unsubscribe": {
      const endpoint = o.endpoint;
      if (typeof endpoint !== "string") {
        bad(
          endpoint === undefined
            ? 'Field "endpoint" is required'
            : 'Field "endpoint" must be a string',
          ref,
        );
      }
      if (endpoint.length > MAX_PUSH_ENDPOINT) {
        throw new FrameError(
          "bad_endpoint",
          `A push endpoint is at most ${MAX_PUSH_ENDPOINT} characters`,
          ref,
        );
      }
      const frame: PushUnsubscribeFrame = { type, endpoint };
      if (ref !== undefined) frame.ref = ref;
      return frame;
    }
    case "notify_level": {
      const t = target(o, ref);
      const level = o.level;
      if (level !== "all" && level !== "mentions" && level !== "none") {
        bad('Field "level" must be "all", "mentions" or "none"', ref);
      }
      const frame: NotifyLevelFrame = { type, level, ...t };
      if (ref !== undefined) frame.ref = ref;
      return frame;
    }
    default:
      bad(`Unknown frame type "${type.slice(0, 40)}"`, ref);
  }
}

function badEndpoint(message: string, ref?: string): never {
  throw new FrameError("bad_endpoint", message, ref);
}

/**
 * A `push_subscribe`'s subscription, checked for shape and sizes (the
 * server checks the endpoint's address on top): `bad_request` when a field
 * is missing or not a string, `bad_endpoint` when the endpoint is too long
 * or not an http(s) URL, or a key is not base64url of its size.
 */
function pushSubscription(o: Obj, ref?: string): PushSubscriptionInfo {
  const sub = o.subscription;
  if (typeof sub !== "object" || sub === null || Array.isArray(sub)) {
    bad(
      sub === undefined
        ? 'Field "subscription" is required'
        : 'Field "subscription" must be an object {"endpoint","keys":{"p256dh","auth"}}',
      ref,
    );
  }
  const s = sub as Obj;
  const endpoint = s.endpoint;
  if (typeof endpoint !== "string") {
    bad(
      endpoint === undefined
        ? 'Field "subscription.endpoint" is required'
        : 'Field "subscription.endpoint" must be a string',
      ref,
    );
  }
  if (endpoint.length > MAX_PUSH_ENDPOINT) {
    badEndpoint(`A push endpoint is at most ${MAX_PUSH_ENDPOINT} characters`, ref);
  }
  if (!/^https?:\/\//i.test(endpoint) || !URL.canParse(endpoint)) {
    badEndpoint("A push endpoint must be an https URL", ref);
  }
  const keys = s.keys;
  if (typeof keys !== "object" || keys === null || Array.isArray(keys)) {
    bad(
      keys === undefined
        ? 'Field "subscription.keys" is required'
        : 'Field "subscription.keys" must be an object {"p256dh","auth"}',
      ref,
    );
  }
  const k = keys as Obj;
  const p256dh = pushKey(k, "p256dh", PUSH_P256DH_BYTES, ref);
  const auth = pushKey(k, "auth", PUSH_AUTH_BYTES, ref);
  if (base64urlBytes(p256dh)[0] !== 4) {
    badEndpoint('Key "p256dh" must be an uncompressed P-256 point (its first byte 4)', ref);
  }
  return { endpoint, keys: { p256dh, auth } };
}

/** A key of a subscription: base64url of exactly `bytes` bytes, returned without padding. */
function pushKey(k: Obj, key: string, bytes: number, ref?: string): string {
  const v = k[key];
  if (typeof v !== "string") {
    bad(
      v === undefined
        ? `Field "subscription.keys.${key}" is required`
        : `Field "subscription.keys.${key}" must be a string`,
      ref,
    );
  }
  const bare = v.replace(/=+$/, "");
  const chars = Math.ceil(bytes * 4 / 3);
  if (bare.length !== chars || !/^[A-Za-z0-9_-]*$/.test(bare)) {
    badEndpoint(`Key "${key}" must be base64url of ${bytes} bytes`, ref);
  }
  return bare;
}

/** Decodes base64url (padding optional). */
function base64urlBytes(text: string): Uint8Array {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "=".repeat((4 - b64.length % 4) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function parseAuth(o: Obj): AuthFrame {
  const token = optString(o, "token");
  if (token !== undefined) {
    if (token.length > 1024) bad('Field "token" is too long');
    return { type: "auth", token };
  }
  const username = name(o, "username", "username");
  const password = optString(o, "password");
  if (password !== undefined && password.length > 1024) {
    bad('Field "password" is too long');
  }
  const frame: AuthFrame = password === undefined
    ? { type: "auth", username }
    : { type: "auth", username, password };
  const device = optString(o, "device");
  if (device !== undefined && password !== undefined) {
    if (device.length > 1024) bad('Field "device" is too long');
    frame.device = device;
  }
  return frame;
}

/** Bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069). */
const BIDI_CONTROL = /[\u202A-\u202E\u2066-\u2069]/;

/**
 * A room topic, normalized: one line, trimmed; `""` clears it.
 *
 * @throws {FrameError} `bad_request` for control characters or broken
 * Unicode; `too_large` past {@link MAX_TOPIC_BYTES}.
 */
export function checkTopic(raw: string): string {
  const topic = raw.replace(/\s+/g, " ").trim();
  if (topic === "" || BLANK.test(topic)) return "";
  if (CONTROL.test(topic)) bad("A topic may not contain control characters");
  // One line shown in a header beside other text: nothing may reorder what follows it.
  if (BIDI_CONTROL.test(topic)) {
    bad(
      "A topic may not contain bidirectional control characters (embeddings, overrides, isolates)",
    );
  }
  if (!topic.isWellFormed()) bad("A topic is not valid Unicode (an unpaired surrogate)");
  if (wireLength(topic) > MAX_TOPIC_BYTES) {
    throw new FrameError("too_large", `A topic is longer than ${MAX_TOPIC_BYTES} bytes`);
  }
  return topic;
}

/** Conversation key of a room or a DM pair, used by stores and the hub. */
export function conversationKey(
  user: string,
  target: { room?: string; to?: string },
): string {
  if (target.room !== undefined) return target.room;
  const peer = target.to as string;
  return user < peer ? `@${user}:${peer}` : `@${peer}:${user}`;
}

/**
 * Links and mentions in message text, in one pass: a link runs to the next
 * space or quote (an `@` inside it is no mention); a mention is `@name` not
 * preceded by a word character or `@` (so `a@b.c` stays an address), the
 * name 1-32 letters, digits, `-` or `_`. Both alternatives are linear on any
 * input: the link's run is greedy with nothing after it to backtrack into,
 * and a name backtracks over at most 32 characters.
 */
export const TEXT_TOKEN: RegExp =
  /\bhttps?:\/\/[^\s<>"'`]+|(?<![\w@])@[A-Za-z0-9_-]{1,32}(?![A-Za-z0-9_-])/gi;

/** Mentions that address everyone in a room (`@room`, `@here`), lower case. */
export const ROOM_MENTIONS: readonly string[] = ["room", "here"];

/** What a message's text mentions (see {@link mentionsIn}). */
export interface Mentions {
  /** Names mentioned with `@name`, lower case, each once, without `room`/`here`. */
  names: string[];
  /** `@room` or `@here`: the whole room. */
  room: boolean;
}

/**
 * Who `text` mentions: the one rule for the web app, the terminal client and
 * the server's pushes. Linear in the length of `text`.
 *
 * @example
 * ```ts
 * import { mentionsIn } from "./protocol.ts";
 * const m = mentionsIn("hi @Bob and @room, not a@b.c or https://x.org/@carol");
 * if (m.names.join() !== "bob" || !m.room) throw new Error("mentions");
 * ```
 */
export function mentionsIn(text: string): Mentions {
  const names = new Set<string>();
  let room = false;
  if (text.includes("@")) {
    for (const m of text.matchAll(TEXT_TOKEN)) {
      const token = m[0];
      if (token[0] !== "@") continue;
      const name = token.slice(1).toLowerCase();
      if (ROOM_MENTIONS.includes(name)) room = true;
      else names.add(name);
    }
  }
  return { names: [...names], room };
}

/** Splits text into user-perceived characters. */
const graphemes = new Intl.Segmenter(undefined, { granularity: "grapheme" });

/** What makes an emoji: a pictograph or a regional indicator (flags). */
const PICTOGRAPH = /\p{Extended_Pictographic}|\p{Regional_Indicator}/u;

/** A single regional indicator and nothing else. */
const LONE_INDICATOR = /^\p{Regional_Indicator}$/u;

/** A keycap: 0-9, # or * with the enclosing keycap mark. */
const KEYCAP = /^[0-9#*]\uFE0F?\u20E3$/u;

/** Joiners, variation selectors and tags: parts of emoji sequences, invisible alone. */
const EMOJI_GLUE = /[\u200D\uFE0E\uFE0F\u{E0020}-\u{E007F}]/gu;

/** Letters, marks, digits, punctuation, spaces and controls: never part of an emoji. */
const NOT_EMOJI = /[\p{L}\p{M}\p{N}\p{P}\p{Z}\p{C}]/u;

/**
 * A reaction's emoji: exactly one emoji, as one grapheme (flags, skin tones,
 * keycaps and ZWJ sequences included), never only invisible parts.
 *
 * @throws {FrameError} `bad_request` for anything else.
 */
export function checkEmoji(raw: string, ref?: string): string {
  const problem = "A reaction must be exactly one emoji";
  if (raw === "" || utf8Length(raw) > MAX_EMOJI_BYTES || !raw.isWellFormed()) bad(problem, ref);
  if ([...graphemes.segment(raw)].length !== 1) bad(problem, ref);
  if (KEYCAP.test(raw)) return raw;
  const core = raw.replace(EMOJI_GLUE, "");
  if (!PICTOGRAPH.test(core) || NOT_EMOJI.test(core)) bad(problem, ref);
  // Regional indicators make a flag in pairs; one alone shows as a boxed letter.
  if (LONE_INDICATOR.test(core)) bad(problem, ref);
  return raw;
}

/**
 * What a reply quotes of its original: the first {@link SNIPPET_CHARS}
 * characters on one line (whole code points).
 */
export function snippetOf(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim();
  const points = [...flat];
  return points.length <= SNIPPET_CHARS ? flat : points.slice(0, SNIPPET_CHARS).join("");
}

/**
 * Whether `text` notifies everyone in a room: it mentions `@room` or `@here`
 * (any case) by the one mention rule ({@link mentionsIn}) — not `@roomy`,
 * `a@room` or `email@here.com`, nor inside a link. Inline code and code
 * blocks count too, as they do for `@name` mentions. Linear in the length of
 * `text`.
 *
 * @example
 * ```ts
 * import { mentionsRoom } from "./protocol.ts";
 * if (!mentionsRoom("deploy at 5, @Here!") || mentionsRoom("mail ops@here.com")) {
 *   throw new Error("mentionsRoom");
 * }
 * ```
 */
export function mentionsRoom(text: string): boolean {
  return mentionsIn(text).room;
}

/**
 * Why `text` may not go to `room` as this user's message or edit (a
 * `forbidden` error), or null when it may: where only admins notify everyone
 * (`restrictRoomMentions`), a member's `@room` or `@here` ({@link mentionsRoom}).
 * The server refuses by it and the web app checks by it first, so both say
 * the same words.
 *
 * @example
 * ```ts
 * import { roomMentionRefusal } from "./protocol.ts";
 * const kind = { restrictRoomMentions: true as const };
 * const why = roomMentionRefusal("dev", kind, { admin: false, text: "@here!" });
 * if (why !== "Only admins may notify everyone in #dev with @room or @here") throw new Error(why!);
 * if (roomMentionRefusal("dev", kind, { admin: true, text: "@here!" }) !== null) throw new Error();
 * ```
 */
export function roomMentionRefusal(
  room: string,
  kind: RoomKind | null,
  opts: { admin: boolean; text: string },
): string | null {
  if (!kind?.restrictRoomMentions || opts.admin || !mentionsRoom(opts.text)) return null;
  return `Only admins may notify everyone in #${room} with @room or @here`;
}

/**
 * A message with a change applied (a new object; the input is not touched).
 * Clients merge `edited`, `deleted` and `reaction` frames with it; a change
 * older than the message's own `seq` is ignored.
 */
export function applyChange(msg: ChatMessage, change: ChangeFrame): ChatMessage {
  if (change.seq <= msg.seq || change.id !== msg.id) return msg;
  const next: ChatMessage = { ...msg, seq: change.seq };
  if (change.type === "edited") {
    // A tombstone stays one: a late edit only moves its position.
    if (msg.deleted) return next;
    next.text = change.text;
    next.edited = change.editedAt;
  } else if (change.type === "deleted") {
    const stone = tombstone(next);
    if (change.removed) stone.removed = true;
    return stone;
  } else {
    const users = msg.reactions?.[change.emoji] ?? [];
    const has = users.includes(change.user);
    if (has === change.on) return next;
    const reactions = { ...msg.reactions };
    const list = change.on ? [...users, change.user] : users.filter((u) => u !== change.user);
    if (list.length > 0) reactions[change.emoji] = list;
    else delete reactions[change.emoji];
    if (Object.keys(reactions).length > 0) next.reactions = reactions;
    else delete next.reactions;
  }
  return next;
}

/**
 * Whether two copies of a message say the same thing (text, tombstone,
 * edit, reactions): at one position, clients keep the copy they hold only
 * when it does (see docs/protocol.md, "Catching up").
 */
export function sameMessageState(a: ChatMessage, b: ChatMessage): boolean {
  return a.text === b.text && a.deleted === b.deleted && a.edited === b.edited &&
    JSON.stringify(a.reactions ?? null) === JSON.stringify(b.reactions ?? null);
}

/** What is left of a deleted message: its place, author and time. */
export function tombstone(msg: ChatMessage): ChatMessage {
  const out: ChatMessage = msg.room !== undefined
    ? { id: msg.id, seq: msg.seq, room: msg.room, from: msg.from, text: "", ts: msg.ts }
    : { id: msg.id, seq: msg.seq, to: msg.to, from: msg.from, text: "", ts: msg.ts };
  out.deleted = true;
  return out;
}
