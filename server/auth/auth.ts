/**
 * Who may sign in: users.json (reloaded when it changes), password checks,
 * signup, and signed session tokens.
 *
 * A token is `v1.<payload>.<signature>`: base64url JSON `{u, e, f, s}`
 * (user, expiry in Unix seconds, credential fingerprint, session) signed
 * with HMAC-SHA256. The fingerprint changes when the user's password changes
 * or the user is removed, which invalidates every token issued before. The
 * session names a sign-in and every token renewed from it: signing out
 * revokes it (in the store, for every node).
 *
 * The mode is decided at start: open only when the users file does not
 * exist. An open server turns login once a users file listing users
 * appears; a login server never turns open while it runs: a users file that
 * becomes unreadable, invalid or blank keeps the users loaded before, and
 * one that validly lists nobody lets nobody in.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { HmacKey } from "./hmac.ts";
import { dirname, join } from "node:path";
import { ConfigError } from "../config.ts";
import type { Logger } from "../log.ts";
import type { PasswordHasher } from "./password.ts";
import {
  endSessions,
  parseUsers,
  readUsers,
  removesLastAdmin,
  type RoleChange,
  setPassword,
  setRole,
  updateUsers,
  type Users,
  type UsersFile,
} from "./users.ts";
import type { Role } from "../admin/admin.ts";

/** Shortest password `chat user add` and sign-up accept. */
export const MIN_PASSWORD = 8;

/** Why a new password is not acceptable, or null. */
export function passwordProblem(password: string): string | null {
  if (password.length < MIN_PASSWORD) {
    return `The password is too short: use at least ${MIN_PASSWORD} characters`;
  }
  if (password.length > 1024) return "The password is too long: use at most 1024 characters";
  return null;
}

/** Options for {@link Auth.create}. */
export interface AuthOptions {
  /** Path of users.json. */
  usersPath: string;
  /** Token signing secret; when absent one is kept in `secretPath`. */
  secret?: string;
  /** Where a generated secret is kept. @default {"<users.json dir>/.chat-secret"} */
  secretPath?: string;
  /** Hashes and verifies passwords. */
  hasher: PasswordHasher;
  /** Where warnings go. */
  log: Logger;
  /** Token lifetime in seconds. @default {2592000} (30 days) */
  tokenTtl?: number;
  /**
   * Token lifetime in open mode, in seconds: as long as an unused name is
   * kept, so a token never outlives its name nor dies before it. @default {tokenTtl}
   */
  openTokenTtl?: number;
  /** Whether `register` may add users. @default {false} */
  allowSignup?: boolean;
}

/**
 * Result of a sign-up attempt; `"unavailable"` while the users file is
 * broken or gone (writing it then would lose every other user).
 */
export type RegisterResult = "ok" | "exists" | "disabled" | "unavailable";

/**
 * Result of a password change: `"wrong"` when the current password is not
 * right, `"gone"` when the user is no longer in users.json, `"stale"` when
 * the password was changed elsewhere meanwhile (that change stays),
 * `"unavailable"` while the users file is broken or gone.
 */
export type PasswdResult = "ok" | "wrong" | "gone" | "stale" | "unavailable";

/** A password change for {@link Auth.changePassword}. */
export interface PasswdChange {
  /** The password the user has now. */
  current: string;
  /** The new password (check it with {@link passwordProblem} first). */
  password: string;
  /**
   * Called once the new password is hashed, before users.json is written,
   * with the credential fingerprint the user's tokens will carry from then on.
   */
  beforeWrite?: (fingerprint: string) => void | Promise<void>;
}

/** What a valid token says. */
export interface TokenClaims {
  /** The user, as their name is spelled. */
  user: string;
  /** The session the token belongs to. */
  session: string;
  /**
   * Open mode only: the token is past its expiry. It still continues a
   * session whose name is held (a holder connected longer than a token
   * lives is not locked out), but cannot take a free name back.
   */
  expired?: boolean;
}

