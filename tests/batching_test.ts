import assert from "node:assert/strict";
import type { ServerFrame } from "../protocol.ts";
import { closeAll, signIn, startTestServer, type TestClient } from "./helpers.ts";

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

Deno.test("server: a burst reaches the room in fewer frames than messages, in order, with the same text", async () => {
  await using t = await startTestServer({ args: ["--burst", "1000", "--rate", "1000"] });
  const clients: TestClient[] = [];
  try {
    const alice = await signIn(t.ws, "alice");
    const bob = await signIn(t.ws, "bob");
    const carol = await signIn(t.ws, "carol");
    clients.push(alice, bob, carol);
    for (const c of clients) {
      c.send({ type: "join", room: "burst" });
      await c.next((f) => f.type === "joined" && f.room === "burst");
    }
    await alice.next((f) => f.type === "system" && f.user === "carol" && f.room === "burst");
    await bob.next((f) => f.type === "system" && f.user === "carol" && f.room === "burst");
    for (const c of clients) await c.barrier();
    const before = { bob: bob.raw.length, carol: carol.raw.length };
    const n = 200;
    // Sent in one loop: the frames reach the server together, in one burst of events.
    for (let i = 0; i < n; i++) {
      alice.send({ type: "send", room: "burst", text: `m${i}`, ref: `r${i}` });
    }
    const last = `m${n - 1}`;
    const got = async (c: TestClient) => {
      const msgs: F<"message">[] = [];
      while (msgs.length < n) msgs.push(await c.next<F<"message">>("message"));
      return msgs;
    };
    const [own, toBob, toCarol] = await Promise.all([got(alice), got(bob), got(carol)]);
    for (const msgs of [own, toBob, toCarol]) {
      assert.deepEqual(msgs.map((m) => m.text), Array.from({ length: n }, (_, i) => `m${i}`));
      assert.ok(msgs.every((m, i) => i === 0 || m.id === msgs[i - 1].id + 1), "ids in order");
    }
    assert.equal(toBob.at(-1)!.text, last);
    assert.deepEqual(own.map((m) => m.ref), Array.from({ length: n }, (_, i) => `r${i}`));
    assert.ok(toBob.every((m) => m.ref === undefined), "ref only on the sender's copy");
    const bobFrames = bob.raw.slice(before.bob), carolFrames = carol.raw.slice(before.carol);
    assert.ok(bobFrames.length < n, `${bobFrames.length} frames for ${n} messages`);
    assert.ok(bobFrames.some((f) => f.split("\n").length > 1), "some frames carry several");
    assert.deepEqual(carolFrames, bobFrames, "members with the same messages get the same text");
    for (const f of bobFrames) {
      for (const line of f.split("\n")) assert.equal(JSON.parse(line).type, "message");
    }
  } finally {
    await closeAll(...clients);
  }
});
