/**
 * `chat export --data FILE [--room NAME] [--files DIR] [--audit]`: the history kept in
 * a data file as JSON lines on stdout, for backups and for leaving, and with
 * `--files` the files those messages carry, one file each in DIR. It opens
 * the data file read-only and reads one consistent snapshot, so it is safe to
 * run beside a live server.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { flagError, UsageError } from "./flags.ts";
import {
  type ChatMessage,
  type FileInfo,
  NAME_PATTERN,
  type ReplyRef,
  snippetOf,
} from "../protocol.ts";
import { openDataFile } from "../server/store/sqlite_schema.ts";

/** `chat export --help`. */
export const EXPORT_HELP = `Write the messages kept in a data file as JSON lines, oldest first.

Usage:
  chat export --data FILE [--room NAME] [--files DIR]
  chat export --data FILE --audit

Options:
  --data FILE    Data file of a server started with --data FILE [env DATA]
  --room NAME    Only the messages of this room (default: every room and DM)
  --files DIR    Also write the files of the exported messages into DIR
                 (created if missing), each as ID-NAME
  --audit        Write the audit log of admin actions instead, oldest first:
                 {"id":1,"at":"…","by":"alice","action":"ban","target":"bob"}
  -h, --help     Show this help

Each line is one message in its current state:
  {"id":1,"room":"general","from":"alice","text":"hi","ts":"…"}
direct messages carry "to" (the recipient) instead of "room". Ids count per room
or DM and skip numbers (edits, deletes and reactions take positions too).
Where it applies, a message also carries "edited" (when its text was last
edited), "reactions" ({"👍":["bob","carol"]}: who reacted, in order) and
"replyTo" ({"id":3,"from":"bob","snippet":"…"}: the message it answers, as that
one is now) and "files" (the files it carries:
[{"id":"…","name":"cat.png","size":1234,"type":"image/png","width":640,…}]).
A deleted message is a tombstone with empty text and "deleted":true (and
"removed":true when an admin removed someone else's message): its text
and files are not in the file any more. The file is only read, so a running
server may keep using it.

With --files DIR, every file of the exported messages is also written to DIR
as ID-NAME (DIR/q3Xv…-cat.png), byte for byte: with the JSON lines, a copy of
everything the data file holds about those messages.

Examples:
  chat export --data chat.db > chat-backup.jsonl
  chat export --data chat.db --files chat-files > chat-backup.jsonl
  chat export --data chat.db --room ops | jq -r '.from + ": " + .text'
  chat export --data chat.db --audit > audit.jsonl
`;

/** Lines are written in chunks of about this many bytes. */
const CHUNK = 64 * 1024;

/**
 * Runs `chat export` with its arguments; resolves the exit code.
 *
 * @throws {UsageError} for a bad flag or a missing `--data`.
 * @throws {Error} when the data file cannot be read or has no such room.
 */
export async function exportCommand(
  args: string[],
  env: Record<string, string | undefined> = {},
  out: { write(p: Uint8Array): Promise<number> } = Deno.stdout,
): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        data: { type: "string" },
        room: { type: "string" },
        files: { type: "string" },
        audit: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw flagError(err as Error, ["data", "room", "files", "audit", "help"]);
  }
  if (values.help) {
    await writeAll(out, new TextEncoder().encode(EXPORT_HELP));
    return 0;
  }
  const path = values.data ?? (env.DATA || undefined);
  if (path === undefined) {
    throw new UsageError(
      "Export needs a data file: chat export --data FILE (see chat export --help)",
    );
  }
  const room = values.room;
  if (room !== undefined && !NAME_PATTERN.test(room)) {
    throw new UsageError(
      `Invalid room "${room}": names are 1-32 letters, digits, - or _`,
    );
  }
  if (values.audit && (room !== undefined || values.files !== undefined)) {
    throw new UsageError("--audit writes the audit log alone: leave out --room and --files");
  }
  const filesDir = values.files;
  if (filesDir === "") {
    throw new UsageError('Flag "--files" needs a directory (see chat export --help)');
  }
  const file = openDataFile(path, { readOnly: true });
  const db = file.db;
  try {
    // One read transaction: a snapshot, whatever a running server writes meanwhile.
    db.exec("BEGIN");
    if (room !== undefined && !db.prepare("SELECT 1 FROM rooms WHERE name = ?").get(room)) {
      throw new Error(`No room "${room}" in data file "${path}": check the name`);
    }
    if (values.audit) return await exportAudit(db, file.foundVersion, out);
    const sql = selectMessages(file.foundVersion, room !== undefined);
    const rows = room === undefined ? db.prepare(sql).iterate() : db.prepare(sql).iterate(room);
    const encoder = new TextEncoder();
    const saver = filesDir !== undefined && file.foundVersion >= 8
      ? await fileSaver(db, filesDir)
      : null;
    if (filesDir !== undefined && !saver) await makeDir(filesDir);
    let chunk = "";
    for (const r of rows) {
      const line = exported(r);
      if (saver && line.files) { for (const f of line.files) await saver(f); }
      chunk += JSON.stringify(line) + "\n";
      if (chunk.length >= CHUNK) {
        if (!await writeAll(out, encoder.encode(chunk))) return 0;
        chunk = "";
      }
    }
    if (chunk !== "") await writeAll(out, encoder.encode(chunk));
    return 0;
  } finally {
    if (db.isTransaction) db.exec("COMMIT");
    file.close();
  }
}

