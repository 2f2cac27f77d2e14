/**
 * The web app's rules for kinds of rooms (web/room_kind.ts): the notices an
 * admin's change leaves, and what the app offers in each kind of room —
 * which must be what the server allows, or users meet buttons that fail.
 */
import assert from "node:assert/strict";
import { type RoomKind, roomMentionRefusal } from "../protocol.ts";
import { sendRefusal } from "../server/hub/rooms.ts";
import { kindNotices, kindOf, messageRights, postingClosed, sameKind } from "../web/room_kind.ts";

/** Every combination of the four flags. */
function allKinds(): RoomKind[] {
  const out: RoomKind[] = [];
  for (let bits = 0; bits < 16; bits++) {
    const k: RoomKind = {};
    if (bits & 1) k.private = true;
    if (bits & 2) k.readOnly = true;
    if (bits & 4) k.archived = true;
    if (bits & 8) k.autoJoin = true;
    out.push(k);
  }
  return out;
}

Deno.test("the composer is there exactly where the server takes a send", () => {
  for (const kind of allKinds()) {
    for (const admin of [false, true]) {
      const web = postingClosed("news", kind, admin);
      const server = sendRefusal(kind, "news", admin);
      assert.equal(web === null, server === null, `${JSON.stringify(kind)} admin=${admin}`);
      assert.equal(messageRights(kind, admin).reply, server === null);
    }
  }
  assert.equal(postingClosed("news", { readOnly: true }, false), "Only admins post in #news");
  assert.equal(postingClosed("old", { archived: true }, true), "#old is archived: read-only");
});

Deno.test("message actions follow the server's rules for each kind of room", () => {
  assert.deepEqual(messageRights({}, false), {
    reply: true,
    edit: true,
    react: true,
    delete: true,
  });
  // Read-only: members react and delete their own, but neither post nor edit.
  assert.deepEqual(messageRights({ readOnly: true }, false), {
    reply: false,
    edit: false,
    react: true,
    delete: true,
  });
  assert.deepEqual(messageRights({ readOnly: true }, true), {
    reply: true,
    edit: true,
    react: true,
    delete: true,
  });
  // Archived: nothing changes, but an admin may still remove a message.
  assert.deepEqual(messageRights({ archived: true }, false), {
    reply: false,
    edit: false,
    react: false,
    delete: false,
  });
  assert.deepEqual(messageRights({ archived: true, readOnly: true }, true), {
    reply: false,
    edit: false,
    react: false,
    delete: true,
  });
});

Deno.test("kindNotices() says each change in words, and nothing when nothing changed", () => {
  assert.deepEqual(kindNotices("news", "alice", {}, { readOnly: true, private: true }), [
    "alice made #news private",
    "alice made #news read-only",
  ]);
  assert.deepEqual(kindNotices("news", "alice", { readOnly: true, archived: true }, {}), [
    "alice let everyone post in #news again",
    "alice unarchived #news",
  ]);
  assert.deepEqual(kindNotices("hi", "", {}, { autoJoin: true }), [
    "An admin made #hi a default room",
  ]);
  assert.deepEqual(kindNotices("x", "bob", { private: true }, { private: true }), []);
});

Deno.test("kindOf() keeps only the flags, and sameKind() ignores absent against false", () => {
  const frame = { room: "x", private: true, readOnly: true, members: ["a"] } as unknown as RoomKind;
  assert.deepEqual(kindOf(frame), { private: true, readOnly: true });
  assert.ok(sameKind({}, { private: undefined }));
  assert.ok(!sameKind({ archived: true }, {}));
});

Deno.test("roomMentionRefusal() refuses only a member's @room or @here where only admins may use them", () => {
  const words = "Only admins may notify everyone in #dev with @room or @here";
  for (
    const kind of [null, {}, { restrictRoomMentions: true as const }, { private: true as const }]
  ) {
    for (const admin of [false, true]) {
      for (
        const [text, notifies] of [
          ["@room now", true],
          ["@Here!", true],
          ["mail ops@here.com", false],
          ["@roomy", false],
          ["hi", false],
        ] as const
      ) {
        const refused = !!kind?.restrictRoomMentions && !admin && notifies;
        assert.equal(
          roomMentionRefusal("dev", kind, { admin, text }),
          refused ? words : null,
          `${JSON.stringify(kind)} admin=${admin} ${text}`,
        );
      }
    }
  }
  assert.deepEqual(kindNotices("dev", "alice", {}, { restrictRoomMentions: true }), [
    "alice let only admins use @room and @here in #dev",
  ]);
  assert.deepEqual(kindNotices("dev", "alice", { restrictRoomMentions: true }, {}), [
    "alice let everyone use @room and @here in #dev again",
  ]);
  assert.deepEqual(kindOf({ restrictRoomMentions: true, x: 1 } as RoomKind), {
    restrictRoomMentions: true,
  });
  assert.ok(!sameKind({ restrictRoomMentions: true }, {}));
});
