/**
 * The findings of the Web Push review (issue 18), each a test that failed
 * before its fix: the pinned proxy's dialing after a tunnel's deadline and
 * its bound on tunnels, one member's slow endpoints holding up everyone's
 * pushes, pushes to the banned and to signed-out sessions, a huge
 * Retry-After, and `read` pushes to devices that showed nothing.
 */
import assert from "node:assert/strict";
import { MAX_DIALS, PinnedProxy } from "../server/push/pinned_proxy.ts";
import { MAX_LEVELS_PER_USER } from "../server/push/push_store.ts";
import { type Deliverer, PushQueue, type SendOutcome } from "../server/push/send.ts";
import { signIn, signOut, startTestServer, waitUntil } from "./helpers.ts";
import { startPushEndpoint } from "./push_endpoint.ts";

type ConnectFn = typeof Deno.connect;

/**
 * Replaces Deno.connect with one that hangs until its signal aborts (what a
 * blackholed SYN does: this sandbox answers every SYN), counting dials.
 */
function blackhole(): { dials: () => number; pending: () => number; restore: () => void } {
  const real: ConnectFn = Deno.connect;
  let dials = 0;
  let pending = 0;
  // deno-lint-ignore no-explicit-any
  (Deno as any).connect = (opts: Deno.ConnectOptions & { signal?: AbortSignal }) => {
    dials++;
    pending++;
    return new Promise<Deno.Conn>((_, reject) => {
      opts.signal?.addEventListener("abort", () => {
        pending--;
        reject(new DOMException("aborted", "AbortError"));
      }, { once: true });
    });
  };
  return {
    dials: () => dials,
    pending: () => pending,
    // deno-lint-ignore no-explicit-any
    restore: () => (Deno as any).connect = real,
  };
}

function giveUp(proxy: PinnedProxy, host: string, ms: number): Promise<void> {
  return fetch(`https://${host}/`, {
    method: "POST",
    client: proxy.client,
    signal: AbortSignal.timeout(ms),
  }).then((r) => r.body?.cancel(), () => {});
}

Deno.test("PinnedProxy stops dialing at the tunnel's deadline, and tries a few addresses only", async () => {
  const hole = blackhole();
  const addresses = Array.from({ length: 50 }, (_, i) => `198.51.${i}.1`);
  const proxy = PinnedProxy.start({
    resolve: () => Promise.resolve(addresses),
    check: () => null, // public, firewalled hosts
    connectTimeout: 200,
  });
  try {
    await giveUp(proxy, "blackhole.example", 1000);
    await waitUntil(() => hole.pending() === 0, "no dial is pending", 2000);
    assert.ok(hole.dials() <= MAX_DIALS, `${hole.dials()} dials for one tunnel`);
  } finally {
    hole.restore();
    await proxy.close();
  }
});

Deno.test("PinnedProxy: tunnels the client gave up on do not pile up", async () => {
  const hole = blackhole();
  const addresses = Array.from({ length: 200 }, (_, i) => `198.51.${i}.1`);
  const proxy = PinnedProxy.start({
    resolve: () => Promise.resolve(addresses),
    check: () => null,
    connectTimeout: 200,
  });
  try {
    for (let round = 0; round < 2; round++) {
      await Promise.all(
        Array.from({ length: 10 }, (_, i) => giveUp(proxy, `blackhole${i}-${round}.example`, 1000)),
      );
    }
    // Before the fix, 200 addresses × 200 ms kept each tunnel dialing for 40 s.
    await waitUntil(() => hole.pending() === 0, "every tunnel stopped dialing", 2000);
  } finally {
    hole.restore();
    await proxy.close();
  }
});

Deno.test("PinnedProxy opens at most maxTunnels tunnels at once; the rest are refused", async () => {
  const hole = blackhole();
  const MAX_TUNNELS = 8;
  const proxy = PinnedProxy.start({
    resolve: () => Promise.resolve(["198.51.100.1"]),
    check: () => null,
    connectTimeout: 3000,
    maxTunnels: MAX_TUNNELS,
  });
  let most = 0;
  const watch = setInterval(() => most = Math.max(most, hole.pending()), 5);
  try {
    const n = MAX_TUNNELS + 10;
    const fetches = Array.from({ length: n }, (_, i) => giveUp(proxy, `busy${i}.example`, 10_000));
    await waitUntil(() => hole.pending() >= MAX_TUNNELS, "the tunnels are dialing", 5000);
    most = Math.max(most, hole.pending());
    await Promise.all(fetches);
    assert.ok(most <= MAX_TUNNELS, `${most} tunnels at once`);
  } finally {
    clearInterval(watch);
    hole.restore();
    await proxy.close();
  }
});

