/**
 * A real push service for tests, written from the RFCs with WebCrypto and
 * independent of the library the server sends with: it checks each
 * request's VAPID JWT (RFC 8292: ES256 signature against `k`, `aud`, `exp`,
 * `sub`), its headers (RFC 8030: TTL, Urgency, Topic), and decrypts the
 * body itself (RFC 8291 / RFC 8188 aes128gcm) with the subscription's
 * private key, as a browser would. It can be told to answer 404/410/429/500
 * or to hang, per subscription or for the next requests.
 *
 * @example
 * ```ts ignore
 * await using push = await startPushEndpoint();
 * const sub = await push.newSubscription();
 * // … make the server send to sub.subscription …
 * const [got] = await push.waitFor(sub.id, 1);
 * ```
 *
 * @module
 */

/** One push that passed every check. */
export interface ReceivedPush {
  /** The decrypted body as text. */
  text: string;
  /** The decrypted body as JSON, or undefined when it is not JSON. */
  json: unknown;
  /** The request's headers, names lower case. */
  headers: Record<string, string>;
  /** The verified JWT claims. */
  claims: { aud: string; exp: number; sub: string };
  /** The VAPID public key the request was signed with (`k`). */
  key: string;
}

/** A request the endpoint refused or answered with a programmed status. */
export interface RefusedPush {
  /** The status it answered. */
  status: number;
  /** Why (the failed check, or "programmed"). */
  reason: string;
}

/** A browser-like subscription of the test push service. */
export interface TestSubscription {
  /** Its id, the last part of the endpoint. */
  id: string;
  /** What the browser hands the server (`PushSubscription.toJSON()`). */
  subscription: { endpoint: string; keys: { p256dh: string; auth: string } };
}

/** What a programmed answer is. */
export type Programmed = number | "hang";

/** The test push service. */
export interface PushEndpoint extends AsyncDisposable {
  /** Its origin, `http://127.0.0.1:PORT`. */
  origin: string;
  /**
   * A new subscription: a fresh P-256 ECDH key pair and 16 random auth bytes,
   * as a browser makes. With `applicationServerKey`, pushes signed with any
   * other VAPID key are refused (403), as real push services do.
   */
  newSubscription(opts?: { applicationServerKey?: string }): Promise<TestSubscription>;
  /** Pushes received (and accepted) for a subscription, oldest first. */
  received(id: string): ReceivedPush[];
  /** Requests refused or answered with a programmed status, oldest first. */
  refused(id: string): RefusedPush[];
  /** Every POST for the subscription, accepted or not. */
  requests(id: string): number;
  /** Waits until `n` pushes were accepted for `id`; rejects after `timeoutMs` with what was refused. */
  waitFor(id: string, n: number, timeoutMs?: number): Promise<ReceivedPush[]>;
  /**
   * Answers valid requests for `id` ("*" for any) with `status` (or hangs),
   * for the next `times` requests or until changed; `null` goes back to 201.
   */
  respondWith(
    id: string,
    status: Programmed | null,
    opts?: { times?: number; retryAfter?: string },
  ): void;
  /** Stops the server (hanging requests are answered 503 first). */
  close(): Promise<void>;
}

interface Sub {
  id: string;
  privateKey: CryptoKey;
  publicRaw: Bytes;
  auth: Bytes;
  serverKey?: string;
  received: ReceivedPush[];
  refused: RefusedPush[];
  requests: number;
}

interface Rule {
  status: Programmed;
  times?: number;
  retryAfter?: string;
}

class Refusal extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const enc = new TextEncoder();

type Bytes = Uint8Array<ArrayBuffer>;