/**
 * The audit log as JSON lines, oldest first (`by` is `""` for the server's
 * shell). A file older than schema 10 has none.
 */
async function exportAudit(
  db: DatabaseSync,
  version: number,
  out: { write(p: Uint8Array): Promise<number> },
): Promise<number> {
  if (version < 10) return 0;
  const encoder = new TextEncoder();
  let chunk = "";
  for (
    const r of db.prepare("SELECT id, at, by, action, target, detail FROM audit ORDER BY id")
      .iterate()
  ) {
    const entry: Record<string, unknown> = {
      id: Number(r.id),
      at: new Date(Number(r.at)).toISOString(),
      by: r.by,
      action: r.action,
      target: r.target,
    };
    if (r.detail !== null) entry.detail = r.detail;
    chunk += JSON.stringify(entry) + "\n";
    if (chunk.length >= CHUNK) {
      if (!await writeAll(out, encoder.encode(chunk))) return 0;
      chunk = "";
    }
  }
  if (chunk !== "") await writeAll(out, encoder.encode(chunk));
  return 0;
}

/** Creates the directory `dir` (and its parents) unless it exists. */
async function makeDir(dir: string): Promise<void> {
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (err) {
    throw new Error(`Cannot create directory "${dir}" for --files: ${(err as Error).message}`);
  }
}

/** Longest file name most file systems take, in bytes. */
const NAME_MAX = 255;

/**
 * A function that writes one file of the data file into `dir` as
 * `ID-NAME`, chunk by chunk (never the whole file in memory). Files whose
 * bytes are not in the data file (removed since) are left out.
 */
