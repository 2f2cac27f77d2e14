/**
 * The interactive terminal client: incoming messages scroll above one input
 * line, which is redrawn below every new line of output so that typing is
 * never interrupted. The terminal is in raw mode while it runs.
 *
 * @module
 */
import type {
  ChatMessage,
  FileInfo,
  JoinedFrame,
  RoomKind,
  ServerFrame,
  WelcomeFrame,
} from "../protocol.ts";
import { applyPresence, LOBBY, MAX_PAGE, presenceCount } from "../protocol.ts";
import {
  ADMIN_COMMANDS,
  type Command,
  complete,
  helpText,
  parseCommand,
  type RoomSetting,
} from "./commands.ts";
import { KeyDecoder, LineEditor } from "./editor.ts";
import {
  type Access,
  baseName,
  destination,
  downloadFile,
  downloadsFolder,
  expandHome,
  localName,
  TransferError,
  uploadFile,
} from "./files.ts";
import {
  fileLink,
  formatBanned,
  formatChange,
  formatInvited,
  formatMessage,
  formatRemoved,
  formatRenamed,
  formatRenameRefusal,
  formatRole,
  formatRoomSettings,
  formatSize,
  formatSystem,
  formatUpdate,
  kindWords,
  nameList,
  paint,
  type Place,
  sameKind,
  shorten,
} from "./format.ts";
import { strip } from "./markdown.ts";
import { convOf, ServerError, type Session, type SessionEvent } from "./session.ts";
import { httpBase } from "./url.ts";

const encoder = new TextEncoder();

/** Where the terminal UI reads and writes; the real terminal by default. */
export interface TerminalIO {
  /** Reads raw input; `null` at end of input. */
  read(buf: Uint8Array): Promise<number | null>;
  /** Writes all of `bytes`. */
  write(bytes: Uint8Array): void;
  /** Terminal width in columns. */
  columns(): number;
  /** Switches raw mode on or off. */
  setRaw(on: boolean): void;
  /**
   * Calls `redraw` when the terminal is resized and `stop` on SIGTERM;
   * returns a function that stops listening.
   */
  onSignals(redraw: () => void, stop: () => void): () => void;
  /**
   * Asks the user for `access` to exactly `path` with Deno's own question
   * (`Deno.permissions.request`, which writes to stderr and reads a line
   * from stdin); resolves the permission's state afterwards. Called with
   * raw mode off, the input line cleared and nothing else reading the
   * terminal. Absent where nobody can be asked: the client then refuses.
   */
  requestPermission?(access: Access, path: string): Promise<Deno.PermissionState>;
}

/**
 * Deno's question for a permission, on the process's terminal. Ctrl+C is
 * ignored meanwhile, so that it does not end the chat (answer n instead).
 */
function requestPermission(access: Access, path: string): Promise<Deno.PermissionState> {
  const ignore = () => {};
  let listening = false;
  try {
    Deno.addSignalListener("SIGINT", ignore);
    listening = true;
  } catch { /* no such signal here: Ctrl+C keeps its usual meaning */ }
  try {
    // Blocks until answered. `--no-prompt` makes it answer "denied" without asking,
    // while the state stays "prompt": the state afterwards tells the two apart.
    Deno.permissions.requestSync({ name: access, path });
    return Promise.resolve(Deno.permissions.querySync({ name: access, path }).state);
  } finally {
    if (listening) Deno.removeSignalListener("SIGINT", ignore);
  }
}

/** The process's own terminal. */
export function stdio(): TerminalIO {
  // Deno asks only when stdin and stderr are both a terminal; elsewhere it
  // would answer "denied" without asking, and keep that for the whole run.
  const canAsk = Deno.stdin.isTerminal() && Deno.stderr.isTerminal();
  return {
    ...(canAsk ? { requestPermission } : {}),
    read: (buf) => Deno.stdin.read(buf),
    write(bytes) {
      let off = 0;
      while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
    },
    columns() {
      try {
        return Deno.consoleSize().columns || 80;
      } catch {
        return 80;
      }
    },
    setRaw: (on) => Deno.stdin.setRaw(on),
    onSignals(redraw, stop) {
      if (Deno.build.os === "windows") return () => {};
      Deno.addSignalListener("SIGWINCH", redraw);
      Deno.addSignalListener("SIGTERM", stop);
      return () => {
        Deno.removeSignalListener("SIGWINCH", redraw);
        Deno.removeSignalListener("SIGTERM", stop);
      };
    },
  };
}

/** Options for {@link TerminalUI}. */
export interface TerminalOptions {
  /** The signed-in session. */
  session: Session;
  /** The session's first welcome. */
  welcome: WelcomeFrame;
  /** The room to open first. @default {"general"} */
  room?: string;
  /** Where the client is connected (for the banner). */
  url: string;
  /** ANSI colors. @default {true} */
  color?: boolean;
  /** The terminal. @default {stdio()} */
  io?: TerminalIO;
  /**
   * Redraw an upload's or download's progress in place, in front of the
   * prompt (stdout is a terminal); without, only its final line is shown.
   * @default {true}
   */
  progress?: boolean;
}

/** The upload or download under way (one at a time): Ctrl+C cancels it. */
interface Transfer {
  verb: "Uploading" | "Downloading";
  name: string;
  done: number;
  total: number | null;
  abort: AbortController;
  /** When the progress was last drawn (ms). */
  drawn: number;
  /** Settles when the transfer is over, its partial file removed. */
  over: Promise<void>;
  /** Settles {@link Transfer.over}. */
  finish: () => void;
}

/** The most matches the first Tab lists (Tab still goes through all of them). */
const MAX_LISTED = 20;

/** Milliseconds between two redraws of a transfer's progress. */
const PROGRESS_MS = 100;

/**
 * Longest time (ms) `/download` keeps the terminal unread while it looks
 * for a file in the conversation's history (see {@link Hold}).
 */
const LOOKUP_HOLD_MS = 3000;

/**
 * A command that may ask for a permission keeps the terminal unread until
 * it is past that: a read under way would take the answer meant for Deno's
 * question.
 */
interface Hold {
  /** Whether the terminal is still unread for this command. */
  readonly active: boolean;
  /** Lets the terminal be read again. */
  release(): void;
}

