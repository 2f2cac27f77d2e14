/**
 * Redis faults with real processes: Redis killed and restarted while three
 * nodes serve clients (a node started before Redis: redis_startup_test.ts).
 */
import assert from "node:assert/strict";
import type { ServerFrame } from "../protocol.ts";
import { RedisStore } from "../server/store/redis.ts";
import { closeAll, signIn, waitUntil } from "./helpers.ts";
import { RedisServer, SECRET, startCluster } from "./redis_helpers.ts";

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

const MAIN = new URL("../main.ts", import.meta.url).pathname;

async function runMain(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

Deno.test("main: --redis configuration mistakes are named", async (t) => {
  await t.step("--redis without --secret", async () => {
    const r = await runMain("--redis", "redis://127.0.0.1:1");
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^error: --redis needs --secret \(or CHAT_SECRET\)/);
  });
  await t.step("--redis with --data", async () => {
    const r = await runMain("--redis", "redis://127.0.0.1:1", "--secret", SECRET, "--data", "x.db");
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr,
      "error: --redis and --data cannot be used together: with --redis the history is kept in Redis\n",
    );
  });
  await t.step("a URL that is not redis://", async () => {
    const r = await runMain("--redis", "http://127.0.0.1:1", "--secret", SECRET, "--port", "0");
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      'error: Invalid Redis URL "http://127.0.0.1:1": the scheme must be redis:// or rediss://\n',
    );
  });
});

Deno.test("RedisStore: commands fail at once while Redis is down and work again after it returns", async () => {
  await using redis = await RedisServer.start();
  const errors: Error[] = [];
  const store = await RedisStore.connect(redis.url, { onError: (e) => errors.push(e) });
  try {
    const a = await store.append({ conv: "r", room: "r", from: "u", text: "kept" });
    await redis.stop("SIGKILL");
    await waitUntil(() => !store.client.isReady, "the client notices");
    await assert.rejects(store.append({ conv: "r", room: "r", from: "u", text: "x" }));
    await assert.rejects(store.page("r", { limit: 5 }));
    assert.ok(errors.length > 0, "the drop was reported");
    await redis.restart();
    await waitUntil(() => store.client.isReady, "the client reconnects");
    const b = await store.append({ conv: "r", room: "r", from: "u", text: "after" });
    assert.equal(b.id, a.id + 1, "the refused append took no id");
    const page = await store.page("r", { limit: 5 });
    assert.deepEqual(page.messages.map((m) => m.text), ["kept", "after"]);
  } finally {
    await store.close();
  }
});

Deno.test("RedisBroker: Redis killed and restarted mid-run: degraded, unavailable, then whole again", async () => {
  await using cluster = await startCluster(3);
  const { redis, nodes } = cluster;
  const clients = await Promise.all(nodes.map((n, i) => signIn(n.ws, `user${i}`)));
  try {
    const [a, b, c] = clients;
    const acked: string[] = [];
    for (let i = 1; i <= 10; i++) {
      const sender = clients[i % 3];
      sender.send({ type: "send", room: "general", text: `before${i}`, ref: `b${i}` });
      await sender.next((f) => f.type === "message" && f.ref === `b${i}`);
      acked.push(`before${i}`);
    }
    for (const cl of clients) {
      await waitUntil(
        () => cl.all.filter((f) => f.type === "message").length === 10,
        "all 10 arrived",
      );
    }

    await redis.stop("SIGKILL");
    for (const n of nodes) {
      await waitUntil(
        async () => (await n.health()).status === "degraded",
        "every node is degraded",
      );
    }
    const h = await nodes[0].health();
    assert.equal(h.rooms, null, "health still answers without Redis");
    for (const [i, cl] of clients.entries()) {
      cl.send({ type: "send", room: "general", text: `during${i}`, ref: `d${i}` });
      const err = await cl.next<F<"error">>("error");
      assert.deepEqual([err.code, err.ref], ["unavailable", `d${i}`]);
      cl.send({ type: "history", room: "general" });
      assert.equal((await cl.next<F<"error">>("error")).code, "unavailable");
    }
    await b.barrier();
    assert.equal(a.closeEvent, null, "connections stay open during the outage");

    await redis.restart();
    for (const n of nodes) {
      await waitUntil(async () => (await n.health()).status === "ok", "every node recovers");
    }
    for (let i = 1; i <= 6; i++) {
      const sender = clients[i % 3];
      sender.send({ type: "send", room: "general", text: `after${i}`, ref: `a${i}` });
      await sender.next((f) => f.type === "message" && f.ref === `a${i}`);
      acked.push(`after${i}`);
    }
    for (const cl of clients) {
      await waitUntil(() => cl.all.filter((f) => f.type === "message").length === 16, "live again");
      const live = cl.all.filter((f): f is F<"message"> => f.type === "message");
      assert.deepEqual(
        live.map((m) => m.text),
        acked,
        "every acknowledged message, in order, once",
      );
      assert.deepEqual(live.map((m) => m.id), Array.from({ length: 16 }, (_, i) => i + 1));
      cl.send({ type: "history", room: "general", limit: 50 });
      const page = await cl.next<F<"history">>("history");
      assert.deepEqual(
        page.messages.map((m) => m.text),
        acked,
        "history has them all, from any node",
      );
    }
    c.send({ type: "join", room: "fresh" });
    assert.equal((await c.next<F<"joined">>("joined")).room, "fresh");
    const logs = nodes.map((n) => n.stderr);
    for (const l of logs) {
      assert.match(l, /warning: Lost the connection to Redis at "redis:\/\/127\.0\.0\.1:\d+"/);
    }
    for (const n of nodes) assert.match(n.output, /Reconnected to Redis/);
  } finally {
    await closeAll(...clients);
  }
});

