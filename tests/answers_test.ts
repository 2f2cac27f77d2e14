/**
 * Every request with a ref gets its answer, also when its sender leaves the
 * room while the request is being stored (found by the chaos checker: the
 * acknowledgement went only to connections still routed to the room, so the
 * request stayed pending for ever).
 */
import assert from "node:assert/strict";
import type { ServerFrame } from "../protocol.ts";
import { signIn, startTestServer, type TestClient, waitUntil } from "./helpers.ts";

const USERS = { ann: "ann-pass-1", ben: "ben-pass-1" };

/** The answers (a frame carrying the ref, or an error with it) to each of `refs`, in arrival order. */
async function answers(c: TestClient, refs: string[]): Promise<Map<string, ServerFrame>> {
  const got = new Map<string, ServerFrame>();
  await waitUntil(() => {
    for (const f of c.peek((f) => "ref" in f && refs.includes(f.ref as string))) {
      const ref = (f as { ref: string }).ref;
      if (!got.has(ref)) got.set(ref, f);
    }
    return got.size === refs.length;
  }, `answers to ${refs.length} requests`);
  return got;
}

Deno.test("sends and reactions answered after their sender left the room: each gets its acknowledgement", async () => {
  await using srv = await startTestServer({
    users: USERS,
    args: ["--rate", "10000", "--burst", "10000"],
  });
  await using ann = await signIn(srv.ws, "ann", "ann-pass-1");
  await using ben = await signIn(srv.ws, "ben", "ben-pass-1");
  for (const c of [ann, ben]) {
    c.send({ type: "join", room: "r1" });
    await c.next((f) => f.type === "joined" && f.room === "r1");
  }
  ben.send({ type: "send", room: "r1", text: "react to me", ref: "b0" });
  const target = await ben.next((f) => f.type === "message" && f.ref === "b0");
  const id = target.type === "message" ? target.id : 0;
  await ann.next((f) => f.type === "message" && f.text === "react to me");

  // Requests, then the leave right behind them on the same connection.
  const refs: string[] = [];
  for (let i = 0; i < 30; i++) {
    ann.send({ type: "send", room: "r1", text: `m${i}`, ref: `s${i}` });
    refs.push(`s${i}`);
  }
  ann.send({ type: "react", room: "r1", id, emoji: "👍", on: true, ref: "re" });
  refs.push("re");
  ann.send({ type: "leave", room: "r1" });
  const got = await answers(ann, refs);
  // Each stored message is answered with itself; each refused one with an error; none twice.
  ben.send({ type: "history", room: "r1", limit: 100 });
  const page = await ben.next((f) => f.type === "history");
  const stored = new Set(
    page.type === "history" ? page.messages.filter((m) => m.from === "ann").map((m) => m.text) : [],
  );
  for (let i = 0; i < 30; i++) {
    const a = got.get(`s${i}`)!;
    if (a.type === "message") assert.ok(stored.has(`m${i}`), `m${i} acknowledged and kept`);
    else {
      assert.equal(a.type === "error" && a.code, "unknown_room", `m${i}`);
      assert.ok(!stored.has(`m${i}`), `m${i} refused and not kept`);
    }
  }
  const re = got.get("re")!;
  assert.ok(["reaction", "error"].includes(re.type), re.type);
  for (const ref of refs) {
    assert.equal(ann.peek((f) => "ref" in f && f.ref === ref).length, 1, `${ref} answered once`);
  }
});

for (const backend of ["memory", "sqlite"] as const) {
  Deno.test(`a resend after its sender left the room is answered with the stored message (${backend}); nothing else gets in`, async () => {
    const dir = backend === "sqlite" ? await Deno.makeTempDir({ prefix: "chat-answers-" }) : null;
    try {
      await using srv = await startTestServer({
        users: USERS,
        args: dir ? ["--data", `${dir}/chat.db`] : [],
      });
      await using ben = await signIn(srv.ws, "ben", "ben-pass-1");
      let id: number;
      {
        await using ann = await signIn(srv.ws, "ann", "ann-pass-1");
        for (const c of [ann, ben]) {
          c.send({ type: "join", room: "r1" });
          await c.next((f) => f.type === "joined" && f.room === "r1");
        }
        ann.send({ type: "send", room: "r1", text: "said before leaving", ref: "k1" });
        const ack = await ann.next((f) => f.type === "message" && f.ref === "k1");
        id = ack.type === "message" ? ack.id : 0;
        // The acknowledgement is taken as lost: the client leaves, then resends from another connection.
        ann.send({ type: "leave", room: "r1" });
        await ann.next((f) => f.type === "left" && f.room === "r1");
      }
      await using again = await signIn(srv.ws, "ann", "ann-pass-1");
      again.send({ type: "send", room: "r1", text: "said before leaving", ref: "k1" });
      const answer = await again.next((f) => "ref" in f && f.ref === "k1");
      assert.equal(answer.type, "message", JSON.stringify(answer));
      assert.equal(answer.type === "message" && answer.id, id);
      // Not a resend: a new ref, or the same ref with other text, is refused as before.
      again.send({ type: "send", room: "r1", text: "said after leaving", ref: "k2" });
      again.send({ type: "send", room: "r1", text: "other words", ref: "k1" });
      for (const ref of ["k2", "k1"]) {
        const refused = await again.next((f) =>
          f.type === "error" && f.ref === ref ||
          f.type === "message" && f.ref === ref && f.text !== "said before leaving"
        );
        assert.deepEqual(refused, {
          type: "error",
          code: "unknown_room",
          message: 'You are not in room "r1": join it first',
          ref,
        });
      }
      // A stranger's send to a room that does not exist, or to a private one, says the same.
      again.send({ type: "send", room: "nowhere", text: "x", ref: "k3" });
      const nowhere = await again.next((f) => f.type === "error" && f.ref === "k3");
      assert.equal(
        nowhere.type === "error" && nowhere.message,
        'You are not in room "nowhere": join it first',
      );
      // Nor did it leave a room of that name behind.
      again.send({ type: "rooms" });
      const rooms = await again.next((f) => f.type === "rooms");
      assert.deepEqual(rooms.type === "rooms" && rooms.rooms.map((r) => r.name).sort(), [
        "general",
        "r1",
      ]);
      // ben got the message once, and nothing after it.
      ben.send({ type: "ping" });
      await ben.next((f) => f.type === "pong");
      assert.equal(ben.peek((f) => f.type === "message" && f.room === "r1").length, 1);
      ben.send({ type: "history", room: "r1", limit: 10 });
      const page = await ben.next((f) => f.type === "history");
      assert.deepEqual(
        page.type === "history" ? page.messages.map((m) => [m.id, m.text]) : [],
        [[id, "said before leaving"]],
      );
    } finally {
      if (dir) await Deno.remove(dir, { recursive: true });
    }
  });
}