/**
 * The key for one use (`purpose`) of a token secret: what
 * {@link Auth.keyFor} gives, for tools that hold the secret but no `Auth`
 * (`chat invite` signs its requests with the `"shell"` key).
 */
export function deriveKey(secret: string | Buffer, purpose: string): Buffer {
  return createHmac("sha256", secret).update(`key:${purpose}`).digest();
}

/** A new, unguessable session id. */
export function newSessionId(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64url");
}

/** Credentials and tokens. */
export class Auth {
  #opts: AuthOptions;
  #secret: Buffer;
  /** Signs tokens and fingerprints with {@link Auth.#secret}. */
  #hmac: HmacKey;
  #users: Users = new Map();
  /** The admins, spelled as stored. */
  #admins = new Set<string>();
  /** How often each user was signed out everywhere (see `UsersFile.epochs`). */
  #epochs = new Map<string, number>();
  /** Lower-cased name → the name as stored: names are unique ignoring case. */
  #lower = new Map<string, string>();
  #open = false;
  /** The users file on disk is broken or gone: the users are the last good ones. */
  #broken = false;
  #stamp = "";
  /** Told the names of users signed out everywhere (see {@link onSignedOut}). */
  #signedOut: (names: string[]) => void = () => {};
  #queue: Promise<void> = Promise.resolve();
  #ttl: number;

  private constructor(opts: AuthOptions, secret: string) {
    this.#opts = opts;
    this.#secret = Buffer.from(secret);
    this.#hmac = new HmacKey(this.#secret);
    this.#ttl = opts.tokenTtl ?? 30 * 24 * 3600;
  }

