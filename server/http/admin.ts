/**
 * The admin routes: invite links (created, listed and revoked by admins and
 * by the server's shell; opened and used by anyone holding one) and the
 * audit log. JSON in and out; every refusal is `{"error": code, "message"}`.
 *
 * - `GET /api/invites/<code>`: whether a link can be used (no sign-in).
 * - `POST /api/invites/<code>` `{"name","password"}`: creates the account
 *   and answers its session token (no sign-in; sign-up may be off).
 * - `GET|POST /api/invites`, `DELETE /api/invites/<code>`, `GET /api/audit`,
 *   `GET /api/bans`, `GET /api/rooms`, `GET /api/people`, `POST /api/people/<name>/role`,
 *   `POST /api/people/<name>/signout`, `DELETE /api/people/<name>`: admins only (`Authorization: Bearer
 *   <token>`), or the server's shell (`Authorization: Shell …`, see
 *   `server/admin/shell.ts`).
 * - `POST /api/audit` `{"action","target","detail"?}`: the server's shell
 *   only, recording what `chat user` changed in users.json (see
 *   {@link SHELL_ACTIONS}).
 *
 * @module
 */
import { isReservedName, NAME_PATTERN, type RoomKind } from "../../protocol.ts";
import {
  type AdminStore,
  type Invite,
  inviteState,
  MAX_INVITE_TTL,
  MAX_INVITE_USES,
  MAX_LIVE_INVITES,
  newInviteCode,
  record,
} from "../admin/admin.ts";
import { ShellSignatures } from "../admin/shell.ts";
import { type Auth, newSessionId, passwordProblem } from "../auth/auth.ts";
import { HasherBusyError } from "../auth/password.ts";
import type { Logger } from "../log.ts";
import { HttpError, json } from "./http.ts";
import { RateBuckets } from "./rate.ts";

/** An invite's default life: seven days, in seconds. */
export const DEFAULT_INVITE_SECONDS = 7 * 24 * 3600;

/** Shortest invite life accepted, in seconds. */
const MIN_INVITE_SECONDS = 60;

/** Looking up invite links, per client address. */
const LOOKUP_RATE = { rate: 2, burst: 30 };

/** Using invite links (each costs an argon2 hash), per client address. */
const REDEEM_RATE = { rate: 0.2, burst: 10 };

/** Invite codes: 22 base64url characters. */
const CODE = /^[A-Za-z0-9_-]{22}$/;

/**
 * What the server's shell records with `POST /api/audit`: the changes
 * `chat user` makes in users.json, which the server only sees as a reload.
 * `user.add` and `role` take the role as their detail.
 */
export const SHELL_ACTIONS: readonly string[] = ["user.add", "remove", "passwd", "role", "signout"];

/** The longest free detail the shell may record (`remove`, `passwd`, `signout`). */
export const MAX_SHELL_DETAIL = 200;

/** What the admin routes need. */
export interface AdminRoutesDeps {
  admin: AdminStore;
  auth: Auth;
  log: Logger;
  /** The user a session token acts as now, or null (forged, expired, signed out, banned). */
  tokenUser: (token: string) => Promise<string | null>;
  /** Called after an admin changed users.json (a role, a removal): sessions are checked again. */
  usersChanged?: () => void;
  /** Every room with its members count, topic and kind (private and archived ones too). */
  rooms?: () => Promise<({ name: string; members: number; topic?: string } & RoomKind)[]>;
  /** Each user's sessions that can still sign in, latest first (users without any left out). */
  sessions?: (users: string[]) => Promise<Map<string, { seen: number }[]>>;
  /** Forgets a user's sessions (signed out everywhere). */
  forgetSessions?: (user: string) => Promise<void>;
  /** Takes a removed user out of every room (`by`: the admin who removed them). */
  evict?: (user: string, by: string) => Promise<void>;
  /** Where invite links point: `<base>/#/invite/<code>`. */
  linkBase: (req: Request) => string;
  /** Clock in ms. @default {Date.now} */
  now?: () => number;
}

/** The admin routes, called by the router for `/api/invites…` and `/api/audit`. */
export interface AdminRoutes {
  /** Answers `req` for `path`, or returns null when the path is not one of these routes. */
  handle(req: Request, url: URL, addr: string): Promise<Response | null>;
}

