/**
 * Sending Web Push: real HTTP to the test push service of tests/push_endpoint.ts,
 * which checks the VAPID JWT and decrypts each push itself; endpoint checks
 * against SSRF; the pinned proxy; VAPID keys.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import webpush from "web-push";
import { b64url, startPushEndpoint, unb64url } from "./push_endpoint.ts";
import { waitUntil } from "./helpers.ts";
import { makeCertificates } from "./test_certs.ts";
import {
  type Deliverer,
  MAX_PAYLOAD_BYTES,
  parseRetryAfter,
  PushQueue,
  PushSender,
  type SendOutcome,
} from "../server/push/send.ts";
import {
  addressesProblem,
  addressProblem,
  checkEndpoint,
  resolveHost,
} from "../server/push/endpoint.ts";
import { PinnedProxy } from "../server/push/pinned_proxy.ts";
import { generateVapidKeys, loadVapid, VAPID_FILE } from "../server/push/vapid.ts";
import { ConfigError } from "../server/config.ts";
import { memoryLogger } from "../server/log.ts";

const SUBJECT = "mailto:ops@example.com";
const enc = new TextEncoder();

async function vapid() {
  return { ...await generateVapidKeys(), subject: SUBJECT };
}

/** The request the library builds, for the endpoint's own checks. */
function libraryRequest(
  sub: { endpoint: string; keys: { p256dh: string; auth: string } },
  payload: string,
  keys: { publicKey: string; privateKey: string; subject: string },
): { headers: Record<string, string>; body: Uint8Array<ArrayBuffer> } {
  const details = (webpush as unknown as {
    generateRequestDetails(
      s: unknown,
      p: string,
      o: unknown,
    ): { headers: Record<string, string | number>; body: Uint8Array };
  }).generateRequestDetails(sub, payload, { vapidDetails: keys, TTL: 60 });
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(details.headers)) {
    if (k !== "Content-Length") headers[k] = String(v);
  }
  return { headers, body: new Uint8Array(details.body) };
}

/** A VAPID Authorization header signed by hand, with any claims. */
async function authorization(
  keys: { publicKey: string; privateKey: string },
  claims: Record<string, unknown>,
): Promise<string> {
  const pub = unb64url(keys.publicKey);
  const jwk = {
    kty: "EC",
    crv: "P-256",
    x: b64url(pub.subarray(1, 33)),
    y: b64url(pub.subarray(33)),
    d: keys.privateKey,
  };
  const key = await crypto.subtle.importKey(
    "jwk",
    jwk,
    { name: "ECDSA", namedCurve: "P-256" },
    false,
    ["sign"],
  );
  const h = b64url(enc.encode(JSON.stringify({ typ: "JWT", alg: "ES256" })));
  const p = b64url(enc.encode(JSON.stringify(claims)));
  const sig = await crypto.subtle.sign(
    { name: "ECDSA", hash: "SHA-256" },
    key,
    enc.encode(`${h}.${p}`),
  );
  return `vapid t=${h}.${p}.${b64url(new Uint8Array(sig))}, k=${keys.publicKey}`;
}

Deno.test("PushSender.send() delivers a payload the push endpoint verifies and decrypts", async () => {
  await using push = await startPushEndpoint();
  const keys = await vapid();
  const sender = new PushSender({ vapid: keys, unsafe: true });
  try {
    const { id, subscription } = await push.newSubscription({
      applicationServerKey: keys.publicKey,
    });
    const payload = { v: 1, kind: "message", conv: "@bob", id: 7, title: "bob", body: "héllo 👋" };
    const result = await sender.send(subscription, JSON.stringify(payload), {
      ttl: 120,
      urgency: "high",
      topic: "conv-bob",
    });
    assert.equal(result, "ok");
    const [got] = push.received(id);
    assert.deepEqual(got.json, payload);
    assert.equal(got.key, keys.publicKey);
    assert.equal(got.claims.aud, push.origin);
    assert.equal(got.claims.sub, SUBJECT);
    assert.ok(got.claims.exp > Date.now() / 1000 + 3600, "exp hours ahead");
    assert.equal(got.headers["ttl"], "120");
    assert.equal(got.headers["urgency"], "high");
    assert.equal(got.headers["topic"], "conv-bob");
    assert.equal(got.headers["content-encoding"], "aes128gcm");

    // The largest payload that fits one 4096-byte record goes; one byte more is refused before sending.
    const big = JSON.stringify({ t: "x".repeat(MAX_PAYLOAD_BYTES - 8) });
    assert.equal(enc.encode(big).length, MAX_PAYLOAD_BYTES);
    assert.equal(await sender.send(subscription, big, { ttl: 60 }), "ok");
    assert.equal(push.received(id)[1].text, big);
    const out = await sender.deliver(subscription, big + " ", { ttl: 60 });
    assert.equal(out.result, "failed");
    assert.match(out.reason!, /3994 bytes/);
    assert.equal(push.requests(id), 2);
  } finally {
    await sender.close();
  }
});

