import assert from "node:assert/strict";
import { acceptsGzip, createStaticHandler, WEB_APP_FILES } from "../server/http/static.ts";
import { startTestServer } from "./helpers.ts";

async function gunzip(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return await new Response(stream).text();
}

Deno.test("createStaticHandler() serves the index with hashed, immutable assets", async () => {
  const handler = await createStaticHandler(WEB_APP_FILES);
  const res = (await handler(new Request("http://localhost/"), "/"))!;
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/html; charset=utf-8");
  assert.equal(res.headers.get("cache-control"), "no-cache");
  assert.match(res.headers.get("etag") ?? "", /^"[0-9a-f]{16}"$/);
  const html = await res.text();
  const js = html.match(/src="(\/assets\/app\.[0-9a-f]{12}\.js)"/)?.[1];
  const css = html.match(/href="(\/assets\/app\.[0-9a-f]{12}\.css)"/)?.[1];
  assert.ok(js && css, `hashed names in the index: ${html}`);
  assert.doesNotMatch(
    html,
    /<script(?![^>]*\bsrc=)[^>]*>/,
    "no inline script (the CSP forbids it)",
  );
  assert.doesNotMatch(html, /\sstyle=/, "no inline style (the CSP forbids it)");

  const script = (await handler(new Request(`http://localhost${js}`), js))!;
  assert.equal(script.headers.get("content-type"), "text/javascript; charset=utf-8");
  assert.equal(script.headers.get("cache-control"), "public, max-age=31536000, immutable");
  assert.equal(await script.text(), WEB_APP_FILES.find((f) => f.path === "/app.js")!.body);
  const style = (await handler(new Request(`http://localhost${css}`), css))!;
  assert.equal(style.headers.get("content-type"), "text/css; charset=utf-8");
  await style.body?.cancel();
  const icon = (await handler(new Request("http://localhost/favicon.svg"), "/favicon.svg"))!;
  assert.equal(icon.headers.get("content-type"), "image/svg+xml");
  assert.equal(icon.headers.get("cache-control"), "public, max-age=86400");
  await icon.body?.cancel();
  assert.equal(await handler(new Request("http://localhost/app.js"), "/app.js"), null);
  assert.equal(await handler(new Request("http://localhost/nope"), "/nope"), null);
});

Deno.test("createStaticHandler() answers a matching If-None-Match with 304", async () => {
  const handler = await createStaticHandler(WEB_APP_FILES);
  const first = (await handler(new Request("http://localhost/"), "/"))!;
  const etag = first.headers.get("etag")!;
  await first.body?.cancel();
  for (const header of [etag, `W/${etag}`, `"other", ${etag}`]) {
    const res = (await handler(
      new Request("http://localhost/", { headers: { "if-none-match": header } }),
      "/",
    ))!;
    assert.equal(res.status, 304, header);
    assert.equal(res.body, null);
    assert.equal(res.headers.get("etag"), etag);
  }
  const stale = (await handler(
    new Request("http://localhost/", { headers: { "if-none-match": '"old"' } }),
    "/",
  ))!;
  assert.equal(stale.status, 200);
  await stale.body?.cancel();
});

Deno.test("createStaticHandler() gzips once for browsers that accept it", async () => {
  const body = "x".repeat(5000);
  const handler = await createStaticHandler([
    { path: "/app.js", body, type: "text/javascript; charset=utf-8" },
    { path: "/index.html", body: '<script src="/app.js"></script>', type: "text/html" },
  ]);
  const index = (await handler(new Request("http://localhost/"), "/"))!;
  const path = (await index.text()).match(/src="([^"]+)"/)![1];
  const zipped = (await handler(
    new Request(`http://localhost${path}`, { headers: { "accept-encoding": "gzip, br" } }),
    path,
  ))!;
  assert.equal(zipped.headers.get("content-encoding"), "gzip");
  assert.equal(zipped.headers.get("vary"), "Accept-Encoding");
  const bytes = new Uint8Array(await zipped.arrayBuffer());
  assert.ok(bytes.length < 200, `compressed to ${bytes.length} bytes`);
  assert.equal(Number(zipped.headers.get("content-length")), bytes.length);
  assert.equal(await gunzip(bytes), body);
  const plain = (await handler(
    new Request(`http://localhost${path}`, { headers: { "accept-encoding": "gzip;q=0" } }),
    path,
  ))!;
  assert.equal(plain.headers.get("content-encoding"), null);
  assert.equal(await plain.text(), body);
  // Too small to be worth it: never compressed.
  const small = (await handler(
    new Request("http://localhost/", { headers: { "accept-encoding": "gzip" } }),
    "/",
  ))!;
  assert.equal(small.headers.get("content-encoding"), null);
  assert.equal(small.headers.get("vary"), null);
  await small.body?.cancel();
});

Deno.test("acceptsGzip() reads Accept-Encoding with q-values", () => {
  assert.equal(acceptsGzip(null), false);
  assert.equal(acceptsGzip(""), false);
  assert.equal(acceptsGzip("gzip"), true);
  assert.equal(acceptsGzip("deflate, gzip;q=1.0, *;q=0.5"), true);
  assert.equal(acceptsGzip("GZIP"), true);
  assert.equal(acceptsGzip("gzip;q=0"), false);
  assert.equal(acceptsGzip("br"), false);
  assert.equal(acceptsGzip("*"), true);
  assert.equal(acceptsGzip("identity"), false);
});

Deno.test("startServer() serves the web app by default with security headers", async () => {
  await using t = await startTestServer();
  const res = await fetch(`${t.http}/`, { headers: { "accept-encoding": "gzip" } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/html; charset=utf-8");
  assert.match(res.headers.get("content-security-policy") ?? "", /script-src 'self'/);
  assert.equal(res.headers.get("x-content-type-options"), "nosniff");
  const html = await res.text();
  assert.match(html, /<div id="app"><\/div>/);
  const js = html.match(/src="([^"]+)"/)![1];
  const script = await fetch(`${t.http}${js}`);
  assert.equal(script.status, 200);
  assert.equal(script.headers.get("content-type"), "text/javascript; charset=utf-8");
  assert.ok((await script.text()).length > 1000);
  const head = await fetch(`${t.http}${js}`, { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("content-type"), "text/javascript; charset=utf-8");
  assert.equal(await head.text(), "");
  const post = await fetch(`${t.http}/`, { method: "POST", body: "x" });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET, HEAD");
  await post.body?.cancel();
  const missing = await fetch(`${t.http}/missing.js`);
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
});