const USERS = {
  alice: "alice-pass",
  bob: "bob-pass",
  carol: "carol-pass",
  mallory: "mallory-pass",
  root: { password: "root-pass", role: "admin" },
};

/** Signs `name` in, subscribes `n` devices of the test push service, and leaves hidden. */
async function devices(
  t: { ws: string },
  push: Awaited<ReturnType<typeof startPushEndpoint>>,
  name: string,
  n = 1,
  hang = false,
) {
  const c = await signIn(t.ws, name, `${name}-pass`);
  const subs = [];
  for (let i = 0; i < n; i++) {
    const sub = await push.newSubscription({ applicationServerKey: c.welcome.push?.key });
    if (hang) push.respondWith(sub.id, "hang");
    c.send({ type: "push_subscribe", subscription: sub.subscription, ref: `s${i}` });
    const got = await c.next((f) => f.type === "push_subscribed" || f.type === "error");
    assert.equal(got.type, "push_subscribed", JSON.stringify(got));
    subs.push(sub);
  }
  c.send({ type: "visible", visible: false });
  await c.barrier();
  const token = c.welcome.token;
  await c.close();
  return { subs, token };
}

Deno.test("a member's hanging endpoints do not hold up other users' pushes", async () => {
  await using push = await startPushEndpoint();
  await using t = await startTestServer({ users: USERS, args: ["--unsafe-push-endpoints"] });
  const carol = await devices(t, push, "carol", 10, true);
  const bob = await devices(t, push, "bob");
  const mallory = await signIn(t.ws, "mallory", "mallory-pass");
  const alice = await signIn(t.ws, "alice", "alice-pass");
  try {
    mallory.send({ type: "send", to: "carol", text: "ping", ref: "m1" });
    await mallory.next((f) => f.type === "message" && f.ref === "m1");
    // carol's requests hang at the push service.
    await waitUntil(() => carol.subs.some((s) => push.requests(s.id) > 0), "carol's requests");
    const t0 = Date.now();
    alice.send({ type: "send", to: "bob", text: "lunch?", ref: "a1" });
    await alice.next((f) => f.type === "message" && f.ref === "a1");
    await push.waitFor(bob.subs[0].id, 1, 15_000);
    const latency = Date.now() - t0;
    assert.ok(latency < 3000, `bob's DM push waited ${latency} ms behind carol's endpoints`);
    assert.ok(
      carol.subs.filter((s) => push.requests(s.id) > 0).length <= 2,
      "carol's devices have at most 2 requests in flight",
    );
  } finally {
    await mallory.close();
    await alice.close();
  }
});

Deno.test("PushQueue: a full queue drops from the user with the most waiting", async () => {
  const pending: (() => void)[] = [];
  const sent: string[] = [];
  const slow: Deliverer = {
    deliver: (sub, _p, opts) =>
      new Promise<SendOutcome>((resolve) => {
        const done = () => {
          sent.push(sub.endpoint);
          resolve({ result: "ok", status: 201 });
        };
        pending.push(done);
        opts.signal?.addEventListener("abort", () => resolve({ result: "retry" }));
      }),
  };
  const queue = new PushQueue(slow, { maxQueued: 20, maxPerUser: 1, concurrency: 2 });
  const sub = (n: string) => ({
    endpoint: `https://push.example.com/${n}`,
    keys: { p256dh: "", auth: "" },
  });
  try {
    // bob has 3 pushes waiting; then mallory floods her 5 devices.
    for (let i = 0; i < 3; i++) queue.enqueue(sub("b"), "{}", { ttl: 60, user: "bob" });
    for (let i = 0; i < 100; i++) {
      queue.enqueue(sub(`m${i % 5}`), "{}", { ttl: 60, user: "mallory" });
    }
    assert.ok(queue.stats.queued <= 20);
    // mallory loses her own: bob's three all go, each with the next free slot.
    const bobs = () => sent.filter((e) => e === sub("b").endpoint).length;
    while (bobs() < 3) {
      await waitUntil(() => pending.length > 0, "a request");
      pending.shift()!();
      await Promise.resolve();
    }
    assert.ok(sent.length <= 6, `bob waited for ${sent.length - 3} of mallory's pushes`);
  } finally {
    await queue.close();
  }
});