Deno.test("push endpoint refuses what a push service refuses", async (t) => {
  await using push = await startPushEndpoint();
  const keys = await vapid();
  const { id, subscription } = await push.newSubscription({ applicationServerKey: keys.publicKey });
  const now = Math.floor(Date.now() / 1000);
  const good = { aud: push.origin, exp: now + 3600, sub: SUBJECT };

  async function post(headers: Record<string, string>, body: Uint8Array<ArrayBuffer>) {
    const res = await fetch(subscription.endpoint, { method: "POST", headers, body });
    const text = await res.text();
    return { status: res.status, text };
  }

  await t.step("a valid hand-signed request is accepted (control)", async () => {
    const req = libraryRequest(subscription, '{"n":1}', keys);
    req.headers.Authorization = await authorization(keys, good);
    assert.equal((await post(req.headers, req.body)).status, 201);
    assert.deepEqual(push.received(id).map((r) => r.json), [{ n: 1 }]);
  });

  const cases: [
    string,
    (h: Record<string, string>, b: Uint8Array) => Promise<void> | void,
    number,
    RegExp,
  ][] = [
    ["no Authorization", (h) => void delete h.Authorization, 401, /no vapid/],
    [
      "a JWT for another origin",
      async (h) => {
        h.Authorization = await authorization(keys, { ...good, aud: "http://127.0.0.1:1" });
      },
      401,
      /aud/,
    ],
    [
      "an expired JWT",
      async (h) => {
        h.Authorization = await authorization(keys, { ...good, exp: now - 10 });
      },
      401,
      /expired/,
    ],
    [
      "a JWT valid for more than 24 h",
      async (h) => {
        h.Authorization = await authorization(keys, { ...good, exp: now + 25 * 3600 });
      },
      401,
      /24 h/,
    ],
    [
      "a subject that is not mailto: or https:",
      async (h) => {
        h.Authorization = await authorization(keys, { ...good, sub: "admin@example.com" });
      },
      401,
      /sub/,
    ],
    [
      "a signature by another key",
      async (h) => {
        const other = await generateVapidKeys();
        h.Authorization = await authorization({ ...other, publicKey: keys.publicKey }, good);
      },
      401,
      /signature/,
    ],
    [
      "another server's VAPID key",
      async (h) => {
        h.Authorization = await authorization(await generateVapidKeys(), good);
      },
      403,
      /subscription was made with/,
    ],
    ["no TTL", (h) => void delete h.TTL, 400, /TTL/],
    ["the old aesgcm encoding", (h) => void (h["Content-Encoding"] = "aesgcm"), 415, /aes128gcm/],
    ["a tampered body", (_h, b) => void (b[b.length - 3] ^= 1), 400, /decrypt/],
  ];
  for (const [what, spoil, status, reason] of cases) {
    await t.step(`refuses ${what}`, async () => {
      const req = libraryRequest(subscription, '{"n":2}', keys);
      req.headers.Authorization = await authorization(keys, good);
      await spoil(req.headers, req.body);
      const res = await post(req.headers, req.body);
      assert.equal(res.status, status, res.text);
      assert.match(res.text, reason);
    });
  }

  await t.step("refuses a body encrypted for another subscription", async () => {
    const other = await push.newSubscription();
    const req = libraryRequest(other.subscription, '{"n":3}', keys);
    const res = await post(req.headers, req.body);
    assert.equal(res.status, 400);
    assert.match(res.text, /does not decrypt/);
  });

  await t.step("the sender's verdict on a mismatched key pair is failed", async () => {
    const other = await generateVapidKeys();
    const sender = new PushSender({
      vapid: { publicKey: keys.publicKey, privateKey: other.privateKey, subject: SUBJECT },
      unsafe: true,
    });
    const out = await sender.deliver(subscription, "{}", { ttl: 60 });
    await sender.close();
    assert.equal(out.result, "failed");
    assert.equal(out.status, 401);
  });
  assert.equal(push.received(id).length, 1, "only the control push was accepted");
});

