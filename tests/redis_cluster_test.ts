/**
 * Several nodes as one chat: a real redis-server on a free port and three
 * `deno run main.ts --redis …` processes; clients spread over the nodes.
 */
import assert from "node:assert/strict";
import type { ServerFrame } from "../protocol.ts";
import {
  closeAll,
  hashPassword,
  signIn,
  signInWithToken,
  signOut,
  TestClient,
  waitUntil,
} from "./helpers.ts";
import { startCluster } from "./redis_helpers.ts";

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;
type Client = Awaited<ReturnType<typeof signIn>>;

const PASSWORDS = { alice: "alice-pass", bob: "bob-pass1", carol: "carol-pass", dave: "dave-pass" };

async function hashedUsers(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [name, pw] of Object.entries(PASSWORDS)) out[name] = await hashPassword(pw);
  return out;
}

/** Takes `n` message frames of `room` from a client's inbox, in arrival order. */
async function messages(c: TestClient, room: string, n: number): Promise<F<"message">[]> {
  const out: F<"message">[] = [];
  while (out.length < n) {
    out.push(await c.next<F<"message">>((f) => f.type === "message" && f.room === room));
  }
  return out;
}

Deno.test("RedisBroker: three nodes act as one chat", async (t) => {
  await using cluster = await startCluster(3, { users: await hashedUsers() });
  const [n0, n1, n2] = cluster.nodes;
  const clients: Client[] = [];
  const login = async (node: typeof n0, user: keyof typeof PASSWORDS) => {
    const c = await signIn(node.ws, user, PASSWORDS[user]);
    clients.push(c);
    return c;
  };
  try {
    const alice = await login(n0, "alice");
    const bob = await login(n1, "bob");
    const carol = await login(n2, "carol");
    const alice2 = await login(n1, "alice");

    await t.step(
      "messages reach every node in one order per room under concurrent senders",
      async () => {
        for (const c of [alice, bob, carol]) {
          c.send({ type: "join", room: "ops" });
          await c.next<F<"joined">>((f) => f.type === "joined" && f.room === "ops");
        }
        await alice2.next<F<"joined">>((f) => f.type === "joined" && f.room === "ops");
        const senders = [alice, bob, carol];
        const per = 30;
        for (let i = 0; i < per; i++) {
          senders.forEach((c, k) =>
            c.send({ type: "send", room: "ops", text: `s${k}-${i}`, ref: `${k}-${i}` })
          );
        }
        const total = per * senders.length;
        const seen = await Promise.all(
          [alice, bob, carol, alice2].map((c) => messages(c, "ops", total)),
        );
        const ids = seen[0].map((m) => m.id);
        assert.deepEqual(
          ids,
          Array.from({ length: total }, (_, i) => i + 1),
          "ids are 1..n with no gap",
        );
        const order = seen[0].map((m) => `${m.id}:${m.from}:${m.text}`);
        for (const s of seen.slice(1)) {
          assert.deepEqual(
            s.map((m) => `${m.id}:${m.from}:${m.text}`),
            order,
            "same order on every node",
          );
        }
        for (let k = 0; k < senders.length; k++) {
          const mine = seen[0].filter((m) => m.text.startsWith(`s${k}-`)).map((m) => m.text);
          assert.deepEqual(
            mine,
            Array.from({ length: per }, (_, i) => `s${k}-${i}`),
            "each sender's order kept",
          );
        }
        // Acknowledgements (ref) went to the sending connection only.
        assert.equal(seen[0].filter((m) => m.ref !== undefined).length, per);
        assert.ok(seen[0].filter((m) => m.ref !== undefined).every((m) => m.from === "alice"));
        assert.equal(
          seen[3].filter((m) => m.ref !== undefined).length,
          0,
          "alice's other tab gets no ref",
        );
      },
    );

    await t.step("a DM reaches only its two users' connections, on whichever node", async () => {
      alice.send({ type: "send", to: "carol", text: "just for carol", ref: "dm1" });
      const tricky = 'two\nlines, "quotes", \\ and ünïcödé 😀';
      bob.send({ type: "send", room: "general", text: tricky });
      assert.equal(
        (await carol.next<F<"message">>((f) => f.type === "message" && f.room === "general")).text,
        tricky,
      );
      const own = await alice.next<F<"message">>((f) => f.type === "message" && f.to === "carol");
      assert.equal(own.ref, "dm1");
      const got = await carol.next<F<"message">>((f) => f.type === "message" && f.to === "carol");
      assert.deepEqual([got.from, got.text, got.id, got.ref], [
        "alice",
        "just for carol",
        1,
        undefined,
      ]);
      const tab = await alice2.next<F<"message">>((f) => f.type === "message" && f.to === "carol");
      assert.equal(tab.text, "just for carol");
      await bob.barrier();
      await Promise.all([n0, n1, n2].map(async (n) => {
        // A fresh barrier on every node: anything fanned out has arrived by now.
        const probe = await login(n, "dave");
        await probe.barrier();
        assert.equal(probe.peek((f) => f.type === "message" && f.to !== undefined).length, 0);
      }));
      assert.equal(
        bob.peek((f) => f.type === "message" && f.to !== undefined).length,
        0,
        "bob saw no DM",
      );
    });

    await t.step("typing, joins and read markers cross nodes", async () => {
      bob.send({ type: "typing", room: "ops", active: true });
      const typing = await carol.next<F<"typing">>("typing");
      assert.deepEqual([typing.user, typing.room, typing.active], ["bob", "ops", true]);
      carol.send({ type: "join", room: "design" });
      await carol.next<F<"joined">>((f) => f.type === "joined" && f.room === "design");
      alice.send({ type: "join", room: "design" });
      await alice.next<F<"joined">>((f) => f.type === "joined" && f.room === "design");
      const tabJoined = await alice2.next<F<"joined">>((f) =>
        f.type === "joined" && f.room === "design"
      );
      assert.deepEqual(
        tabJoined.members,
        ["alice", "carol"],
        "alice's tab on another node joined too",
      );
      const sys = await carol.next<F<"system">>((f) => f.type === "system" && f.room === "design");
      assert.deepEqual([sys.event, sys.user], ["join", "alice"]);
      alice.send({ type: "read", room: "ops", id: 42 });
      const read = await alice2.next<F<"read">>("read");
      assert.deepEqual([read.room, read.id], ["ops", 42]);
    });

    await t.step("history, since and search answer the same from any node", async () => {
      const pages = await Promise.all([alice, bob, carol].map(async (c) => {
        c.send({ type: "history", room: "ops", since: 80, limit: 5 });
        return await c.next<F<"history">>("history");
      }));
      for (const p of pages) {
        assert.deepEqual(p.messages.map((m) => m.id), [81, 82, 83, 84, 85]);
        assert.equal(p.more, true);
      }
      assert.deepEqual(pages[1].messages, pages[0].messages);
      bob.send({ type: "history", room: "ops", before: 3 });
      const before = await bob.next<F<"history">>("history");
      assert.deepEqual(before.messages.map((m) => m.id), [1, 2]);
      carol.send({ type: "search", q: "s0-29" });
      const found = await carol.next<F<"search">>("search");
      assert.deepEqual(found.messages.map((m) => [m.from, m.text]), [["alice", "s0-29"]]);
      carol.send({ type: "history", to: "alice" });
      const dm = await carol.next<F<"history">>("history");
      assert.deepEqual(dm.messages.map((m) => m.text), ["just for carol"]);
    });

    await t.step("a session token from one node is accepted by another", async () => {
      const c = await TestClient.connect(n2.ws);
      clients.push(c as Client);
      c.send({ type: "auth", token: alice.welcome.token });
      const w = await c.next<F<"welcome">>((f) => f.type === "welcome" || f.type === "error");
      assert.equal(w.type, "welcome");
      assert.equal(w.user, "alice");
      assert.deepEqual(w.rooms, ["design", "general", "ops"]);
      const ops = w.conversations.find((x) => x.room === "ops");
      // Unread: what others sent after the marker (however the senders interleaved).
      alice.send({ type: "history", room: "ops", since: 42, limit: 100 });
      const after = await alice.next<F<"history">>("history");
      const unread = after.messages.filter((m) => m.id > 42 && m.from !== "alice").length;
      assert.deepEqual(ops, { room: "ops", last: 90, read: 42, seq: 90, unread });
      const forged = await TestClient.connect(n1.ws);
      clients.push(forged as Client);
      forged.send({ type: "auth", token: alice.welcome.token.slice(0, -2) + "xx" });
      const err = await forged.next<F<"error">>("error");
      assert.equal(err.code, "auth_failed");
    });

    await t.step("healthz of every node says ok", async () => {
      for (const n of cluster.nodes) {
        const h = await n.health();
        assert.equal(h.status, "ok");
        assert.equal(h.rooms, 3);
      }
    });
  } finally {
    await closeAll(...clients);
  }
});

