import assert from "node:assert/strict";
import {
  getMetricsFromIterator,
  type PromData,
  type PromHistogramData,
  type PromMetric,
} from "prom2javascript";
import {
  closeAll,
  DEADLINE,
  signIn,
  startTestServer,
  TestClient,
  type TestServer,
  waitUntil,
} from "./helpers.ts";
import { runChat, spawnServer } from "./chat_process.ts";
import { CloseCode, type ErrorFrame } from "../protocol.ts";
import { Registry } from "../server/metrics/metrics.ts";
import { RedisServer, SECRET } from "./redis_helpers.ts";

const TOKEN = "metrics-token-0123456789";

/**
 * The grammar of the text exposition format 0.0.4, line by line: on top of
 * the parser, this catches a family declared twice or sampled before its
 * TYPE line.
 */
const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`;
const VALUE = "(?:[-+]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][-+]?\\d+)?|[-+]Inf|NaN)";
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(?:${LABEL}(?:,${LABEL})*)?\\})? ${VALUE}$`);
const HELP = new RegExp(`^# HELP (${NAME}) .+$`);
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);

/** Parses a scrape with a real parser, after checking its grammar line by line. */
async function parse(text: string): Promise<Map<string, PromMetric>> {
  assert.ok(text.endsWith("\n"), "ends with a newline");
  const declared = new Map<string, string>();
  for (const line of text.slice(0, -1).split("\n")) {
    const help = HELP.exec(line), type = TYPE.exec(line), sample = SAMPLE.exec(line);
    assert.ok(help || type || sample, `not a valid line: ${JSON.stringify(line)}`);
    if (type) {
      assert.ok(!declared.has(type[1]), `${type[1]} declared twice`);
      declared.set(type[1], type[2]);
    }
    if (sample) {
      const name = sample[1];
      const family = declared.has(name) ? name : name.replace(/_(bucket|sum|count)$/, "");
      assert.ok(declared.has(family), `${name} sampled before its TYPE line`);
      if (family !== name) assert.equal(declared.get(family), "histogram", name);
    }
  }
  const families = await getMetricsFromIterator(text.split("\n")[Symbol.iterator]());
  assert.deepEqual(Object.keys(families), [...declared.keys()]);
  for (const [name, f] of Object.entries(families)) assert.equal(f.type, declared.get(name));
  return new Map(Object.entries(families));
}

/** The series of `name` whose labels include `labels`: exactly one. */
function seriesOf<T extends PromData | PromHistogramData>(
  families: Map<string, PromMetric>,
  name: string,
  labels: Record<string, string>,
): T {
  const family = families.get(name);
  assert.ok(family, `no metric ${name}`);
  const series = (family.data as T[]).filter((m) =>
    Object.entries(labels).every(([k, v]) => m.labels[k] === v)
  );
  assert.equal(series.length, 1, `${name} ${JSON.stringify(labels)}: ${series.length} series`);
  return series[0];
}

/** The value of one counter or gauge series. */
function value(
  families: Map<string, PromMetric>,
  name: string,
  labels: Record<string, string> = {},
): number {
  return seriesOf<PromData>(families, name, labels).value;
}

/** One histogram series. */
function histogram(
  families: Map<string, PromMetric>,
  name: string,
  labels: Record<string, string> = {},
): PromHistogramData {
  return seriesOf<PromHistogramData>(families, name, labels);
}

/**
 * Checks every histogram: counts cumulative over ascending bounds, a `+Inf`
 * bucket equal to `_count`. (The parser gives buckets as an object, whose
 * whole-number keys come first: they are put back in order of their bound.)
 */
function checkHistograms(families: Map<string, PromMetric>): void {
  for (const [name, f] of families) {
    if (f.type !== "histogram") continue;
    for (const m of f.data as PromHistogramData[]) {
      const buckets = Object.entries(m.buckets)
        .map(([le, n]) => [le === "+Inf" ? Infinity : Number(le), n] as const)
        .sort((x, y) => x[0] - y[0]);
      assert.equal(buckets.at(-1)![0], Infinity, `${name}: no +Inf bucket`);
      for (let i = 1; i < buckets.length; i++) {
        assert.ok(buckets[i][1] >= buckets[i - 1][1], `${name}: buckets not cumulative`);
      }
      assert.equal(buckets.at(-1)![1], m.count, `${name}: +Inf bucket != _count`);
      assert.ok((m.sum ?? 0) >= 0, name);
    }
  }
}

