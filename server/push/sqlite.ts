/**
 * The push store of a server with `--data FILE`: subscriptions and levels in
 * the same SQLite file as the messages. Its two tables are created here when
 * missing (`CREATE TABLE IF NOT EXISTS`): an older chat opening the file
 * leaves them alone.
 *
 * It shares the {@link SqliteStore}'s connection, as the admin store does:
 * every write is one short synchronous transaction, never interleaved with
 * the message store's per-tick commit. Visibility stays in memory: a data
 * file serves one node.
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { NotifyLevel } from "../../protocol.ts";
import { immediate } from "../store/sqlite_tx.ts";
import type { SqliteStore } from "../store/sqlite.ts";
import { NotifiedSet, VisibleSet } from "./memory.ts";
import {
  MAX_LEVELS_PER_USER,
  MAX_SUBSCRIPTIONS_PER_USER,
  type PushStore,
  type PushSubscriptionRecord,
  type Subscribed,
} from "./push_store.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS push_subscriptions (
  endpoint TEXT PRIMARY KEY,
  folded TEXT NOT NULL,
  user TEXT NOT NULL,
  session TEXT NOT NULL,
  fp TEXT NOT NULL,
  p256dh TEXT NOT NULL,
  auth TEXT NOT NULL,
  at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS push_subscriptions_user ON push_subscriptions (folded, at, endpoint);
CREATE TABLE IF NOT EXISTS push_levels (
  folded TEXT NOT NULL,
  conv TEXT NOT NULL,
  level TEXT NOT NULL,
  PRIMARY KEY (folded, conv)
);
CREATE INDEX IF NOT EXISTS push_levels_conv ON push_levels (conv);
`;

interface SubRow {
  endpoint: string;
  user: string;
  session: string;
  fp: string;
  p256dh: string;
  auth: string;
  at: number;
}

/** Options for {@link SqlitePushStore.open}. */
export interface SqlitePushStoreOptions {
  /** Clock in ms (visibility expiry). @default {Date.now} */
  now?: () => number;
}

/** A {@link PushStore} in the data file of a {@link SqliteStore}. */
export class SqlitePushStore implements PushStore {
  #db: DatabaseSync;
  #sql: ReturnType<typeof statements>;
  #visible: VisibleSet;
  #notified: NotifiedSet;
  #closed = false;

  private constructor(db: DatabaseSync, options: SqlitePushStoreOptions) {
    this.#db = db;
    immediate(db, () => db.exec(SCHEMA));
    this.#sql = statements(db);
    this.#visible = new VisibleSet(options.now);
    this.#notified = new NotifiedSet(options.now);
  }

  /** The push store in `store`'s data file, creating its tables when missing. */
  static open(
    store: Pick<SqliteStore, "database">,
    options: SqlitePushStoreOptions = {},
  ): SqlitePushStore {
    return new SqlitePushStore(store.database, options);
  }

