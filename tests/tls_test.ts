/**
 * TLS: `--cert`/`--key` serve https and wss directly. The test makes its own
 * certificate authority and server certificate with openssl.
 */
import assert from "node:assert/strict";
import { startTestServer } from "./helpers.ts";
import { SERVE, spawnServer } from "./chat_process.ts";
import { makeCertificates } from "./test_certs.ts";

const USERS = { alice: "alice-pass" };
const CLIENT = new URL("./fixtures/wss_client.ts", import.meta.url).pathname;

async function runClient(
  url: string,
  caFile: string | null,
): Promise<{ code: number; out: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      ...(caFile ? ["--cert", caFile] : []),
      CLIENT,
      url,
      "alice",
      USERS.alice,
    ],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, out: text.decode(out.stdout) + text.decode(out.stderr) };
}

Deno.test("startServer() with --cert and --key serves https and wss", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "chat-tls-" });
  try {
    const { ca, caFile, certFile, keyFile } = await makeCertificates(dir, [
      "localhost",
      "127.0.0.1",
    ]);
    await using s = await startTestServer({
      users: USERS,
      args: ["--cert", certFile, "--key", keyFile],
    });
    const port = s.server.port;
    assert.equal(s.server.url, `https://127.0.0.1:${port}`);

    await t.step("https answers with the security headers", async () => {
      using client = Deno.createHttpClient({ caCerts: [ca] });
      const res = await fetch(`https://localhost:${port}/healthz`, { client });
      assert.equal(res.status, 200);
      assert.equal((await res.json()).status, "ok");
      assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    });

    await t.step("plain http on the TLS port gets no chat data", async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        await conn.write(new TextEncoder().encode("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
        const buf = new Uint8Array(4096);
        const n = await conn.read(buf).catch(() => null);
        const text = n ? new TextDecoder().decode(buf.subarray(0, n)) : "";
        assert.ok(!text.includes('"status"'), `plaintext got: ${text.slice(0, 200)}`);
      } finally {
        conn.close();
      }
    });

    await t.step("a client that trusts the CA chats over wss", async () => {
      const r = await runClient(`wss://localhost:${port}/ws`, caFile);
      assert.equal(r.code, 0, r.out);
      assert.deepEqual(JSON.parse(r.out.trim().split("\n").at(-1)!), {
        user: "alice",
        echo: "over tls",
      });
    });

    await t.step("a client that does not trust it cannot connect", async () => {
      const r = await runClient(`wss://localhost:${port}/ws`, null);
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, /failed:/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main() with --cert and --key prints https and wss addresses; bad files are clear errors", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "chat-tls-" });
  try {
    // Named as they are written (cert.pem, key.pem): the server runs in `dir`.
    await makeCertificates(dir, ["localhost", "127.0.0.1"]);
    await Deno.writeTextFile(`${dir}/users.json`, JSON.stringify(USERS));
    await t.step("banner", async () => {
      await using proc = await spawnServer(
        [
          "--port",
          "0",
          "--host",
          "127.0.0.1",
          "--users",
          "users.json",
          "--cert",
          "cert.pem",
          "--key",
          "key.pem",
        ],
        { cwd: dir, deno: SERVE },
      );
      await proc.waitFor(/Web app: +https:\/\/127\.0\.0\.1:\d+$/);
      await proc.waitFor(/WebSocket: +wss:\/\/127\.0\.0\.1:\d+\/ws$/);
      proc.child.kill("SIGTERM");
      assert.equal((await proc.status).code, 0);
    });
    await Deno.writeTextFile(`${dir}/bad.pem`, "not a certificate\n");
    for (
      const [name, args, message] of [
        [
          "missing file",
          ["--cert", "nope.pem", "--key", "key.pem"],
          /^error: Cannot read TLS certificate "nope\.pem": /,
        ],
        [
          "not a certificate",
          ["--cert", "bad.pem", "--key", "key.pem"],
          /^error: Cannot serve TLS with "bad\.pem" and "key\.pem": .*\(both must be PEM files\)$/,
        ],
        [
          "not a key",
          ["--cert", "cert.pem", "--key", "bad.pem"],
          /^error: Cannot serve TLS with "cert\.pem" and "bad\.pem": /,
        ],
        ["only one of them", ["--cert", "cert.pem"], /^error: TLS needs both --cert and --key$/],
      ] as const
    ) {
      await t.step(name, async () => {
        const out = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            new URL("../main.ts", import.meta.url).pathname,
            "--port",
            "0",
            "--host",
            "127.0.0.1",
            "--users",
            "users.json",
            ...args,
          ],
          cwd: dir,
          env: { NO_COLOR: "1" },
          stdout: "piped",
          stderr: "piped",
        }).output();
        const err = new TextDecoder().decode(out.stderr).trim();
        assert.equal(out.code, 2, err);
        assert.match(err.split("\n").at(-1)!, message);
        assert.ok(!err.includes("    at "), "no stack trace");
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