Deno.test("a banned user's devices get no more pushes", async () => {
  await using push = await startPushEndpoint();
  await using t = await startTestServer({ users: USERS, args: ["--unsafe-push-endpoints"] });
  const bob = await devices(t, push, "bob");
  const carol = await devices(t, push, "carol");
  const root = await signIn(t.ws, "root", "root-pass");
  const alice = await signIn(t.ws, "alice", "alice-pass");
  try {
    root.send({ type: "ban", user: "bob", reason: "spam", ref: "ban" });
    const banned = await root.next((f) => (f as { ref?: string }).ref === "ban");
    assert.equal(banned.type, "banned", JSON.stringify(banned));
    alice.send({ type: "send", to: "bob", text: "secret DM after the ban", ref: "a1" });
    await alice.next((f) => (f as { ref?: string }).ref === "a1");
    // A push to carol, dispatched after bob's would have been, arrives.
    alice.send({ type: "send", to: "carol", text: "sentinel", ref: "a2" });
    await push.waitFor(carol.subs[0].id, 1);
    assert.equal(push.requests(bob.subs[0].id), 0, "the banned user's device got a push");
    // The ban forgot his subscriptions too (the ban's answer comes after it).
    assert.deepEqual(await t.server.hub.pushStore.subscriptions("bob"), []);
  } finally {
    await root.close();
    await alice.close();
  }
});

Deno.test("a push retrying in the queue does not reach a session signed out meanwhile", async () => {
  await using push = await startPushEndpoint();
  await using t = await startTestServer({ users: USERS, args: ["--unsafe-push-endpoints"] });
  // bob in two browsers: a shared computer (signs out) and his phone.
  const shared = await devices(t, push, "bob");
  const phone = await devices(t, push, "bob");
  // The push service is briefly overloaded: one 429 each, retry in 2 s.
  push.respondWith(shared.subs[0].id, 429, { times: 1, retryAfter: "2" });
  push.respondWith(phone.subs[0].id, 429, { times: 1, retryAfter: "2" });
  const alice = await signIn(t.ws, "alice", "alice-pass");
  try {
    alice.send({ type: "send", to: "bob", text: "the door code is 4711", ref: "a1" });
    await waitUntil(() => push.refused(shared.subs[0].id).length === 1, "the 429");
    assert.equal(await signOut(t.http, shared.token), 204);
    // The phone's retry comes after the shared computer's would have.
    await push.waitFor(phone.subs[0].id, 1);
    assert.equal(
      push.requests(shared.subs[0].id),
      1,
      "the signed-out session's browser got the DM",
    );
  } finally {
    await alice.close();
  }
});

Deno.test("a huge Retry-After holds the endpoint back instead of releasing it at once", async () => {
  const at: number[] = [];
  const sender: Deliverer = {
    deliver() {
      at.push(Date.now());
      return Promise.resolve({ result: "retry", status: 429, retryAfterMs: 1e11 });
    },
  };
  const queue = new PushQueue(sender, {});
  const sub = { endpoint: "https://push.example/x", keys: { p256dh: "k", auth: "a" } };
  try {
    for (let i = 0; i < 5; i++) queue.enqueue(sub, "{}", { ttl: 3600 });
    // The first push expires (its TTL is shorter than the wait); the others wait.
    await waitUntil(() => queue.stats.expired === 1, "the first push expired");
    assert.equal(queue.stats.queued, 4);
    // An overflowing timer would have fired within a millisecond or so.
    const { promise, resolve } = Promise.withResolvers<void>();
    setTimeout(resolve, 100);
    await promise;
    assert.equal(at.length, 1, "the endpoint asked to be left alone, yet got more requests");
  } finally {
    await queue.close();
  }
});