/** Starts the test push service on 127.0.0.1 and a free port. */
export async function startPushEndpoint(): Promise<PushEndpoint> {
  const subs = new Map<string, Sub>();
  const rules = new Map<string, Rule>();
  const waiters = new Set<() => void>();
  const hanging = new Set<(r: Response) => void>();
  let ready!: (port: number) => void;
  const listening = new Promise<number>((r) => ready = r);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: ({ port }) => ready(port) },
    handle,
  );
  const origin = `http://127.0.0.1:${await listening}`;

  function notify() {
    for (const w of [...waiters]) w();
  }

  function ruleFor(id: string): Rule | null {
    for (const key of [id, "*"]) {
      const rule = rules.get(key);
      if (!rule) continue;
      if (rule.times !== undefined) {
        if (rule.times <= 0) {
          rules.delete(key);
          continue;
        }
        rule.times--;
      }
      return rule;
    }
    return null;
  }

  async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const m = /^\/push\/([A-Za-z0-9_-]+)$/.exec(url.pathname);
    const sub = m ? subs.get(m[1]) : undefined;
    if (req.method !== "POST" || !sub) {
      await req.body?.cancel();
      return new Response("no such subscription", { status: 404 });
    }
    sub.requests++;
    let got: ReceivedPush;
    try {
      got = await verify(req, sub, origin);
    } catch (err) {
      const status = err instanceof Refusal ? err.status : 400;
      sub.refused.push({ status, reason: (err as Error).message });
      notify();
      return new Response((err as Error).message, { status });
    }
    const rule = ruleFor(sub.id);
    if (rule) {
      sub.refused.push({ status: rule.status === "hang" ? 0 : rule.status, reason: "programmed" });
      notify();
      if (rule.status === "hang") {
        return await new Promise<Response>((resolve) => hanging.add(resolve));
      }
      const headers = rule.retryAfter ? { "retry-after": rule.retryAfter } : undefined;
      return new Response(`programmed ${rule.status}`, { status: rule.status, headers });
    }
    sub.received.push(got);
    notify();
    return new Response(null, {
      status: 201,
      headers: { location: `${origin}/message/${crypto.randomUUID()}` },
    });
  }

  const endpoint: PushEndpoint = {
    origin,
    async newSubscription(opts = {}) {
      const pair = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, true, [
        "deriveBits",
      ]) as CryptoKeyPair;
      const publicRaw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
      const auth = crypto.getRandomValues(new Uint8Array(16));
      const id = b64url(crypto.getRandomValues(new Uint8Array(12)));
      subs.set(id, {
        id,
        privateKey: pair.privateKey,
        publicRaw,
        auth,
        serverKey: opts.applicationServerKey,
        received: [],
        refused: [],
        requests: 0,
      });
      return {
        id,
        subscription: {
          endpoint: `${origin}/push/${id}`,
          keys: { p256dh: b64url(publicRaw), auth: b64url(auth) },
        },
      };
    },
    received: (id) => [...(subs.get(id)?.received ?? [])],
    refused: (id) => [...(subs.get(id)?.refused ?? [])],
    requests: (id) => subs.get(id)?.requests ?? 0,
    waitFor(id, n, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const sub = subs.get(id);
          if (sub && sub.received.length >= n) {
            done();
            resolve([...sub.received]);
          }
        };
        const timer = setTimeout(() => {
          done();
          const sub = subs.get(id);
          reject(
            new Error(
              `Push endpoint "${id}": ${
                sub?.received.length ?? 0
              } of ${n} pushes within ${timeoutMs} ms; refused: ${
                JSON.stringify(sub?.refused ?? [])
              }`,
            ),
          );
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    respondWith(id, status, opts = {}) {
      if (status === null) rules.delete(id);
      else rules.set(id, { status, times: opts.times, retryAfter: opts.retryAfter });
    },
    async close() {
      for (const resolve of hanging) resolve(new Response("closing", { status: 503 }));
      hanging.clear();
      await server.shutdown();
    },
    async [Symbol.asyncDispose]() {
      await endpoint.close();
    },
  };
  return endpoint;
}

/** All of a push request's checks; the decrypted push, or a {@link Refusal}. */
async function verify(req: Request, sub: Sub, origin: string): Promise<ReceivedPush> {
  const headers: Record<string, string> = {};
  req.headers.forEach((v, k) => headers[k] = v);
  const { claims, key } = await verifyVapid(headers["authorization"], origin);
  if (sub.serverKey !== undefined && key !== sub.serverKey) {
    throw new Refusal(403, "the VAPID key is not the one the subscription was made with");
  }
  if (headers["content-encoding"] !== "aes128gcm") {
    throw new Refusal(415, `Content-Encoding is "${headers["content-encoding"]}", not aes128gcm`);
  }
  if (!/^\d+$/.test(headers["ttl"] ?? "")) throw new Refusal(400, "TTL header missing or invalid");
  const urgency = headers["urgency"];
  if (urgency !== undefined && !["very-low", "low", "normal", "high"].includes(urgency)) {
    throw new Refusal(400, `bad Urgency "${urgency}"`);
  }
  const topic = headers["topic"];
  if (topic !== undefined && !/^[A-Za-z0-9_-]{1,32}$/.test(topic)) {
    throw new Refusal(400, `bad Topic "${topic}"`);
  }
  const body = new Uint8Array(await req.arrayBuffer());
  if (body.length > 4096) throw new Refusal(413, `payload of ${body.length} bytes`);
  const plain = await decrypt(body, sub);
  const text = new TextDecoder("utf-8", { fatal: true }).decode(plain);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { text, json, headers, claims, key };
}

