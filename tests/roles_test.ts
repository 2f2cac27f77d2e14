/**
 * Roles: admins and members in users.json, `chat user add --admin`,
 * `chat user role`, `chat user list`, the last admin kept, and the role a
 * signed-in client is told (at sign-in and when it changes).
 */
import assert from "node:assert/strict";
import { parseUsers, readUsers, updateUsers } from "../server/auth/users.ts";
import { SERVE } from "./chat_process.ts";
import { runClient } from "./client_helpers.ts";
import { signIn, startTestServer, TestClient, waitUntil } from "./helpers.ts";

/** Runs `chat user ARGS… --users <path>` with a password from the environment. */
function user(path: string, args: string[], password = "a-good-pass") {
  return runClient(["user", ...args, "--users", path], {
    permissions: SERVE,
    env: { CHAT_PASSWORD: password },
  });
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "chat-roles-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("parseUsers() reads admins as objects and members in the seed format", () => {
  const { users, admins, warnings } = parseUsers(JSON.stringify({
    alice: { password: "alice-pass", role: "admin" },
    bob: "bob-pass-1",
    carol: { password: "carol-pass" },
    dave: { password: "dave-pass", role: "owner" },
    erin: { role: "admin" },
    frank: 7,
  }));
  assert.deepEqual([...users.keys()], ["alice", "bob", "carol"]);
  assert.deepEqual([...admins], ["alice"]);
  assert.equal(users.get("alice"), "alice-pass");
  assert.ok(
    warnings.includes(`Skipping user "dave" in "users.json": "role" must be "admin" or "member"`),
  );
  assert.ok(
    warnings.includes(
      `Skipping user "erin" in "users.json": "password" must be a password or a hash`,
    ),
  );
  assert.ok(warnings.some((w) => w.startsWith(`Skipping user "frank"`)));
});

Deno.test("updateUsers() writes admins as objects, members as strings, and keeps entries it cannot read", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/users.json`;
    await Deno.writeTextFile(
      path,
      JSON.stringify({ alice: "a-pass-123", odd: { password: "x", role: "owner" } }),
    );
    const file = await updateUsers(path, (u, admins) => {
      u.set("bob", "b-pass-123");
      admins.add("bob");
    });
    assert.deepEqual([...file.admins], ["bob"]);
    assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), {
      odd: { password: "x", role: "owner" },
      alice: "a-pass-123",
      bob: { password: "b-pass-123", role: "admin" },
    });
    // A removed user stops being an admin.
    const after = await updateUsers(path, (u) => void u.delete("bob"));
    assert.equal(after.admins.size, 0);
  });
});

Deno.test("chat user: the first user is an admin, --admin makes more, list shows roles", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/users.json`;
    const first = await user(path, ["add", "alice"]);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, `Added "alice" to ${path} as an admin\n`);
    const bob = await user(path, ["add", "bob"]);
    assert.equal(bob.stdout, `Added "bob" to ${path}\n`);
    const carol = await user(path, ["add", "carol", "--admin"]);
    assert.equal(carol.stdout, `Added "carol" to ${path} as an admin\n`);
    const list = await user(path, ["list"]);
    assert.equal(list.code, 0);
    assert.equal(list.stdout, "alice  admin\nbob    member\ncarol  admin\n");
    assert.equal(list.stderr, "");
    const raw = JSON.parse(await Deno.readTextFile(path));
    assert.equal(typeof raw.bob, "string");
    assert.equal(raw.alice.role, "admin");
  });
});