Deno.test("a read push goes only to a device that was sent a message push of the conversation", async () => {
  await using push = await startPushEndpoint();
  await using t = await startTestServer({ users: USERS, args: ["--unsafe-push-endpoints"] });
  const old = await devices(t, push, "bob");
  const alice = await signIn(t.ws, "alice", "alice-pass");
  const carol = await signIn(t.ws, "carol", "carol-pass");
  const bob = await signIn(t.ws, "bob", "bob-pass");
  try {
    // bob reads alice's DM with no push of it sent: no read push.
    alice.send({ type: "send", to: "bob", text: "seen live", ref: "a0" });
    const seen = await bob.next((f) => f.type === "message");
    bob.send({ type: "read", to: "alice", id: (seen as { id: number }).id });
    await bob.barrier();
    // bob hides his tab; a DM from carol pushes to his device; then a new device.
    bob.send({ type: "visible", visible: false });
    await bob.barrier();
    carol.send({ type: "send", to: "bob", text: "hello", ref: "c1" });
    const [m] = await push.waitFor(old.subs[0].id, 1);
    const fresh = await devices(t, push, "bob");
    bob.send({ type: "read", to: "carol", id: (m.json as { id: number }).id });
    const got = await push.waitFor(old.subs[0].id, 2);
    assert.equal((got[1].json as { kind: string }).kind, "read");
    assert.deepEqual(
      got.map((r) => (r.json as { conv: string }).conv),
      ["@carol", "@carol"],
      "no read push of alice's DM",
    );
    // A sentinel after: the new device got nothing (it showed nothing).
    alice.send({ type: "send", to: "bob", text: "sentinel", ref: "a1" });
    await push.waitFor(fresh.subs[0].id, 1);
    assert.deepEqual(
      push.received(fresh.subs[0].id).map((r) => (r.json as { kind: string }).kind),
      ["message"],
    );
  } finally {
    await alice.close();
    await carol.close();
    await bob.close();
  }
});

Deno.test("notify_level at the cap: levels of rooms the user is no longer in make room", async () => {
  await using t = await startTestServer({ users: USERS });
  const store = t.server.hub.pushStore;
  // 500 levels of rooms bob left (or was kicked from) long ago.
  for (let i = 0; i < MAX_LEVELS_PER_USER; i++) {
    assert.ok(await store.setLevel("bob", `#gone${i}`, "all"));
  }
  await using bob = await signIn(t.ws, "bob", "bob-pass");
  bob.send({ type: "notify_level", to: "alice", level: "none", ref: "n" });
  const got = await bob.next((f) => (f as { ref?: string }).ref === "n");
  assert.equal(got.type, "notify_level", JSON.stringify(got));
  assert.deepEqual(await store.levels("bob"), { "@alice": "none" });
});

Deno.test("PushQueue: at most maxPerHost requests to one host, one while it times out", async () => {
  const pending = new Map<string, (o: SendOutcome) => void>();
  const hanging: Deliverer = {
    deliver: (sub, _p, opts) =>
      new Promise<SendOutcome>((resolve) => {
        pending.set(sub.endpoint, resolve);
        opts.signal?.addEventListener("abort", () => resolve({ result: "retry" }));
      }),
  };
  const queue = new PushQueue(hanging, { maxPerHost: 3, concurrency: 16, baseDelay: 1 });
  const sub = (host: string, n: number) => ({
    endpoint: `https://${host}/${n}`,
    keys: { p256dh: "", auth: "" },
  });
  const to = (host: string) => [...pending.keys()].filter((e) => e.includes(host)).length;
  try {
    for (let i = 0; i < 10; i++) {
      queue.enqueue(sub("a.example", i), "{}", { ttl: 60, user: `u${i}` });
    }
    queue.enqueue(sub("b.example", 0), "{}", { ttl: 60, user: "other" });
    assert.equal(to("a.example"), 3);
    assert.equal(to("b.example"), 1, "another host is not held up");
    // a.example times out: from then on, one request at a time to it.
    for (const [e, resolve] of [...pending]) {
      if (!e.includes("a.example")) continue;
      pending.delete(e);
      resolve({ result: "retry", reason: "no answer", timedOut: true });
    }
    await waitUntil(() => to("a.example") === 1, "the next request to a.example");
    await new Promise<void>((r) => queueMicrotask(r));
    assert.equal(to("a.example"), 1);
    // It answers: back to three.
    const [e, resolve] = [...pending].find(([e]) => e.includes("a.example"))!;
    pending.delete(e);
    resolve({ result: "ok", status: 201 });
    await waitUntil(() => to("a.example") === 3, "three requests to a.example again");
  } finally {
    await queue.close();
  }
});
