import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { ServerFrame } from "../protocol.ts";
import { type Admission, LoginThrottle, type Ticket } from "../server/auth/throttle.ts";
import { closeAll, signIn, signOut, startTestServer, TestClient } from "./helpers.ts";

const OPTS = { userFree: 2, addrFree: 4, baseDelay: 100, maxDelay: 1000, maxWait: 500 };

function admitted(a: Admission): { ticket: Ticket; wait: number } {
  assert.ok(a.ok, `expected the attempt to be admitted, got ${JSON.stringify(a)}`);
  return a;
}

Deno.test("LoginThrottle.admit() spaces failures on a name with a doubling delay, then refuses", () => {
  const t = new LoginThrottle({ ...OPTS, addrFree: 100 });
  let now = 1000;
  const waits: number[] = [];
  for (let i = 0; i < 6; i++) {
    const a = admitted(t.admit("bob", "10.0.0.1", now));
    waits.push(a.wait);
    now += a.wait;
    t.settle(a.ticket, "failure", now);
  }
  // Two free failures, then 100, 200, 400 ms between attempts.
  assert.deepEqual(waits, [0, 0, 0, 100, 200, 400]);
  const refused = t.admit("bob", "10.0.0.1", now);
  assert.deepEqual(refused, { ok: false, retryAfter: 1 }, "800 ms is more than maxWait");
  // After waiting, the attempt is admitted again.
  assert.equal(admitted(t.admit("bob", "10.0.0.1", now + 800)).wait, 0);
});

Deno.test("LoginThrottle.admit() counts parallel attempts before they are checked", () => {
  const t = new LoginThrottle({ ...OPTS, addrFree: 100 });
  const now = 0;
  const results = Array.from({ length: 8 }, () => t.admit("bob", "10.0.0.1", now));
  assert.deepEqual(
    results.map((r) => r.ok ? r.wait : -r.retryAfter),
    [0, 0, 0, 100, 300, -1, -1, -1],
    "each admitted attempt reserves its slot",
  );
});

Deno.test("LoginThrottle.settle() success clears the name and takes back the address count", () => {
  const t = new LoginThrottle(OPTS);
  let now = 0;
  for (let i = 0; i < 3; i++) {
    const a = admitted(t.admit("alice", "10.0.0.1", now));
    t.settle(a.ticket, "failure", now);
  }
  now += 100;
  const ok = admitted(t.admit("alice", "10.0.0.1", now));
  assert.equal(ok.wait, 0);
  t.settle(ok.ticket, "success", now);
  for (let i = 0; i < 3; i++) {
    assert.equal(admitted(t.admit("alice", "10.0.0.2", now)).wait, 0, "alice starts afresh");
  }
});

Deno.test("LoginThrottle.admit() never slows a name by failures on another name from another address", () => {
  const t = new LoginThrottle(OPTS);
  const now = 0;
  for (let i = 0; i < 50; i++) t.admit(`victim${i % 3}`, "10.6.6.6", now);
  assert.equal(t.admit("bob", "10.6.6.6", now).ok, false, "the attacker's address is throttled");
  const carol = admitted(t.admit("carol", "10.0.0.7", now));
  assert.equal(carol.wait, 0);
});

Deno.test("LoginThrottle.admit() throttles one address trying many names", () => {
  const t = new LoginThrottle(OPTS);
  let now = 0;
  const waits: number[] = [];
  for (let i = 0; i < 6; i++) {
    const a = admitted(t.admit(`name${i}`, "10.6.6.6", now));
    waits.push(a.wait);
    now += a.wait;
    t.settle(a.ticket, "failure", now);
  }
  assert.deepEqual(waits, [0, 0, 0, 0, 0, 100], "four free failures per address");
});

Deno.test("LoginThrottle.settle() abandoned takes the attempt back", () => {
  const t = new LoginThrottle(OPTS);
  for (let i = 0; i < 10; i++) {
    const a = admitted(t.admit("bob", "10.0.0.1", 0));
    t.settle(a.ticket, "abandoned", 0);
    t.settle(a.ticket, "failure", 0); // a second settle is ignored
  }
  assert.equal(admitted(t.admit("bob", "10.0.0.1", 0)).wait, 0);
});

Deno.test("LoginThrottle.admit() with a null user counts against the address only", () => {
  const t = new LoginThrottle(OPTS);
  for (let i = 0; i < 4; i++) t.settle(admitted(t.admit(null, "10.0.0.1", 0)).ticket, "failure", 0);
  assert.equal(admitted(t.admit("alice", "10.0.0.2", 0)).wait, 0);
  assert.equal(admitted(t.admit(null, "10.0.0.1", 0)).wait, 0);
  assert.equal(admitted(t.admit(null, "10.0.0.1", 0)).wait, 100);
});

Deno.test("LoginThrottle.wait() resolves from tick() when the turn comes", async () => {
  const t = new LoginThrottle({ ...OPTS, addrFree: 100 });
  for (let i = 0; i < 3; i++) t.settle(admitted(t.admit("bob", "a", 0)).ticket, "failure", 0);
  const a = admitted(t.admit("bob", "a", 0));
  assert.equal(a.wait, 100);
  let released = false;
  const p = t.wait(a.ticket).then(() => (released = true));
  assert.equal(t.waiting, 1);
  t.tick(50);
  await Promise.resolve();
  assert.equal(released, false);
  t.tick(100);
  await p;
  assert.equal(released, true);
  assert.equal(t.waiting, 0);
  const b = admitted(t.admit("bob", "a", 100));
  const q = t.wait(b.ticket);
  t.close();
  await q;
});

