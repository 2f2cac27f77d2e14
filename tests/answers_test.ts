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