  subscribe(sub: PushSubscriptionRecord, max = MAX_SUBSCRIPTIONS_PER_USER): Promise<Subscribed> {
    return this.#run(() =>
      immediate(this.#db, (): Subscribed => {
        const held = this.#sql.sub.get(sub.endpoint) as SubRow | undefined;
        if (
          held && held.user.toLowerCase() !== sub.user.toLowerCase() &&
          (held.p256dh !== sub.p256dh || held.auth !== sub.auth)
        ) {
          return { ok: false };
        }
        const folded = sub.user.toLowerCase();
        this.#sql.put.run(
          sub.endpoint,
          folded,
          sub.user,
          sub.session,
          sub.fp,
          sub.p256dh,
          sub.auth,
          sub.at,
        );
        const dropped: string[] = [];
        const mine = this.#sql.subsOf.all(folded) as unknown as SubRow[];
        for (let i = 0; i < mine.length - max; i++) {
          dropped.push(mine[i].endpoint);
          this.#sql.drop.run(mine[i].endpoint);
        }
        return { ok: true, dropped };
      })
    );
  }

  unsubscribe(user: string, endpoint: string): Promise<boolean> {
    return this.#run(() =>
      Number(this.#sql.unsubscribe.run(endpoint, user.toLowerCase()).changes) > 0
    );
  }

  drop(endpoint: string): Promise<void> {
    return this.#run(() => {
      this.#sql.drop.run(endpoint);
    });
  }

  anySubscriptions(): Promise<boolean> {
    return this.#run(() => this.#sql.any.get() !== undefined);
  }

  subscriptions(user: string): Promise<PushSubscriptionRecord[]> {
    return this.#run(() =>
      (this.#sql.subsOf.all(user.toLowerCase()) as unknown as SubRow[]).map(toRecord)
    );
  }

  get(endpoint: string): Promise<PushSubscriptionRecord | null> {
    return this.#run(() => {
      const row = this.#sql.sub.get(endpoint) as SubRow | undefined;
      return row ? toRecord(row) : null;
    });
  }

  forgetSession(user: string, session: string): Promise<number> {
    return this.#run(() =>
      Number(this.#sql.forgetSession.run(user.toLowerCase(), session).changes)
    );
  }

  keepSession(user: string, keep: string, to?: string, fp?: string): Promise<void> {
    return this.#run(() =>
      immediate(this.#db, () => {
        const folded = user.toLowerCase();
        this.#sql.keepOnly.run(folded, keep);
        if (fp !== undefined) this.#sql.moveFp.run(fp, folded, keep);
        if (to !== undefined) this.#sql.moveSession.run(to, folded, keep);
      })
    );
  }

  forgetSubscriptions(user: string): Promise<void> {
    return this.#run(() => {
      this.#sql.forgetSubs.run(user.toLowerCase());
    });
  }

  forgetUser(user: string): Promise<void> {
    return this.#run(() =>
      immediate(this.#db, () => {
        this.#sql.forgetSubs.run(user.toLowerCase());
        this.#sql.forgetLevels.run(user.toLowerCase());
      })
    );
  }

  setLevel(user: string, conv: string, level: NotifyLevel | null): Promise<boolean> {
    const folded = user.toLowerCase();
    return this.#run(() =>
      immediate(this.#db, () => {
        if (level === null) {
          this.#sql.unsetLevel.run(folded, conv);
          return true;
        }
        if (
          this.#sql.level.get(folded, conv) === undefined &&
          Number(this.#sql.levelCount.get(folded)?.n) >= MAX_LEVELS_PER_USER
        ) {
          return false;
        }
        this.#sql.setLevel.run(folded, conv, level);
        return true;
      })
    );
  }

  levels(user: string): Promise<Record<string, NotifyLevel>> {
    return this.#run(() => {
      const out: Record<string, NotifyLevel> = {};
      for (const r of this.#sql.levels.all(user.toLowerCase())) {
        out[r.conv as string] = r.level as NotifyLevel;
      }
      return out;
    });
  }

  levelsOf(conv: string, users: string[]): Promise<Map<string, NotifyLevel>> {
    return this.#run(() => {
      const out = new Map<string, NotifyLevel>();
      if (users.length === 0) return out;
      const set = new Map<string, NotifyLevel>();
      for (const r of this.#sql.levelsOf.all(conv)) {
        set.set(r.folded as string, r.level as NotifyLevel);
      }
      for (const u of users) {
        const level = set.get(u.toLowerCase());
        if (level !== undefined) out.set(u, level);
      }
      return out;
    });
  }

  convLevels(conv: string): Promise<Map<string, NotifyLevel>> {
    return this.#run(() => {
      const out = new Map<string, NotifyLevel>();
      for (const r of this.#sql.levelsOf.all(conv)) {
        out.set(r.folded as string, r.level as NotifyLevel);
      }
      return out;
    });
  }

  renameRoom(room: string, to: string): Promise<void> {
    return this.#run(() =>
      immediate(this.#db, () => {
        this.#sql.clearConv.run(`#${to}`);
        this.#sql.renameConv.run(`#${to}`, `#${room}`);
      })
    );
  }

  notified(endpoints: string[], conv: string, ttl: number): Promise<void> {
    return this.#run(() => this.#notified.add(endpoints, conv, ttl));
  }

  takeNotified(endpoints: string[], conv: string): Promise<Set<string>> {
    return this.#run(() => this.#notified.take(endpoints, conv));
  }

  setVisibleMany(node: string, changes: ReadonlyMap<string, boolean>, ttl: number): Promise<void> {
    return this.#run(() => {
      for (const [user, visible] of changes) this.#visible.set(node, user, visible, ttl);
    });
  }

  heartbeat(node: string, users: string[], ttl: number): Promise<void> {
    return this.#run(() => this.#visible.heartbeat(node, users, ttl));
  }

  visibleUsers(users: string[]): Promise<Set<string>> {
    return this.#run(() => this.#visible.visible(users));
  }

  leave(node: string): Promise<void> {
    return this.#run(() => this.#visible.leave(node));
  }

  /** Stops answering; the message store closes the connection. */
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  #run<T>(fn: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(new Error("The push store is closed"));
    try {
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(err);
    }
  }
}