Deno.test("RedisBroker: dropped subscriptions are restored without gaps or duplicates", async () => {
  await using cluster = await startCluster(3, { args: ["--burst", "500", "--rate", "500"] });
  const { redis, nodes } = cluster;
  const clients = await Promise.all(nodes.map((n, i) => signIn(n.ws, `user${i}`)));
  try {
    const total = 150;
    const sent = (async () => {
      for (let i = 1; i <= total; i++) {
        const sender = clients[i % 3];
        sender.send({ type: "send", room: "general", text: `m${i}`, ref: `r${i}` });
        if (i % 10 === 0) await sender.next((f) => f.type === "message" && f.ref === `r${i}`);
      }
    })();
    // Redis drops every subscriber connection a few times while messages flow.
    for (let k = 0; k < 4; k++) {
      await waitUntil(
        () => clients[0].all.filter((f) => f.type === "message").length >= (k + 1) * 25,
        "messages are flowing",
      );
      assert.match(await redis.cli("CLIENT", "KILL", "TYPE", "pubsub"), /^\d+$/);
    }
    await sent;
    const orders: string[][] = [];
    for (const cl of clients) {
      await waitUntil(
        () => cl.all.filter((f) => f.type === "message").length >= total,
        "all arrive",
      );
      await cl.barrier();
      const got = cl.all.filter((f): f is F<"message"> => f.type === "message");
      assert.deepEqual(got.map((m) => m.id), Array.from({ length: total }, (_, i) => i + 1));
      const texts = got.map((m) => m.text);
      assert.equal(new Set(texts).size, total, "each message once");
      for (let k = 0; k < 3; k++) {
        const mine = texts.map((t) => Number(t.slice(1))).filter((n) => n % 3 === k);
        assert.deepEqual(mine, [...mine].sort((a, b) => a - b), "each sender's order kept");
      }
      orders.push(got.map((m) => `${m.id}:${m.text}`));
    }
    assert.deepEqual(orders[1], orders[0], "same order on every node");
    assert.deepEqual(orders[2], orders[0]);
    for (const n of nodes) {
      await waitUntil(
        () => /Reconnected to Redis/.test(n.output),
        "every node lost and regained its subscription",
      );
    }
    // The log line may be an earlier kill's: health turns ok once the last one healed.
    for (const n of nodes) {
      await waitUntil(async () => (await n.health()).status === "ok", "every node healthy");
    }
  } finally {
    await closeAll(...clients);
  }
});

Deno.test("RedisBroker: Redis restarted without its data: nodes notice and carry on", async () => {
  await using cluster = await startCluster(2);
  const { redis, nodes } = cluster;
  const [a, b] = await Promise.all(nodes.map((n, i) => signIn(n.ws, `user${i}`)));
  try {
    for (let i = 1; i <= 5; i++) {
      a.send({ type: "send", room: "general", text: `old${i}`, ref: `o${i}` });
      await a.next((f) => f.type === "message" && f.ref === `o${i}`);
    }
    await waitUntil(() => b.all.filter((f) => f.type === "message").length === 5, "b has 5");
    await redis.stop("SIGKILL");
    for await (const e of Deno.readDir(redis.dir)) {
      await Deno.remove(`${redis.dir}/${e.name}`, { recursive: true });
    }
    await redis.restart();
    for (const n of nodes) {
      await waitUntil(() => /lost its data/.test(n.stderr), "every node notices the loss");
      await waitUntil(async () => (await n.health()).status === "ok", "every node is back");
    }
    // Event numbers started over: without noticing, the nodes would drop these as duplicates.
    a.send({ type: "send", room: "general", text: "new", ref: "n1" });
    const own = await a.next<F<"message">>((f) => f.type === "message" && f.ref === "n1");
    assert.equal(own.id, 1, "ids start over with the data");
    const got = await b.next<F<"message">>((f) => f.type === "message" && f.text === "new");
    assert.equal(got.from, "user0");
    assert.match(nodes[0].stderr, /error: Redis at "redis:\/\/127\.0\.0\.1:\d+" lost its data/);
  } finally {
    await closeAll(a, b);
  }
});
