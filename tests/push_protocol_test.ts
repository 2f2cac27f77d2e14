import assert from "node:assert/strict";
import { FrameError, isReservedName, mentionsIn, parseClientFrame } from "../protocol.ts";
import { startTestServer, TestClient } from "./helpers.ts";

const P256DH = "B" + "A".repeat(86);
const AUTH = "A".repeat(22);
const sub = (fields: Record<string, unknown> = {}, keys: Record<string, unknown> = {}) =>
  JSON.stringify({
    type: "push_subscribe",
    ref: "r1",
    subscription: {
      endpoint: "https://push.example.com/x",
      keys: { p256dh: P256DH, auth: AUTH, ...keys },
      ...fields,
    },
  });

function refused(data: string, code: string, message: RegExp): void {
  assert.throws(() => parseClientFrame(data), (err: unknown) => {
    assert.ok(err instanceof FrameError);
    assert.equal(err.code, code);
    assert.match(err.message, message);
    return true;
  });
}

Deno.test("push_subscribe parses a browser's subscription, keys without padding", () => {
  assert.deepEqual(parseClientFrame(sub()), {
    type: "push_subscribe",
    ref: "r1",
    subscription: { endpoint: "https://push.example.com/x", keys: { p256dh: P256DH, auth: AUTH } },
  });
  const padded = parseClientFrame(sub({}, { auth: AUTH + "==" }));
  assert.equal(padded.type === "push_subscribe" && padded.subscription.keys.auth, AUTH);
});

Deno.test("push_subscribe refusals: shape is bad_request, endpoint and keys bad_endpoint", () => {
  refused(JSON.stringify({ type: "push_subscribe" }), "bad_request", /"subscription" is required/);
  refused(JSON.stringify({ type: "push_subscribe", subscription: "x" }), "bad_request", /object/);
  refused(sub({ endpoint: 5 }), "bad_request", /endpoint" must be a string/);
  refused(sub({ keys: undefined }), "bad_request", /keys" is required/);
  refused(sub({}, { auth: undefined }), "bad_request", /auth" is required/);
  refused(sub({ endpoint: "https://x.org/" + "a".repeat(1024) }), "bad_endpoint", /at most 1024/);
  refused(sub({ endpoint: "ftp://x.org/a" }), "bad_endpoint", /https URL/);
  refused(sub({ endpoint: "not a url" }), "bad_endpoint", /https URL/);
  refused(sub({}, { p256dh: P256DH + "AAAA" }), "bad_endpoint", /p256dh" must be base64url of 65/);
  refused(sub({}, { p256dh: "B".repeat(60_000) }), "bad_endpoint", /65 bytes/);
  refused(sub({}, { auth: "A".repeat(21) + "!" }), "bad_endpoint", /auth" must be base64url of 16/);
  refused(sub({}, { p256dh: "A".repeat(87) }), "bad_endpoint", /uncompressed P-256/);
});

Deno.test("push_unsubscribe, visible and notify_level parse; bad ones are refused", () => {
  assert.deepEqual(
    parseClientFrame('{"type":"push_unsubscribe","endpoint":"https://p.org/1","ref":"a"}'),
    { type: "push_unsubscribe", endpoint: "https://p.org/1", ref: "a" },
  );
  refused('{"type":"push_unsubscribe"}', "bad_request", /"endpoint" is required/);
  assert.deepEqual(parseClientFrame('{"type":"visible","visible":false}'), {
    type: "visible",
    visible: false,
  });
  refused('{"type":"visible","visible":"no"}', "bad_request", /true or false/);
  assert.deepEqual(
    parseClientFrame('{"type":"notify_level","room":"dev","level":"all","ref":"x"}'),
    { type: "notify_level", room: "dev", level: "all", ref: "x" },
  );
  assert.deepEqual(parseClientFrame('{"type":"notify_level","to":"bob","level":"none"}'), {
    type: "notify_level",
    to: "bob",
    level: "none",
  });
  refused(
    '{"type":"notify_level","room":"dev","level":"loud"}',
    "bad_request",
    /"all", "mentions"/,
  );
  refused('{"type":"notify_level","level":"all"}', "bad_request", /"room"/);
  refused('{"type":"notify_level","room":"a b","level":"all"}', "bad_request", /room name/);
});

Deno.test("mentionsIn: @name not after a word character or @, @room/@here, not inside links", () => {
  assert.deepEqual(mentionsIn("hi @Bob and @bob, @carol-2!"), {
    names: ["bob", "carol-2"],
    room: false,
  });
  assert.deepEqual(mentionsIn("mail a@b.c or @@x"), { names: [], room: false });
  assert.deepEqual(mentionsIn("see https://x.org/@dave and @here"), { names: [], room: true });
  assert.deepEqual(mentionsIn("@ROOM"), { names: [], room: true });
  assert.deepEqual(mentionsIn("@" + "a".repeat(33)), { names: [], room: false });
  assert.deepEqual(mentionsIn("nothing"), { names: [], room: false });
});

Deno.test("@room and @here are whole-room mentions: nobody new may take those names", async (t) => {
  assert.ok(isReservedName("room") && isReservedName("Here"));
  await t.step("sign-up", async () => {
    await using s = await startTestServer({
      users: { alice: "alice-pass" },
      args: ["--allow-signup"],
    });
    for (const username of ["room", "ROOM", "here"]) {
      const c = await TestClient.connect(s.ws);
      try {
        c.send({ type: "register", username, password: "long-enough-pass" });
        const answer = await c.next("error") as { code: string; message: string };
        assert.equal(answer.code, "name_taken", username);
        assert.equal(answer.message, `The name "${username}" is reserved: choose another`);
      } finally {
        await c.close();
      }
    }
  });
  await t.step("open mode", async () => {
    await using s = await startTestServer();
    for (const username of ["room", "Room", "here"]) {
      const c = await TestClient.connect(s.ws);
      try {
        c.send({ type: "auth", username });
        const answer = await c.next("error") as { code: string; message: string };
        assert.equal(answer.code, "name_taken", username);
        assert.equal(answer.message, `The name "${username}" is reserved: choose another`);
      } finally {
        await c.close();
      }
    }
  });
});
