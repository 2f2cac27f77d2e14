/**
 * Liveness: clients that stop answering pings, or stop reading, are
 * dropped, and their connections do not linger in the closing handshake.
 * The clients here are written by hand on bare TCP (tests/raw.ts).
 */
import assert from "node:assert/strict";
import type { ServerFrame } from "../protocol.ts";
import { signIn, startTestServer, waitUntil } from "./helpers.ts";
import { Op, type RawFrame, RawWebSocket } from "./raw.ts";

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

const USERS = { alice: "alice-pass", bob: "bob-pass1", carol: "carol-pass" };

Deno.test("Hub drops a signed-in client that stops answering pings after --idle-timeout", async () => {
  await using t = await startTestServer({
    users: USERS,
    args: ["--idle-timeout", "1"],
    tickInterval: 20,
  });
  const silent = await RawWebSocket.connect(t.server.port);
  const polite = await RawWebSocket.connect(t.server.port);
  const carol = await signIn(t.ws, "carol", USERS.carol);
  try {
    await silent.signIn("alice", USERS.alice);
    await polite.signIn("bob", USERS.bob, true);
    await carol.next((f) => f.type === "presence" && f.online?.join() === "alice,bob,carol");
    // Presence frames from before everyone was online are history now.
    carol.inbox.length = 0;
    // bob answers every ping; alice answers nothing and reads nothing.
    let pings = 0;
    const answering = (async () => {
      while (true) {
        const f = await polite.readFrame();
        if (f === null || f.opcode === Op.Close) return;
        if (f.opcode === Op.Ping) {
          pings++;
          await polite.pong(f.payload);
        }
      }
    })();
    const gone = await carol.next<F<"presence">>((f) =>
      f.type === "presence" && f.online !== undefined && !f.online.includes("alice")
    );
    assert.deepEqual(gone.online, ["bob", "carol"]);
    assert.equal(t.server.hub.connections, 2);
    // What alice was sent: a ping, then a close with 1001.
    const frames: RawFrame[] = [];
    for (let f; (f = await silent.readFrame()) !== null;) frames.push(f);
    assert.ok(frames.some((f) => f.opcode === Op.Ping), "she was pinged");
    assert.deepEqual(RawWebSocket.closeOf(frames.at(-1)!), {
      code: 1001,
      reason: "No response from ping frame.",
    });
    // bob stays through several rounds of pings.
    await waitUntil(() => pings >= 3, "bob answers three pings");
    assert.ok(t.server.hub.usersOnline === 2, "bob and carol are still online");
    await polite.sendText(JSON.stringify({ type: "send", room: "general", text: "still here" }));
    await carol.next((f) => f.type === "message" && f.from === "bob");
    polite.close();
    await answering;
  } finally {
    silent.close();
    polite.close();
    await carol.close();
  }
});

Deno.test("SocketReaper drops a cut-off slow consumer that never reads its close frame", async () => {
  await using t = await startTestServer({
    users: USERS,
    args: ["--rate", "100000", "--burst", "100000", "--max-buffered", "65536"],
    closeGrace: 300,
    tickInterval: 20,
  });
  const stuck = await RawWebSocket.connect(t.server.port);
  const bob = await signIn(t.ws, "bob", USERS.bob);
  try {
    await stuck.signIn("alice", USERS.alice);
    const text = "x".repeat(4000);
    let n = 0;
    while (!t.log.some((l) => l.includes('slow consumer ("alice")'))) {
      // Bursts well under --max-buffered: bob reads, only alice is stuck.
      for (let i = 0; i < 6; i++) {
        bob.send({ type: "send", room: "general", text, ref: `r${n++}` });
      }
      await bob.next((f) => f.type === "message" && f.ref === `r${n - 1}`);
      assert.ok(n < 10_000, "alice is cut off long before 40 MB");
    }
    await waitUntil(
      () =>
        t.log.some((l) =>
          /Dropped a connection from 127\.0\.0\.1 that did not finish closing/.test(l)
        ),
      "the stuck connection is dropped",
    );
    // Reading now finds the end of the stream: the server let go of the connection.
    let frames = 0;
    while (await stuck.readFrame() !== null) frames++;
    assert.ok(frames > 0);
    assert.equal(t.server.hub.connections, 1);
    bob.send({ type: "send", room: "general", text: "bob is fine", ref: "ok" });
    await bob.next((f) => f.type === "message" && f.ref === "ok");
  } finally {
    stuck.close();
    await bob.close();
  }
});
