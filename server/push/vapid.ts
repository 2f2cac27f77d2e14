/**
 * The server's VAPID key pair (RFC 8292): the key that signs every push
 * request, whose public half browsers bind their subscriptions to.
 *
 * Keys come from `CHAT_VAPID_PUBLIC_KEY` / `CHAT_VAPID_PRIVATE_KEY` (every
 * node of a cluster must use the same pair), else from `vapid.json` beside
 * the token secret, created on first start with mode 0600 and refused when
 * group or others may read it — the same rules as the token secret.
 * Changing the pair orphans every subscription: browsers must subscribe again.
 *
 * @module
 */
import { join } from "node:path";
import { ConfigError } from "../config.ts";
import type { Logger } from "../log.ts";

/** Name of the key file in the data directory. */
export const VAPID_FILE = "vapid.json";

/**
 * The contact the JWT's `sub` claim names when none is configured. RFC 8292
 * asks for a `mailto:` or `https:` URI the push service can reach the operator
 * at; Apple's service refuses `localhost` ones, so set `CHAT_VAPID_SUBJECT`.
 */
export const DEFAULT_VAPID_SUBJECT = "mailto:postmaster@chat.invalid";

/** A VAPID key pair and its contact, in the encodings web push uses. */
export interface VapidKeys {
  /** Uncompressed P-256 point (65 bytes), base64url: the browser's `applicationServerKey`. */
  publicKey: string;
  /** The private scalar (32 bytes), base64url. */
  privateKey: string;
  /** `mailto:` or `https:` contact put in each JWT's `sub` claim. */
  subject: string;
  /** Where the pair came from, for the start-up log. */
  source: "env" | "file" | "new" | "memory";
}

/** Options for {@link loadVapid}. */
export interface LoadVapidOptions {
  /** Directory that holds `vapid.json` (the one that holds the token secret). */
  dir: string;
  /** Environment to read `CHAT_VAPID_*` from. @default {the process environment} */
  env?: Record<string, string | undefined>;
  /** Contact used when neither the environment nor the file names one. @default {DEFAULT_VAPID_SUBJECT} */
  subject?: string;
  /**
   * Several nodes serve the same users (Redis): keys from a file are then
   * each node's own unless the directory is shared, so this warns.
   * @default {false}
   */
  shared?: boolean;
  /** Warns about a key file that cannot be written. */
  log: Logger;
}

const ENV_PUBLIC = "CHAT_VAPID_PUBLIC_KEY";
const ENV_PRIVATE = "CHAT_VAPID_PRIVATE_KEY";
const ENV_SUBJECT = "CHAT_VAPID_SUBJECT";

/**
 * Loads the VAPID keys: from the environment when set, else from
 * `<dir>/vapid.json`, creating it (mode 0600) on first start.
 *
 * @throws {ConfigError} when only one of the two key variables is set, a key
 * is malformed or the two do not belong together, the subject is not a
 * `mailto:` or `https:` URI, or `vapid.json` may be read by other users.
 */
