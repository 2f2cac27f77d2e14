// This module is browser compatible.
/**
 * The chat's HTTP API for invite links and the admin page: checking and
 * using an invite (no session needed), and what admins manage with their
 * session token (`Authorization: Bearer`, as uploads send it). Answers are
 * checked before use; every refusal comes back as an {@link ApiError} with
 * the server's code and words.
 *
 * @module
 */
import type { RoomKind } from "../protocol.ts";

/** Why an invite link cannot be used. */
export type InviteProblem = "unknown" | "used" | "expired" | "revoked";

/** An invite link as admins see it (`GET /api/invites`). */
export interface Invite {
  code: string;
  /** The whole link, to copy or show as a QR code. */
  url: string;
  /** The admin who made it; "" when made on the server's shell (`chat invite`). */
  by: string;
  /** When it was made (ms since the epoch). */
  created: number;
  /** When it stops working (ms since the epoch). */
  expires: number;
  /** Accounts it may create. */
  uses: number;
  /** Accounts it created. */
  used: number;
  /** Accounts it creates are admins. */
  admin: boolean;
  /** When it was revoked, if it was. */
  revoked?: number;
  /** Who joined with it, oldest first. */
  usedBy: string[];
  state: "ok" | "used" | "expired" | "revoked";
}

/** One admin action (`GET /api/audit`). */
export interface AuditEntry {
  id: number;
  /** When (ms since the epoch). */
  at: number;
  /** Who did it (for `invite.use`, the new user). */
  by: string;
  /** What: "invite.create", "invite.revoke", "invite.use", "role", … */
  action: string;
  /** What it was done to: an invite's code, a user's name. */
  target: string;
  detail?: string;
}

/** An account as admins see it (`GET /api/people`). */
export interface Account {
  name: string;
  role: "admin" | "member";
  /** Sessions (signed-in devices) that can still sign in; absent from older servers. */
  sessions?: number;
  /** When the latest of them signed in (ms since the epoch). */
  signedIn?: number;
}

/** A ban in force (`GET /api/bans`). */
export interface Ban {
  user: string;
  /** The admin who banned them. */
  by: string;
  /** When (ms since the epoch). */
  at: number;
  /** When it ends (ms since the epoch); absent: until lifted. */
  until?: number;
  reason?: string;
}

/** What `GET /api/invites/<code>` says about a link that works. */
export interface InviteCheck {
  expires: number;
  admin: boolean;
}

/** The server (or the network) refused: `status` 0 is no answer at all. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
    this.name = "ApiError";
  }

  /** Why an invite link does not work, when that is what the server said. */
  get invite(): InviteProblem | null {
    switch (this.code) {
      case "unknown_invite":
        return "unknown";
      case "invite_used":
        return "used";
      case "invite_expired":
        return "expired";
      case "invite_revoked":
        return "revoked";
      default:
        return null;
    }
  }
}

const OFFLINE = "Could not reach the chat server: check your connection and try again";

/** Sends a request and reads its JSON answer; refusals throw {@link ApiError}. */
async function call(
  origin: string,
  path: string,
  init: { method?: string; token?: string | null; body?: unknown } = {},
): Promise<unknown> {
  const headers: Record<string, string> = {};
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  if (init.body !== undefined) headers["content-type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(new URL(path, origin), {
      method: init.method ?? "GET",
      headers,
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "offline", OFFLINE);
  }
  let value: unknown = null;
  try {
    value = await res.json();
  } catch {
    // Not JSON (a proxy's page, say): the status says enough.
  }
  if (res.ok) return value;
  const v = (value ?? {}) as { error?: unknown; message?: unknown };
  const code = typeof v.error === "string" ? v.error : `http_${res.status}`;
  // The server's words for 401 and 403 speak to API clients ("send a token"): ours to people.
  const message = typeof v.message === "string" && v.message !== "" && res.status !== 401 &&
      res.status !== 403
    ? v.message
    : fallback(res.status);
  throw new ApiError(res.status, code, message);
}

function fallback(status: number): string {
  if (status === 401) return "Your session has ended: reload the page and sign in again";
  if (status === 403) return "Only admins can do this: your role may have changed";
  if (status === 429) return "Too many tries: wait a minute and try again";
  if (status >= 500) return "The server could not do this right now: try again in a moment";
  return `The server refused (status ${status})`;
}

function path(code: string): string {
  return `/api/invites/${encodeURIComponent(code)}`;
}

/** Whether an invite link works (no session needed). */
export async function checkInvite(origin: string, code: string): Promise<InviteCheck> {
  const v = await call(origin, path(code)) as Partial<InviteCheck> | null;
  return { expires: Number(v?.expires) || 0, admin: v?.admin === true };
}