/** The interactive client; feed it session events with {@link TerminalUI.handle}. */
export class TerminalUI {
  #session: Session;
  #io: TerminalIO;
  #color: boolean;
  #url: string;
  #me: string;
  #firstRoom: string;
  #mode: string;
  /** The user's role, from the latest welcome or `role` frame (none in open mode). */
  #role: WelcomeFrame["role"];
  /** What kind of room each room the user is in is (private, read-only, archived). */
  #kinds = new Map<string, RoomKind>();
  /** Rooms the user was just added to: their `joined` follows, and is no news. */
  #invitedTo = new Set<string>();
  /**
   * `system` events this client's own `/invite` and `/kick` cause (`join
   * room user`, `leave room user`): their answer says it already.
   */
  #expected = new Set<string>();
  /** The server's HTTP address, in front of file links. */
  #base: string;
  #showProgress: boolean;
  #transfer: Transfer | null = null;
  #editor = new LineEditor({ complete: (before) => this.#completions(before) });
  /** Rooms seen in the latest `/rooms`, for Tab after `/join`. */
  #listedRooms = new Set<string>();
  #decoder = new KeyDecoder();
  #here: Place = { room: LOBBY };
  #members = new Map<string, Set<string>>();
  /** How many members each room had when joined (its list may be partial in a very large room). */
  #memberCounts = new Map<string, number>();
  /** Rooms larger than this take `@room` from admins only (0: any size); from the welcome. */
  #roomMentionMax: number;
  #online = new Set<string>();
  /** Users online in all when the chat is too large to send names, else null. */
  #onlineCount: number | null = null;
  /** Who is typing, per conversation key. */
  #typing = new Map<string, Set<string>>();
  #offline: string | null = null;
  #drawn = false;
  #typingSince = 0;
  /** Message ids shown in front of lines (`/ids`). */
  #ids = false;
  /** The latest send per conversation, which `/edit` and `/delete` without an id wait for. */
  #sending = new Map<string, Promise<unknown>>();
  #commands: Promise<void> = Promise.resolve();
  /** Until these settle, the terminal is not read (see {@link Hold}). */
  #holds = new Set<Promise<void>>();
  /** Deno's question for a permission is on screen: nothing else is drawn. */
  #questioning = false;
  /** Lines to print once the question is answered. */
  #heldLines: string[] = [];
  #finished = false;
  #done = Promise.withResolvers<number>();
  /** A question asked without echo (see `#askHidden`): it takes the keys until answered. */
  #asking: { label: string; editor: LineEditor; answer: (value: string | null) => void } | null =
    null;

  /** Builds the UI; {@link TerminalUI.run} starts it. */
  constructor(options: TerminalOptions) {
    this.#session = options.session;
    this.#io = options.io ?? stdio();
    this.#color = options.color ?? true;
    this.#url = options.url;
    this.#base = httpBase(options.url);
    this.#showProgress = options.progress ?? true;
    this.#me = options.welcome.user;
    this.#mode = options.welcome.mode;
    this.#role = options.welcome.role;
    this.#roomMentionMax = options.welcome.limits.roomMentionMax ?? 0;
    this.#firstRoom = options.room ?? LOBBY;
    for (const u of options.welcome.online) this.#online.add(u);
    this.#onlineCount = presenceCount(options.welcome);
  }