Deno.test("PushSender.deliver() maps the push service's answers", async (t) => {
  await using push = await startPushEndpoint();
  const keys = await vapid();
  const sender = new PushSender({ vapid: keys, unsafe: true, timeout: 300 });
  try {
    const { id, subscription } = await push.newSubscription();
    const cases: [number, SendOutcome["result"]][] = [
      [410, "gone"],
      [404, "gone"],
      [429, "retry"],
      [500, "retry"],
      [503, "retry"],
      [400, "failed"],
      [403, "failed"],
      [413, "failed"],
      [301, "failed"],
    ];
    for (const [status, result] of cases) {
      await t.step(`${status} is ${result}`, async () => {
        push.respondWith(id, status, { times: 1, retryAfter: "7" });
        const out = await sender.deliver(subscription, "{}", { ttl: 60 });
        assert.equal(out.result, result);
        assert.equal(out.status, status);
        if (status === 429 || status >= 500) assert.equal(out.retryAfterMs, 7000);
      });
    }
    await t.step("a hanging push service times out as retry", async () => {
      push.respondWith(id, "hang", { times: 1 });
      const started = Date.now();
      const out = await sender.deliver(subscription, "{}", { ttl: 60 });
      assert.equal(out.result, "retry");
      assert.match(out.reason!, /no answer within 300 ms/);
      assert.ok(Date.now() - started < 3000);
    });
    await t.step("a refused connection is retry", async () => {
      const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (l.addr as Deno.NetAddr).port;
      l.close();
      const out = await sender.deliver(
        { ...subscription, endpoint: `http://127.0.0.1:${port}/push/x` },
        "{}",
        { ttl: 60 },
      );
      assert.equal(out.result, "retry");
      assert.match(out.reason!, /cannot reach the push service/);
      assert.doesNotMatch(out.reason!, /\/push\/x/, "the endpoint's path stays out of the reason");
    });
    await t.step("bad subscription keys are failed, without a request", async () => {
      const before = push.requests(id);
      const out = await sender.deliver(
        { endpoint: subscription.endpoint, keys: { p256dh: "AAAA", auth: subscription.keys.auth } },
        "{}",
        { ttl: 60 },
      );
      assert.equal(out.result, "failed");
      assert.match(out.reason!, /65 bytes/);
      assert.equal(push.requests(id), before);
    });
  } finally {
    await sender.close();
  }
});

Deno.test("parseRetryAfter() reads seconds and HTTP dates", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  assert.equal(parseRetryAfter("30", now), 30_000);
  assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:01:00 GMT", now), 60_000);
  assert.equal(parseRetryAfter("Wed, 31 Dec 2025 00:00:00 GMT", now), 0);
  assert.equal(parseRetryAfter("soon", now), undefined);
  assert.equal(parseRetryAfter(null, now), undefined);
});

