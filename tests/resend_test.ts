/**
 * Resends: a client whose acknowledgement was lost (a dropped connection, a
 * server killed after the commit) sends the message again with the same
 * `ref`, and is answered with the stored message; nobody gets it twice and
 * history holds it once. Across reconnects, a restart with `--data` and the
 * nodes of a Redis cluster.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Auth } from "../server/auth/auth.ts";
import { LocalBroker } from "../server/broker/broker.ts";
import { Hub } from "../server/hub/hub.ts";
import { memoryLogger } from "../server/log.ts";
import { MemoryStore } from "../server/store/memory.ts";
import type { Socket } from "../server/hub/outbox.ts";
import { PasswordHasher } from "../server/auth/password.ts";
import { type ServerFrame, splitFrames } from "../protocol.ts";
import type { Page, PageQuery } from "../server/store/store.ts";
import { spawnServer } from "./chat_process.ts";
import {
  closeAll,
  signIn,
  signInWithToken,
  startTestServer,
  type TestClient,
  waitUntil,
} from "./helpers.ts";
import { startCluster } from "./redis_helpers.ts";

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;
type Client = TestClient & { welcome: F<"welcome"> };

const USERS = { alice: "alice-pass", bob: "bob-pass1" };

/** Whether a frame is a message with this text. */
const saying = (text: string) => (f: ServerFrame) => f.type === "message" && f.text === text;

/** Waits for the acknowledgement of `ref`. */
const ackOf = (c: TestClient, ref: string) =>
  c.next<F<"message">>((f) => f.type === "message" && f.ref === ref);

/** Messages with `text` that reached `c` and were not taken yet, once everything sent to it arrived. */
async function pending(c: TestClient, text: string): Promise<number> {
  await c.barrier();
  return c.peek(saying(text)).length;
}

/** How often a room's history (as `c` reads it) holds `text`. */
async function inHistory(c: TestClient, room: string, text: string): Promise<number> {
  c.send({ type: "history", room, limit: 200 });
  const page = await c.next<F<"history">>((f) => f.type === "history" && f.room === room);
  return page.messages.filter((m) => m.text === text).length;
}

Deno.test("server: a resend after a lost acknowledgement is answered with the stored message, delivered once", async () => {
  await using t = await startTestServer({ users: USERS });
  const alice = await signIn(t.ws, "alice", USERS.alice);
  const tab = await signIn(t.ws, "alice", USERS.alice);
  const bob = await signIn(t.ws, "bob", USERS.bob);
  let again: Client | undefined;
  try {
    const frame = { type: "send", room: "general", text: "deploy done", ref: "k1" };
    alice.send(frame);
    await alice.close(); // before the acknowledgement could be read
    const first = await bob.next<F<"message">>(saying("deploy done"));
    await tab.next(saying("deploy done"));

    again = await signInWithToken(t.ws, alice.welcome.token);
    again.send(frame);
    const ack = await ackOf(again, "k1");
    assert.deepEqual(ack, { ...first, ref: "k1" }, "the stored message, with its ref");
    for (const c of [bob, tab, again]) {
      assert.equal(await pending(c, "deploy done"), 0, "nobody gets it again");
    }
    assert.equal(await inHistory(bob, "general", "deploy done"), 1);

    // A DM resent from the sender's other connection: only that one hears back.
    again.send({ type: "send", to: "bob", text: "psst", ref: "d1" });
    const dm = await ackOf(again, "d1");
    assert.equal((await bob.next<F<"message">>(saying("psst"))).id, dm.id);
    await tab.next(saying("psst"));
    tab.send({ type: "send", to: "bob", text: "psst", ref: "d1" });
    assert.deepEqual(await ackOf(tab, "d1"), dm);
    for (const c of [bob, tab, again]) assert.equal(await pending(c, "psst"), 0);

    // The same ref with another text is another message.
    again.send({ ...frame, text: "deploy done, really" });
    const other = await ackOf(again, "k1");
    assert.equal(other.id, first.id + 1);
    assert.equal((await bob.next<F<"message">>(saying("deploy done, really"))).id, other.id);
  } finally {
    await closeAll(alice, tab, bob, again);
  }
});

class FakeSocket implements Socket {
  readyState = 1;
  bufferedAmount = 0;
  frames: ServerFrame[] = [];
  send(data: string) {
    this.frames.push(...splitFrames(data));
  }
  close() {
    this.readyState = 3;
  }
}

/** A memory store whose history pages wait until released. */
class SlowPages extends MemoryStore {
  gate: Promise<void> | null = null;
  /** Resolved when a page() call waits at the gate. */
  reached = Promise.withResolvers<void>();
  override async page(conv: string, query: PageQuery): Promise<Page> {
    if (this.gate) this.reached.resolve();
    await this.gate;
    return super.page(conv, query);
  }
}