/** `GET /metrics` with `token` (if any): the response. */
function scrape(url: string, token?: string): Promise<Response> {
  return fetch(url, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
}

/** Scrapes and parses. */
async function metricsOf(url: string, token?: string): Promise<Map<string, PromMetric>> {
  const res = await scrape(url, token);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  return parse(await res.text());
}

Deno.test("Registry.render() writes the text format 0.0.4, escaped, that a parser reads back", async () => {
  const r = new Registry();
  const c = r.counter({ name: "x_total", help: "Line one\nback\\slash", labelNames: ["path"] });
  const weird = c.labels('C:\\dir\n"quoted"');
  weird.inc();
  weird.inc(2);
  assert.equal(c.labels('C:\\dir\n"quoted"'), weird, "a series is resolved once");
  r.gauge({ name: "g", help: "A gauge", collect: (g) => g.set(-1.5) });
  const h = r.histogram({ name: "h_seconds", help: "H", buckets: [0.1, 1] }).labels();
  for (const v of [0.05, 0.1, 0.5, 7]) h.observe(v);
  const text = r.render();
  assert.equal(
    text,
    [
      "# HELP x_total Line one\\nback\\\\slash",
      "# TYPE x_total counter",
      'x_total{path="C:\\\\dir\\n\\"quoted\\""} 3',
      "# HELP g A gauge",
      "# TYPE g gauge",
      "g -1.5",
      "# HELP h_seconds H",
      "# TYPE h_seconds histogram",
      'h_seconds_bucket{le="0.1"} 2',
      'h_seconds_bucket{le="1"} 3',
      'h_seconds_bucket{le="+Inf"} 4',
      "h_seconds_sum 7.65",
      "h_seconds_count 4",
      "",
    ].join("\n"),
  );
  const parsed = await parse(text);
  assert.equal(value(parsed, "x_total", { path: 'C:\\dir\n"quoted"' }), 3);
  assert.equal(value(parsed, "g"), -1.5);
  checkHistograms(parsed);
  assert.throws(() => c.labels(), RangeError);
  assert.throws(() => r.gauge({ name: "g", help: "again" }), TypeError);
  assert.throws(() => r.counter({ name: "bad-name", help: "" }), TypeError);
  assert.throws(() => r.histogram({ name: "h2", help: "", buckets: [1, 1] }), RangeError);
});

Deno.test("GET /metrics counts sign-ins, frames, deliveries and refusals exactly", async () => {
  await using s = await startTestServer({
    users: { alice: "alice-password", bob: "bob-password" },
    // A slow bucket, so that a burst of pings is refused in part; two signed-in connections per address.
    args: [
      "--metrics",
      "--metrics-token",
      TOKEN,
      "--rate",
      "1",
      "--burst",
      "10",
      "--max-conns-per-addr",
      "2",
    ],
  });
  const clients: TestClient[] = [];
  try {
    // A wrong password: refused, closed with 4003.
    const wrong = await TestClient.connect(s.ws);
    clients.push(wrong);
    wrong.send({ type: "auth", username: "alice", password: "not-her-password" });
    assert.equal((await wrong.next<ErrorFrame>("error")).code, "auth_failed");
    assert.equal((await wrong.waitClose()).code, CloseCode.AuthFailed);

    const alice = await signIn(s.ws, "alice", "alice-password");
    const bob = await signIn(s.ws, "bob", "bob-password");
    clients.push(alice, bob);

    // Four messages into general, which both are in: eight deliveries.
    const N = 4;
    for (let i = 0; i < N; i++) {
      alice.send({ type: "send", room: "general", text: `hello ${i}`, ref: `m${i}` });
      await alice.next((f) => f.type === "message" && f.ref === `m${i}`);
    }
    for (let i = 0; i < N; i++) await bob.next("message");

    // A burst of pings past the bucket: some answered, the rest refused with rate_limited.
    const PINGS = 15;
    for (let i = 0; i < PINGS; i++) alice.send({ type: "ping" });
    const answered = () => alice.peek("pong").length + alice.peek("error").length;
    await waitUntil(() => answered() === PINGS, "every ping is answered or refused");
    const pongs = alice.peek("pong").length;
    const refusedPings = alice.peek((f) => f.type === "error" && f.code === "rate_limited").length;
    assert.equal(pongs + refusedPings, PINGS);
    assert.ok(refusedPings > 0, "the burst went past the bucket");

    // A third connection from the address: refused as it opens, closed with 4029.
    const third = await TestClient.connect(s.ws);
    clients.push(third);
    assert.equal((await third.next<ErrorFrame>("error")).code, "rate_limited");
    assert.equal((await third.waitClose()).code, CloseCode.RateLimited);

    // Counted before the scrape: a frame may still arrive after it (presence), never before.
    const received = clients.reduce((n, c) => n + c.all.length, 0);
    const bytes = clients.reduce((n, c) => n + c.raw.reduce((b, r) => b + r.length, 0), 0);
    const url = `${s.http}/metrics`;
    const m = await metricsOf(url, TOKEN);
    assert.equal(value(m, "chat_connections"), 2);
    assert.equal(value(m, "chat_users_online"), 2);
    assert.equal(value(m, "chat_sign_ins_total"), 2);
    assert.equal(value(m, "chat_sign_in_failures_total", { reason: "auth_failed" }), 1);
    const failures = m.get("chat_sign_in_failures_total")!.data as PromData[];
    assert.equal(failures.reduce((n, f) => n + f.value, 0), 1, "no other failure");
    assert.equal(value(m, "chat_frames_received_total", { type: "auth" }), 3);
    assert.equal(value(m, "chat_frames_received_total", { type: "send" }), N);
    assert.equal(value(m, "chat_frames_received_total", { type: "ping" }), pongs);
    assert.equal(value(m, "chat_frames_received_total", { type: "other" }), 0);
    assert.equal(value(m, "chat_rate_limited_frames_total"), refusedPings);
    assert.equal(value(m, "chat_messages_sent_total"), N);
    assert.equal(value(m, "chat_message_deliveries_total"), N * 2);
    assert.equal(value(m, "chat_server_closes_total", { reason: "auth_failed" }), 1);
    assert.equal(value(m, "chat_server_closes_total", { reason: "rate_limited" }), 1);
    assert.equal(value(m, "chat_server_closes_total", { reason: "slow_consumer" }), 0);
    // Every frame a client got was written; the batches add up to the frames.
    const sent = value(m, "chat_frames_sent_total");
    assert.ok(sent >= received, `${sent} frames sent, ${received} received`);
    assert.equal(histogram(m, "chat_batch_frames").sum, sent);
    assert.ok(value(m, "chat_sent_bytes_total") >= bytes);
    assert.equal(histogram(m, "chat_store_commit_seconds", { op: "append" }).count, N);
    assert.equal(histogram(m, "chat_store_commit_seconds", { op: "change" }).count, 0);
    checkHistograms(m);
    assert.ok(value(m, "process_resident_memory_bytes") > 0);
    assert.ok(value(m, "deno_heap_used_bytes") > 0);
    assert.equal(value(m, "chat_build_info"), 1);

    // The event-loop lag is sampled by a timer.
    await waitUntil(async () => {
      const again = await metricsOf(url, TOKEN);
      return histogram(again, "chat_event_loop_lag_seconds").count > 0;
    }, "a lag sample is taken");
  } finally {
    await closeAll(...clients);
  }
});

Deno.test("GET /metrics answers 401 without the right bearer token", async () => {
  await using s = await startTestServer({ args: ["--metrics", "--metrics-token", TOKEN] });
  const url = `${s.http}/metrics`;
  for (const token of [undefined, "wrong-token-0123456789", `${TOKEN}x`, TOKEN.slice(0, -1)]) {
    const res = await scrape(url, token);
    assert.equal(res.status, 401, `token ${token}`);
    assert.equal(res.headers.get("www-authenticate"), 'Bearer realm="metrics"');
    await res.body?.cancel();
  }
  const basic = await fetch(url, { headers: { authorization: `Basic ${btoa(`x:${TOKEN}`)}` } });
  assert.equal(basic.status, 401);
  await basic.body?.cancel();
  const post = await fetch(url, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(post.status, 405);
  await post.body?.cancel();
  assert.equal((await metricsOf(url, TOKEN)).size > 10, true);
});

Deno.test("docs/grafana/chat-dashboard.json charts only series a real scrape has", async () => {
  const dash = JSON.parse(
    await Deno.readTextFile(new URL("../docs/grafana/chat-dashboard.json", import.meta.url)),
  );
  const exprs: string[] = dash.panels.flatMap((p: { targets?: { expr: string }[] }) =>
    (p.targets ?? []).map((t) => t.expr)
  );
  assert.ok(exprs.length >= 20, `${exprs.length} queries`);
  await using s = await startTestServer({ args: ["--metrics", "--metrics-token", TOKEN] });
  const have = await metricsOf(`${s.http}/metrics`, TOKEN);
  for (const expr of exprs) {
    const names = expr.match(/\b(?:chat|deno|process)_[a-z_]+/g) ?? [];
    assert.ok(names.length > 0, expr);
    for (const name of names) {
      const family = name.replace(/_(bucket|sum|count)$/, "");
      const metric = have.get(family);
      assert.ok(metric, `${expr}: no ${family} in a scrape`);
      // _bucket/_sum/_count only of histograms; rate() only of counters and histograms.
      if (family !== name) assert.equal(metric.type, "histogram", `${name} in ${expr}`);
      if (/rate\(|increase\(/.test(expr) && family === name) {
        assert.equal(metric.type, "counter", `${name} in ${expr}`);
      }
    }
    // Every label a query groups by or selects exists on that family (or is the scrape's own).
    for (const [, labels] of expr.matchAll(/by \(([^)]*)\)/g)) {
      for (const label of labels.split(",").map((l) => l.trim())) {
        if (["le", "instance"].includes(label)) continue;
        const family = (expr.match(/\b(?:chat|deno|process)_[a-z_]+/) ?? [""])[0]
          .replace(/_(bucket|sum|count)$/, "");
        const data = have.get(family)!.data as { labels?: Record<string, string> }[];
        assert.ok(
          data.some((d) => d.labels && label in d.labels),
          `${expr}: ${family} has no label ${label}`,
        );
      }
    }
  }
});

Deno.test("GET /metrics is 404 when metrics are off", async () => {
  await using s = await startTestServer();
  for (const token of [undefined, TOKEN]) {
    const res = await scrape(`${s.http}/metrics`, token);
    assert.equal(res.status, 404);
    await res.body?.cancel();
  }
  assert.equal(s.server.metricsUrl, null);
});

Deno.test("--metrics-listen with --metrics-token asks for the token on that address too", async () => {
  await using s = await startTestServer({
    args: ["--metrics", "--metrics-listen", "127.0.0.1:0", "--metrics-token", TOKEN],
  });
  const url = s.server.metricsUrl!;
  const without = await fetch(url);
  assert.equal(without.status, 401);
  await without.body?.cancel();
  const wrong = await scrape(url, "not-the-token-at-all");
  assert.equal(wrong.status, 401);
  await wrong.body?.cancel();
  const right = await scrape(url, TOKEN);
  assert.equal(right.status, 200);
  await right.body?.cancel();
});

Deno.test("--metrics-listen serves /metrics on its own address without a token", async () => {
  let s: TestServer | null = await startTestServer({
    args: ["--metrics", "--metrics-listen", "127.0.0.1:0"],
  });
  try {
    const url = s.server.metricsUrl!;
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    assert.notEqual(new URL(url).port, String(s.server.port));
    const c = await signIn(s.ws, "carol");
    try {
      const m = await metricsOf(url);
      assert.equal(value(m, "chat_connections"), 1);
      assert.equal(value(m, "chat_sign_ins_total"), 1);
      checkHistograms(m);
    } finally {
      await c.close();
    }
    // The main port does not serve them, even to a token; the metrics port serves nothing else.
    for (
      const res of [
        await scrape(`${s.http}/metrics`, TOKEN),
        await fetch(url.replace(/\/metrics$/, "/healthz")),
      ]
    ) {
      assert.equal(res.status, 404);
      await res.body?.cancel();
    }
    await s.close();
    s = null;
    // Closed with the server.
    await assert.rejects(fetch(url));
  } finally {
    await s?.close();
  }
});

Deno.test("GET /metrics times Redis: store commits, PING round trips and reconnections", async () => {
  await using redis = await RedisServer.start();
  await using s = await startTestServer({
    args: [
      "--redis",
      redis.url,
      "--secret",
      SECRET,
      "--metrics",
      "--metrics-listen",
      "127.0.0.1:0",
    ],
    metricsSampling: { pingMs: 50 },
  });
  await s.server.ready;
  const url = s.server.metricsUrl!;
  const c = await signIn(s.ws, "dave");
  try {
    for (const ref of ["r1", "r2"]) {
      c.send({ type: "send", room: "general", text: ref, ref });
      await c.next((f) => f.type === "message" && f.ref === ref);
    }
    const m = await metricsOf(url);
    assert.equal(histogram(m, "chat_store_commit_seconds", { op: "append" }).count, 2);
    assert.equal(value(m, "chat_messages_sent_total"), 2);
    await waitUntil(async () => {
      const again = await metricsOf(url);
      return histogram(again, "chat_redis_ping_seconds").count > 0;
    }, "a PING round trip is sampled");
    // Redis drops every client: the node reconnects, and counts it.
    const before = value(await metricsOf(url), "chat_redis_reconnects_total");
    await redis.cli("CLIENT", "KILL", "TYPE", "normal");
    await waitUntil(
      async () => value(await metricsOf(url), "chat_redis_reconnects_total") > before,
      "the reconnection is counted",
    );
    // Back: PINGs are answered again, and a message goes through Redis both ways.
    const pings = histogram(await metricsOf(url), "chat_redis_ping_seconds").count;
    await waitUntil(
      async () => histogram(await metricsOf(url), "chat_redis_ping_seconds").count > pings + 1,
      "PINGs are answered after the reconnection",
    );
    let tries = 0;
    await waitUntil(async () => {
      const ref = `again${tries++}`;
      c.send({ type: "send", room: "general", text: ref, ref });
      const f = await c.next((f) => (f.type === "message" || f.type === "error") && f.ref === ref);
      return f.type === "message";
    }, "a message goes through Redis again");
    checkHistograms(await metricsOf(url));
  } finally {
    await c.close();
  }
});

Deno.test("the server refuses to start with --metrics on the main port and no token", async () => {
  const { code, stderr } = await runChat(["--metrics", "--port", "0", "--host", "127.0.0.1"], {
    clearEnv: true,
  });
  assert.notEqual(code, 0);
  assert.match(stderr, /--metrics on the main port needs --metrics-token/);
  assert.match(stderr, /--metrics-listen 127\.0\.0\.1:9090/);
});

Deno.test("OTEL_DENO=true exports the server's telemetry to an OTLP endpoint", async () => {
  const posts: string[] = [];
  await using collector = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      await req.body?.cancel();
      posts.push(`${req.method} ${new URL(req.url).pathname}`);
      return new Response(null, { status: 200 });
    },
  );
  const dir = await Deno.makeTempDir({ prefix: "chat-otel-" });
  try {
    await using server = await spawnServer(
      ["--port", "0", "--host", "127.0.0.1", "--users", `${dir}/users.json`],
      {
        clearEnv: true,
        env: {
          OTEL_DENO: "true",
          OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collector.addr.port}`,
          OTEL_METRIC_EXPORT_INTERVAL: "200",
          OTEL_BSP_SCHEDULE_DELAY: "200",
          OTEL_SERVICE_NAME: "chat-test",
        },
      },
    );
    // A request makes a trace span; the metrics go out on their interval.
    const res = await fetch(`http://127.0.0.1:${server.port}/healthz`);
    await res.body?.cancel();
    await waitUntil(
      () => posts.includes("POST /v1/metrics") && posts.includes("POST /v1/traces"),
      `the collector receives metrics and traces (got ${posts.join(", ")})`,
      DEADLINE,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
