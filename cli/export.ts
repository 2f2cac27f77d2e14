/**
 * `chat export --data FILE [--room NAME]`: the history kept in a data file as
 * JSON lines on stdout, for backups and for leaving. It opens the file
 * read-only and reads one consistent snapshot, so it is safe to run beside a
 * live server.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { flagError, UsageError } from "./flags.ts";
import { NAME_PATTERN } from "../protocol.ts";
import { openDataFile } from "../server/store/sqlite_schema.ts";

/** `chat export --help`. */
export const EXPORT_HELP = `Write the messages kept in a data file as JSON lines, oldest first.

Usage:
  chat export --data FILE [--room NAME]

Options:
  --data FILE    Data file of a server started with --data FILE [env DATA]
  --room NAME    Only the messages of this room (default: every room and DM)
  -h, --help     Show this help

Each line is one message: {"id":1,"room":"general","from":"alice","text":"hi","ts":"…"};
direct messages carry "to" (the recipient) instead of "room". Ids count per room
or DM. The file is only read, so a running server may keep using it.

Examples:
  chat export --data chat.db > chat-backup.jsonl
  chat export --data chat.db --room ops | jq -r '.from + ": " + .text'
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
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw flagError(err as Error, ["data", "room", "help"]);
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
  const file = openDataFile(path, { readOnly: true });
  const db = file.db;
  try {
    // One read transaction: a snapshot, whatever a running server writes meanwhile.
    db.exec("BEGIN");
    if (room !== undefined && !db.prepare("SELECT 1 FROM rooms WHERE name = ?").get(room)) {
      throw new Error(`No room "${room}" in data file "${path}": check the name`);
    }
    const rows = room === undefined
      ? db.prepare(
        "SELECT id, room, recipient, sender, text, ts FROM messages ORDER BY seq",
      ).iterate()
      : db.prepare(
        "SELECT id, room, recipient, sender, text, ts FROM messages WHERE conv = ? ORDER BY id",
      ).iterate(room);
    const encoder = new TextEncoder();
    let chunk = "";
    for (const r of rows) {
      const ts = new Date(Number(r.ts)).toISOString();
      const line = r.room !== null
        ? { id: Number(r.id), room: r.room, from: r.sender, text: r.text, ts }
        : { id: Number(r.id), to: r.recipient, from: r.sender, text: r.text, ts };
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
