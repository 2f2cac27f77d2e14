import assert from "node:assert/strict";
import { isHashed } from "../server/auth/password.ts";
import { closeAll, freePort, signIn } from "./helpers.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

async function chat(
  args: string[],
  opts: { cwd?: string; env?: Record<string, string>; stdin?: string } = {},
) {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd: opts.cwd,
    env: { NO_COLOR: "1", ...opts.env },
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  });
  const child = cmd.spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("chat --version and --help answer and exit 0", async () => {
  const v = await chat(["--version"]);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^chat \d+\.\d+\.\d+/);
  const h = await chat(["--help"]);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /Usage:/);
  assert.match(h.stdout, /--port N/);
  assert.match(h.stdout, /PORT/);
  const bad = await chat(["--nope"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Unknown flag "--nope"/);
  assert.doesNotMatch(bad.stderr, /at .*\.ts:\d+/, "no stack trace");
});

Deno.test("chat user add, passwd, list and remove manage users.json", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const users = `${dir}/users.json`;
    const add = await chat(["user", "add", "alice", "--users", users], {
      env: { CHAT_PASSWORD: "alice-pass" },
    });
    assert.equal(add.code, 0, add.stderr);
    assert.match(add.stdout, /Added "alice"/);
    const piped = await chat(["user", "add", "bob", "--users", users], { stdin: "bob-password\n" });
    assert.equal(piped.code, 0, piped.stderr);
    const raw = JSON.parse(await Deno.readTextFile(users));
    assert.ok(isHashed(raw.alice) && isHashed(raw.bob));
    const dup = await chat(["user", "add", "alice", "--users", users], {
      env: { CHAT_PASSWORD: "x-password" },
    });
    assert.equal(dup.code, 2);
    assert.match(dup.stderr, /exists already/);
    const short = await chat(["user", "add", "carol", "--users", users], {
      env: { CHAT_PASSWORD: "short" },
    });
    assert.equal(short.code, 2);
    assert.match(short.stderr, /too short/);
    const list = await chat(["user", "list", "--users", users]);
    assert.equal(list.stdout, "alice\nbob\n");
    const pw = await chat(["user", "passwd", "bob", "--users", users], {
      env: { CHAT_PASSWORD: "new-password" },
    });
    assert.equal(pw.code, 0, pw.stderr);
    assert.notEqual(JSON.parse(await Deno.readTextFile(users)).bob, raw.bob);
    const rm = await chat(["user", "remove", "alice", "--users", users]);
    assert.equal(rm.code, 0);
    assert.deepEqual(Object.keys(JSON.parse(await Deno.readTextFile(users))), ["bob"]);
    const missing = await chat(["user", "remove", "zed", "--users", users]);
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
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN],
    cwd: dir,
    env: { PORT: String(port), NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let alice;
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    let banner = "";
    while (!banner.includes("History:")) {
      const { value, done } = await reader.read();
      if (done) break;
      banner += value;
    }
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
    child.kill("SIGTERM");
    const status = await child.status;
    await reader.cancel();
    await child.stderr.cancel();
    assert.equal(status.code, 0, "SIGTERM shuts down cleanly");
    await Deno.remove(dir, { recursive: true });
  }
});