function toRecord(r: SubRow): PushSubscriptionRecord {
  return {
    endpoint: r.endpoint,
    p256dh: r.p256dh,
    auth: r.auth,
    user: r.user,
    session: r.session,
    fp: r.fp,
    at: Number(r.at),
  };
}

function statements(db: DatabaseSync) {
  const p = (sql: string): StatementSync => db.prepare(sql);
  const cols = "endpoint, user, session, fp, p256dh, auth, at";
  return {
    sub: p(`SELECT ${cols} FROM push_subscriptions WHERE endpoint = ?`),
    any: p("SELECT 1 FROM push_subscriptions LIMIT 1"),
    put: p(
      `INSERT OR REPLACE INTO push_subscriptions (endpoint, folded, user, session, fp, p256dh, auth, at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    subsOf: p(
      `SELECT ${cols} FROM push_subscriptions WHERE folded = ? ORDER BY at, endpoint`,
    ),
    drop: p("DELETE FROM push_subscriptions WHERE endpoint = ?"),
    unsubscribe: p("DELETE FROM push_subscriptions WHERE endpoint = ? AND folded = ?"),
    forgetSession: p("DELETE FROM push_subscriptions WHERE folded = ? AND session = ?"),
    keepOnly: p("DELETE FROM push_subscriptions WHERE folded = ? AND session != ?"),
    moveFp: p("UPDATE push_subscriptions SET fp = ? WHERE folded = ? AND session = ?"),
    moveSession: p("UPDATE push_subscriptions SET session = ? WHERE folded = ? AND session = ?"),
    forgetSubs: p("DELETE FROM push_subscriptions WHERE folded = ?"),
    forgetLevels: p("DELETE FROM push_levels WHERE folded = ?"),
    level: p("SELECT level FROM push_levels WHERE folded = ? AND conv = ?"),
    levelCount: p("SELECT count(*) AS n FROM push_levels WHERE folded = ?"),
    setLevel: p("INSERT OR REPLACE INTO push_levels (folded, conv, level) VALUES (?, ?, ?)"),
    unsetLevel: p("DELETE FROM push_levels WHERE folded = ? AND conv = ?"),
    levels: p("SELECT conv, level FROM push_levels WHERE folded = ? ORDER BY conv"),
    levelsOf: p("SELECT folded, level FROM push_levels WHERE conv = ?"),
    clearConv: p("DELETE FROM push_levels WHERE conv = ?"),
    renameConv: p("UPDATE push_levels SET conv = ? WHERE conv = ?"),
  } satisfies Record<string, StatementSync>;
}