  /**
   * Runs until `/quit`, Ctrl+D, or a session that cannot go on; resolves the
   * exit code. Restores the terminal before it returns.
   */
  async run(): Promise<number> {
    this.#io.setRaw(true);
    // SIGTERM ends the chat like /quit, so the terminal leaves raw mode.
    const stopSignals = this.#io.onSignals(() => this.#draw(), () => this.quit(143));
    try {
      this.#print(
        this.#notice(
          `Signed in to ${this.#url} as ${paint("bold", this.#me, this.#color)}${
            this.#mode === "open" ? " (open mode)" : ""
          }. /help lists the commands.`,
        ),
      );
      this.#draw();
      this.#openRoom(this.#firstRoom);
      this.#readLoop().then((code) => this.#done.resolve(code), (err) => {
        this.#print(this.#error(`Reading the terminal failed: ${(err as Error).message}`));
        this.#done.resolve(1);
      });
      return await this.#done.promise;
    } finally {
      this.#finished = true;
      // Leaving cancels a transfer; a download's partial file is removed first.
      const transfer = this.#transfer;
      transfer?.abort.abort();
      await transfer?.over;
      stopSignals();
      this.#clearLine();
      this.#drawn = false;
      this.#io.setRaw(false);
    }
  }

  /** Ends {@link TerminalUI.run} with `code`. */
  quit(code = 0): void {
    this.#asking?.answer(null);
    this.#done.resolve(code);
  }

  async #readLoop(): Promise<number> {
    const buf = new Uint8Array(4096);
    while (true) {
      while (this.#holds.size > 0) await Promise.all(this.#holds);
      if (this.#finished) return 0;
      const n = await this.#io.read(buf);
      if (n === null) return 0;
      for (const key of this.#decoder.feed(buf.subarray(0, n))) {
        const asking = this.#asking;
        if (asking) {
          // Ctrl+C or Ctrl+D gives up the question, never the chat.
          if (key.name === "interrupt" || key.name === "eof") asking.answer(null);
          else if (key.name !== "up" && key.name !== "down") {
            const result = asking.editor.handle(key);
            if (result.kind === "submit") asking.answer(result.line);
          }
          continue;
        }
        if (key.name === "interrupt" && this.#transfer) {
          // Ctrl+C cancels the transfer, never the line typed meanwhile.
          this.#transfer.abort.abort();
          continue;
        }
        const result = this.#editor.handle(key);
        switch (result.kind) {
          case "submit":
            this.#typingStopped();
            this.#draw();
            this.#submit(result.line);
            break;
          case "changed":
            this.#typed();
            this.#draw();
            break;
          case "completed":
            this.#typed();
            // The first Tab of several choices says what they are; Tab again goes through them.
            if (!result.again && result.options.length > 1) {
              const shown = result.options.slice(0, MAX_LISTED).map((o) => o.trim());
              const more = result.options.length - shown.length;
              this.#print(
                this.#notice(shown.join("  ") + (more > 0 ? `  … and ${more} more` : "")),
              );
            }
            this.#draw();
            break;
          case "redraw":
            this.#draw();
            break;
          case "interrupt":
          case "eof":
            return 0;
        }
      }
    }
  }

  // -------------------------------------------------------------------------
  // Output

  #write(text: string): void {
    this.#io.write(encoder.encode(text));
  }

  #clearLine(): void {
    if (this.#drawn) this.#write("\r\x1b[2K");
  }

  /** Prints lines above the input line and draws the input line again. */
  #print(...lines: string[]): void {
    if (this.#questioning) {
      this.#heldLines.push(...lines);
      return;
    }
    this.#clearLine();
    this.#write(lines.join("\n").replace(/\n/g, "\r\n") + "\r\n");
    if (this.#drawn) this.#draw();
  }

  #prompt(color: boolean): string {
    const parts: string[] = [];
    if (this.#offline) parts.push(paint("red", `(${this.#offline})`, color));
    const t = this.#transfer;
    if (t && this.#showProgress) {
      const pct = t.total ? ` ${Math.floor((t.done * 100) / t.total)}%` : "";
      const of = t.total === null ? "" : ` of ${formatSize(t.total)}`;
      parts.push(paint(
        "yellow",
        `${t.verb} ${shorten(t.name, 24)}${pct} (${formatSize(t.done)}${of})`,
        color,
      ));
    }
    const key = this.#hereKey();
    const typers = [...(this.#typing.get(key) ?? [])];
    if (typers.length > 0) {
      parts.push(paint(
        "dim",
        `${nameList(typers)} ${typers.length === 1 ? "is" : "are"} typing…`,
        color,
      ));
    }
    const label = this.#here.room !== undefined ? `#${this.#here.room}` : `@${this.#here.to}`;
    const kind = this.#here.room !== undefined ? kindWords(this.#kinds.get(this.#here.room)) : [];
    const marks = kind.length === 0 ? "" : ` ${paint("yellow", `(${kind.join(", ")})`, color)}`;
    parts.push(`${paint("bold", label, color)}${marks}> `);
    return parts.join(" ");
  }

  #draw(): void {
    if (this.#questioning) return;
    if (this.#asking) {
      // Nothing typed is shown, not even its length.
      this.#write(`\r\x1b[2K${this.#asking.label}: `);
      this.#drawn = true;
      return;
    }
    const plainPrompt = this.#prompt(false);
    const { line, cursor } = this.#editor.render(plainPrompt, this.#io.columns());
    // Color only the prompt part, which render() keeps whole unless it is very long.
    const shown = line.startsWith(plainPrompt)
      ? this.#prompt(this.#color) + line.slice(plainPrompt.length)
      : line;
    this.#write(`\r\x1b[2K${shown}\r${cursor > 0 ? `\x1b[${cursor}C` : ""}`);
    this.#drawn = true;
  }

  #notice(text: string): string {
    return `${paint("dim", "--", this.#color)} ${text}`;
  }

  #error(text: string): string {
    return paint("red", `! ${text}`, this.#color);
  }

  #line(msg: ChatMessage): string {
    return formatMessage(msg, this.#formatOptions());
  }

  #formatOptions() {
    return {
      me: this.#me,
      here: this.#here,
      color: this.#color,
      ids: this.#ids,
      base: this.#base,
    };
  }

  /** What Tab completes before the cursor: commands, rooms, and the people known here. */
  #completions(before: string) {
    const room = this.#here.room;
    const members = room !== undefined ? this.#members.get(room) ?? new Set<string>() : null;
    const others = new Set(this.#online);
    for (const m of this.#members.values()) for (const name of m) others.add(name);
    const admin = this.#role === "admin";
    // In a room larger than the server's limit, only an admin's @room reaches everyone.
    const size = room === undefined
      ? 0
      : Math.max(members!.size, this.#memberCounts.get(room) ?? 0);
    const max = this.#roomMentionMax;
    return complete(before, {
      me: this.#me,
      here: members ?? [this.#here.to!],
      others,
      rooms: new Set([...this.#session.rooms, ...this.#members.keys(), ...this.#listedRooms]),
      everyone: room !== undefined && (admin || max === 0 || size <= max),
      admin,
    });
  }

  #hereKey(): string {
    return this.#here.room !== undefined ? this.#here.room : `@${this.#here.to}`;
  }

  // -------------------------------------------------------------------------
  // Typing indicator

  #typed(): void {
    const text = this.#editor.text;
    if (text.trim() === "" || text.startsWith("/")) {
      this.#typingStopped(true);
      return;
    }
    const now = Date.now();
    if (now - this.#typingSince > 3000) {
      this.#typingSince = now;
      this.#session.typing(this.#here, true);
    }
  }

  #typingStopped(tell = false): void {
    if (this.#typingSince === 0) return;
    this.#typingSince = 0;
    if (tell) this.#session.typing(this.#here, false);
  }

  // -------------------------------------------------------------------------
  // Session events

  /** Shows what the session reports. */
  handle(e: SessionEvent): void {
    switch (e.type) {
      case "welcome":
        this.#online = new Set(e.welcome.online);
        if (e.reconnect && e.welcome.role !== undefined && e.welcome.role !== this.#role) {
          this.#print(this.#notice(formatRole(e.welcome.role)));
        }
        this.#role = e.welcome.role;
        this.#roomMentionMax = e.welcome.limits.roomMentionMax ?? 0;
        if (e.reconnect) this.#print(this.#notice("Reconnected; catching up…"));
        return;
      case "resumed": {
        this.#offline = null;
        const missed = e.missed === 0
          ? []
          : [`${e.missed} message${e.missed === 1 ? "" : "s"} you missed`];
        if (e.changed > 0) {
          missed.push(`${e.changed} change${e.changed === 1 ? "" : "s"} to earlier ones`);
        }
        // "1 message you missed is above", but "… and 2 changes … are above".
        const one = missed.length === 1 && e.missed + e.changed === 1;
        this.#print(this.#notice(
          missed.length === 0
            ? "Back online"
            : `Back online: ${missed.join(" and ")} ${one ? "is" : "are"} above`,
        ));
        return;
      }
      case "disconnected": {
        const first = this.#offline === null;
        this.#offline = "offline";
        this.#typing.clear();
        const secs = Math.max(1, Math.round(e.retryMs / 1000));
        if (first) this.#print(this.#notice(`${e.message}: reconnecting in ${secs} s…`));
        else this.#draw();
        return;
      }
      case "message":
        this.#typing.get(convOf(e.message, this.#me))?.delete(e.message.from);
        this.#print(this.#line(e.message));
        return;
      case "change":
        this.#print(formatChange(e.change, { ...this.#formatOptions(), message: e.message }));
        return;
      case "updated": {
        const lines = formatUpdate(e.before, e.message, this.#formatOptions());
        if (lines.length > 0) this.#print(...lines);
        return;
      }
      case "notice":
        this.#print(this.#notice(e.message));
        return;
      case "token":
        if (!e.mine) {
          this.#print(this.#notice("Your password was changed in another window of this session"));
        }
        return;
      case "fatal":
        this.#print(this.#error(e.message));
        this.quit(1);
        return;
      case "renamed":
        this.#renamed(e.room, e.name);
        this.#print(paint("yellow", formatRenamed(e, this.#me), this.#color));
        this.#draw();
        return;
      case "frame":
        this.#frame(e.frame);
        return;
    }
  }

  #frame(f: ServerFrame): void {
    switch (f.type) {
      case "system": {
        if (f.room !== undefined && f.user !== undefined) {
          const members = this.#members.get(f.room);
          const count = this.#memberCounts.get(f.room);
          // A large room's list holds its first page: someone leaving may not be on it.
          const partial = count !== undefined && members !== undefined && count > members.size;
          let moved = false;
          if (f.event === "join") moved = members !== undefined && !members.has(f.user);
          if (f.event === "join") members?.add(f.user);
          else if (f.event === "leave") moved = members?.delete(f.user) === true || partial;
          if (count !== undefined && moved) {
            this.#memberCounts.set(f.room, count + (f.event === "join" ? 1 : -1));
          }
          // The answer to this client's own /invite or /kick said it already.
          if (
            f.by === this.#me &&
            this.#expected.delete(`${f.event} ${f.room} ${f.user.toLowerCase()}`)
          ) return;
        }
        this.#print(formatSystem(f, this.#color, undefined, this.#me));
        return;
      }
      case "role":
        if (f.role === this.#role) return;
        this.#role = f.role;
        this.#print(this.#notice(formatRole(f.role)));
        return;
      case "invited":
        // Added by someone: the `joined` that follows is this.
        if (f.user === undefined) this.#invitedTo.add(f.room);
        this.#print(this.#notice(formatInvited(f, this.#me)));
        return;
      case "room_settings": {
        const before = this.#kinds.get(f.room);
        // The answer to this client's own change may have come first.
        if (before !== undefined && sameKind(before, f.settings)) return;
        this.#kinds.set(f.room, f.settings);
        this.#print(this.#notice(formatRoomSettings(f, this.#me, before)));
        this.#draw();
        return;
      }
      case "typing": {
        const key = f.room ?? `@${f.user}`;
        let set = this.#typing.get(key);
        if (!set) this.#typing.set(key, set = new Set());
        if (f.active) set.add(f.user);
        else set.delete(f.user);
        if (key === this.#hereKey()) this.#draw();
        return;
      }
      case "presence": {
        this.#onlineCount = presenceCount(f);
        const now = applyPresence(this.#online, f);
        const lines: string[] = [];
        for (const u of now) {
          if (!this.#online.has(u) && u !== this.#me) {
            lines.push(paint("dim", `* ${u} is online`, this.#color));
          }
        }
        for (const u of this.#online) {
          if (!now.has(u) && u !== this.#me) {
            lines.push(paint("dim", `* ${u} went offline`, this.#color));
          }
        }
        this.#online = now;
        if (lines.length > 0) this.#print(...lines);
        return;
      }
      case "member_count":
        // A large room's joins and leaves are no longer posted: its count moves alone.
        if (this.#members.has(f.room)) this.#memberCounts.set(f.room, f.count);
        return;
      case "joined":
        this.#members.set(f.room, new Set(f.members));
        this.#memberCounts.set(f.room, f.memberCount ?? f.members.length);
        this.#kinds.set(f.room, kindOf(f));
        if (this.#invitedTo.delete(f.room)) return;
        this.#print(this.#notice(`You joined #${f.room} in another window`));
        return;
      case "left": {
        this.#members.delete(f.room);
        this.#kinds.delete(f.room);
        const here = this.#here.room === f.room;
        if (here) this.#here = { room: LOBBY };
        const what = f.by === undefined
          ? `You left #${f.room}`
          : formatRemoved(f.room, f.by, this.#me);
        const line = `${what}${here ? `; now in #${LOBBY}` : ""}`;
        this.#print(f.by === undefined ? this.#notice(line) : this.#error(line));
        return;
      }
      case "error":
        this.#print(this.#error(f.message));
        return;
      default:
        return;
    }
  }

  /**
   * Room `room` is called `name` now: what the screen keeps of it moves
   * there, and if it is the room on screen, the prompt and what is typed
   * next go to the new name.
   */
  #renamed(room: string, name: string): void {
    moveKey(this.#members, room, name);
    moveKey(this.#memberCounts, room, name);
    moveKey(this.#kinds, room, name);
    moveKey(this.#typing, room, name);
    moveKey(this.#sending, room, name);
    if (this.#invitedTo.delete(room)) this.#invitedTo.add(name);
    for (const key of [...this.#expected]) {
      const [event, r, user] = key.split(" ");
      if (r !== room) continue;
      this.#expected.delete(key);
      this.#expected.add(`${event} ${name} ${user}`);
    }
    if (this.#here.room === room) this.#here = { room: name };
  }

  // -------------------------------------------------------------------------
  // Commands

  /**
   * Runs a line's command after the ones before it, so that answers appear
   * in the order the commands were typed. Messages (which the session
   * keeps in order itself) and commands answered locally do not wait.
   */
  #submit(line: string): void {
    const cmd = parseCommand(line);
    const report = (err: unknown) => {
      this.#print(this.#error(err instanceof Error ? err.message : String(err)));
    };
    // Uploads and downloads run beside the other commands rather than hold them up.
    const local = [
      "say",
      "reply",
      "ids",
      "help",
      "quit",
      "who",
      "invalid",
      "unknown",
      "empty",
    ];
    if (cmd.kind === "upload" || cmd.kind === "download") {
      const hold = this.#hold();
      (cmd.kind === "upload"
        ? this.#upload(cmd.path, cmd.text, hold)
        : this.#download(cmd.id, cmd.path, hold)).catch(report).finally(hold.release);
      return;
    }
    if (local.includes(cmd.kind)) {
      this.#run(cmd).catch(report);
      return;
    }
    this.#commands = this.#commands.then(() => this.#run(cmd)).catch(report);
  }

  async #run(cmd: Command): Promise<void> {
    const session = this.#session;
    if (ADMIN_COMMANDS.has(cmd.kind) && this.#role !== "admin") {
      const name = cmd.kind === "setting" ? settingName(cmd.setting) : `/${cmd.kind}`;
      this.#print(this.#error(
        this.#mode === "open"
          ? `${name} is for admins, and this server is in open mode: it has none`
          : `${name} is for admins: you are a member`,
      ));
      return;
    }
    switch (cmd.kind) {
      case "empty":
        return;
      case "say":
        if (!session.ready) {
          this.#print(
            this.#notice("Not connected: your message goes out once the connection is back"),
          );
        }
        await this.#send(cmd.text);
        return;
      case "reply":
        if (!session.ready) {
          this.#print(
            this.#notice("Not connected: your reply goes out once the connection is back"),
          );
        }
        await this.#send(cmd.text, cmd.id);
        return;
      case "edit": {
        const here = this.#here;
        const target = await this.#own(here, cmd.id, "edit");
        if (target === null) return;
        await session.edit(here, target, cmd.text);
        return;
      }
      case "delete": {
        const here = this.#here;
        const target = await this.#own(here, cmd.id, "delete");
        if (target === null) return;
        if (session.message(here, target)?.deleted) {
          this.#print(this.#notice(`Message #${target} is deleted already`));
          return;
        }
        await session.delete(here, target);
        return;
      }
      case "react": {
        const here = this.#here;
        const msg = await session.fetchMessage(here, cmd.id);
        // Toggles: the same emoji again takes the reaction back.
        const on = !(msg?.reactions?.[cmd.emoji]?.includes(this.#me) ?? false);
        await session.react(here, cmd.id, cmd.emoji, on);
        return;
      }
      case "ids":
        this.#ids = !this.#ids;
        this.#print(this.#notice(
          this.#ids
            ? "Message ids are shown in front of lines (/ids hides them)"
            : "Message ids are hidden (/ids shows them)",
        ));
        return;
      case "join":
        return this.#openRoom(cmd.room, cmd.private ?? false);
      case "invite": {
        const room = this.#currentRoom("/invite");
        if (room === null) return;
        const key = `join ${room} ${cmd.user.toLowerCase()}`;
        this.#expected.add(key);
        try {
          const f = await session.invite(room, cmd.user);
          this.#members.get(room)?.add(f.user ?? cmd.user);
          this.#print(this.#notice(formatInvited(f, this.#me)));
        } catch (err) {
          this.#expected.delete(key);
          throw err;
        }
        return;
      }
      case "kick": {
        const room = this.#currentRoom("/kick");
        if (room === null) return;
        const key = `leave ${room} ${cmd.user.toLowerCase()}`;
        this.#expected.add(key);
        try {
          const f = await session.kick(room, cmd.user);
          this.#members.get(room)?.delete(f.user);
          this.#print(this.#notice(`You removed ${f.user} from #${f.room}`));
        } catch (err) {
          this.#expected.delete(key);
          throw err;
        }
        return;
      }
      case "ban": {
        const f = await session.ban(cmd.user, { duration: cmd.duration, reason: cmd.reason });
        this.#print(this.#notice(formatBanned(f)));
        return;
      }
      case "unban": {
        const f = await session.unban(cmd.user);
        this.#print(this.#notice(
          f.ok ? `${f.user} is no longer banned` : `${f.user} was not banned`,
        ));
        return;
      }
      case "setting": {
        const room = this.#currentRoom(settingName(cmd.setting));
        if (room === null) return;
        const before = this.#kinds.get(room);
        const f = await session.roomSettings(room, { [cmd.setting]: cmd.on });
        const now = this.#kinds.get(room);
        if (before !== undefined && sameKind(before, f.settings)) {
          const words = kindWords(f.settings);
          this.#print(this.#notice(
            cmd.setting === "restrictRoomMentions"
              ? `#${room} lets ${cmd.on ? "only admins" : "everyone"} use @room already`
              : `#${room} is ${words.length > 0 ? nameList(words) : "an open room"} already`,
          ));
        } else if (now === undefined || !sameKind(now, f.settings)) {
          // Not told as a member of the room (yet): the answer says it.
          this.#kinds.set(room, f.settings);
          this.#print(this.#notice(formatRoomSettings(f, this.#me, before)));
        }
        this.#draw();
        return;
      }
      case "rename": {
        const room = cmd.room ?? this.#currentRoom("/rename");
        if (room === null) return;
        if (room === cmd.name) {
          this.#print(this.#error(`#${room} has that name already`));
          return;
        }
        try {
          // The session tells the rename (a `renamed` event) before this resolves.
          await session.renameRoom(room, cmd.name);
        } catch (err) {
          if (!(err instanceof ServerError)) throw err;
          this.#print(this.#error(formatRenameRefusal(err.code, err.message, {
            room,
            name: cmd.name,
            open: this.#mode === "open",
          })));
        }
        return;
      }
      case "leave": {
        let room = cmd.room ?? this.#here.room;
        if (room === undefined) {
          this.#here = { room: LOBBY };
          this.#print(this.#notice(`Back in #${LOBBY}`));
          this.#draw();
          return;
        }
        // Renamed meanwhile, it is left under its new name.
        room = (await session.leave(room)).room;
        this.#members.delete(room);
        if (this.#here.room === room) this.#here = { room: LOBBY };
        this.#print(this.#notice(
          `You left #${room}${this.#here.room === LOBBY ? `; now in #${LOBBY}` : ""}`,
        ));
        return;
      }
      case "rooms": {
        const rooms = await session.listRooms();
        this.#listedRooms = new Set(rooms.map((r) => r.name));
        if (rooms.length === 0) return this.#print(this.#notice("There are no rooms"));
        const width = Math.max(...rooms.map((r) => r.name.length)) + 1;
        this.#print(
          this.#notice(`${rooms.length} room${rooms.length === 1 ? "" : "s"}:`),
          ...rooms.map((r) =>
            `  ${`#${r.name}`.padEnd(width)}  ${r.members} member${r.members === 1 ? "" : "s"}${
              kindWords(r).map((w) => `  (${w})`).join("")
            }${session.rooms.has(r.name) ? "  (you are in it)" : ""}`
          ),
        );
        return;
      }
      case "who": {
        const online = [...this.#online].sort();
        if (this.#here.to !== undefined) {
          const peer = this.#here.to;
          this.#print(this.#notice(
            `Talking with ${peer}, who is ${this.#online.has(peer) ? "online" : "offline"}`,
          ));
          return;
        }
        const room = this.#here.room!;
        const members = [...(this.#members.get(room) ?? [])].sort();
        const count = Math.max(members.length, this.#memberCounts.get(room) ?? 0);
        // A large room's list is its first page: say how many are not shown.
        const rest = count - members.length;
        this.#print(
          this.#notice(
            `In #${room} (${count}): ${
              rest > 0 ? `${members.join(", ")} and ${rest} more` : nameList(members)
            }`,
          ),
          this.#notice(
            this.#onlineCount === null
              ? `Online (${online.length}): ${nameList(online)}`
              : `Online: ${this.#onlineCount} (this chat is too large to list them)`,
          ),
        );
        return;
      }
      case "dm":
        if (cmd.text !== undefined) {
          try {
            await session.send({ to: cmd.user }, cmd.text);
          } catch (err) {
            this.#print(this.#error(`Not sent: ${(err as Error).message}`));
          }
          return;
        }
        return this.#openDm(cmd.user);
      case "history": {
        const page = await session.history(this.#here, { limit: cmd.limit });
        const where = this.#here.room !== undefined ? `#${this.#here.room}` : this.#here.to;
        if (page.messages.length === 0) {
          return this.#print(this.#notice(`No messages in ${where} yet`));
        }
        this.#print(
          this.#notice(
            `Last ${page.messages.length} message${
              page.messages.length === 1 ? "" : "s"
            } in ${where}:`,
          ),
          ...page.messages.map((m) => this.#line(m)),
        );
        return;
      }
      case "search": {
        const results = await session.search(cmd.q);
        if (results.length === 0) {
          return this.#print(this.#notice(`No messages match "${cmd.q}"`));
        }
        this.#print(
          this.#notice(
            `${results.length} message${results.length === 1 ? "" : "s"} match "${cmd.q}":`,
          ),
          ...[...results].reverse().map((m) =>
            formatMessage(m, { me: this.#me, color: this.#color, base: this.#base })
          ),
        );
        return;
      }
      case "passwd":
        return await this.#changePassword();
      case "help":
        this.#print(helpText(this.#role === "admin"));
        return;
      case "quit":
        this.quit(0);
        return;
      case "invalid":
        this.#print(this.#error(cmd.message));
        return;
      case "unknown":
        this.#print(
          this.#error(`Unknown command "${cmd.name}"`),
          helpText(this.#role === "admin"),
        );
        return;
    }
  }

  /**
   * Sends a message to the conversation on screen (or `options.here`),
   * answering `replyTo` if given, with `files` if given; remembered so that
   * `/edit` and `/delete` can wait for it.
   */
  async #send(
    text: string,
    replyTo?: number,
    options: { here?: Place; files?: string[] } = {},
  ): Promise<void> {
    const here = options.here ?? this.#here;
    const key = here.room !== undefined ? here.room : `@${here.to}`;
    const sent = this.#session.send(here, text, {
      ...(replyTo === undefined ? {} : { replyTo }),
      ...(options.files ? { files: options.files } : {}),
    });
    const settled = sent.then(() => {}, () => {});
    this.#sending.set(key, settled);
    try {
      await sent;
    } catch (err) {
      this.#print(this.#error(`Not sent: ${(err as Error).message}`));
    } finally {
      if (this.#sending.get(key) === settled) this.#sending.delete(key);
    }
  }

  // -------------------------------------------------------------------------
  // Files

  /**
   * Runs one transfer with its progress in front of the prompt; `null` when
   * another one is under way (having said so).
   */
  #begin(verb: Transfer["verb"], name: string): Transfer | null {
    if (this.#transfer) {
      const what = this.#transfer.verb === "Uploading" ? "An upload" : "A download";
      this.#print(this.#error(
        `${what} of ${this.#transfer.name} is under way: wait for it, or press Ctrl+C to cancel it`,
      ));
      return null;
    }
    const over = Promise.withResolvers<void>();
    const t: Transfer = {
      verb,
      name: strip(name),
      done: 0,
      total: null,
      abort: new AbortController(),
      drawn: 0,
      over: over.promise,
      finish: over.resolve,
    };
    this.#transfer = t;
    this.#draw();
    return t;
  }

  /** Notes a transfer's progress, drawing it at most every {@link PROGRESS_MS}. */
  #progress(t: Transfer, done: number, total: number | null): void {
    t.done = done;
    t.total = total;
    const now = Date.now();
    if (this.#transfer !== t || !this.#showProgress || now - t.drawn < PROGRESS_MS) return;
    t.drawn = now;
    this.#draw();
  }

  #end(t: Transfer): void {
    if (this.#transfer === t) this.#transfer = null;
    t.finish();
    this.#draw();
  }

  /**
   * `/upload PATH [TEXT]`: uploads the file, then sends it with TEXT where
   * it was asked; `hold` is released once reading the file is allowed.
   */
  async #upload(path: string, text: string, hold: Hold): Promise<void> {
    const here = this.#here;
    const token = this.#session.token;
    if (token === null) {
      this.#print(this.#error("Not uploaded: not signed in yet"));
      return;
    }
    const local = expandHome(path);
    const t = this.#begin("Uploading", baseName(local));
    if (t === null) return;
    let info: FileInfo;
    try {
      info = await uploadFile(local, {
        wsUrl: this.#url,
        token,
        signal: t.abort.signal,
        onProgress: (done, total) => this.#progress(t, done, total),
        ask: this.#asker(hold),
        onReady: hold.release,
      });
    } catch (err) {
      this.#end(t);
      this.#print(
        err instanceof TransferError && err.cancelled
          ? this.#notice(`Upload of ${t.name} cancelled`)
          : this.#error(`Not uploaded: ${lower((err as Error).message)}`),
      );
      return;
    }
    this.#end(t);
    this.#print(this.#notice(`Uploaded ${strip(info.name)} (${formatSize(info.size)})`));
    await this.#send(text, undefined, { here, files: [info.id] });
  }

  /**
   * `/download ID [PATH]`: finds the file among the conversation's messages
   * (by id, or a unique start of one) and saves it; `hold` is released
   * once the file is created.
   */
  async #download(id: string, path: string | undefined, hold: Hold): Promise<void> {
    const here = this.#here;
    let file = this.#findFile(here, id);
    if (file === undefined) {
      // Not among the messages on hand: look at the conversation's recent ones,
      // without leaving the terminal unread for long (offline, not at all).
      if (!this.#session.ready) hold.release();
      const timer = setTimeout(hold.release, LOOKUP_HOLD_MS);
      try {
        await this.#session.history(here, { limit: MAX_PAGE });
      } finally {
        clearTimeout(timer);
      }
      file = this.#findFile(here, id);
    }
    if (file === undefined) {
      this.#print(this.#error(
        `There is no file "${id}" in this conversation's messages: give the id shown after it (/download ID)`,
      ));
      return;
    }
    if (file === null) {
      this.#print(this.#error(`Several files here have an id starting "${id}": give more of it`));
      return;
    }
    const link = fileLink(file, this.#base);
    if (link === "") {
      this.#print(this.#error(`The server sent no link for ${strip(file.name)}`));
      return;
    }
    const t = this.#begin("Downloading", file.name);
    if (t === null) return;
    try {
      // Without a path: the Downloads folder, else the current directory.
      const folder = path === undefined ? downloadsFolder() : undefined;
      const target = folder === undefined
        ? destination(file.name, path)
        : `${folder.path}/${localName(file.name)}`;
      const saved = await downloadFile(link, target, {
        fallback: folder?.checked === false ? localName(file.name) : undefined,
        wsUrl: this.#url,
        token: this.#session.token ?? undefined,
        size: file.size,
        signal: t.abort.signal,
        onProgress: (done, total) => this.#progress(t, done, total),
        ask: this.#asker(hold),
        name: file.name,
        onReady: hold.release,
      });
      this.#end(t);
      this.#print(this.#notice(
        `Saved ${t.name} (${formatSize(saved.size)}) as ${shownPath(saved.path)}${
          saved.taken === undefined ? "" : ` (${shownPath(saved.taken)} exists already)`
        }`,
      ));
    } catch (err) {
      this.#end(t);
      this.#print(
        err instanceof TransferError && err.cancelled
          ? this.#notice(`Download of ${t.name} cancelled`)
          : this.#error(`Not downloaded: ${lower((err as Error).message)}`),
      );
    }
  }

  /** Keeps the terminal unread until released (see {@link Hold}). */
  #hold(): Hold {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#holds.add(promise);
    let active = true;
    return {
      get active() {
        return active;
      },
      release: () => {
        active = false;
        this.#holds.delete(promise);
        resolve();
      },
    };
  }

  /**
   * How a transfer asks for a permission, while `hold` keeps the terminal
   * unread; none when the terminal cannot ask.
   */
  #asker(
    hold: Hold,
  ): ((access: Access, path: string) => Promise<Deno.PermissionState>) | undefined {
    const request = this.#io.requestPermission?.bind(this.#io);
    if (!request) return undefined;
    return (access, path) => {
      if (!hold.active || this.#finished) {
        // A read is under way: it would take the answer meant for the question.
        throw new TransferError(
          `The question for ${
            access === "read" ? "reading" : "writing"
          } "${path}" could not be shown then (the file was found late): give the command again`,
        );
      }
      return this.#askPermission(request, access, path);
    };
  }

  /**
   * Shows Deno's question for `access` to `path` and resolves its answer:
   * the input line is cleared and raw mode left first, so that the user
   * sees the question and answers it as a line (the terminal is not being
   * read, see `#holds`); then raw mode is back and the prompt redrawn, with
   * any lines that arrived meanwhile above it.
   */
  async #askPermission(
    request: NonNullable<TerminalIO["requestPermission"]>,
    access: Access,
    path: string,
  ): Promise<Deno.PermissionState> {
    this.#clearLine();
    this.#questioning = true;
    this.#io.setRaw(false);
    try {
      return await request(access, path);
    } finally {
      this.#io.setRaw(true);
      this.#questioning = false;
      const held = this.#heldLines.splice(0);
      if (held.length > 0) this.#print(...held);
      else this.#draw();
    }
  }

  /**
   * The file of conversation `here` with id `id`, or the one whose id
   * starts so; `null` when several do, `undefined` when none does.
   */
  #findFile(here: Place, id: string): FileInfo | null | undefined {
    const files = this.#session.files(here);
    const exact = files.find((f) => f.id === id);
    if (exact) return exact;
    const ids = new Set(files.filter((f) => f.id.startsWith(id)).map((f) => f.id));
    if (ids.size > 1) return null;
    return ids.size === 1 ? files.find((f) => ids.has(f.id)) : undefined;
  }

  /**
   * The message `/edit` or `/delete` is about: `id`, or the user's last one
   * in conversation `here` (after the sends still on their way); `null`,
   * having said why, when there is none.
   */
  async #own(
    here: Place,
    id: number | undefined,
    verb: "edit" | "delete",
  ): Promise<number | null> {
    if (id !== undefined) return id;
    await this.#sending.get(here.room !== undefined ? here.room : `@${here.to}`);
    let last = this.#session.lastOwn(here);
    if (last === undefined) {
      // Not among the messages on hand: look at the conversation's recent ones.
      await this.#session.history(here, { limit: 50 });
      last = this.#session.lastOwn(here);
    }
    if (last === undefined) {
      this.#print(
        this.#error(`You have no message here to ${verb}: give its id (/ids shows them)`),
      );
      return null;
    }
    return last.id;
  }

  /**
   * `/passwd`: asks for the current password and the new one twice, without
   * echo, and has the server change it.
   */
  async #changePassword(): Promise<void> {
    if (this.#mode === "open") {
      this.#print(this.#error("This server is in open mode: there are no passwords"));
      return;
    }
    const current = await this.#askHidden("Current password");
    const password = current === null ? null : await this.#askHidden("New password");
    const again = password === null ? null : await this.#askHidden("New password again");
    if (again === null) {
      this.#print(this.#notice("Password not changed"));
      return;
    }
    if (again !== password) {
      this.#print(this.#error("The new passwords do not match: password not changed"));
      return;
    }
    try {
      await this.#session.passwd(current!, password);
    } catch (err) {
      const message = (err as Error).message;
      // A dropped connection's sentence says itself whether it changed.
      const closed = err instanceof ServerError && err.code === "closed";
      this.#print(this.#error(
        closed
          ? message
          : `Password not changed: ${message.charAt(0).toLowerCase()}${message.slice(1)}`,
      ));
      return;
    }
    this.#print(this.#notice("Password changed; your other sessions were signed out"));
  }

  /** Asks `label` on the input line without echo; `null` when given up (Ctrl+C, Ctrl+D). */
  async #askHidden(label: string): Promise<string | null> {
    const { promise, resolve } = Promise.withResolvers<string | null>();
    this.#asking = { label, editor: new LineEditor({ historySize: 0 }), answer: resolve };
    this.#draw();
    try {
      return await promise;
    } finally {
      this.#asking = null;
      this.#draw();
    }
  }

  /** The room on screen for a room command; `null` (having said so) in a DM. */
  #currentRoom(name: string): string | null {
    if (this.#here.room !== undefined) return this.#here.room;
    this.#print(this.#error(`${name} works in a room: /join the room first`));
    return null;
  }

  /**
   * Joins a room (created private when new and `isPrivate`), makes it the
   * current one and shows its recent history.
   */
  #openRoom(room: string, isPrivate = false): Promise<void> {
    const options = isPrivate ? { private: true } : {};
    return this.#session.join(room, undefined, options).then((joined: JoinedFrame) => {
      this.#members.set(room, new Set(joined.members));
      this.#memberCounts.set(room, joined.memberCount ?? joined.members.length);
      this.#kinds.set(room, kindOf(joined));
      this.#here = { room };
      const others = joined.members.filter((m) => m !== this.#me);
      const kind = kindWords(joined);
      const lines = [
        this.#notice(
          `You are in ${kind.length > 0 ? `${nameList(kind)} room ` : ""}#${room}${
            others.length > 0 ? ` with ${nameList(others)}` : " (nobody else is here yet)"
          }`,
        ),
      ];
      if (isPrivate && !joined.private) {
        lines.push(this.#notice(`#${room} existed already and is not private`));
      }
      if (joined.readOnly || joined.archived) {
        lines.push(this.#notice(
          joined.archived
            ? `#${room} is archived: nobody can post in it`
            : this.#role === "admin"
            ? `#${room} is read-only: only admins (like you) post in it`
            : `#${room} is read-only: only admins post in it`,
        ));
      }
      if (joined.restrictRoomMentions && !joined.archived && !joined.readOnly) {
        lines.push(this.#notice(
          this.#role === "admin"
            ? `In #${room} only admins (like you) notify everyone with @room or @here`
            : `In #${room} only admins notify everyone with @room or @here`,
        ));
      }
      if (joined.more) lines.push(this.#notice("Older messages: /history 200"));
      if (joined.history.length > 0) lines.push(...joined.history.map((m) => this.#line(m)));
      else lines.push(this.#notice(`No messages in #${room} yet`));
      this.#print(...lines);
    }, (err) => {
      this.#print(this.#error(`Cannot join #${room}: ${(err as Error).message}`));
    });
  }

  /** Makes a DM the current conversation and shows its recent history. */
  async #openDm(user: string): Promise<void> {
    const page = await this.#session.history({ to: user }, { limit: 20 });
    this.#here = { to: user };
    const lines = [
      this.#notice(
        `Talking with ${user}: what you type goes to them only (/join ROOM to go back)`,
      ),
      ...page.messages.map((m) => this.#line(m)),
    ];
    this.#print(...lines);
  }
}