Deno.test("PushQueue calls onGone for 410 and 404 and drops the endpoint's other pushes", async () => {
  await using push = await startPushEndpoint();
  const sender = new PushSender({ vapid: await vapid(), unsafe: true });
  const gone: string[] = [];
  const queue = new PushQueue(sender, { onGone: (e) => void gone.push(e), concurrency: 1 });
  try {
    const a = await push.newSubscription();
    const b = await push.newSubscription();
    push.respondWith(a.id, 410);
    push.respondWith(b.id, 404);
    for (const s of [a, b]) {
      queue.enqueue(s.subscription, '{"n":1}', { ttl: 60 });
      queue.enqueue(s.subscription, '{"n":2}', { ttl: 60 });
    }
    await queue.idle();
    assert.deepEqual(gone.sort(), [a.subscription.endpoint, b.subscription.endpoint].sort());
    assert.equal(push.requests(a.id), 1, "the second push to a gone endpoint is not sent");
    assert.equal(push.requests(b.id), 1);
    assert.deepEqual({ ...queue.stats, queued: 0 }, {
      queued: 0,
      inFlight: 0,
      sent: 0,
      gone: 4,
      failed: 0,
      retried: 0,
      dropped: 0,
      expired: 0,
      unsubscribed: 0,
    });
  } finally {
    await queue.close();
    await sender.close();
  }
});

Deno.test("PushQueue retries 429 (after Retry-After) and 500 (with backoff), then delivers", async () => {
  await using push = await startPushEndpoint();
  const sender = new PushSender({ vapid: await vapid(), unsafe: true });
  const queue = new PushQueue(sender, { baseDelay: 50, maxDelay: 200 });
  try {
    const a = await push.newSubscription();
    const b = await push.newSubscription();
    push.respondWith(a.id, 429, { times: 1, retryAfter: "1" });
    push.respondWith(b.id, 500, { times: 2 });
    const started = Date.now();
    queue.enqueue(a.subscription, '{"to":"a"}', { ttl: 60 });
    queue.enqueue(b.subscription, '{"to":"b","n":1}', { ttl: 60 });
    queue.enqueue(b.subscription, '{"to":"b","n":2}', { ttl: 60 });
    const [gotB] = await push.waitFor(b.id, 2);
    assert.deepEqual(gotB.json, { to: "b", n: 1 }, "order kept across retries");
    assert.equal(push.requests(b.id), 4);
    const [gotA] = await push.waitFor(a.id, 1);
    assert.ok(Date.now() - started >= 950, "Retry-After: 1 honoured");
    assert.deepEqual(gotA.json, { to: "a" });
    assert.ok(Number(gotA.headers["ttl"]) <= 59, "the TTL counts the time spent waiting");
    await queue.idle();
    assert.equal(queue.stats.sent, 3);
    assert.equal(queue.stats.retried, 3);
  } finally {
    await queue.close();
    await sender.close();
  }
});

Deno.test("PushQueue gives up after maxAttempts and does not retry past the TTL", async () => {
  await using push = await startPushEndpoint();
  const log = memoryLogger();
  const sender = new PushSender({ vapid: await vapid(), unsafe: true });
  const queue = new PushQueue(sender, { baseDelay: 10, maxDelay: 20, maxAttempts: 3, log });
  try {
    const a = await push.newSubscription();
    const b = await push.newSubscription();
    push.respondWith(a.id, 500);
    push.respondWith(b.id, 503, { retryAfter: "5" });
    queue.enqueue(a.subscription, "{}", { ttl: 60 });
    queue.enqueue(b.subscription, "{}", { ttl: 2 });
    await queue.idle();
    assert.equal(push.requests(a.id), 3);
    assert.equal(push.requests(b.id), 1, "Retry-After beyond the TTL: expired, not retried");
    assert.equal(queue.stats.failed, 1);
    assert.equal(queue.stats.expired, 1);
    assert.equal(log.lines.filter((l) => l.includes("given up")).length, 1);
    assert.ok(!log.lines.some((l) => l.includes("/push/")), "the log never holds an endpoint path");
  } finally {
    await queue.close();
    await sender.close();
  }
});

