import assert from "node:assert/strict";
import { freePort, startTestServer } from "./helpers.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

async function health(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", "--allow-read", MAIN, "health", ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("chat health exits 0 for a running server and 1 for none", async (t) => {
  await using ts = await startTestServer();
  await t.step("by port, from PORT or --port", async () => {
    const byEnv = await health([], { PORT: String(ts.server.port) });
    assert.equal(byEnv.code, 0, byEnv.stderr);
    assert.equal(byEnv.stdout, `ok http://127.0.0.1:${ts.server.port}/healthz\n`);
    const byFlag = await health(["--port", String(ts.server.port)]);
    assert.equal(byFlag.code, 0, byFlag.stderr);
  });
  await t.step("by URL", async () => {
    const r = await health([`${ts.http}/healthz`]);
    assert.equal(r.code, 0, r.stderr);
  });
  await t.step("a URL that is not a health endpoint", async () => {
    const r = await health([`${ts.http}/nope`]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `unhealthy: ${ts.http}/nope: HTTP 404\n`);
  });
  await t.step("nothing listening", async () => {
    const port = freePort();
    const r = await health(["--port", String(port)]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(`^unhealthy: http://127\\.0\\.0\\.1:${port}/healthz: .+\\n$`),
    );
    assert.doesNotMatch(r.stderr, /^\s+at /m);
  });
});

Deno.test("chat health names the status of a node that is still starting", async () => {
  // What a node waiting for Redis answers (server/http/http.ts, createStartingHandler).
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => Response.json({ status: "starting", rooms: null }, { status: 503 }),
  );
  const url = `http://127.0.0.1:${server.addr.port}/healthz`;
  const r = await health([url]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `unhealthy: ${url}: HTTP 503 (status "starting")\n`);
});

Deno.test("chat health rejects bad arguments with exit code 2", async () => {
  const port = await health(["--port", "http"]);
  assert.equal(port.code, 2);
  assert.equal(port.stderr, 'error: Invalid --port "http": expected a port number\n');
  const flag = await health(["--prot", "1"]);
  assert.equal(flag.code, 2);
  assert.match(flag.stderr, /Unknown flag "--prot": did you mean "--port"\?/);
  const url = await health(["not a url"]);
  assert.equal(url.code, 2);
  assert.match(url.stderr, /^error: Invalid URL "not a url"/);
  const help = await health(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /chat health \[URL\]/);
});