export async function loadVapid(opts: LoadVapidOptions): Promise<VapidKeys> {
  const env = opts.env ?? readEnv();
  const pub = env[ENV_PUBLIC]?.trim() || undefined;
  const priv = env[ENV_PRIVATE]?.trim() || undefined;
  const envSubject = env[ENV_SUBJECT]?.trim() || undefined;
  if (envSubject !== undefined) checkSubject(envSubject, ENV_SUBJECT);
  if (opts.subject !== undefined) checkSubject(opts.subject, "The VAPID subject");
  if (pub !== undefined || priv !== undefined) {
    if (pub === undefined || priv === undefined) {
      throw new ConfigError(
        `${pub === undefined ? ENV_PUBLIC : ENV_PRIVATE} is not set but ${
          pub === undefined ? ENV_PRIVATE : ENV_PUBLIC
        } is: set both, or neither to keep keys in "${join(opts.dir, VAPID_FILE)}"`,
      );
    }
    const problem = await keyPairProblem(pub, priv);
    if (problem) throw new ConfigError(`${ENV_PUBLIC} / ${ENV_PRIVATE}: ${problem}`);
    return {
      publicKey: pub,
      privateKey: priv,
      subject: envSubject ?? opts.subject ?? DEFAULT_VAPID_SUBJECT,
      source: "env",
    };
  }
  const path = join(opts.dir, VAPID_FILE);
  if (opts.shared) {
    opts.log.warn(
      `Push keys come from "${path}": every node must use the same ones; set ${ENV_PUBLIC} and ${ENV_PRIVATE} on all nodes (see docs/operations.md)`,
    );
  }
  const stored = await readKeyFile(path);
  if (stored) {
    return {
      publicKey: stored.publicKey,
      privateKey: stored.privateKey,
      subject: envSubject ?? stored.subject ?? opts.subject ?? DEFAULT_VAPID_SUBJECT,
      source: "file",
    };
  }
  const keys = await generateVapidKeys();
  let source: VapidKeys["source"] = "new";
  try {
    const text = JSON.stringify(
      { publicKey: keys.publicKey, privateKey: keys.privateKey },
      null,
      2,
    );
    // createNew: two nodes starting at once on one directory must not both write.
    await Deno.writeTextFile(path, text + "\n", { mode: 0o600, createNew: true });
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) {
      const other = await readKeyFile(path);
      if (other) {
        return {
          publicKey: other.publicKey,
          privateKey: other.privateKey,
          subject: envSubject ?? other.subject ?? opts.subject ?? DEFAULT_VAPID_SUBJECT,
          source: "file",
        };
      }
    }
    source = "memory";
    opts.log.warn(
      `Cannot keep the VAPID keys in "${path}" (${
        (err as Error).message
      }): push subscriptions will stop working at the next restart; set ${ENV_PUBLIC} and ${ENV_PRIVATE}`,
    );
  }
  return { ...keys, subject: envSubject ?? opts.subject ?? DEFAULT_VAPID_SUBJECT, source };
}

/** A new P-256 key pair in web push's encodings (what `web-push generate-vapid-keys` prints). */
export async function generateVapidKeys(): Promise<{ publicKey: string; privateKey: string }> {
  const pair = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["sign", "verify"],
  );
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  const jwk = await crypto.subtle.exportKey("jwk", pair.privateKey);
  return { publicKey: toBase64Url(raw), privateKey: jwk.d! };
}

/**
 * Why `publicKey` / `privateKey` are not a usable VAPID pair, or null: each
 * must decode to the right length, the point must be on the curve, and the
 * private key must sign what the public key verifies.
 */
export async function keyPairProblem(
  publicKey: string,
  privateKey: string,
): Promise<string | null> {
  const pub = fromBase64Url(publicKey);
  if (pub === null || pub.length !== 65 || pub[0] !== 4) {
    return "the public key must be an uncompressed P-256 point (65 bytes) in base64url";
  }
  const priv = fromBase64Url(privateKey);
  if (priv === null || priv.length !== 32) {
    return "the private key must be 32 bytes in base64url";
  }
  try {
    const jwk = {
      kty: "EC",
      crv: "P-256",
      x: toBase64Url(pub.subarray(1, 33)),
      y: toBase64Url(pub.subarray(33, 65)),
    };
    const algo = { name: "ECDSA", namedCurve: "P-256" };
    const signKey = await crypto.subtle.importKey("jwk", { ...jwk, d: privateKey }, algo, false, [
      "sign",
    ]);
    const verifyKey = await crypto.subtle.importKey("jwk", jwk, algo, false, ["verify"]);
    const data = new TextEncoder().encode("vapid key check");
    const hash = { name: "ECDSA", hash: "SHA-256" };
    const sig = await crypto.subtle.sign(hash, signKey, data);
    if (!await crypto.subtle.verify(hash, verifyKey, sig, data)) {
      return "the private key does not belong to the public key";
    }
  } catch (err) {
    return `not a P-256 key pair (${(err as Error).message})`;
  }
  return null;
}