Deno.test("Hub holds the acknowledgement of a resend until the room's joined frame went out", async () => {
  const dir = await Deno.makeTempDir();
  const hasher = new PasswordHasher();
  const log = memoryLogger();
  const store = new SlowPages();
  const hub = new Hub({
    store,
    broker: new LocalBroker(store),
    auth: await Auth.create({ usersPath: `${dir}/users.json`, hasher, log }),
    log,
    limits: { frameRate: 1000, frameBurst: 1000 },
  });
  try {
    const socket = new FakeSocket();
    const conn = hub.open(socket, { addr: "127.0.0.1" });
    const send = (frame: unknown) => hub.receive(conn, JSON.stringify(frame));
    send({ type: "auth", username: "alice" });
    const frame = { type: "send", room: "general", text: "hi", ref: "k1" };
    send(frame);
    const first = await waitUntil(
      () => socket.frames.find((f) => f.type === "message" && f.ref === "k1"),
      "the message is acknowledged",
    );
    socket.frames = [];

    // Resuming after a reconnect: `join` with `since`, and the resend right after it.
    const release = Promise.withResolvers<void>();
    store.gate = release.promise;
    send({ type: "join", room: "general", since: 0 });
    send(frame);
    // Sentinels: the join waits at the store's gate, and a ping sent after the
    // resend is answered, so the resend was handled (and is waiting, if held).
    await store.reached.promise;
    send({ type: "ping" });
    await waitUntil(() => socket.frames.some((f) => f.type === "pong"), "the ping is answered");
    socket.frames = socket.frames.filter((f) => f.type !== "pong");
    assert.deepEqual(socket.frames.filter((f) => f.type !== "presence"), [], "held");
    store.gate = null;
    release.resolve();
    await waitUntil(
      () => socket.frames.some((f) => f.type === "message"),
      "the resend is answered",
    );
    const frames = socket.frames.filter((f) => f.type === "joined" || f.type === "message");
    assert.deepEqual(frames.map((f) => f.type), ["joined", "message"]);
    assert.deepEqual((frames[0] as F<"joined">).history.map((m) => m.text), ["hi"]);
    assert.deepEqual(frames[1], first, "the acknowledgement, once");
    assert.equal((await store.page("general", { limit: 10 })).messages.length, 1);
  } finally {
    hub.shutdown();
    hasher.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("server --data: a resend after kill -9 and a restart is answered with the stored message", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-resend-" });
  const args = ["--data", `${dir}/chat.db`, "--port", "0", "--host", "127.0.0.1"];
  args.push("--users", `${dir}/users.json`);
  const frame = { type: "send", room: "general", text: "deploy done", ref: "k1" };
  try {
    let first: F<"message">;
    let tokens: string[];
    {
      await using server = await spawnServer(args);
      const alice = await signIn(server.ws, "alice");
      const bob = await signIn(server.ws, "bob");
      try {
        alice.send(frame);
        // Delivered means committed: the server dies before alice reads her acknowledgement.
        first = await bob.next<F<"message">>(saying("deploy done"));
        tokens = [alice.welcome.token, bob.welcome.token];
        await server.kill("SIGKILL");
        await Promise.all([alice.waitClose(), bob.waitClose()]);
      } finally {
        await closeAll(alice, bob);
      }
    }
    await using server = await spawnServer(args);
    const alice = await signInWithToken(server.ws, tokens[0]);
    const bob = await signInWithToken(server.ws, tokens[1]);
    try {
      alice.send(frame);
      assert.deepEqual(await ackOf(alice, "k1"), { ...first, ref: "k1" });
      assert.equal(await pending(bob, "deploy done"), 0, "not delivered again");
      assert.equal(await inHistory(bob, "general", "deploy done"), 1);
    } finally {
      await closeAll(alice, bob);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("server --redis: a resend through another node is answered with the stored message, also when two nodes race", async () => {
  await using cluster = await startCluster(2);
  const [n0, n1] = cluster.nodes;
  const clients: (TestClient | undefined)[] = [];
  const keep = <T extends TestClient>(c: T) => (clients.push(c), c);
  try {
    const alice = keep(await signIn(n0.ws, "alice"));
    const bob = keep(await signIn(n1.ws, "bob"));
    const carol = keep(await signIn(n0.ws, "carol"));
    const frame = { type: "send", room: "general", text: "deploy done", ref: "k1" };
    alice.send(frame);
    await alice.close();
    const first = await bob.next<F<"message">>(saying("deploy done"));
    await carol.next(saying("deploy done"));

    const onOther = keep(await signInWithToken(n1.ws, alice.welcome.token));
    onOther.send(frame);
    assert.deepEqual(await ackOf(onOther, "k1"), { ...first, ref: "k1" });

    // The same resend on both nodes at once: one stores it, both are acknowledged.
    const onFirst = keep(await signInWithToken(n0.ws, alice.welcome.token));
    const race = { type: "send", room: "general", text: "race", ref: "k2" };
    onFirst.send(race);
    onOther.send(race);
    const [a, b] = await Promise.all([ackOf(onFirst, "k2"), ackOf(onOther, "k2")]);
    assert.deepEqual(a, b);
    assert.equal(a.id, first.id + 1);
    for (const c of [bob, carol]) {
      assert.equal((await c.next<F<"message">>(saying("race"))).id, a.id);
      assert.equal(await pending(c, "deploy done"), 0, "delivered once");
      assert.equal(await pending(c, "race"), 0, "delivered once");
    }
    for (const c of [bob, carol]) {
      assert.equal(await inHistory(c, "general", "deploy done"), 1);
      assert.equal(await inHistory(c, "general", "race"), 1);
    }
  } finally {
    await closeAll(...clients);
  }
});