/** RFC 8292 section 3: `vapid t=<JWT>, k=<public key>`. */
async function verifyVapid(
  authorization: string | undefined,
  origin: string,
): Promise<{ claims: ReceivedPush["claims"]; key: string }> {
  const m = /^vapid\s+(.*)$/i.exec(authorization ?? "");
  if (!m) throw new Refusal(401, "no vapid Authorization");
  const params = new Map<string, string>();
  for (const part of m[1].split(",")) {
    const eq = part.indexOf("=");
    if (eq > 0) params.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).trim());
  }
  const jwt = params.get("t"), key = params.get("k");
  if (!jwt || !key) throw new Refusal(401, "the vapid Authorization lacks t or k");
  const keyRaw = unb64url(key);
  if (keyRaw.length !== 65 || keyRaw[0] !== 4) throw new Refusal(401, "k is not a P-256 point");
  const parts = jwt.split(".");
  if (parts.length !== 3) throw new Refusal(401, "t is not a JWT");
  const header = JSON.parse(new TextDecoder().decode(unb64url(parts[0])));
  if (header.alg !== "ES256") throw new Refusal(401, `JWT alg is "${header.alg}", not ES256`);
  let verifyKey: CryptoKey;
  try {
    verifyKey = await crypto.subtle.importKey(
      "raw",
      keyRaw,
      { name: "ECDSA", namedCurve: "P-256" },
      false,
      ["verify"],
    );
  } catch {
    throw new Refusal(401, "k is not on the P-256 curve");
  }
  const ok = await crypto.subtle.verify(
    { name: "ECDSA", hash: "SHA-256" },
    verifyKey,
    unb64url(parts[2]),
    enc.encode(`${parts[0]}.${parts[1]}`),
  );
  if (!ok) throw new Refusal(401, "the JWT signature does not verify with k");
  const claims = JSON.parse(new TextDecoder().decode(unb64url(parts[1])));
  if (claims.aud !== origin) {
    throw new Refusal(401, `JWT aud "${claims.aud}" is not the endpoint's origin "${origin}"`);
  }
  const now = Date.now() / 1000;
  if (typeof claims.exp !== "number" || claims.exp <= now) {
    throw new Refusal(401, "JWT expired or without exp");
  }
  if (claims.exp > now + 24 * 3600 + 60) throw new Refusal(401, "JWT exp more than 24 h ahead");
  if (typeof claims.sub !== "string" || !/^(mailto:|https:)/.test(claims.sub)) {
    throw new Refusal(401, `JWT sub "${claims.sub}" is not a mailto: or https: URI`);
  }
  return { claims, key };
}

/** RFC 8291 section 3 and RFC 8188 section 2: one aes128gcm record, decrypted as the browser does. */
async function decrypt(body: Bytes, sub: Sub): Promise<Bytes> {
  if (body.length < 21) throw new Refusal(400, "body shorter than the aes128gcm header");
  const salt = body.subarray(0, 16);
  const rs = new DataView(body.buffer, body.byteOffset + 16, 4).getUint32(0);
  const idlen = body[20];
  if (idlen !== 65) throw new Refusal(400, `keyid of ${idlen} bytes, not a P-256 point`);
  const asPublic = body.subarray(21, 86);
  const ciphertext = body.subarray(86);
  if (rs < 18) throw new Refusal(400, `record size ${rs} too small`);
  if (ciphertext.length > rs) throw new Refusal(400, "more than one record");
  if (ciphertext.length < 17) throw new Refusal(400, "record too short");
  let asKey: CryptoKey;
  try {
    asKey = await crypto.subtle.importKey(
      "raw",
      asPublic,
      { name: "ECDH", namedCurve: "P-256" },
      false,
      [],
    );
  } catch {
    throw new Refusal(400, "the sender's key is not a P-256 point");
  }
  const ecdhSecret = new Uint8Array(
    await crypto.subtle.deriveBits({ name: "ECDH", public: asKey }, sub.privateKey, 256),
  );
  // key_info = "WebPush: info" || 0x00 || ua_public || as_public
  const keyInfo = concat(enc.encode("WebPush: info\0"), sub.publicRaw, asPublic);
  const ikm = await hkdf(sub.auth, ecdhSecret, keyInfo, 32);
  const cek = await hkdf(salt, ikm, enc.encode("Content-Encoding: aes128gcm\0"), 16);
  const nonce = await hkdf(salt, ikm, enc.encode("Content-Encoding: nonce\0"), 12);
  const aes = await crypto.subtle.importKey("raw", cek, "AES-GCM", false, ["decrypt"]);
  let padded: Bytes;
  try {
    padded = new Uint8Array(
      await crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce, tagLength: 128 }, aes, ciphertext),
    );
  } catch {
    throw new Refusal(400, "the body does not decrypt with the subscription's keys");
  }
  // The last record ends with 0x02, then zero padding.
  let end = padded.length - 1;
  while (end >= 0 && padded[end] === 0) end--;
  if (end < 0 || padded[end] !== 2) throw new Refusal(400, "no last-record delimiter");
  return padded.slice(0, end);
}

async function hkdf(
  salt: Bytes,
  ikm: Bytes,
  info: Bytes,
  length: number,
): Promise<Bytes> {
  const key = await crypto.subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt, info },
    key,
    length * 8,
  );
  return new Uint8Array(bits);
}

function concat(...parts: Bytes[]): Bytes {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** base64url without padding. */
export function b64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** Decodes base64url, padded or not; throws a 400 refusal when it is not. */
export function unb64url(text: string): Bytes {
  try {
    const bin = atob(text.replaceAll("-", "+").replaceAll("_", "/").replace(/=+$/, ""));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  } catch {
    throw new Refusal(400, "bad base64url");
  }
}
