import assert from "node:assert/strict";
import { ConfigError, parseConfig, readDotEnv } from "../server/config.ts";

Deno.test("parseConfig() uses defaults, then environment, then flags", () => {
  const d = parseConfig([], {});
  assert.equal(d.port, 8000);
  assert.equal(d.host, "0.0.0.0");
  assert.equal(d.usersPath, "./users.json");
  assert.equal(d.historyLimit, 200);
  assert.equal(d.maxMessageBytes, 4096);
  assert.equal(d.allowSignup, false);
  const e = parseConfig([], {
    PORT: "9000",
    HISTORY_LIMIT: "50",
    USERS_FILE: "/tmp/u.json",
    ALLOW_SIGNUP: "true",
  });
  assert.deepEqual([e.port, e.historyLimit, e.usersPath, e.allowSignup], [
    9000,
    50,
    "/tmp/u.json",
    true,
  ]);
  const f = parseConfig(["--port", "9100", "--history=10"], { PORT: "9000" });
  assert.deepEqual([f.port, f.historyLimit], [9100, 10]);
  const o = parseConfig(["--allowed-origins", "https://a.example, https://b.example"], {});
  assert.deepEqual(o.allowedOrigins, ["https://a.example", "https://b.example"]);
  assert.equal(
    parseConfig([], { NGROK_TOKEN: "abc" }).ngrok,
    true,
    "the seeds' variable name works",
  );
});

Deno.test("parseConfig() explains bad flags and values", () => {
  const bad = (args: string[], env: Record<string, string>, message: RegExp) =>
    assert.throws(() => parseConfig(args, env), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, message);
      return true;
    });
  bad(["--prot", "1"], {}, /Unknown flag "--prot": did you mean "--port"\?/);
  bad(["--port", "abc"], {}, /Invalid --port "abc": expected a whole number/);
  bad(["--port", "70000"], {}, /65535/);
  bad([], { PORT: "-1" }, /Invalid PORT "-1": must be at least 0/);
  bad(["--max-message", "100000"], {}, /Invalid --max-message "100000": must be at most 65000/);
  bad(["--port"], {}, /"--port" needs a value/);
  bad(["extra"], {}, /Unexpected argument "extra"/);
  bad(["--cert", "c.pem"], {}, /both --cert and --key/);
  bad(["--redis", "redis://x"], {}, /--redis needs --secret/);
  bad(["--secret", "short"], {}, /at least 32 characters/);
  bad([], { ALLOW_SIGNUP: "maybe" }, /Invalid ALLOW_SIGNUP "maybe": use true or false/);
});

Deno.test("readDotEnv() reads a .env file and a missing one is empty", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/.env`, '# comment\nPORT=9300\nNGROK_TOKEN="tok en"\n');
    assert.deepEqual(readDotEnv(`${dir}/.env`), { PORT: "9300", NGROK_TOKEN: "tok en" });
    assert.deepEqual(readDotEnv(`${dir}/missing.env`), {});
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseConfig() turns metrics on only with a token or a private address", async (t) => {
  const refused = (args: string[], env: Record<string, string>, message: RegExp) =>
    assert.throws(() => parseConfig(args, env), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, message);
      return true;
    });
  const token = "0123456789abcdef";
  await t.step("off by default", () => {
    const c = parseConfig([], {});
    assert.equal(c.metrics, false);
    assert.equal(c.metricsToken, undefined);
    assert.equal(c.metricsListen, undefined);
  });
  await t.step("on the main port behind a token, from a flag or the environment", () => {
    const f = parseConfig(["--metrics", "--metrics-token", token], {});
    assert.deepEqual([f.metrics, f.metricsToken], [true, token]);
    const e = parseConfig([], { CHAT_METRICS: "true", CHAT_METRICS_TOKEN: token });
    assert.deepEqual([e.metrics, e.metricsToken], [true, token]);
  });
  await t.step("on a separate address without a token", () => {
    const c = parseConfig(["--metrics", "--metrics-listen", "127.0.0.1:9090"], {});
    assert.deepEqual([c.metrics, c.metricsListen, c.metricsToken], [
      true,
      "127.0.0.1:9090",
      undefined,
    ]);
    assert.equal(
      parseConfig(["--metrics", "--metrics-listen", "[::1]:0"], {}).metricsListen,
      "[::1]:0",
    );
  });
  await t.step("refused on the main port without a token", () => {
    refused(
      ["--metrics"],
      {},
      /--metrics on the main port needs --metrics-token .*how many people use the chat/,
    );
  });
  await t.step("refuses a short token, a bad address, and an address without --metrics", () => {
    refused(["--metrics", "--metrics-token", "short"], {}, /at least 16 characters/);
    refused(
      ["--metrics", "--metrics-listen", "9090"],
      {},
      /Invalid --metrics-listen "9090": use HOST:PORT/,
    );
    refused(["--metrics", "--metrics-listen", "a:70000"], {}, /Invalid --metrics-listen/);
    refused(["--metrics-listen", "127.0.0.1:9090"], {}, /--metrics-listen needs --metrics/);
  });
});
