/**
 * The admin store of a server without `--data` or `--redis`: invites, bans
 * and the audit log live in this process and are gone on restart, as
 * history is. Every method changes its maps within one turn of the event
 * loop, so a redeem is atomic by construction.
 *
 * @module
 */
import {
  type AdminStore,
  AUDIT_KEEP,
  type AuditEntry,
  type Ban,
  droppedAt,
  type Invite,
  inviteState,
  MAX_LIVE_INVITES,
  type Redeemed,
} from "./admin.ts";

/** An invite code as `newInviteCode()` makes them (checked by every backend alike). */
const CODE = /^[A-Za-z0-9_-]{22}$/;

/** Most audit entries one {@link MemoryAdminStore.auditLog} call returns. */
const AUDIT_PAGE = 500;

/** Options for {@link MemoryAdminStore}. */
export interface MemoryAdminStoreOptions {
  /** The clock stamping audit entries made with `at: 0`, in ms since the epoch. @default {Date.now} */
  now?: () => number;
}

/** An {@link AdminStore} in this process's memory. */
export class MemoryAdminStore implements AdminStore {
  #now: () => number;
  #invites = new Map<string, Invite>();
  /** By lower-cased name. */
  #bans = new Map<string, Ban>();
  /** Oldest first, at most {@link AUDIT_KEEP}. */
  #audit: AuditEntry[] = [];
  #lastId = 0;

  /** An empty store. */
  constructor(options: MemoryAdminStoreOptions = {}) {
    this.#now = options.now ?? Date.now;
  }

  createInvite(invite: Invite): Promise<void> {
    if (!CODE.test(invite.code)) {
      return Promise.reject(new RangeError(`"${invite.code}" is not an invite code`));
    }
    if (this.#invites.has(invite.code)) {
      return Promise.reject(new Error(`Invite ${invite.code} exists already`));
    }
    this.#drop(invite.created);
    if (this.#live(invite.created) >= MAX_LIVE_INVITES) {
      return Promise.reject(
        new RangeError(
          `Cannot create an invite: ${MAX_LIVE_INVITES} invites can still be used; revoke some first`,
        ),
      );
    }
    this.#invites.set(invite.code, copyInvite(invite));
    return Promise.resolve();
  }

  invite(code: string): Promise<Invite | null> {
    const found = this.#invites.get(code);
    return Promise.resolve(found ? copyInvite(found) : null);
  }

  invites(now: number): Promise<Invite[]> {
    this.#drop(now);
    const list = [...this.#invites.values()].sort((a, b) =>
      b.created - a.created || (a.code < b.code ? 1 : a.code > b.code ? -1 : 0)
    );
    return Promise.resolve(list.map(copyInvite));
  }

  liveInvites(now: number): Promise<number> {
    return Promise.resolve(this.#live(now));
  }

  revokeInvite(code: string, at: number): Promise<boolean> {
    const found = this.#invites.get(code);
    if (!found || found.revoked !== undefined) return Promise.resolve(false);
    found.revoked = at;
    return Promise.resolve(true);
  }

  redeem(code: string, name: string, now: number): Promise<Redeemed> {
    const found = this.#invites.get(code);
    if (!found) return Promise.resolve({ ok: false, why: "unknown" });
    const state = inviteState(found, now);
    if (state !== "ok") return Promise.resolve({ ok: false, why: state });
    found.used++;
    found.usedBy.push(name);
    return Promise.resolve({ ok: true, invite: copyInvite(found) });
  }

  release(code: string, name: string): Promise<void> {
    const found = this.#invites.get(code);
    const at = found ? found.usedBy.lastIndexOf(name) : -1;
    if (found && at >= 0) {
      found.usedBy.splice(at, 1);
      found.used--;
    }
    return Promise.resolve();
  }

  ban(ban: Ban): Promise<void> {
    this.#bans.set(ban.user.toLowerCase(), copyBan(ban));
    return Promise.resolve();
  }

  unban(user: string): Promise<boolean> {
    return Promise.resolve(this.#bans.delete(user.toLowerCase()));
  }

  banned(user: string, now: number): Promise<Ban | null> {
    const found = this.#bans.get(user.toLowerCase());
    return Promise.resolve(found && inForce(found, now) ? copyBan(found) : null);
  }

  bans(now: number): Promise<Ban[]> {
    const list = [...this.#bans.entries()]
      .filter(([, b]) => inForce(b, now))
      .sort(([ka, a], [kb, b]) => a.at - b.at || (ka < kb ? -1 : ka > kb ? 1 : 0))
      .map(([, b]) => copyBan(b));
    return Promise.resolve(list);
  }

  audit(entry: Omit<AuditEntry, "id">): Promise<AuditEntry> {
    const kept: AuditEntry = {
      id: ++this.#lastId,
      at: entry.at === 0 ? this.#now() : entry.at,
      by: entry.by,
      action: entry.action,
      target: entry.target,
    };
    if (entry.detail !== undefined) kept.detail = entry.detail;
    this.#audit.push(kept);
    // One at a time: the array never holds more than one entry too many.
    if (this.#audit.length > AUDIT_KEEP) this.#audit.shift();
    return Promise.resolve({ ...kept });
  }

  auditLog(query: { before?: number; limit: number }): Promise<AuditEntry[]> {
    const limit = Math.min(Math.max(0, Math.floor(query.limit)), AUDIT_PAGE);
    const log = this.#audit;
    // Ids increase along the array: the first entry at or past `before`, by bisection.
    let end = log.length;
    if (query.before !== undefined) {
      let lo = 0;
      while (lo < end) {
        const mid = (lo + end) >> 1;
        if (log[mid].id < query.before) lo = mid + 1;
        else end = mid;
      }
    }
    const out: AuditEntry[] = [];
    for (let i = end - 1; i >= 0 && out.length < limit; i--) out.push({ ...log[i] });
    return Promise.resolve(out);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** Forgets the invites no longer listed at `now`. */
  #drop(now: number): void {
    for (const [code, invite] of this.#invites) {
      if (droppedAt(invite) <= now) this.#invites.delete(code);
    }
  }

  #live(now: number): number {
    let n = 0;
    for (const invite of this.#invites.values()) if (inviteState(invite, now) === "ok") n++;
    return n;
  }
}

function inForce(ban: Ban, now: number): boolean {
  return ban.until === undefined || ban.until > now;
}

function copyInvite(invite: Invite): Invite {
  const out: Invite = {
    code: invite.code,
    by: invite.by,
    created: invite.created,
    expires: invite.expires,
    uses: invite.uses,
    used: invite.used,
    admin: invite.admin,
    usedBy: [...invite.usedBy],
  };
  if (invite.revoked !== undefined) out.revoked = invite.revoked;
  return out;
}

function copyBan(ban: Ban): Ban {
  const out: Ban = { user: ban.user, by: ban.by, at: ban.at };
  if (ban.until !== undefined) out.until = ban.until;
  if (ban.reason !== undefined) out.reason = ban.reason;
  return out;
}
