/**
 * The admin store of a server with `--data FILE`: invites, bans and the
 * audit log in the same SQLite file as the messages (tables of schema 10).
 *
 * It shares the {@link SqliteStore}'s connection, as the file store does:
 * every write is one short synchronous transaction (no `await` inside), so
 * it never interleaves with the message store's per-tick commit, and the
 * connection is never closed here. A redeem is one `UPDATE … WHERE` a use is
 * left, in a `BEGIN IMMEDIATE` transaction: it is atomic also against
 * another connection to the file (SQLite's write lock), not only within
 * this process.
 *
 * @module
 */
import { immediate } from "../store/sqlite_tx.ts";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { SqliteStore } from "../store/sqlite.ts";
import {
  type AdminStore,
  AUDIT_KEEP,
  type AuditEntry,
  type Ban,
  type Invite,
  inviteState,
  MAX_LIVE_INVITES,
  type Redeemed,
  SPENT_INVITE_KEEP,
} from "./admin.ts";

/** An invite code as `newInviteCode()` makes them (checked by every backend alike). */
const CODE = /^[A-Za-z0-9_-]{22}$/;

/** Most audit entries one {@link SqliteAdminStore.auditLog} call returns. */
const AUDIT_PAGE = 500;

/** Options for {@link SqliteAdminStore.open}. */
export interface SqliteAdminStoreOptions {
  /** The clock stamping audit entries made with `at: 0`, in ms since the epoch. @default {Date.now} */
  now?: () => number;
}

interface InviteRow {
  code: string;
  by: string;
  created: number;
  expires: number;
  uses: number;
  used: number;
  admin: number;
  revoked: number | null;
  used_by: string;
}

interface BanRow {
  user: string;
  by: string;
  at: number;
  until: number | null;
  reason: string | null;
}

interface AuditRow {
  id: number;
  at: number;
  by: string;
  action: string;
  target: string;
  detail: string | null;
}

/** An {@link AdminStore} in the data file of a {@link SqliteStore}. */
export class SqliteAdminStore implements AdminStore {
  #db: DatabaseSync;
  #sql: ReturnType<typeof statements>;
  #now: () => number;
  #closed = false;

  private constructor(db: DatabaseSync, options: SqliteAdminStoreOptions) {
    this.#db = db;
    this.#sql = statements(db);
    this.#now = options.now ?? Date.now;
  }

  /**
   * The admin store in `store`'s data file (schema 10 and later), on its
   * connection. Only the connection is used: a test may pass another
   * connection to the same file as `{ database }`.
   *
   * @example
   * ```ts
   * import { SqliteStore } from "../store/sqlite.ts";
   * import { SqliteAdminStore } from "./sqlite.ts";
   * const store = SqliteStore.open(await Deno.makeTempFile({ suffix: ".db" }));
   * const admin = SqliteAdminStore.open(store);
   * await admin.audit({ at: 0, by: "", action: "role", target: "alice", detail: "admin" });
   * await admin.close();
   * await store.close();
   * ```
   */
  static open(
    store: Pick<SqliteStore, "database">,
    options: SqliteAdminStoreOptions = {},
  ): SqliteAdminStore {
    return new SqliteAdminStore(store.database, options);
  }