  /**
   * Loads users.json and the signing secret.
   *
   * @throws {SyntaxError} when users.json exists but cannot be parsed.
   */
  static async create(opts: AuthOptions): Promise<Auth> {
    const secret = opts.secret ?? await loadSecret(
      opts.secretPath ?? join(dirname(opts.usersPath), ".chat-secret"),
      opts.log,
    );
    const auth = new Auth(opts, secret);
    auth.#stamp = await stamp(opts.usersPath);
    auth.#open = auth.#stamp === "missing";
    const { users, admins, epochs, warnings } = await readUsers(opts.usersPath);
    for (const w of warnings) opts.log.warn(w);
    auth.#setUsers({ users, admins, epochs });
    if (!auth.#open && users.size === 0) opts.log.error(auth.#nobody());
    auth.#adminHint();
    return auth;
  }

  /**
   * `"open"` when the server started without a users file (until one listing
   * users appears), else `"login"`.
   */
  get mode(): "open" | "login" {
    return this.#open ? "open" : "login";
  }

  /** Whether the users file read cleanly at its last look (else the last good users apply). */
  get usersFileOk(): boolean {
    return !this.#broken;
  }

  /**
   * Calls `listener` with the names of users signed out everywhere: by
   * {@link endSessions} here, or found so when users.json is reread (the
   * shell's `chat user signout`, another node). One listener; a later call
   * replaces it.
   */
  onSignedOut(listener: (names: string[]) => void): void {
    this.#signedOut = listener;
  }

  /** Token lifetime in seconds (in the current mode). */
  get tokenTtl(): number {
    return this.#open ? this.#opts.openTokenTtl ?? this.#ttl : this.#ttl;
  }

  /** Whether signup is on (login mode only). */
  get signup(): boolean {
    return this.#opts.allowSignup === true;
  }

  /** Number of users in users.json. */
  get userCount(): number {
    return this.#users.size;
  }

  /** Whether users.json lists `user` (ignoring case). */
  has(user: string): boolean {
    return this.#lower.has(user.toLowerCase());
  }

  /** The name as users.json spells it, for any spelling of it; undefined when unknown. */
  canonical(user: string): string | undefined {
    return this.#lower.get(user.toLowerCase());
  }

  /**
   * The role of `user` (any spelling) in login mode; undefined in open mode
   * (the server's shell is the admin there) and for unknown users.
   */
  role(user: string): Role | undefined {
    if (this.#open) return undefined;
    const name = this.canonical(user);
    if (name === undefined) return undefined;
    return this.#admins.has(name) ? "admin" : "member";
  }

  /** The admins, spelled as in users.json. */
  admins(): string[] {
    return [...this.#admins];
  }

  /** Every user in users.json, spelled as there (the login-mode directory). */
  names(): Iterable<string> {
    return this.#lower.values();
  }

  /** Checks a password (login mode); spends the same time for unknown users. */
  checkPassword(user: string, password: string): Promise<boolean> {
    return this.#opts.hasher.verify(password, this.#users.get(user));
  }

  /** Adds a user to users.json by sign-up (when it is on), hashed, keeping every other entry. */
  register(user: string, password: string): Promise<RegisterResult> {
    if (!this.signup) return Promise.resolve("disabled");
    return this.createAccount(user, password, "member");
  }

  /**
   * Adds a user to users.json, hashed, keeping every other entry, whether
   * sign-up is on or not (an invite link's account). The first user of a
   * file without users is an admin whatever `role` says.
   */
  async createAccount(user: string, password: string, role: Role): Promise<RegisterResult> {
    if (this.has(user)) return "exists";
    const hash = await this.#opts.hasher.hash(password);
    const lower = user.toLowerCase();
    return await this.#exclusive(async () => {
      if (this.#broken) return "unavailable";
      let result: RegisterResult = "ok";
      const file = await updateUsers(this.#opts.usersPath, (u, admins) => {
        // Blank or gone since the last look while users are loaded: writing it
        // now would keep only the newcomer.
        if (u.size === 0 && this.#users.size > 0) return (result = "unavailable", false);
        if ([...u.keys()].some((k) => k.toLowerCase() === lower)) return (result = "exists", false);
        if (role === "admin" || u.size === 0) admins.add(user);
        u.set(user, hash);
      });
      if (result !== "ok") return result;
      // The validated set, as a reload would see it.
      this.#setUsers(file);
      this.#stamp = await stamp(this.#opts.usersPath);
      return "ok";
    });
  }

  /**
   * Gives `user` a role in users.json (an admin's change in the web app);
   * the last admin cannot be demoted (`"last_admin"`).
   */
  async changeRole(user: string, role: Role): Promise<RoleChange | "unavailable"> {
    return await this.#exclusive(async () => {
      if (this.#broken || this.#open) return "unavailable";
      const { result, ...file } = await setRole(this.#opts.usersPath, user, role);
      if (result !== "changed") return result;
      this.#setUsers(file);
      this.#stamp = await stamp(this.#opts.usersPath);
      return "changed";
    });
  }

  /**
   * Signs `user` out everywhere (an admin's "sign out everywhere"): raises
   * their `sessions` count in users.json, which their tokens are bound to, so
   * every token issued before stops working here at once (other nodes: once
   * they reread the file) and their live sessions end at the next check.
   */
  async endSessions(user: string): Promise<"ended" | "missing" | "unavailable"> {
    return await this.#exclusive(async () => {
      if (this.#broken || this.#open) return "unavailable";
      const { stored, ...file } = await endSessions(this.#opts.usersPath, user);
      if (stored === undefined) return "missing";
      this.#setUsers(file);
      this.#stamp = await stamp(this.#opts.usersPath);
      this.#signedOut([stored]);
      return "ended";
    });
  }

  /**
   * Removes `user` from users.json (an admin's removal in the web app): their
   * tokens stop working at once. The last admin cannot be removed.
   */
  async removeUser(user: string): Promise<"removed" | "missing" | "last_admin" | "unavailable"> {
    return await this.#exclusive(async () => {
      if (this.#broken || this.#open) return "unavailable";
      let result: "removed" | "missing" | "last_admin" = "removed";
      const file = await updateUsers(this.#opts.usersPath, (u, admins) => {
        const name = [...u.keys()].find((k) => k.toLowerCase() === user.toLowerCase());
        if (name === undefined) return (result = "missing", false);
        if (removesLastAdmin(u, admins, name)) return (result = "last_admin", false);
        u.delete(name);
      });
      if (result !== "removed") return result;
      this.#setUsers(file);
      this.#stamp = await stamp(this.#opts.usersPath);
      return "removed";
    });
  }