Deno.test("PushQueue stays bounded under a flood and enqueue never throws", async () => {
  await using push = await startPushEndpoint();
  const sender = new PushSender({ vapid: await vapid(), unsafe: true });
  const queue = new PushQueue(sender, { maxQueued: 40, maxPerEndpoint: 5, concurrency: 4 });
  try {
    const subs = await Promise.all(Array.from({ length: 20 }, () => push.newSubscription()));
    let peak = 0;
    for (let i = 0; i < 400; i++) {
      queue.enqueue(subs[i % subs.length].subscription, JSON.stringify({ i }), { ttl: 60 });
      peak = Math.max(peak, queue.stats.queued);
    }
    // Malformed input is counted as failed later, never thrown now.
    queue.enqueue(null as never, "{}", { ttl: 60 });
    queue.enqueue({ endpoint: "x", keys: null } as never, "{}", { ttl: 60 });
    assert.ok(peak <= 40, `at most 40 waiting, saw ${peak}`);
    await queue.idle();
    const s = queue.stats;
    const received = subs.reduce((n, s) => n + push.received(s.id).length, 0);
    assert.equal(s.sent, received);
    assert.ok(s.dropped >= 400 - 40 - 4 - 20, `dropped ${s.dropped}`);
    assert.equal(s.sent + s.dropped + s.failed, 402);
    // The newest pushes survive: each endpoint's last one arrived.
    for (const [n, sub] of subs.entries()) {
      assert.deepEqual(push.received(sub.id).at(-1)?.json, { i: 380 + n });
    }
  } finally {
    await queue.close();
    await sender.close();
  }
});

Deno.test("PushQueue bounds a flood per endpoint and overall while the sender is stuck", async () => {
  const pending: ((o: SendOutcome) => void)[] = [];
  const stuck: Deliverer = {
    deliver: (_s, _p, opts) =>
      new Promise((resolve) => {
        pending.push(resolve);
        opts.signal?.addEventListener("abort", () => resolve({ result: "retry" }));
      }),
  };
  const queue = new PushQueue(stuck, { maxQueued: 1000, maxPerEndpoint: 10, concurrency: 3 });
  const sub = (n: number) => ({
    endpoint: `https://push.example.com/${n}`,
    keys: { p256dh: "", auth: "" },
  });
  const started = performance.now();
  for (let i = 0; i < 50_000; i++) queue.enqueue(sub(i % 500), "{}", { ttl: 60 });
  const took = performance.now() - started;
  assert.equal(queue.stats.inFlight, 3);
  assert.equal(queue.stats.queued, 1000);
  assert.equal(queue.stats.dropped, 50_000 - 1000 - 3);
  assert.ok(took < 5000, `enqueue stays cheap under a flood (${took.toFixed(0)} ms)`);
  const t0 = Date.now();
  await queue.close();
  assert.ok(Date.now() - t0 < 1000);
  assert.equal(pending.length, 3);
});

Deno.test("PushQueue.close() ends promptly with retries pending and a request hanging", async () => {
  await using push = await startPushEndpoint();
  const sender = new PushSender({ vapid: await vapid(), unsafe: true, timeout: 60_000 });
  const queue = new PushQueue(sender, { baseDelay: 60_000 });
  try {
    const a = await push.newSubscription();
    const b = await push.newSubscription();
    push.respondWith(a.id, 500);
    push.respondWith(b.id, "hang");
    queue.enqueue(a.subscription, "{}", { ttl: 3600 });
    queue.enqueue(a.subscription, "{}", { ttl: 3600 });
    queue.enqueue(b.subscription, "{}", { ttl: 3600 });
    await waitUntil(() => push.requests(a.id) === 1 && push.requests(b.id) === 1, "both tried");
    await waitUntil(() => queue.stats.retried === 1, "a backs off");
    const t0 = Date.now();
    await queue.close();
    assert.ok(Date.now() - t0 < 1000, "close() did not wait for the backoff or the hang");
    queue.enqueue(a.subscription, "{}", { ttl: 60 }); // ignored after close
    assert.equal(queue.stats.queued, 0);
  } finally {
    await queue.close();
    await sender.close();
  }
});