  /** Keeps a new invite, unless {@link MAX_LIVE_INVITES} can still be used (checked in the same transaction). */
  createInvite(invite: Invite): Promise<void> {
    return this.#run(() => {
      if (!CODE.test(invite.code)) throw new RangeError(`"${invite.code}" is not an invite code`);
      this.#tx(() => {
        if (this.#sql.invite.get(invite.code)) {
          throw new Error(`Invite ${invite.code} exists already`);
        }
        this.#sql.dropInvites.run(invite.created, SPENT_INVITE_KEEP);
        if (Number(this.#sql.live.get(invite.created)?.n) >= MAX_LIVE_INVITES) {
          throw new RangeError(
            `Cannot create an invite: ${MAX_LIVE_INVITES} invites can still be used; revoke some first`,
          );
        }
        this.#sql.addInvite.run(
          invite.code,
          invite.by,
          invite.created,
          invite.expires,
          invite.uses,
          invite.used,
          invite.admin ? 1 : 0,
          invite.revoked ?? null,
          JSON.stringify(invite.usedBy),
        );
      });
    });
  }

  invite(code: string): Promise<Invite | null> {
    return this.#run(() => {
      const row = this.#sql.invite.get(code) as InviteRow | undefined;
      return row ? toInvite(row) : null;
    });
  }

  invites(now: number): Promise<Invite[]> {
    return this.#run(() => {
      this.#tx(() => this.#sql.dropInvites.run(now, SPENT_INVITE_KEEP));
      return (this.#sql.invites.all() as unknown as InviteRow[]).map(toInvite);
    });
  }

  liveInvites(now: number): Promise<number> {
    return this.#run(() => Number(this.#sql.live.get(now)?.n ?? 0));
  }

  revokeInvite(code: string, at: number): Promise<boolean> {
    return this.#run(() => this.#tx(() => this.#sql.revoke.run(at, code).changes > 0));
  }

  /**
   * Takes a use in one `UPDATE` that only matches a usable invite; when it
   * matches nothing, the same transaction reads why.
   */
  redeem(code: string, name: string, now: number): Promise<Redeemed> {
    return this.#run(() =>
      this.#tx((): Redeemed => {
        const row = this.#sql.redeem.get(name, code, now) as InviteRow | undefined;
        if (row) return { ok: true, invite: toInvite(row) };
        const found = this.#sql.invite.get(code) as InviteRow | undefined;
        if (!found) return { ok: false, why: "unknown" };
        const state = inviteState(toInvite(found), now);
        // Not "ok": the UPDATE just refused it under the same write lock.
        return { ok: false, why: state === "ok" ? "used" : state };
      })
    );
  }

  release(code: string, name: string): Promise<void> {
    return this.#run(() =>
      this.#tx(() => {
        const row = this.#sql.invite.get(code) as InviteRow | undefined;
        if (!row) return;
        const usedBy = JSON.parse(row.used_by) as string[];
        const at = usedBy.lastIndexOf(name);
        if (at < 0) return;
        usedBy.splice(at, 1);
        this.#sql.release.run(JSON.stringify(usedBy), code);
      })
    );
  }

  ban(ban: Ban): Promise<void> {
    return this.#run(() => {
      this.#tx(() =>
        this.#sql.ban.run(
          ban.user.toLowerCase(),
          ban.user,
          ban.by,
          ban.at,
          ban.until ?? null,
          ban.reason ?? null,
        )
      );
    });
  }

  unban(user: string): Promise<boolean> {
    return this.#run(() => this.#tx(() => this.#sql.unban.run(user.toLowerCase()).changes > 0));
  }

  banned(user: string, now: number): Promise<Ban | null> {
    return this.#run(() => {
      const row = this.#sql.banned.get(user.toLowerCase(), now) as BanRow | undefined;
      return row ? toBan(row) : null;
    });
  }

  bans(now: number): Promise<Ban[]> {
    return this.#run(() => (this.#sql.bans.all(now) as unknown as BanRow[]).map(toBan));
  }

  /**
   * Adds an entry and drops the one that fell out of the last
   * {@link AUDIT_KEEP} (ids follow each other: one range delete on the key).
   */
  audit(entry: Omit<AuditEntry, "id">): Promise<AuditEntry> {
    return this.#run(() => {
      const at = entry.at === 0 ? this.#now() : entry.at;
      const id = this.#tx(() => {
        const id = Number(
          this.#sql.addAudit.get(at, entry.by, entry.action, entry.target, entry.detail ?? null)
            ?.id,
        );
        this.#sql.trimAudit.run(id - AUDIT_KEEP);
        return id;
      });
      const kept: AuditEntry = { id, at, by: entry.by, action: entry.action, target: entry.target };
      if (entry.detail !== undefined) kept.detail = entry.detail;
      return kept;
    });
  }

  auditLog(query: { before?: number; limit: number }): Promise<AuditEntry[]> {
    return this.#run(() => {
      const limit = Math.min(Math.max(0, Math.floor(query.limit)), AUDIT_PAGE);
      if (limit === 0) return [];
      const rows = query.before === undefined
        ? this.#sql.auditLog.all(limit)
        : this.#sql.auditBefore.all(query.before, limit);
      return (rows as unknown as AuditRow[]).map(toAudit);
    });
  }

  /** Stops answering; the message store closes the connection. */
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  #tx<T>(fn: () => T): T {
    return immediate(this.#db, fn);
  }

  #run<T>(fn: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(new Error("The admin store is closed"));
    try {
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(err);
    }
  }
}