  /**
   * Changes `user`'s password (login mode) when `change.current` is right:
   * one argon2 check on the hasher's queue, then the new hash, then users.json
   * is rewritten under its lock the way `chat user passwd` does it. Every
   * token issued before carries the old fingerprint and stops working here
   * at once (other nodes: once they reread the file).
   *
   * @throws {HasherBusyError} when the hasher has too many checks waiting.
   */
  async changePassword(user: string, change: PasswdChange): Promise<PasswdResult> {
    const cred = this.#users.get(user);
    if (cred === undefined) return "gone";
    if (!await this.#opts.hasher.verify(change.current, cred)) return "wrong";
    const hash = await this.#opts.hasher.hash(change.password);
    return await this.#exclusive(async () => {
      if (this.#broken) return "unavailable";
      await change.beforeWrite?.(this.#fingerprintOf(user, hash));
      const { result, users, ...file } = await setPassword(this.#opts.usersPath, {
        name: user,
        hash,
        expect: cred,
      });
      if (result === "missing") {
        // Blank or gone since the last look: not a decision to remove anyone.
        return users.size === 0 && this.#users.size > 0 ? "unavailable" : "gone";
      }
      if (result === "stale") return "stale";
      // The validated set, as a reload would see it.
      this.#setUsers({ users, ...file });
      this.#stamp = await stamp(this.#opts.usersPath);
      return "ok";
    });
  }

  /**
   * What a session of `user` is bound to: changes when the user's password
   * changes, is removed, or the server switches between open and login mode.
   * `null` when the user may not sign in at all.
   */
  fingerprint(user: string): string | null {
    if (this.#open) return "open";
    const cred = this.#users.get(user);
    if (cred === undefined) return null;
    return this.#fingerprintOf(user, cred);
  }

  #fingerprintOf(user: string, cred: string): string {
    // Bound to the sessions count too once there is one (tokens from before it stay as they were).
    const epoch = this.#epochs.get(user) ?? 0;
    const bound = epoch > 0 ? `fp:${user}:${cred}:${epoch}` : `fp:${user}:${cred}`;
    return this.#hmac.sign(bound).toString("base64url").slice(0, 16);
  }

  /** A signed token for `user` in `session`. */
  issueToken(user: string, session: string): string {
    const payload = Buffer.from(JSON.stringify({
      u: user,
      e: Math.floor(Date.now() / 1000) + this.tokenTtl,
      f: this.fingerprint(user),
      s: session,
    })).toString("base64url");
    return `v1.${payload}.${this.#sign(payload)}`;
  }