Deno.test("checkEndpoint() refuses every private, local or malformed endpoint", () => {
  const refused: [string, RegExp][] = [
    ["http://push.example.com/x", /https/],
    ["ftp://push.example.com/x", /https/],
    ["https://user:pw@push.example.com/x", /user name/],
    ["https://push.example.com:8443/x", /port/],
    ["https://127.0.0.1/x", /loopback/],
    ["https://127.1/x", /loopback/],
    ["https://2130706433/x", /loopback/],
    ["https://0x7f.1/x", /loopback/],
    ["https://0177.0.0.1/x", /loopback/],
    ["https://0.0.0.0/x", /unspecified/],
    ["https://0/x", /unspecified/],
    ["https://10.1.2.3/x", /private/],
    ["https://172.16.0.1/x", /private/],
    ["https://172.31.255.255/x", /private/],
    ["https://192.168.1.1/x", /private/],
    ["https://100.64.0.1/x", /CGNAT/],
    ["https://169.254.169.254/latest/meta-data", /link-local/],
    ["https://224.0.0.1/x", /multicast/],
    ["https://255.255.255.255/x", /reserved/],
    ["https://[::1]/x", /loopback/],
    ["https://[0:0:0:0:0:0:0:1]/x", /loopback/],
    ["https://[::]/x", /unspecified/],
    ["https://[::ffff:127.0.0.1]/x", /loopback/],
    ["https://[::ffff:a00:1]/x", /private/],
    ["https://[::ffff:0:a9fe:a9fe]/x", /link-local/],
    ["https://[64:ff9b::c0a8:101]/x", /private/],
    ["https://[2002:7f00:1::]/x", /loopback/],
    ["https://[fe80::1]/x", /link-local/],
    ["https://[fd12:3456::1]/x", /unique-local/],
    ["https://[fc00::1]/x", /unique-local/],
    ["https://[ff02::1]/x", /multicast/],
    ["https://[::127.0.0.1]/x", /reserved/],
    ["https://localhost/x", /local name/],
    ["https://LOCALHOST./x", /local name/],
    ["https://push.localhost/x", /local name/],
    ["https://printer.local/x", /local name/],
    ["https://metadata.google.internal/x", /local name/],
    ["https://router.home.arpa/x", /local name/],
    ["https://redis/x", /full domain name/],
    ["https://" + "a".repeat(1020) + ".com/", /longer than 1024/],
    ["not a url", /not a URL/],
    ["", /empty/],
  ];
  for (const [url, why] of refused) {
    const got = checkEndpoint(url, {});
    assert.ok(got !== null && why.test(got), `${url}: ${got}`);
  }
  for (
    const url of [
      "https://fcm.googleapis.com/fcm/send/abc:def",
      "https://updates.push.services.mozilla.com/wpush/v2/gAAAA",
      "https://web.push.apple.com/QGx",
      "https://wns2-par02p.notify.windows.com/w/?token=x",
      "https://8.8.8.8/x",
      "https://[2606:4700:4700::1111]/x",
      "https://[::ffff:8.8.8.8]/x",
    ]
  ) {
    assert.equal(checkEndpoint(url, {}), null, url);
  }
  // --unsafe-push-endpoints lets tests use http and loopback; the rest still holds.
  assert.equal(checkEndpoint("http://127.0.0.1:4000/push/a", { unsafe: true }), null);
  assert.equal(checkEndpoint("https://localhost:4000/push/a", { unsafe: true }), null);
  assert.match(checkEndpoint("http://u:p@127.0.0.1/", { unsafe: true })!, /user name/);
  assert.match(checkEndpoint("file:///etc/passwd", { unsafe: true })!, /https/);
});

Deno.test("addressesProblem() refuses a name when any of its addresses is private", async () => {
  assert.equal(addressesProblem(["8.8.8.8", "2001:4860:4860::8888"]), null);
  assert.match(addressesProblem(["8.8.8.8", "10.0.0.1"])!, /private address \(10\.0\.0\.1\)/);
  assert.match(addressesProblem([])!, /no address/);
  assert.match(addressProblem("fe80::1%eth0")!, /link-local/);
  assert.match(addressProblem("::ffff:192.168.0.1")!, /private/);
  // localhost resolves (hosts file) to loopback only: refused whatever its form.
  const local = await resolveHost("localhost");
  assert.ok(local.length > 0);
  assert.match(addressesProblem(local)!, /loopback/);
});