Deno.test("RedisBroker: presence spans nodes; a node killed with kill -9 loses nothing acknowledged", async (t) => {
  await using cluster = await startCluster(3);
  const [n0, n1, n2] = cluster.nodes;
  const clients: Client[] = [];
  const join = async (node: typeof n0, user: string) => {
    const c = await signIn(node.ws, user);
    clients.push(c);
    return c;
  };
  const online = (c: TestClient, want: string[]) =>
    c.next<F<"presence">>((f) => f.type === "presence" && f.online?.join() === want.join());
  try {
    const alice = await join(n0, "alice");
    const bob = await join(n1, "bob");
    const carol = await join(n2, "carol");
    const dave1 = await join(n1, "dave");
    clients.push(await signInWithToken(n2.ws, dave1.welcome.token));

    await t.step("every node sees every user online, once", async () => {
      const all = ["alice", "bob", "carol", "dave"];
      await Promise.all([alice, bob, carol, dave1].map((c) => online(c, all)));
    });

    await t.step("open mode: a name online on another node is taken", async () => {
      const c = await TestClient.connect(n0.ws);
      clients.push(c as Client);
      c.send({ type: "auth", username: "carol" });
      const err = await c.next<F<"error">>("error");
      assert.equal(err.code, "name_taken");
    });

    await t.step(
      "kill -9: acknowledged messages survive, the node's users go offline, nobody else flickers",
      async () => {
        for (let i = 1; i <= 20; i++) {
          carol.send({ type: "send", room: "general", text: `c${i}`, ref: `c${i}` });
        }
        await carol.next((f) => f.type === "message" && f.ref === "c20");
        const mark = alice.all.length;
        const status = await n2.kill("SIGKILL");
        assert.equal(status.signal, "SIGKILL");
        // Bounded: the node key expires (5 s) and the next heartbeat (1 s) removes it.
        await online(alice, ["alice", "bob", "dave"]);
        for (const f of alice.all.slice(mark).filter((f) => f.type === "presence")) {
          const p = f as F<"presence">;
          for (const u of ["alice", "bob", "dave"]) {
            assert.ok(p.online?.includes(u), `${u} never drops`);
          }
        }
        bob.send({ type: "history", room: "general", limit: 50 });
        const h = await bob.next<F<"history">>("history");
        assert.deepEqual(
          h.messages.filter((m) => m.from === "carol").map((m) => m.text),
          Array.from({ length: 20 }, (_, i) => `c${i + 1}`),
        );
        assert.equal(dave1.closeEvent, null, "dave's connection on a live node is untouched");
      },
    );

    await t.step("the dead node's users keep their names and get them back elsewhere", async () => {
      const thief = await TestClient.connect(n0.ws);
      clients.push(thief as Client);
      thief.send({ type: "auth", username: "Carol" });
      assert.equal((await thief.next<F<"error">>("error")).code, "name_taken");
      const c = await signInWithToken(n0.ws, carol.welcome.token);
      clients.push(c);
      assert.equal(c.welcome.user, "carol");
      await online(alice, ["alice", "bob", "carol", "dave"]);
    });

    await t.step(
      "two sign-ins racing for one new name on two nodes: exactly one gets it",
      async () => {
        const racers = await Promise.all([n0, n1, n0, n1].map((n) => TestClient.connect(n.ws)));
        clients.push(...racers as Client[]);
        for (const r of racers) r.send({ type: "auth", username: "zed" });
        const answers = await Promise.all(
          racers.map((r) => r.next((f) => f.type === "welcome" || f.type === "error")),
        );
        assert.deepEqual(answers.map((a) => a.type).sort(), ["error", "error", "error", "welcome"]);
        await closeAll(...racers);
      },
    );

    await t.step("signing out on one node ends the session on every node", async () => {
      const dave0 = await signInWithToken(n0.ws, dave1.welcome.token);
      clients.push(dave0);
      const http = n0.ws.replace(/^ws/, "http").replace(/\/ws$/, "");
      assert.equal(await signOut(http, dave0.welcome.token), 204);
      for (const c of [dave0, dave1]) {
        assert.equal((await c.next<F<"error">>("error")).code, "auth_failed");
        assert.equal((await c.waitClose()).code, 4003);
      }
      const again = await TestClient.connect(n1.ws);
      clients.push(again as Client);
      again.send({ type: "auth", token: dave1.welcome.token });
      assert.equal((await again.next<F<"error">>("error")).code, "auth_failed");
      // The name is free again, on any node.
      const newDave = await join(n1, "dave");
      assert.equal(newDave.welcome.user, "dave");
    });

    await t.step("a node that shuts down cleanly takes its users offline at once", async () => {
      await n1.kill("SIGTERM");
      await online(alice, ["alice", "carol"]);
      const h = await n0.health();
      assert.equal(h.status, "ok");
    });
  } finally {
    await closeAll(...clients);
  }
});