  /**
   * A key for another use of the server's secret (`purpose` names the use,
   * e.g. `"files"`): derived from the token secret, so every node that shares
   * the secret derives the same key, and no use can forge another's.
   */
  keyFor(purpose: string): Buffer {
    return deriveKey(this.#secret, purpose);
  }

  /**
   * The user and session a token belongs to, or `null` if it is forged,
   * expired or its credentials changed. Whether its session was signed out
   * is the store's to say.
   */
  verifyToken(token: string): TokenClaims | null {
    const claims = this.#signed(token);
    if (claims === null) return null;
    const expired = claims.e * 1000 < Date.now();
    if (expired && !this.#open) return null;
    const fp = this.fingerprint(claims.u);
    if (fp === null || fp !== claims.f) return null;
    let session = claims.s;
    if (session === undefined && !this.#open) session = legacySession(claims.sig);
    if (typeof session !== "string" || session === "") return null;
    return expired ? { user: claims.u, session, expired } : { user: claims.u, session };
  }

  /**
   * The session of a token this server once issued to `user` (any spelling),
   * or `null` when it is forged or someone else's. Expiry, a changed
   * password and a sign-out do not matter: it only shows that the device
   * holding it signed in as `user` before, which earns its password sign-ins
   * a throttle count of their own.
   *
   * @example
   * ```ts ignore
   * const session = auth.deviceSession(frame.device, "alice");
   * const key = session === null ? "alice" : `device:${session}`;
   * ```
   */
  deviceSession(token: string, user: string): string | null {
    const claims = this.#signed(token);
    if (claims === null || claims.u.toLowerCase() !== user.toLowerCase()) return null;
    const session = claims.s === undefined ? legacySession(claims.sig) : claims.s;
    return typeof session === "string" && session !== "" ? session : null;
  }

  /** The claims of a token whose signature is right, checked for shape only. */
  #signed(
    token: string,
  ): { u: string; e: number; f?: unknown; s?: unknown; sig: string } | null {
    const parts = token.split(".");
    if (parts.length !== 3 || parts[0] !== "v1") return null;
    const expected = Buffer.from(this.#sign(parts[1]));
    const got = Buffer.from(parts[2]);
    if (got.length !== expected.length || !timingSafeEqual(got, expected)) {
      return null;
    }
    let claims: { u?: unknown; e?: unknown; f?: unknown; s?: unknown };
    try {
      claims = JSON.parse(Buffer.from(parts[1], "base64url").toString());
    } catch {
      return null;
    }
    if (typeof claims.u !== "string" || typeof claims.e !== "number") {
      return null;
    }
    return { u: claims.u, e: claims.e, f: claims.f, s: claims.s, sig: parts[2] };
  }

  /**
   * Re-reads users.json if it changed on disk. A file that does not parse
   * keeps the last good set. Resolves `true` when the users changed.
   */
  reload(): Promise<boolean> {
    return this.#exclusive(() => this.#reload());
  }

  /** Runs `fn` after every earlier register/reload: they must not interleave. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn);
    this.#queue = run.then(() => {}, () => {});
    return run;
  }

  async #reload(): Promise<boolean> {
    const path = this.#opts.usersPath;
    const now = await stamp(path);
    if (now === this.#stamp) return false;
    this.#stamp = now;
    if (now === "missing" && this.#open) return false;
    const keep = (why: string) => {
      if (this.#open) {
        // Nothing to keep: the server stays open until a file lists users.
        this.#opts.log.warn(`${why}: staying in open mode until it lists users`);
        return false;
      }
      this.#broken = true;
      this.#opts.log.error(
        `${why}: keeping the ${this.#users.size} users loaded before, nobody else can sign in; fix the file and it is picked up at once`,
      );
      return false;
    };
    if (now === "missing") return keep(`The users file "${path}" is gone`);
    let parsed;
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (err) {
      return keep(`Cannot read "${path}": ${(err as Error).message}`);
    }
    try {
      parsed = parseUsers(text, path);
    } catch (err) {
      return keep((err as Error).message.replace(/^Cannot read/, "Cannot use"));
    }
    // A blank file is what a crash or an editor leaves mid-write, never a decision.
    if (text.trim() === "") return keep(`The users file "${path}" is empty`);
    this.#broken = false;
    if (this.#open && parsed.users.size === 0) return false;
    const before = this.#users;
    const adminsBefore = this.#admins;
    const epochsBefore = this.#epochs;
    const wasOpen = this.#open;
    this.#open = false;
    this.#setUsers(parsed);
    const signedOut = [...parsed.epochs].filter(([k, v]) => v > (epochsBefore.get(k) ?? 0));
    if (signedOut.length > 0) this.#signedOut(signedOut.map(([k]) => k));
    if (parsed.users.size === 0) this.#opts.log.error(this.#nobody());
    const same = !wasOpen && before.size === parsed.users.size &&
      [...before].every(([k, v]) => parsed.users.get(k) === v) &&
      adminsBefore.size === parsed.admins.size &&
      [...adminsBefore].every((k) => parsed.admins.has(k)) &&
      epochsBefore.size === parsed.epochs.size &&
      [...epochsBefore].every(([k, v]) => parsed.epochs.get(k) === v);
    if (!same) {
      for (const w of parsed.warnings) this.#opts.log.warn(w);
      this.#opts.log.info(
        `Reloaded "${this.#opts.usersPath}": ${parsed.users.size} users, ${parsed.admins.size} admins (${this.mode} mode)`,
      );
      if (adminsBefore.size > 0 || wasOpen) this.#adminHint();
    }
    return !same;
  }

  #setUsers({ users, admins, epochs }: UsersFile): void {
    this.#users = users;
    this.#admins = admins;
    this.#epochs = epochs;
    this.#lower = new Map();
    for (const name of users.keys()) {
      const key = name.toLowerCase();
      if (!this.#lower.has(key)) this.#lower.set(key, name);
    }
  }

  /** Says how to make an admin when users exist and none is one (a seed-format file). */
  #adminHint(): void {
    if (this.#open || this.#users.size === 0 || this.#admins.size > 0) return;
    this.#opts.log.warn(
      `No user in "${this.#opts.usersPath}" is an admin: make one with "chat user role NAME admin"`,
    );
  }

  #nobody(): string {
    return `The users file "${this.#opts.usersPath}" lists no users: nobody can sign in until one is added with "chat user add NAME" (delete the file and restart for open mode)`;
  }

  #sign(payload: string): string {
    return this.#hmac.sign(payload).toString("base64url");
  }
}