/** The kind of a room from a frame that carries its flags. */
function kindOf(f: RoomKind): RoomKind {
  const kind: RoomKind = {};
  if (f.private) kind.private = true;
  if (f.readOnly) kind.readOnly = true;
  if (f.archived) kind.archived = true;
  if (f.restrictRoomMentions) kind.restrictRoomMentions = true;
  return kind;
}

/** Moves `map`'s entry of `from` to `to` (dropping what `to` had: an earlier room's). */
function moveKey<V>(map: Map<string, V>, from: string, to: string): void {
  const value = map.get(from);
  map.delete(to);
  if (map.delete(from)) map.set(to, value!);
}

/** The command that switches a room setting. */
function settingName(setting: RoomSetting): string {
  return setting === "readOnly"
    ? "/readonly"
    : setting === "archived"
    ? "/archive"
    : setting === "private"
    ? "/private"
    : "/atroom";
}

/** A path as the final line of a download shows it: `./name` in the current directory. */
function shownPath(path: string): string {
  return /^([\\/]|[A-Za-z]:|\.\.?[\\/])/.test(path) ? path : `./${path}`;
}

/** A sentence continued after a colon: its first letter lower case (unless a word in capitals). */
function lower(message: string): string {
  return /^[A-Z][a-z]/.test(message) ? message.charAt(0).toLowerCase() + message.slice(1) : message;
}