/** Builds the admin routes. */
export function adminRoutes(deps: AdminRoutesDeps): AdminRoutes {
  const now = deps.now ?? Date.now;
  const limits = new RateBuckets();
  const shellKey = deps.auth.keyFor("shell");
  const shell = new ShellSignatures();
  /** Each request's body, read once: the shell's signature covers it, and the route parses it. */
  const texts = new WeakMap<Request, Promise<string>>();
  const textOf = (req: Request): Promise<string> => {
    let text = texts.get(req);
    if (!text) {
      text = req.body ? req.text() : Promise.resolve("");
      texts.set(req, text);
    }
    return text;
  };

  function limit(key: string, rate: { rate: number; burst: number }, what: string): void {
    const wait = limits.wait(key, rate);
    if (wait > 0) {
      throw new HttpError(
        429,
        `Too many ${what} from your address: try again in ${wait} s`,
        { "retry-after": String(wait) },
        "rate_limited",
      );
    }
    limits.take(key);
  }

  /** The admin making the request (`""` for the server's shell); throws 401/403 otherwise. */
  async function adminOf(req: Request, url: URL): Promise<string> {
    const header = req.headers.get("authorization");
    if (header?.startsWith("Shell ")) {
      const request = { method: req.method, path: url.pathname, body: await textOf(req) };
      if (shell.take(header, shellKey, request, now())) return "";
    }
    const m = /^Bearer\s+(\S{1,1024})$/i.exec(header ?? "");
    const user = m ? await deps.tokenUser(m[1]) : null;
    if (user === null) {
      throw new HttpError(
        401,
        "Send an admin's session token as Authorization: Bearer TOKEN",
        { "www-authenticate": "Bearer" },
        "unauthorized",
      );
    }
    if (deps.auth.role(user) !== "admin") {
      throw new HttpError(403, "Only admins may do this", {}, "forbidden");
    }
    return user;
  }

  /**
   * Lets only the server's shell through: an account's token, even an
   * admin's, gets 403 (admins' actions are recorded as they happen); no
   * valid signature or token gets 401.
   */
  async function shellOnly(req: Request, url: URL): Promise<void> {
    const header = req.headers.get("authorization");
    if (header?.startsWith("Shell ")) {
      const request = { method: req.method, path: url.pathname, body: await textOf(req) };
      if (shell.take(header, shellKey, request, now())) return;
    } else {
      const m = /^Bearer\s+(\S{1,1024})$/i.exec(header ?? "");
      if (m && await deps.tokenUser(m[1]) !== null) {
        throw new HttpError(
          403,
          "Only the server's shell may add to the audit log",
          {},
          "forbidden",
        );
      }
    }
    throw new HttpError(
      401,
      "Sign the request as the server's shell (chat user does)",
      { "www-authenticate": "Shell" },
      "unauthorized",
    );
  }

  function view(invite: Invite, base: string, at: number) {
    return { ...invite, url: `${base}/#/invite/${invite.code}`, state: inviteState(invite, at) };
  }

  async function body(req: Request): Promise<Record<string, unknown>> {
    let value: unknown;
    try {
      value = JSON.parse(await textOf(req));
    } catch {
      throw new HttpError(400, "The body must be a JSON object", {}, "bad_request");
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new HttpError(400, "The body must be a JSON object", {}, "bad_request");
    }
    return value as Record<string, unknown>;
  }

  function whole(v: unknown, name: string, min: number, max: number, fallback: number): number {
    if (v === undefined) return fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      throw new HttpError(
        400,
        `"${name}" must be a whole number from ${min} to ${max}`,
        {},
        "bad_request",
      );
    }
    return v;
  }

  async function create(req: Request, url: URL): Promise<Response> {
    const by = await adminOf(req, url);
    if (deps.auth.mode !== "login") {
      throw new HttpError(
        409,
        "The server runs in open mode: anyone with its address joins with any free name. Add a user (chat user add NAME) to require a login, then invite people",
        {},
        "open_mode",
        { url: deps.linkBase(req) },
      );
    }
    const b = await body(req);
    const uses = whole(b.uses, "uses", 1, MAX_INVITE_USES, 1);
    const seconds = whole(
      b.expires,
      "expires",
      MIN_INVITE_SECONDS,
      MAX_INVITE_TTL / 1000,
      DEFAULT_INVITE_SECONDS,
    );
    if (b.admin !== undefined && typeof b.admin !== "boolean") {
      throw new HttpError(400, `"admin" must be true or false`, {}, "bad_request");
    }
    const at = now();
    const tooMany = () =>
      new HttpError(
        429,
        `There are ${MAX_LIVE_INVITES} invites that can still be used: revoke some first`,
        {},
        "too_many_invites",
      );
    if (await deps.admin.liveInvites(at) >= MAX_LIVE_INVITES) throw tooMany();
    const invite: Invite = {
      code: newInviteCode(),
      by,
      created: at,
      expires: at + seconds * 1000,
      uses,
      used: 0,
      admin: b.admin === true,
      usedBy: [],
    };
    try {
      await deps.admin.createInvite(invite);
    } catch (err) {
      // Another admin's invite took the last place since the count above.
      if (err instanceof RangeError && await deps.admin.liveInvites(at) >= MAX_LIVE_INVITES) {
        throw tooMany();
      }
      throw err;
    }
    await record(deps.admin, deps.log, {
      at,
      by,
      action: "invite.create",
      target: short(invite.code),
      detail: `${uses} use${uses === 1 ? "" : "s"}, ${duration(seconds)}${
        invite.admin ? ", admin" : ""
      }`,
    });
    return json(view(invite, deps.linkBase(req), at), { "cache-control": "no-store" }, 201);
  }

  async function list(req: Request, url: URL): Promise<Response> {
    await adminOf(req, url);
    const at = now();
    const base = deps.linkBase(req);
    const invites = (await deps.admin.invites(at)).map((i) => view(i, base, at));
    return json({ invites }, { "cache-control": "no-store" });
  }

  async function revoke(req: Request, url: URL, code: string): Promise<Response> {
    const by = await adminOf(req, url);
    const invite = await deps.admin.invite(code);
    if (invite === null) throw unknown();
    const revoked = await deps.admin.revokeInvite(code, now());
    if (revoked) {
      await record(deps.admin, deps.log, {
        at: now(),
        by,
        action: "invite.revoke",
        target: short(code),
      });
    }
    return json({ ok: revoked }, { "cache-control": "no-store" });
  }

  /** The invite behind `code` if it can be used now; throws 404/410 otherwise. */
  async function usable(code: string): Promise<Invite> {
    const invite = CODE.test(code) ? await deps.admin.invite(code) : null;
    if (invite === null) throw unknown();
    const state = inviteState(invite, now());
    if (state !== "ok") throw refused(state);
    return invite;
  }

  async function lookup(code: string, addr: string): Promise<Response> {
    limit(`look:${addr}`, LOOKUP_RATE, "invite lookups");
    const invite = await usable(code);
    return json({ ok: true, expires: invite.expires, admin: invite.admin, mode: deps.auth.mode }, {
      "cache-control": "no-store",
    });
  }

  async function redeem(req: Request, code: string, addr: string): Promise<Response> {
    limit(`use:${addr}`, REDEEM_RATE, "new accounts");
    const b = await body(req);
    const name = typeof b.name === "string" ? b.name.trim() : "";
    const password = typeof b.password === "string" ? b.password : "";
    if (!NAME_PATTERN.test(name)) {
      throw new HttpError(400, "Names are 1-32 letters, digits, - or _", {}, "bad_request");
    }
    const problem = passwordProblem(password);
    if (problem !== null) throw new HttpError(400, problem, {}, "bad_request");
    const invite = await usable(code);
    if (deps.auth.mode !== "login") {
      throw new HttpError(
        409,
        "The server runs in open mode: join with any free name",
        {},
        "open_mode",
      );
    }
    if (isReservedName(name) || deps.auth.has(name)) throw taken(name);
    const redeemed = await deps.admin.redeem(code, name, now());
    if (!redeemed.ok) throw redeemed.why === "unknown" ? unknown() : refused(redeemed.why);
    let result;
    try {
      result = await deps.auth.createAccount(name, password, invite.admin ? "admin" : "member");
    } catch (err) {
      await deps.admin.release(code, name);
      if (err instanceof HasherBusyError) {
        throw new HttpError(503, "The server is busy: try again in a moment", {
          "retry-after": "2",
        }, "unavailable");
      }
      throw err;
    }
    if (result !== "ok") {
      await deps.admin.release(code, name);
      if (result === "exists") throw taken(name);
      throw new HttpError(
        503,
        "Accounts cannot be created right now (the users file is being fixed): try again later",
        { "retry-after": "30" },
        "unavailable",
      );
    }
    const user = deps.auth.canonical(name) ?? name;
    await record(deps.admin, deps.log, {
      at: now(),
      by: user,
      action: "invite.use",
      target: short(code),
      detail: invite.admin ? "joined as an admin" : "joined",
    });
    deps.log.info(`"${user}" joined with an invite from ${invite.by || "the server's shell"}`);
    const token = deps.auth.issueToken(user, newSessionId());
    return json({ user, token }, { "cache-control": "no-store" }, 201);
  }

  async function audit(req: Request, url: URL): Promise<Response> {
    await adminOf(req, url);
    const q = url.searchParams;
    // A query value is text: only plain digits are a number (else `whole` refuses it).
    const num = (k: string, min: number, max: number, fallback: number) => {
      const raw = q.get(k);
      const v = raw === null ? undefined : /^\d{1,16}$/.test(raw) ? Number(raw) : NaN;
      return whole(v, k, min, max, fallback);
    };
    const limit = num("limit", 1, 500, 100);
    const before = q.has("before") ? num("before", 1, Number.MAX_SAFE_INTEGER, 0) : undefined;
    const entries = await deps.admin.auditLog(before === undefined ? { limit } : { before, limit });
    return json({ entries }, { "cache-control": "no-store" });
  }

  /** Records a change the server's shell made in users.json (`chat user`). */
  async function note(req: Request, url: URL): Promise<Response> {
    await shellOnly(req, url);
    const b = await body(req);
    const bad = (message: string) => new HttpError(400, message, {}, "bad_request");
    const action = b.action;
    if (typeof action !== "string" || !SHELL_ACTIONS.includes(action)) {
      throw bad(`"action" must be one of ${SHELL_ACTIONS.join(", ")}`);
    }
    const target = b.target;
    if (typeof target !== "string" || !NAME_PATTERN.test(target)) {
      throw bad(`"target" must be an account name: 1-32 letters, digits, - or _`);
    }
    const detail = b.detail;
    if (action === "user.add" || action === "role") {
      if (detail !== "admin" && detail !== "member") {
        throw bad(`"detail" of ${action} must be "admin" or "member"`);
      }
    } else if (
      detail !== undefined &&
      (typeof detail !== "string" || detail.length < 1 || detail.length > MAX_SHELL_DETAIL ||
        /[\p{Cc}]/u.test(detail))
    ) {
      throw bad(`"detail" must be text of 1-${MAX_SHELL_DETAIL} characters on one line`);
    }
    // The target need not exist: a removed account is gone, and an added one
    // may not be loaded yet (the server rereads users.json within a second).
    const entry = await deps.admin.audit({
      at: now(),
      by: "",
      action,
      target,
      ...(typeof detail === "string" ? { detail } : {}),
    });
    return json(entry, { "cache-control": "no-store" }, 201);
  }

  async function bans(req: Request, url: URL): Promise<Response> {
    await adminOf(req, url);
    return json({ bans: await deps.admin.bans(now()) }, { "cache-control": "no-store" });
  }

  async function rooms(req: Request, url: URL): Promise<Response> {
    await adminOf(req, url);
    return json({ rooms: await deps.rooms?.() ?? [] }, { "cache-control": "no-store" });
  }

  async function people(req: Request, url: URL): Promise<Response> {
    await adminOf(req, url);
    const auth = deps.auth;
    const names = [...auth.names()].sort((a, b) => a.toLowerCase() < b.toLowerCase() ? -1 : 1);
    const sessions = await deps.sessions?.(names) ?? new Map<string, { seen: number }[]>();
    const list = names.map((name) => {
      const mine = sessions.get(name) ?? [];
      const person: { name: string; role: string; sessions: number; signedIn?: number } = {
        name,
        role: auth.role(name) ?? "member",
        sessions: mine.length,
      };
      if (mine.length > 0) person.signedIn = mine[0].seen;
      return person;
    });
    return json({ people: list }, { "cache-control": "no-store" });
  }

  /** The account a path names, spelled as stored; 404 when there is none. */
  function account(raw: string): string {
    let name = "";
    try {
      name = decodeURIComponent(raw);
    } catch {
      // Not a name.
    }
    const stored = NAME_PATTERN.test(name) ? deps.auth.canonical(name) : undefined;
    if (stored === undefined) throw noUser(name);
    return stored;
  }

  const lastAdmin = (user: string) =>
    new HttpError(
      409,
      `"${user}" is the last admin: make another user an admin first`,
      {},
      "last_admin",
    );

  async function setRole(req: Request, by: string, user: string): Promise<Response> {
    const b = await body(req);
    if (b.role !== "admin" && b.role !== "member") {
      throw new HttpError(400, `"role" must be "admin" or "member"`, {}, "bad_request");
    }
    const result = await deps.auth.changeRole(user, b.role);
    if (result === "missing") throw noUser(user);
    if (result === "last_admin") throw lastAdmin(user);
    if (result === "unavailable") throw unavailable();
    if (result === "changed") {
      deps.usersChanged?.();
      await record(deps.admin, deps.log, {
        at: now(),
        by,
        action: "role",
        target: user,
        detail: b.role,
      });
    }
    return json({ user, role: b.role, changed: result === "changed" }, {
      "cache-control": "no-store",
    });
  }

  async function endSessions(by: string, user: string): Promise<Response> {
    const result = await deps.auth.endSessions(user);
    if (result === "missing") throw noUser(user);
    if (result === "unavailable") throw unavailable();
    deps.usersChanged?.();
    // Forgotten before the answer, so that the list the admin reloads says so.
    await deps.forgetSessions?.(user);
    await record(deps.admin, deps.log, { at: now(), by, action: "signout", target: user });
    return json({ ok: true }, { "cache-control": "no-store" });
  }

  async function remove(by: string, user: string): Promise<Response> {
    if (user === by) {
      throw new HttpError(400, "You cannot remove yourself: ask another admin", {}, "bad_request");
    }
    if (deps.auth.role(user) === "admin") {
      throw new HttpError(
        403,
        `"${user}" is an admin: make them a member first`,
        {},
        "forbidden",
      );
    }
    const result = await deps.auth.removeUser(user);
    if (result === "missing") throw noUser(user);
    if (result === "last_admin") throw lastAdmin(user);
    if (result === "unavailable") throw unavailable();
    deps.usersChanged?.();
    await deps.evict?.(user, by);
    await record(deps.admin, deps.log, { at: now(), by, action: "remove", target: user });
    return json({ ok: true }, { "cache-control": "no-store" });
  }

  return {
    async handle(req, url, addr) {
      const path = url.pathname;
      const method = req.method;
      const only = (...methods: string[]) => {
        if (!methods.includes(method)) {
          throw new HttpError(405, `Method ${method} is not allowed here`, {
            allow: methods.join(", "),
          });
        }
      };
      if (path === "/api/audit") {
        only("GET", "HEAD", "POST");
        return method === "POST" ? await note(req, url) : await audit(req, url);
      }
      if (path === "/api/bans") {
        only("GET", "HEAD");
        return await bans(req, url);
      }
      if (path === "/api/rooms") {
        only("GET", "HEAD");
        return await rooms(req, url);
      }
      if (path === "/api/people") {
        only("GET", "HEAD");
        return await people(req, url);
      }
      const person = /^\/api\/people\/([^/]+)(\/role|\/signout)?$/.exec(path);
      if (person) {
        only(person[2] ? "POST" : "DELETE");
        // Who asks first: nobody else may learn from the answer whether an account exists.
        const by = await adminOf(req, url);
        const user = account(person[1]);
        if (person[2] === "/role") return await setRole(req, by, user);
        if (person[2] === "/signout") return await endSessions(by, user);
        return await remove(by, user);
      }
      if (path === "/api/invites") {
        only("GET", "HEAD", "POST");
        return method === "POST" ? await create(req, url) : await list(req, url);
      }
      if (!path.startsWith("/api/invites/")) return null;
      const code = path.slice("/api/invites/".length);
      only("GET", "HEAD", "POST", "DELETE");
      if (method === "DELETE") return await revoke(req, url, code);
      if (method === "POST") return await redeem(req, code, addr);
      return await lookup(code, addr);
    },
  };
}