Deno.test("PushSender refuses at send time a public name that resolves to a private address", async () => {
  await using push = await startPushEndpoint();
  const resolved: string[] = [];
  const sender = new PushSender({
    vapid: await vapid(),
    resolve: (host) => {
      resolved.push(host);
      return Promise.resolve(host === "rebind.example.com" ? ["93.184.216.34", "127.0.0.1"] : []);
    },
  });
  try {
    const { subscription } = await push.newSubscription();
    const out = await sender.deliver(
      { ...subscription, endpoint: "https://rebind.example.com/push/x" },
      "{}",
      { ttl: 60 },
    );
    assert.equal(out.result, "failed");
    assert.match(out.reason!, /resolves to a loopback address \(127\.0\.0\.1\)/);
    assert.deepEqual(resolved, ["rebind.example.com"]);
    // Without --unsafe-push-endpoints the test endpoint itself is refused before any request.
    const direct = await sender.deliver(subscription, "{}", { ttl: 60 });
    assert.equal(direct.result, "failed");
    assert.match(direct.reason!, /https/);
  } finally {
    await sender.close();
  }
});

Deno.test("PinnedProxy tunnels TLS to the checked address only", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "chat-push-tls-" });
  try {
    const { ca, cert, key } = await makeCertificates(dir, ["push.test"]);
    const seen: string[] = [];
    await using server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, cert, key, onListen() {} },
      (req) => {
        seen.push(new URL(req.url).host); // HTTP/2 carries it as :authority
        return new Response("pushed", { status: 201 });
      },
    );
    const port = server.addr.port;
    const lookups: string[] = [];
    const proxy = PinnedProxy.start({
      port,
      caCerts: [ca],
      resolve: (host) => {
        lookups.push(host);
        return Promise.resolve(host === "push.test" ? ["127.0.0.1"] : ["127.0.0.2"]);
      },
      check: (addrs) => addrs.includes("127.0.0.1") ? null : "a checked-out address",
    });
    try {
      await t.step("TLS runs end to end to the name, over the pinned address", async () => {
        const res = await fetch(`https://push.test:${port}/push/a`, {
          method: "POST",
          body: "x",
          client: proxy.client,
        });
        assert.equal(res.status, 201);
        assert.equal(await res.text(), "pushed");
        assert.deepEqual(seen, [`push.test:${port}`]);
        assert.deepEqual(lookups, ["push.test"]);
      });
      await t.step("an address that fails the check gets no tunnel, and says why", async () => {
        await assert.rejects(fetch(`https://evil.test:${port}/`, { client: proxy.client }));
        assert.equal(proxy.takeRefusal(`evil.test:${port}`), "a checked-out address");
        assert.equal(proxy.takeRefusal(`evil.test:${port}`), null);
      });
      await t.step(
        "only CONNECT, only with the credentials, only to the allowed port",
        async () => {
          const addr = proxy.port;
          assert.match(
            await raw(addr, `CONNECT push.test:${port} HTTP/1.1\r\n\r\n`),
            /^HTTP\/1\.1 407/,
          );
          assert.match(
            await raw(addr, "GET http://push.test/ HTTP/1.1\r\n\r\n"),
            /^HTTP\/1\.1 407/,
          );
        },
      );
    } finally {
      await proxy.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function raw(port: number, request: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(enc.encode(request));
    const buf = new Uint8Array(512);
    const n = await conn.read(buf);
    return new TextDecoder().decode(buf.subarray(0, n ?? 0));
  } finally {
    conn.close();
  }
}

