/**
 * Who may sign in: users.json (reloaded when it changes), password checks,
 * signup, and signed session tokens.
 *
 * A token is `v1.<payload>.<signature>`: base64url JSON `{u, e, f}` (user,
 * expiry in Unix seconds, credential fingerprint) signed with HMAC-SHA256.
 * The fingerprint changes when the user's password changes or the user is
 * removed, which invalidates every token issued before.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHmac, timingSafeEqual } from "node:crypto";
import { dirname, join } from "node:path";
import type { Logger } from "./log.ts";
import type { PasswordHasher } from "./password.ts";
import { readUsers, updateUsers, type Users } from "./users.ts";

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
  /** Whether `register` may add users. @default {false} */
  allowSignup?: boolean;
}

/** Result of a sign-up attempt. */
export type RegisterResult = "ok" | "exists" | "disabled";

/** Credentials and tokens. */
export class Auth {
  #opts: AuthOptions;
  #secret: Buffer;
  #users: Users = new Map();
  #stamp = "";
  #queue: Promise<void> = Promise.resolve();
  #ttl: number;

  private constructor(opts: AuthOptions, secret: string) {
    this.#opts = opts;
    this.#secret = Buffer.from(secret);
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
    const { users, warnings } = await readUsers(opts.usersPath);
    for (const w of warnings) opts.log.warn(w);
    auth.#users = users;
    auth.#stamp = await stamp(opts.usersPath);
    return auth;
  }

  /** `"login"` when users.json lists users, else `"open"`. */
  get mode(): "open" | "login" {
    return this.#users.size > 0 ? "login" : "open";
  }

  /** Whether signup is on (login mode only). */
  get signup(): boolean {
    return this.#opts.allowSignup === true;
  }

  /** Number of users in users.json. */
  get userCount(): number {
    return this.#users.size;
  }

  /** Whether users.json lists `user`. */
  has(user: string): boolean {
    return this.#users.has(user);
  }

  /** Checks a password (login mode); spends the same time for unknown users. */
  checkPassword(user: string, password: string): Promise<boolean> {
    return this.#opts.hasher.verify(password, this.#users.get(user));
  }

  /** Adds a user to users.json, hashed, keeping every other entry. */
  async register(user: string, password: string): Promise<RegisterResult> {
    if (!this.signup) return "disabled";
    if (this.#users.has(user)) return "exists";
    const hash = await this.#opts.hasher.hash(password);
    return await this.#exclusive(async () => {
      let exists = false;
      const users = await updateUsers(this.#opts.usersPath, (u) => {
        if (u.has(user)) return (exists = true, false);
        u.set(user, hash);
      });
      if (exists) return "exists";
      // The validated set, as a reload would see it.
      this.#users = users;
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
    if (this.mode === "open") return "open";
    const cred = this.#users.get(user);
    if (cred === undefined) return null;
    return createHmac("sha256", this.#secret).update(`fp:${user}:${cred}`)
      .digest("base64url").slice(0, 16);
  }

  /** A signed token for `user`. */
  issueToken(user: string): string {
    const payload = Buffer.from(JSON.stringify({
      u: user,
      e: Math.floor(Date.now() / 1000) + this.#ttl,
      f: this.fingerprint(user),
    })).toString("base64url");
    return `v1.${payload}.${this.#sign(payload)}`;
  }

  /** The user a token belongs to, or `null` if it is forged, expired or revoked. */
  verifyToken(token: string): string | null {
    const parts = token.split(".");
    if (parts.length !== 3 || parts[0] !== "v1") return null;
    const expected = Buffer.from(this.#sign(parts[1]));
    const got = Buffer.from(parts[2]);
    if (got.length !== expected.length || !timingSafeEqual(got, expected)) {
      return null;
    }
    let claims: { u?: unknown; e?: unknown; f?: unknown };
    try {
      claims = JSON.parse(Buffer.from(parts[1], "base64url").toString());
    } catch {
      return null;
    }
    if (typeof claims.u !== "string" || typeof claims.e !== "number") {
      return null;
    }
    if (claims.e * 1000 < Date.now()) return null;
    const fp = this.fingerprint(claims.u);
    return fp !== null && fp === claims.f ? claims.u : null;
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
    const now = await stamp(this.#opts.usersPath);
    if (now === this.#stamp) return false;
    this.#stamp = now;
    let parsed;
    try {
      parsed = await readUsers(this.#opts.usersPath);
    } catch (err) {
      this.#opts.log.error(
        `${(err as Error).message}; keeping the ${this.#users.size} users loaded before`,
      );
      return false;
    }
    const before = this.#users;
    this.#users = parsed.users;
    const same = before.size === parsed.users.size &&
      [...before].every(([k, v]) => parsed.users.get(k) === v);
    if (!same) {
      for (const w of parsed.warnings) this.#opts.log.warn(w);
      this.#opts.log.info(
        `Reloaded "${this.#opts.usersPath}": ${parsed.users.size} users (${this.mode} mode)`,
      );
    }
    return !same;
  }

  #sign(payload: string): string {
    return createHmac("sha256", this.#secret).update(payload).digest(
      "base64url",
    );
  }
}

async function stamp(path: string): Promise<string> {
  try {
    const st = await Deno.stat(path);
    return `${st.mtime?.getTime()}:${st.size}:${st.ino ?? ""}`;
  } catch {
    return "missing";
  }
}

/** Reads the signing secret, creating it (mode 0600) on first start. */
async function loadSecret(path: string, log: Logger): Promise<string> {
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
