import assert from "node:assert/strict";
import { parseConfig } from "../server/config.ts";
import { neededFiles } from "../server/file_access.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

Deno.test("neededFiles() lists users.json, the secret beside it, and the data file set", () => {
  const basic = neededFiles(parseConfig([], {}));
  assert.deepEqual(basic, [
    { path: "./users.json", write: false, what: "users file" },
    { path: ".chat-secret", write: true, what: "token secret" },
    { path: "vapid.json", write: true, what: "push keys" },
    { path: ".chat-signouts", write: true, what: "sign-outs file" },
    { path: ".chat-signouts.lock", write: true, what: "sign-outs file lock" },
    { path: ".chat-signouts.tmp", write: true, what: "temporary sign-outs file" },
  ]);
  const full = neededFiles(parseConfig([
    "--users",
    "/data/users.json",
    "--data",
    "/data/chat.db",
    "--allow-signup",
    "--cert",
    "c.pem",
    "--key",
    "k.pem",
    "--secret",
    "x".repeat(32),
  ], {}));
  assert.deepEqual(full.map((f) => [f.path, f.write]), [
    ["/data/users.json", true],
    ["/data/vapid.json", true],
    ["/data/chat.db", true],
    ["/data/chat.db-wal", true],
    ["/data/chat.db-shm", true],
    ["/data/chat.db-journal", true],
    ["c.pem", false],
    ["k.pem", false],
  ]);
});

Deno.test("checkFileAccess() stops the server with one sentence when a file is off limits", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const run = async (perms: string[], args: string[]) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-net", "--allow-env", ...perms, MAIN, ...args],
        cwd: dir,
        env: { NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
    };
    const noWrite = await run(
      [`--allow-read=${dir}`, `--allow-write=${dir}/users.json`],
      ["--port", "0", "--users", `${dir}/users.json`, "--data", `${dir}/chat.db`],
    );
    assert.equal(noWrite.code, 2);
    assert.equal(
      noWrite.stderr,
      `error: Cannot write the token secret "${dir}/.chat-secret": ` +
        "grant it with --allow-read and --allow-write (deno task start does)\n",
    );
    const noRead = await run([], ["--port", "0", "--users", "/nonexistent/users.json"]);
    assert.equal(noRead.code, 2);
    assert.match(noRead.stderr, /^error: Cannot read the users file "\/nonexistent\/users\.json"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