function toInvite(r: InviteRow): Invite {
  const invite: Invite = {
    code: r.code,
    by: r.by,
    created: Number(r.created),
    expires: Number(r.expires),
    uses: Number(r.uses),
    used: Number(r.used),
    admin: Number(r.admin) === 1,
    usedBy: JSON.parse(r.used_by),
  };
  if (r.revoked !== null) invite.revoked = Number(r.revoked);
  return invite;
}

function toBan(r: BanRow): Ban {
  const ban: Ban = { user: r.user, by: r.by, at: Number(r.at) };
  if (r.until !== null) ban.until = Number(r.until);
  if (r.reason !== null) ban.reason = r.reason;
  return ban;
}

function toAudit(r: AuditRow): AuditEntry {
  const entry: AuditEntry = {
    id: Number(r.id),
    at: Number(r.at),
    by: r.by,
    action: r.action,
    target: r.target,
  };
  if (r.detail !== null) entry.detail = r.detail;
  return entry;
}

const INVITE_COLUMNS = "code, by, created, expires, uses, used, admin, revoked, used_by";
const BAN_COLUMNS = "user, by, at, until, reason";
const AUDIT_COLUMNS = "id, at, by, action, target, detail";

function statements(db: DatabaseSync) {
  const p = (sql: string): StatementSync => db.prepare(sql);
  return {
    addInvite: p(`INSERT INTO invites (${INVITE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    invite: p(`SELECT ${INVITE_COLUMNS} FROM invites WHERE code = ?`),
    // Newest first; the index on (created, code) reads them in order, backwards.
    invites: p(`SELECT ${INVITE_COLUMNS} FROM invites ORDER BY created DESC, code DESC`),
    // No longer listed: see droppedAt() in admin.ts.
    dropInvites: p("DELETE FROM invites WHERE coalesce(revoked, expires) + ?2 <= ?1"),
    live: p(
      "SELECT count(*) AS n FROM invites WHERE revoked IS NULL AND expires > ? AND used < uses",
    ),
    revoke: p("UPDATE invites SET revoked = ? WHERE code = ? AND revoked IS NULL"),
    redeem: p(
      `UPDATE invites SET used = used + 1, used_by = json_insert(used_by, '$[#]', ?1)
       WHERE code = ?2 AND used < uses AND revoked IS NULL AND expires > ?3
       RETURNING ${INVITE_COLUMNS}`,
    ),
    release: p("UPDATE invites SET used = used - 1, used_by = ?1 WHERE code = ?2"),
    ban: p(`INSERT OR REPLACE INTO bans (folded, ${BAN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)`),
    unban: p("DELETE FROM bans WHERE folded = ?"),
    banned: p(
      `SELECT ${BAN_COLUMNS} FROM bans WHERE folded = ?1 AND (until IS NULL OR until > ?2)`,
    ),
    bans: p(
      `SELECT ${BAN_COLUMNS} FROM bans WHERE until IS NULL OR until > ? ORDER BY at, folded`,
    ),
    addAudit: p(
      "INSERT INTO audit (at, by, action, target, detail) VALUES (?, ?, ?, ?, ?) RETURNING id",
    ),
    trimAudit: p("DELETE FROM audit WHERE id <= ?"),
    auditLog: p(`SELECT ${AUDIT_COLUMNS} FROM audit ORDER BY id DESC LIMIT ?`),
    auditBefore: p(`SELECT ${AUDIT_COLUMNS} FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?`),
  } satisfies Record<string, StatementSync>;
}