/**
 * The session of a token issued before sessions existed: its own signature
 * names it, so the token renewed from it can still be signed out.
 */
function legacySession(signature: string): string {
  return createHash("sha256").update(signature).digest("base64url").slice(0, 22);
}

async function stamp(path: string): Promise<string> {
  try {
    const st = await Deno.stat(path);
    return `${st.mtime?.getTime()}:${st.size}:${st.ino ?? ""}`;
  } catch {
    return "missing";
  }
}

/**
 * Reads the signing secret, creating it (mode 0600) on first start.
 *
 * @throws {ConfigError} when the file exists but group or others may read it.
 */
async function loadSecret(path: string, log: Logger): Promise<string> {
  const info = await Deno.stat(path).catch(() => null);
  if (info !== null && !info.isFile) {
    throw new ConfigError(`The token secret "${path}" is not a file: remove it, or pass --secret`);
  }
  const mode = info?.mode ?? null;
  if (mode !== null && Deno.build.os !== "windows" && (mode & 0o077) !== 0) {
    throw new ConfigError(
      `The token secret "${path}" may be read by other users (mode ${
        (mode & 0o777).toString(8).padStart(3, "0")
      }): anyone who reads it can sign in as anyone; run "chmod 600 ${path}"`,
    );
  }
  try {
    const s = (await Deno.readTextFile(path)).trim();
    if (s.length >= 32) return s;
    log.warn(`Ignoring "${path}": the secret is shorter than 32 characters`);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      log.warn(`Cannot read "${path}": ${(err as Error).message}`);
    }
  }
  const secret = Buffer.from(crypto.getRandomValues(new Uint8Array(32)))
    .toString("base64url");
  try {
    await Deno.writeTextFile(path, secret + "\n", { mode: 0o600 });
  } catch (err) {
    log.warn(
      `Cannot keep the token secret in "${path}" (${
        (err as Error).message
      }): sessions will not survive a restart; pass --secret or CHAT_SECRET`,
    );
  }
  return secret;
}
