import assert from "node:assert/strict";
import { type Admission, LoginThrottle, type Ticket } from "../server/throttle.ts";

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
