/**
 * What admins manage that is not a message: invite links, bans and the audit
 * log of every admin action.
 *
 * One interface, three backends like the message store: in memory (the
 * default), in the `--data` SQLite file, and in Redis (`--redis`), where every
 * node shares it. `tests/admin_store_contract.ts` runs one suite against each.
 * Redeeming an invite is one atomic step in every backend, so two people
 * racing for its last use never both get in, also through two nodes.
 *
 * @module
 */

/** A user's role: admins manage people, invites and rooms. */
export type Role = "admin" | "member";

/** Longest an invite may live, in ms (a year). */
export const MAX_INVITE_TTL = 365 * 24 * 3600 * 1000;

/** Most uses one invite may allow. */
export const MAX_INVITE_USES = 1000;

/** Most invites kept that can still be used: creating one more is refused. */
export const MAX_LIVE_INVITES = 500;

/** Most entries the audit log keeps; older ones are dropped first. */
export const AUDIT_KEEP = 10_000;

/** How long a used-up, expired or revoked invite stays listed, in ms (30 days). */
export const SPENT_INVITE_KEEP = 30 * 24 * 3600 * 1000;

/** An invite link's state. */
export interface Invite {
  /** The secret in the link: 22 base64url characters (128 random bits). */
  code: string;
  /** Who created it: an admin's name, or `""` for the server's shell (`chat invite`). */
  by: string;
  /** When it was created (ms since the epoch). */
  created: number;
  /** When it stops working (ms since the epoch). */
  expires: number;
  /** How many accounts it may create. */
  uses: number;
  /** How many it has created (or is creating). */
  used: number;
  /** Accounts created with it are admins. */
  admin: boolean;
  /** When it was revoked, if it was. */
  revoked?: number;
  /** The names that joined with it, oldest first. */
  usedBy: string[];
}

/** Why an invite cannot be used. */
export type InviteRefusal = "unknown" | "used" | "expired" | "revoked";

/** What {@link AdminStore.redeem} did. */
export type Redeemed =
  | { ok: true; invite: Invite }
  | { ok: false; why: InviteRefusal };

/** A ban of one user from the whole chat. */
export interface Ban {
  /** The banned user, as stored (compare ignoring case). */
  user: string;
  /** Who banned them. */
  by: string;
  /** When (ms since the epoch). */
  at: number;
  /** Until when (ms since the epoch); absent: until unbanned. */
  until?: number;
  /** The reason given, if any (at most 200 characters). */
  reason?: string;
}

/** One admin action. */
export interface AuditEntry {
  /** A number increasing with every entry (per store). */
  id: number;
  /** When (ms since the epoch). */
  at: number;
  /** Who did it: an admin's name, or `""` for the server's shell. */
  by: string;
  /** What, e.g. `"invite.create"`, `"invite.revoke"`, `"invite.use"`, `"role"`, `"ban"`. */
  action: string;
  /** Whom or what it was done to (a user, a room, an invite code's first characters). */
  target: string;
  /** More about it in a few words, if any. */
  detail?: string;
}

/** Admin state behind one interface; see the module docs. */
export interface AdminStore {
  /** Keeps a new invite (its code is new: callers make it with {@link newInviteCode}). */
  createInvite(invite: Invite): Promise<void>;
  /** The invite with this code, or null. */
  invite(code: string): Promise<Invite | null>;
  /**
   * Every invite still listed at `now` (see {@link droppedAt}), newest
   * first. Dropped ones are deleted lazily.
   */
  invites(now: number): Promise<Invite[]>;
  /** How many invites could still be used at `now` (not revoked, expired or used up). */
  liveInvites(now: number): Promise<number>;
  /** Revokes an invite; false when there is no such invite or it was revoked already. */
  revokeInvite(code: string, at: number): Promise<boolean>;
  /**
   * Takes one use of the invite for `name`, atomically: refused when it is
   * unknown, revoked, expired at `now`, or has no use left. On success
   * `used` grew by one and `usedBy` ends with `name`.
   */
  redeem(code: string, name: string, now: number): Promise<Redeemed>;
  /**
   * Gives back a use taken by {@link redeem} for `name` whose account could
   * not be created after all (the name was taken meanwhile). Does nothing
   * when `name` holds no use of it.
   */
  release(code: string, name: string): Promise<void>;

  /** Bans `ban.user` (replacing an earlier ban of the same user). */
  ban(ban: Ban): Promise<void>;
  /** Lifts the ban of `user` (any case); false when there was none. */
  unban(user: string): Promise<boolean>;
  /** The ban of `user` (any case) in force at `now`, or null. */
  banned(user: string, now: number): Promise<Ban | null>;
  /** Every ban in force at `now`, oldest first. */
  bans(now: number): Promise<Ban[]>;

  /** Adds an entry to the audit log (its `id` and, when 0, `at` are the store's). */
  audit(entry: Omit<AuditEntry, "id">): Promise<AuditEntry>;
  /**
   * Audit entries, newest first, at most `limit` (≤ 500), only those with an
   * id below `before` when given (to page back).
   */
  auditLog(query: { before?: number; limit: number }): Promise<AuditEntry[]>;
  /** Releases what the store holds (a shared database connection stays open). */
  close(): Promise<void>;
}

/** A new invite code: 128 random bits, base64url. */
export function newInviteCode(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}

/** Whether an invite can be used at `now`, or why not. */
export function inviteState(invite: Invite, now: number): "ok" | InviteRefusal {
  if (invite.revoked !== undefined) return "revoked";
  if (invite.expires <= now) return "expired";
  if (invite.used >= invite.uses) return "used";
  return "ok";
}

/**
 * When an invite stops being listed: {@link SPENT_INVITE_KEEP} after it was
 * revoked, or after it expires (a used-up invite stays listed until then).
 */
export function droppedAt(invite: Invite): number {
  return (invite.revoked ?? invite.expires) + SPENT_INVITE_KEEP;
}

/**
 * Records an admin action that has taken effect already: a failure to write
 * the entry is logged, never answered, because the action is done (and its
 * effects must not wait on, or be undone by, the log).
 */
export async function record(
  admin: Pick<AdminStore, "audit">,
  log: { error(message: string): void },
  entry: Omit<AuditEntry, "id">,
): Promise<void> {
  try {
    await admin.audit(entry);
  } catch (err) {
    log.error(
      `Audit log: could not record ${entry.action} of "${entry.target}" by "${
        entry.by || "the server's shell"
      }": ${(err as Error).message}`,
    );
  }
}