Deno.test("loadVapid() creates vapid.json 0600 on first start and reuses it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-vapid-" });
  try {
    const log = memoryLogger();
    const first = await loadVapid({ dir, env: {}, log });
    assert.equal(first.source, "new");
    assert.equal(first.subject, "mailto:postmaster@chat.invalid");
    const info = await Deno.stat(join(dir, VAPID_FILE));
    assert.equal(info.mode! & 0o777, 0o600);
    const again = await loadVapid({ dir, env: {}, log });
    assert.equal(again.source, "file");
    assert.equal(again.publicKey, first.publicKey);
    assert.equal(again.privateKey, first.privateKey);
    // What pushManager.subscribe({applicationServerKey}) takes: a raw uncompressed P-256 point.
    const raw = unb64url(first.publicKey);
    assert.equal(raw.length, 65);
    assert.equal(raw[0], 4);
    await crypto.subtle.importKey("raw", raw, { name: "ECDSA", namedCurve: "P-256" }, true, [
      "verify",
    ]);
    assert.equal(unb64url(first.privateKey).length, 32);
    // A subject from the environment applies to keys from the file.
    const withSubject = await loadVapid({ dir, env: { CHAT_VAPID_SUBJECT: SUBJECT }, log });
    assert.equal(withSubject.subject, SUBJECT);
    assert.deepEqual(log.lines, []);

    await Deno.chmod(join(dir, VAPID_FILE), 0o644);
    await assert.rejects(loadVapid({ dir, env: {}, log }), (err: Error) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /may be read by other users \(mode 644\).*chmod 600/);
      return true;
    });
    await Deno.chmod(join(dir, VAPID_FILE), 0o600);
    await Deno.writeTextFile(join(dir, VAPID_FILE), "{broken", { mode: 0o600 });
    await assert.rejects(loadVapid({ dir, env: {}, log }), /Cannot read the VAPID key file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadVapid() takes CHAT_VAPID_* and refuses half or broken settings", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-vapid-env-" });
  try {
    const log = memoryLogger();
    const keys = await generateVapidKeys();
    const env = {
      CHAT_VAPID_PUBLIC_KEY: keys.publicKey,
      CHAT_VAPID_PRIVATE_KEY: keys.privateKey,
      CHAT_VAPID_SUBJECT: "https://chat.example.com/",
    };
    const got = await loadVapid({ dir, env, log, shared: true });
    assert.deepEqual(got, { ...keys, subject: "https://chat.example.com/", source: "env" });
    assert.deepEqual(log.lines, []);
    // Several nodes without the variables: each would make its own keys.
    const own = await loadVapid({ dir, env: {}, log, shared: true });
    assert.equal(own.source, "new");
    assert.match(log.lines[0], /every node must use the same ones; set CHAT_VAPID_PUBLIC_KEY/);
    await Deno.remove(join(dir, VAPID_FILE));
    assert.deepEqual([...Deno.readDirSync(dir)], [], "no file written");

    const other = await generateVapidKeys();
    const bad: [Record<string, string>, RegExp][] = [
      [{ CHAT_VAPID_PUBLIC_KEY: keys.publicKey }, /CHAT_VAPID_PRIVATE_KEY is not set/],
      [{ CHAT_VAPID_PRIVATE_KEY: keys.privateKey }, /CHAT_VAPID_PUBLIC_KEY is not set/],
      [{ ...env, CHAT_VAPID_PUBLIC_KEY: "abc" }, /uncompressed P-256 point/],
      [{ ...env, CHAT_VAPID_PRIVATE_KEY: "abc" }, /32 bytes/],
      [{ ...env, CHAT_VAPID_PRIVATE_KEY: other.privateKey }, /does not belong/],
      [{ ...env, CHAT_VAPID_PUBLIC_KEY: "B" + "A".repeat(86) }, /not a P-256 key pair/],
      [{ ...env, CHAT_VAPID_SUBJECT: "admin@example.com" }, /mailto: address or an https: URL/],
      [{ ...env, CHAT_VAPID_SUBJECT: "http://example.com" }, /mailto: address or an https: URL/],
      [{ ...env, CHAT_VAPID_SUBJECT: "mailto:admin@localhost" }, /names localhost/],
      [{ ...env, CHAT_VAPID_SUBJECT: "https://localhost/" }, /names localhost/],
    ];
    for (const [e, why] of bad) {
      await assert.rejects(loadVapid({ dir, env: e, log }), (err: Error) => {
        assert.ok(err instanceof ConfigError, err.message);
        assert.match(err.message, why);
        return true;
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadVapid() warns and keeps keys in memory when the directory is not writable", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-vapid-ro-" });
  try {
    // A file where the directory should be: even root cannot write below it.
    const file = join(dir, "not-a-dir");
    await Deno.writeTextFile(file, "");
    const log = memoryLogger();
    const got = await loadVapid({ dir: file, env: {}, log });
    assert.equal(got.source, "memory");
    assert.match(log.lines[0], /Cannot keep the VAPID keys.*CHAT_VAPID_PUBLIC_KEY/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