Deno.test("chat user role promotes and demotes, and never the last admin", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/users.json`;
    await Deno.writeTextFile(
      path,
      JSON.stringify({ alice: { password: "alice-pass", role: "admin" }, Bob: "bob-pass-1" }),
    );
    const up = await user(path, ["role", "BOB", "admin"]);
    assert.equal(up.code, 0, up.stderr);
    assert.equal(up.stdout, `"Bob" is now an admin in ${path}\n`);
    const again = await user(path, ["role", "bob", "admin"]);
    assert.equal(again.stdout, `"Bob" is already an admin\n`);
    const down = await user(path, ["role", "alice", "member"]);
    assert.equal(down.stdout, `"alice" is now a member in ${path}\n`);
    const last = await user(path, ["role", "bob", "member"]);
    assert.equal(last.code, 2);
    assert.equal(
      last.stderr,
      `error: "Bob" is the last admin: make another user an admin first ("chat user role NAME admin")\n`,
    );
    const removeLast = await user(path, ["remove", "bob"]);
    assert.equal(removeLast.code, 2);
    assert.match(removeLast.stderr, /"Bob" is the last admin/);
    const { admins, users } = await readUsers(path);
    assert.deepEqual([...admins], ["Bob"], "nothing changed");
    assert.equal(users.size, 2);
    // A member can go; so can the last admin once another one exists.
    assert.equal((await user(path, ["role", "alice", "admin"])).code, 0);
    const rm = await user(path, ["remove", "bob"]);
    assert.equal(rm.code, 0, rm.stderr);
    assert.deepEqual([...(await readUsers(path)).admins], ["alice"]);
  });
});

Deno.test("chat user role: bad input is a usage error that changes nothing", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/users.json`;
    const text = JSON.stringify({ alice: { password: "alice-pass", role: "admin" } });
    await Deno.writeTextFile(path, text);
    const cases: [string[], string][] = [
      [["role", "alice"], `"chat user role alice" needs a role: admin or member`],
      [["role", "alice", "owner"], `Unknown role "owner": use admin or member`],
      [["role", "zed", "admin"], `There is no user "zed" in "${path}"`],
      [["role"], `"chat user role" needs a NAME`],
      [["role", "alice", "admin", "extra"], `Unexpected argument "extra"`],
      [["passwd", "alice", "--admin"], `--admin goes with "chat user add"`],
    ];
    for (const [args, want] of cases) {
      const r = await user(path, args);
      assert.equal(r.code, 2, args.join(" "));
      assert.ok(r.stderr.includes(want), `${args.join(" ")}: ${r.stderr}`);
    }
    assert.equal(await Deno.readTextFile(path), text);
  });
});

Deno.test("chat user list says when nobody is an admin (a seed-format file)", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/users.json`;
    await Deno.writeTextFile(path, JSON.stringify({ alice: "alice-pass", bob: "bob-pass-1" }));
    const list = await user(path, ["list"]);
    assert.equal(list.stdout, "alice  member\nbob    member\n");
    assert.equal(list.stderr, `Nobody is an admin: make one with "chat user role NAME admin"\n`);
  });
});

Deno.test("welcome carries the role; a role changed in users.json reaches the user's connections", async () => {
  await using srv = await startTestServer({
    users: { alice: { password: "alice-pass", role: "admin" }, bob: "bob-pass-1" },
    reloadInterval: 50,
  });
  await using alice = await signIn(srv.ws, "alice", "alice-pass");
  await using bob = await signIn(srv.ws, "bob", "bob-pass-1");
  assert.equal(alice.welcome.role, "admin");
  assert.equal(bob.welcome.role, "member");
  const path = `${srv.dir}/users.json`;
  const r = await user(path, ["role", "bob", "admin"]);
  assert.equal(r.code, 0, r.stderr);
  const told = await bob.next("role");
  assert.deepEqual(told, { type: "role", role: "admin" });
  assert.equal(bob.ws.readyState, WebSocket.OPEN, "a role change keeps the session");
  await user(path, ["role", "bob", "member"]);
  assert.deepEqual(await bob.next("role"), { type: "role", role: "member" });
  assert.ok(!alice.all.some((f) => f.type === "role"), "nobody else is told");
  await using again = await signIn(srv.ws, "bob", "bob-pass-1");
  assert.equal(again.welcome.role, "member");
});

Deno.test("a seed-format users.json: everyone is a member and the server says how to make an admin", async () => {
  await using srv = await startTestServer({ users: { alice: "alice-pass" } });
  await using alice = await signIn(srv.ws, "alice", "alice-pass");
  assert.equal(alice.welcome.role, "member");
  await waitUntil(
    () =>
      srv.log.some((l) =>
        l.includes(`No user in "${srv.dir}/users.json" is an admin`) &&
        l.includes(`"chat user role NAME admin"`)
      ),
    "the server says how to make an admin",
  );
});

Deno.test("open mode has no roles", async () => {
  await using srv = await startTestServer();
  await using zed = await signIn(srv.ws, "zed");
  assert.equal(zed.welcome.mode, "open");
  assert.equal(zed.welcome.role, undefined);
});

Deno.test("the first account signed up into an empty users file is its admin; the next is a member", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-roles-" });
  try {
    await Deno.writeTextFile(`${dir}/users.json`, "{}");
    await using srv = await startTestServer({ dir, args: ["--allow-signup"] });
    const signUp = async (username: string) => {
      const c = await TestClient.connect(srv.ws);
      c.send({ type: "register", username, password: `${username}-pass-1` });
      const w = await c.next("welcome");
      await c.close();
      return w.type === "welcome" ? w.role : undefined;
    };
    assert.equal(await signUp("first"), "admin");
    assert.equal(await signUp("second"), "member");
    const { admins } = await readUsers(`${dir}/users.json`);
    assert.deepEqual([...admins], ["first"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