async function fileSaver(
  db: DatabaseSync,
  dir: string,
): Promise<(f: FileInfo) => Promise<void>> {
  await makeDir(dir);
  const kept = db.prepare("SELECT size FROM files WHERE id = ? AND state <> 0");
  const chunks = db.prepare("SELECT data FROM file_chunks WHERE file = ? ORDER BY n");
  return async (f) => {
    if (kept.get(f.id) === undefined) return;
    const path = join(dir, diskName(f.id, f.name));
    // Never through a link or over a directory someone put there.
    let info: Deno.FileInfo | null = null;
    try {
      info = await Deno.lstat(path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    if (info && !info.isFile) {
      throw new Error(`Cannot write "${path}": something other than a file is there`);
    }
    // Private, as the data file is.
    using out = await Deno.open(path, { write: true, create: true, truncate: true, mode: 0o600 });
    for (const row of chunks.iterate(f.id)) {
      const data = row.data as Uint8Array;
      for (let off = 0; off < data.length;) off += await out.write(data.subarray(off));
    }
  };
}

/**
 * `ID-NAME` as one path segment: no separators or control characters (the
 * server cleaned the name already; this holds whatever the file says), at
 * most {@link NAME_MAX} bytes, keeping a short extension.
 */
export function diskName(id: string, name: string): string {
  // deno-lint-ignore no-control-regex
  let clean = name.replace(/[\/\\\x00-\x1f\x7f]/g, "_");
  if (clean === "") clean = "file";
  // Ids are base64url; a data file edited by hand gets no say either.
  const prefix = `${id.replace(/[^A-Za-z0-9_-]/g, "_")}-`;
  const encoder = new TextEncoder();
  const room = NAME_MAX - encoder.encode(prefix).length;
  if (encoder.encode(clean).length > room) {
    const dot = clean.lastIndexOf(".");
    const ext = dot > 0 && clean.length - dot <= 16 ? clean.slice(dot) : "";
    let base = clean.slice(0, clean.length - ext.length);
    while (encoder.encode(base + ext).length > room) base = [...base].slice(0, -1).join("");
    clean = base + ext;
  }
  return prefix + clean;
}

/** A message as `chat export` writes it: its current state, without positions. */
type ExportedMessage = Omit<ChatMessage, "seq" | "ref">;

/**
 * The messages with what their current state needs: the original a reply
 * answers (when it is still kept) and the reactions, in reaction order, as
 * JSON. Files of schema 5 and before (a server that was not upgraded yet)
 * have no changes: they read as such.
 */
function selectMessages(version: number, oneRoom: boolean): string {
  const where = oneRoom ? "WHERE m.conv = ? ORDER BY m.id" : "ORDER BY m.seq";
  if (version < 6) {
    return `SELECT m.id, m.room, m.recipient, m.sender, m.text, m.ts FROM messages AS m ${where}`;
  }
  return `SELECT m.id, m.room, m.recipient, m.sender, m.text, m.ts, m.edited, m.deleted,
      m.reply_to, m.reply_from, m.reply_snippet, ${version >= 8 ? "m.files" : "NULL AS files"},
      o.sender AS o_from, o.text AS o_text, o.deleted AS o_deleted,
      (SELECT json_group_array(json_array(r.emoji, r.member) ORDER BY r.emoji_ord, r.ord)
        FROM reactions AS r WHERE r.conv = m.conv AND r.id = m.id) AS reactions
    FROM messages AS m
    LEFT JOIN messages AS o ON o.conv = m.conv AND o.id = m.reply_to
    ${where}`;
}

/** One row as its export line. */
function exported(r: Record<string, unknown>): ExportedMessage {
  const ts = new Date(Number(r.ts)).toISOString();
  const id = Number(r.id), from = String(r.sender), text = String(r.text);
  const line: ExportedMessage = r.room !== null
    ? { id, room: String(r.room), from, text, ts }
    : { id, to: String(r.recipient), from, text, ts };
  if (Number(r.deleted ?? 0) !== 0) {
    // The row's text is '' already; the tombstone says so (2: an admin removed it).
    line.text = "";
    line.deleted = true;
    if (Number(r.deleted) === 2) line.removed = true;
    return line;
  }
  if (r.edited !== null && r.edited !== undefined) {
    line.edited = new Date(Math.max(Number(r.edited), Number(r.ts))).toISOString();
  }
  const pairs = JSON.parse(String(r.reactions ?? "[]")) as [string, string][];
  if (pairs.length > 0) {
    const reactions: Record<string, string[]> = {};
    for (const [emoji, user] of pairs) (reactions[emoji] ??= []).push(user);
    line.reactions = reactions;
  }
  if (r.reply_to !== null && r.reply_to !== undefined) line.replyTo = replyOf(r);
  // As stored: without `url` (a link is signed for one viewer of a running server).
  if (typeof r.files === "string") line.files = JSON.parse(r.files) as FileInfo[];
  return line;
}

/** What a reply quotes: from the original as it is now while kept, else as stored. */
function replyOf(r: Record<string, unknown>): ReplyRef {
  const id = Number(r.reply_to);
  if (r.o_from !== null && r.o_from !== undefined) {
    const from = String(r.o_from);
    return Number(r.o_deleted) !== 0
      ? { id, from, snippet: "", deleted: true }
      : { id, from, snippet: snippetOf(String(r.o_text)) };
  }
  const from = String(r.reply_from ?? "");
  // A NULL snippet: the original was deleted (and is gone now).
  return r.reply_snippet === null
    ? { id, from, snippet: "", deleted: true }
    : { id, from, snippet: String(r.reply_snippet) };
}

/** Writes everything; resolves `false` if the reader went away (`| head`). */
async function writeAll(
  out: { write(p: Uint8Array): Promise<number> },
  bytes: Uint8Array,
): Promise<boolean> {
  try {
    for (let off = 0; off < bytes.length;) off += await out.write(bytes.subarray(off));
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.BrokenPipe) return false;
    throw err;
  }
}