Deno.test("RedisBroker: a node cut off from Redis catches up on everything it missed", async () => {
  // Node 2 reaches Redis through a proxy the test can cut, like a partition.
  const { RedisServer, ChatNode } = await import("./redis_helpers.ts");
  const { TcpProxy } = await import("./tcp_proxy.ts");
  await using redis = await RedisServer.start();
  const dir = await Deno.makeTempDir({ prefix: "chat-partition-" });
  const users = `${dir}/users.json`;
  await using proxy = new TcpProxy(redis.port);
  await using n0 = await ChatNode.start(redis.url, { users });
  await using n2 = await ChatNode.start(proxy.url, { users });
  const clients: Client[] = [];
  try {
    const alice = await signIn(n0.ws, "alice");
    const bob = await signIn(n2.ws, "bob");
    clients.push(alice, bob);
    const bob2 = await signInWithToken(n0.ws, bob.welcome.token);
    clients.push(bob2);
    alice.send({ type: "send", room: "general", text: "before", ref: "b" });
    await bob.next((f) => f.type === "message" && f.text === "before");

    proxy.refuse = true;
    await proxy.cut();
    await waitUntil(async () => (await n2.health()).status === "degraded", "node 2 is degraded");
    assert.equal((await n0.health()).status, "ok", "the other node is fine");
    bob.send({ type: "send", room: "general", text: "lost?", ref: "x1" });
    const err = await bob.next<F<"error">>("error");
    assert.deepEqual([err.code, err.ref], ["unavailable", "x1"]);
    bob.send({ type: "history", room: "general" });
    assert.equal((await bob.next<F<"error">>("error")).code, "unavailable");

    for (let i = 1; i <= 25; i++) {
      alice.send({ type: "send", room: "general", text: `m${i}`, ref: `m${i}` });
    }
    await alice.next((f) => f.type === "message" && f.ref === "m25");
    bob2.send({ type: "join", room: "later" });
    await bob2.next("joined");
    alice.send({ type: "send", to: "bob", text: "dm while away" });

    proxy.refuse = false;
    await waitUntil(async () => (await n2.health()).status === "ok", "node 2 is back");
    const got = await messages(bob, "general", 25);
    assert.deepEqual(got.map((m) => m.text), Array.from({ length: 25 }, (_, i) => `m${i + 1}`));
    assert.deepEqual(got.map((m) => m.id), Array.from({ length: 25 }, (_, i) => i + 2));
    const joined = await bob.next<F<"joined">>("joined");
    assert.deepEqual(
      [joined.room, joined.members],
      ["later", ["bob"]],
      "bob's join elsewhere replayed",
    );
    const dm = await bob.next<F<"message">>((f) => f.type === "message" && f.to === "bob");
    assert.equal(dm.text, "dm while away");
    await bob.barrier();
    assert.equal(bob.peek("message").length, 0, "no duplicates");
    assert.equal(bob.all.filter((f) => f.type === "message" && f.text === "lost?").length, 0);
    bob.send({ type: "send", room: "general", text: "back", ref: "back" });
    const back = await alice.next<F<"message">>((f) => f.type === "message" && f.text === "back");
    assert.equal(back.id, 27, "the refused message took no id");
  } finally {
    await closeAll(...clients);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