/** Reads a valid key file, null when there is none (or it is unusable and will be replaced). */
async function readKeyFile(
  path: string,
): Promise<{ publicKey: string; privateKey: string; subject?: string } | null> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) {
      return null;
    }
    // Not allowed to look (a compiled binary's fixed permissions): new keys with a warning, as for a read-only directory.
    if (err instanceof Deno.errors.NotCapable) return null;
    throw new ConfigError(`Cannot read the VAPID key file "${path}": ${(err as Error).message}`);
  }
  if (!info.isFile) {
    throw new ConfigError(
      `The VAPID key file "${path}" is not a file: remove it, or set ${ENV_PUBLIC} and ${ENV_PRIVATE}`,
    );
  }
  const mode = info.mode;
  if (mode !== null && Deno.build.os !== "windows" && (mode & 0o077) !== 0) {
    throw new ConfigError(
      `The VAPID key file "${path}" may be read by other users (mode ${
        (mode & 0o777).toString(8).padStart(3, "0")
      }): anyone who reads it can send pushes as this server; run "chmod 600 ${path}"`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(await Deno.readTextFile(path));
  } catch (err) {
    // Unlike a lost token secret, new keys orphan every subscription: refuse instead of replacing.
    throw new ConfigError(
      `Cannot read the VAPID key file "${path}": ${
        (err as Error).message
      }; fix or remove it (removing it makes every browser subscribe again)`,
    );
  }
  const o = parsed as Record<string, unknown>;
  if (
    typeof o !== "object" || o === null || typeof o.publicKey !== "string" ||
    typeof o.privateKey !== "string"
  ) {
    throw new ConfigError(
      `The VAPID key file "${path}" must hold {"publicKey": string, "privateKey": string}`,
    );
  }
  const problem = await keyPairProblem(o.publicKey, o.privateKey);
  if (problem) throw new ConfigError(`The VAPID key file "${path}": ${problem}`);
  let subject: string | undefined;
  if (o.subject !== undefined) {
    if (typeof o.subject !== "string") {
      throw new ConfigError(`The VAPID key file "${path}": "subject" must be a string`);
    }
    checkSubject(o.subject, `The VAPID key file "${path}"`);
    subject = o.subject;
  }
  return { publicKey: o.publicKey, privateKey: o.privateKey, subject };
}

/** Throws unless `subject` is a `mailto:` address or an `https:` URL (RFC 8292 section 2.1). */
function checkSubject(subject: string, where: string): void {
  let url: URL | null = null;
  try {
    url = new URL(subject);
  } catch {
    // reported below
  }
  const host = url === null
    ? ""
    : url.protocol === "mailto:"
    ? (/^[^@\s]+@([^@\s]+)$/.exec(url.pathname)?.[1] ?? "")
    : url.protocol === "https:"
    ? url.hostname
    : "";
  if (host === "") {
    throw new ConfigError(
      `${where}: the VAPID subject "${subject}" must be a mailto: address or an https: URL, e.g. "mailto:admin@example.com"`,
    );
  }
  // Apple's push service refuses such subjects (403 BadJwtToken).
  if (/^localhost\.?$|\.localhost\.?$/i.test(host)) {
    throw new ConfigError(
      `${where}: the VAPID subject "${subject}" names localhost, which push services refuse: use a real address`,
    );
  }
}

function readEnv(): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const name of [ENV_PUBLIC, ENV_PRIVATE, ENV_SUBJECT]) {
    try {
      out[name] = Deno.env.get(name);
    } catch {
      // no --allow-env for it: treated as unset
    }
  }
  return out;
}

/** base64url without padding. */
export function toBase64Url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** Decodes base64url (padding optional); null when it is not. */
export function fromBase64Url(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9_-]*={0,2}$/.test(text)) return null;
  try {
    const bin = atob(text.replace(/=+$/, "").replaceAll("-", "+").replaceAll("_", "/"));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}