Deno.test("LoginThrottle.tick() forgets quiet entries and the table stays bounded", () => {
  const t = new LoginThrottle({ ...OPTS, forgetAfter: 10_000, maxEntries: 100 });
  for (let i = 0; i < 1000; i++) {
    t.settle(admitted(t.admit(`u${i}`, `10.0.${i >> 8}.${i & 255}`, 0)).ticket, "failure", 0);
  }
  assert.equal(t.size, 200, "at most maxEntries names and maxEntries addresses");
  t.tick(5_000);
  assert.equal(t.size, 200);
  t.tick(20_000);
  assert.equal(t.size, 0);
});

Deno.test("LoginThrottle.settle() success pulls the address's next slot back in", () => {
  const t = new LoginThrottle({ ...OPTS, userFree: 100, maxWait: 10_000 });
  // Eight correct sign-ins at once from one shared address (a NAT, a tunnel).
  const tickets = Array.from({ length: 8 }, (_, i) => admitted(t.admit(`user${i}`, "10.0.0.1", 0)));
  assert.deepEqual(tickets.map((a) => a.wait), [0, 0, 0, 0, 0, 100, 300, 700]);
  // Each succeeds when its turn comes; then the address owes nothing.
  for (const a of tickets) t.settle(a.ticket, "success", a.ticket.at);
  assert.equal(admitted(t.admit("user9", "10.0.0.1", 700)).wait, 0, "nothing left to wait for");
  // Had they failed, the next slot would be 800 ms after the eighth.
  const failing = new LoginThrottle({ ...OPTS, userFree: 100, maxWait: 10_000 });
  const f = Array.from({ length: 8 }, (_, i) => admitted(failing.admit(`user${i}`, "10.0.0.1", 0)));
  for (const a of f) failing.settle(a.ticket, "failure", a.ticket.at);
  assert.equal(admitted(failing.admit("user9", "10.0.0.1", 700)).wait, 800);
});

// ---------------------------------------------------------------------------
// Against the real server: guesses by others never lock the real user out

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

/** Signs in with `frame` on a new connection; resolves the first answer and when it came. */
async function tryAuth(
  url: string,
  frame: Record<string, unknown>,
): Promise<{ answer: ServerFrame; ms: number }> {
  const c = await TestClient.connect(url);
  try {
    const started = Date.now();
    c.send(frame);
    const answer = await c.next((f) => f.type === "welcome" || f.type === "error");
    return { answer, ms: Date.now() - started };
  } finally {
    await c.close();
  }
}

const codeOf = (f: ServerFrame) => f.type === "error" ? f.code : f.type;

Deno.test("Hub sign-in throttle: a device that signed in before is never slowed by guesses on its name", async (s) => {
  const USERS = { alice: "alice-pass", bob: "bob-pass1" };
  // Each failure past the free ones costs a minute: anything throttled is refused at once.
  await using t = await startTestServer({
    users: USERS,
    tickInterval: 20,
    throttle: { userFree: 2, addrFree: 100, baseDelay: 60_000, maxWait: 1000 },
  });
  const password = { type: "auth", username: "alice", password: USERS.alice };
  // Alice's device signed in before; it signed out since (a device token need not be valid).
  const phone = await signIn(t.ws, "alice", USERS.alice);
  const device = phone.welcome.token;
  const bob = await signIn(t.ws, "bob", USERS.bob);
  await closeAll(phone, bob);
  assert.equal(await signOut(t.http, device), 204);

  // Someone guesses alice's password: the free failures, and two more.
  for (let i = 0; i < 4; i++) {
    const { answer } = await tryAuth(t.ws, { type: "auth", username: "alice", password: `g${i}` });
    assert.equal(codeOf(answer), i < 3 ? "auth_failed" : "rate_limited", `guess ${i}`);
  }

  await s.step("alice with her password and device token gets in at once", async () => {
    const { answer, ms } = await tryAuth(t.ws, { ...password, device });
    assert.equal(codeOf(answer), "welcome");
    assert.ok(ms < 1000, `answered in ${ms} ms`);
  });

  await s.step("a valid session token is never throttled", async () => {
    const fresh = await signIn(t.ws, "alice", USERS.alice).catch(() => null);
    assert.equal(fresh, null, "without a device, the right password waits like any guess");
    const { answer } = await tryAuth(t.ws, { ...password, device });
    const token = (answer as F<"welcome">).token;
    assert.equal(codeOf((await tryAuth(t.ws, { type: "auth", token })).answer), "welcome");
  });

  await s.step("without a device the name stays throttled", async () => {
    const { answer } = await tryAuth(t.ws, password);
    assert.equal(codeOf(answer), "rate_limited");
    assert.ok((answer as F<"error">).retryAfter! > 1);
  });

  await s.step("another user's device token or a forged one is ignored, not an error", async () => {
    const bobs = bob.welcome.token;
    const [v, payload, sig] = device.split(".");
    const forged = [
      `${v}.${payload}.${sig.slice(0, -2)}${sig.endsWith("AA") ? "BB" : "AA"}`,
      `${v}.${
        Buffer.from(JSON.stringify({ u: "alice", e: 0, s: "x" })).toString("base64url")
      }.${sig}`,
      "not-a-token",
    ];
    for (const other of [bobs, ...forged]) {
      const { answer } = await tryAuth(t.ws, { ...password, device: other });
      assert.equal(codeOf(answer), "rate_limited", other);
    }
  });

  await s.step("wrong passwords with a device count against that device", async () => {
    for (let i = 0; i < 3; i++) {
      const { answer } = await tryAuth(t.ws, { ...password, password: `d${i}`, device });
      assert.equal(codeOf(answer), "auth_failed");
    }
    assert.equal(codeOf((await tryAuth(t.ws, { ...password, device })).answer), "rate_limited");
  });
});
