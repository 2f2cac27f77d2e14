import assert from "node:assert/strict";
import { isHashed } from "../server/auth/password.ts";
import { runChat, spawnServer } from "./chat_process.ts";
import { closeAll, freePort, signIn } from "./helpers.ts";

Deno.test("chat --version and --help answer and exit 0", async () => {
  const v = await runChat(["--version"]);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^chat \d+\.\d+\.\d+/);
  const h = await runChat(["--help"]);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /Usage:/);
  assert.match(h.stdout, /--port N/);
  assert.match(h.stdout, /PORT/);
  const bad = await runChat(["--nope"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Unknown flag "--nope"/);
  assert.doesNotMatch(bad.stderr, /at .*\.ts:\d+/, "no stack trace");
});

Deno.test("chat user add, passwd, list and remove manage users.json", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const users = `${dir}/users.json`;
    const add = await runChat(["user", "add", "alice", "--users", users], {
      env: { CHAT_PASSWORD: "alice-pass" },
    });
    assert.equal(add.code, 0, add.stderr);
    assert.match(add.stdout, /Added "alice"/);
    const piped = await runChat(["user", "add", "bob", "--users", users], {
      stdin: "bob-password\n",
    });
    assert.equal(piped.code, 0, piped.stderr);
    const raw = JSON.parse(await Deno.readTextFile(users));
    // The first user of the file is its admin.
    assert.ok(isHashed(raw.alice.password) && raw.alice.role === "admin" && isHashed(raw.bob));
    const dup = await runChat(["user", "add", "alice", "--users", users], {
      env: { CHAT_PASSWORD: "x-password" },
    });
    assert.equal(dup.code, 2);
    assert.match(dup.stderr, /exists already/);
    const short = await runChat(["user", "add", "carol", "--users", users], {
      env: { CHAT_PASSWORD: "short" },
    });
    assert.equal(short.code, 2);
    assert.match(short.stderr, /too short/);
    const list = await runChat(["user", "list", "--users", users]);
    assert.equal(list.stdout, "alice  admin\nbob    member\n");
    const pw = await runChat(["user", "passwd", "bob", "--users", users], {
      env: { CHAT_PASSWORD: "new-password" },
    });
    assert.equal(pw.code, 0, pw.stderr);
    assert.notEqual(JSON.parse(await Deno.readTextFile(users)).bob, raw.bob);
    const last = await runChat(["user", "remove", "alice", "--users", users]);
    assert.equal(last.code, 2, "the last admin stays");
    assert.match(last.stderr, /"alice" is the last admin/);
    const role = await runChat(["user", "role", "bob", "admin", "--users", users]);
    assert.equal(role.code, 0, role.stderr);
    const rm = await runChat(["user", "remove", "alice", "--users", users]);
    assert.equal(rm.code, 0);
    assert.deepEqual(Object.keys(JSON.parse(await Deno.readTextFile(users))), ["bob"]);
    const missing = await runChat(["user", "remove", "zed", "--users", users]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /There is no user "zed"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chat reads .env in the working directory and real variables win", async () => {
  const dir = await Deno.makeTempDir();
  const port = freePort();
  await Deno.writeTextFile(`${dir}/.env`, `HOST=127.0.0.1\nPORT=1\nHISTORY_LIMIT=7\n`);
  await using server = await spawnServer([], { cwd: dir, env: { PORT: String(port) } });
  let alice;
  try {
    await server.waitFor(/History:/);
    const banner = server.lines.join("\n");
    assert.match(banner, new RegExp(`listening on 127\\.0\\.0\\.1:${port}`));
    assert.match(banner, /http:\/\/127\.0\.0\.1:\d+/);
    assert.match(banner, /ws:\/\/127\.0\.0\.1:\d+\/ws/);
    assert.match(banner, /OPEN MODE/);
    assert.match(banner, /chat user add NAME/);
    assert.match(banner, /last 7 messages/);
    alice = await signIn(`ws://127.0.0.1:${port}/ws`, "alice");
    assert.equal(alice.welcome.mode, "open");
  } finally {
    await closeAll(alice);
    const status = await server.kill("SIGTERM");
    assert.equal(status.code, 0, "SIGTERM shuts down cleanly");
    await Deno.remove(dir, { recursive: true });
  }
});