/** The first characters of an invite code: enough to tell invites apart in the audit log. */
function short(code: string): string {
  return `invite ${code.slice(0, 6)}…`;
}

function duration(seconds: number): string {
  const days = seconds / 86400;
  if (Number.isInteger(days)) return `${days} day${days === 1 ? "" : "s"}`;
  const hours = seconds / 3600;
  if (Number.isInteger(hours)) return `${hours} hour${hours === 1 ? "" : "s"}`;
  return `${Math.round(seconds / 60)} minutes`;
}

function noUser(name: string): HttpError {
  return new HttpError(404, `There is no user "${name.slice(0, 40)}"`, {}, "unknown_user");
}

function unavailable(): HttpError {
  return new HttpError(
    503,
    "users.json cannot be changed right now (it is being fixed): try again later",
    { "retry-after": "30" },
    "unavailable",
  );
}

function unknown(): HttpError {
  return new HttpError(
    404,
    "This invite link is not valid: ask for a new one",
    {},
    "unknown_invite",
  );
}

function taken(name: string): HttpError {
  return new HttpError(409, `The name "${name}" is taken: choose another`, {}, "name_taken");
}

const REFUSALS = {
  used: "This invite link has been used: ask for a new one",
  expired: "This invite link has expired: ask for a new one",
  revoked: "This invite link was revoked by an admin: ask for a new one",
  unknown: "This invite link is not valid: ask for a new one",
} as const;

function refused(why: keyof typeof REFUSALS): HttpError {
  if (why === "unknown") return unknown();
  return new HttpError(410, REFUSALS[why], {}, `invite_${why}`);
}