/** Creates an account with an invite link; resolves the name and its session token. */
export async function redeemInvite(
  origin: string,
  code: string,
  name: string,
  password: string,
): Promise<{ user: string; token: string }> {
  const v = await call(origin, path(code), { method: "POST", body: { name, password } }) as {
    user?: unknown;
    token?: unknown;
  } | null;
  if (typeof v?.user !== "string" || typeof v?.token !== "string" || v.token === "") {
    throw new ApiError(502, "bad_answer", "The server's answer was not understood: try again");
  }
  return { user: v.user, token: v.token };
}

/** What a new invite allows (`POST /api/invites`). */
export interface NewInvite {
  uses: number;
  /** Seconds it lives. */
  expires: number;
  admin: boolean;
}

/** A room as `GET /api/rooms` lists it for admins. */
export type AdminRoom = { name: string; members: number; topic?: string } & RoomKind;

/** The admin endpoints, called with an admin's session token. */
export class AdminApi {
  constructor(readonly origin: string, readonly token: () => string | null) {}

  /** Every invite the server keeps, newest first. */
  async invites(): Promise<Invite[]> {
    const v = await call(this.origin, "/api/invites", { token: this.token() }) as {
      invites?: unknown;
    } | null;
    return Array.isArray(v?.invites) ? v.invites.filter(isInvite) : [];
  }

  /** Makes an invite link. */
  async create(opts: NewInvite): Promise<Invite> {
    const v = await call(this.origin, "/api/invites", {
      method: "POST",
      token: this.token(),
      body: opts,
    });
    if (!isInvite(v)) {
      throw new ApiError(502, "bad_answer", "The server's answer was not understood: reload");
    }
    return v;
  }

  /** Stops an invite link from working. */
  async revoke(code: string): Promise<void> {
    await call(this.origin, path(code), { method: "DELETE", token: this.token() });
  }

  /** Every account, by name, with its role. */
  async people(): Promise<Account[]> {
    const v = await call(this.origin, "/api/people", { token: this.token() }) as {
      people?: unknown;
    } | null;
    return Array.isArray(v?.people) ? v.people.filter(isAccount) : [];
  }

  /** The bans in force. */
  async bans(): Promise<Ban[]> {
    const v = await call(this.origin, "/api/bans", { token: this.token() }) as {
      bans?: unknown;
    } | null;
    return Array.isArray(v?.bans) ? v.bans.filter(isBan) : [];
  }

  /** Makes `name` an admin or a member (refused for the last admin: `last_admin`). */
  async setRole(name: string, role: Account["role"]): Promise<void> {
    await call(this.origin, `${person(name)}/role`, {
      method: "POST",
      token: this.token(),
      body: { role },
    });
  }

  /** Ends every session of `name`, on every device; their password still works. */
  async signOut(name: string): Promise<void> {
    await call(this.origin, `${person(name)}/signout`, { method: "POST", token: this.token() });
  }

  /** Removes `name`'s account; their sessions end at once. */
  async remove(name: string): Promise<void> {
    await call(this.origin, person(name), { method: "DELETE", token: this.token() });
  }

  /** Every room with its size, topic and kind (private and archived ones too). */
  async rooms(): Promise<AdminRoom[]> {
    const v = await call(this.origin, "/api/rooms", { token: this.token() }) as {
      rooms?: unknown;
    } | null;
    return Array.isArray(v?.rooms) ? v.rooms.filter(isRoom) : [];
  }

  /** Audit log entries older than `before` (an entry's id), newest first. */
  async audit(before?: number, limit = 50): Promise<AuditEntry[]> {
    const q = new URLSearchParams({ limit: String(limit) });
    if (before !== undefined) q.set("before", String(before));
    const v = await call(this.origin, `/api/audit?${q}`, { token: this.token() }) as {
      entries?: unknown;
    } | null;
    return Array.isArray(v?.entries) ? v.entries.filter(isEntry) : [];
  }
}

function person(name: string): string {
  return `/api/people/${encodeURIComponent(name)}`;
}

function isAccount(v: unknown): v is Account {
  const a = v as Account | null;
  return typeof a === "object" && a !== null && typeof a.name === "string" &&
    (a.role === "admin" || a.role === "member");
}

function isRoom(v: unknown): v is AdminRoom {
  const r = v as AdminRoom | null;
  return typeof r === "object" && r !== null && typeof r.name === "string" &&
    typeof r.members === "number";
}

function isBan(v: unknown): v is Ban {
  const b = v as Ban | null;
  return typeof b === "object" && b !== null && typeof b.user === "string" &&
    typeof b.at === "number" && (b.until === undefined || typeof b.until === "number");
}

function isInvite(v: unknown): v is Invite {
  const i = v as Invite | null;
  return typeof i === "object" && i !== null && typeof i.code === "string" &&
    typeof i.url === "string" && typeof i.uses === "number" && typeof i.used === "number" &&
    typeof i.expires === "number" && typeof i.state === "string" && Array.isArray(i.usedBy);
}

function isEntry(v: unknown): v is AuditEntry {
  const e = v as AuditEntry | null;
  return typeof e === "object" && e !== null && typeof e.id === "number" &&
    typeof e.at === "number" && typeof e.action === "string" && typeof e.by === "string";
}
