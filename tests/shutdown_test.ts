/**
 * Graceful shutdown: the real `chat` process on SIGINT and SIGTERM, and the
 * order of the shutdown steps in-process (the store is flushed and closed
 * last, after the hub stopped taking frames).
 */
import assert from "node:assert/strict";
import { MemoryStore } from "../server/store/memory.ts";
import type { ChatMessage, ServerFrame } from "../protocol.ts";
import type { Appended, Draft, Store } from "../server/store/store.ts";
import { closeAll, signIn, startTestServer, TestClient } from "./helpers.ts";
import { SERVE, spawnServer } from "./chat_process.ts";

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

const USERS = { alice: "alice-pass", bob: "bob-pass1" };

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.test(`main() on ${signal}: clients hear "shutdown", close 1001, and the process exits 0`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "chat-shutdown-" });
    await Deno.writeTextFile(`${dir}/users.json`, JSON.stringify(USERS));
    let alice: TestClient | undefined, bob: TestClient | undefined, anon: TestClient | undefined;
    try {
      await using proc = await spawnServer(
        ["--port", "0", "--host", "127.0.0.1", "--users", `${dir}/users.json`],
        { cwd: dir, deno: SERVE },
      );
      const ws = `ws://127.0.0.1:${proc.port}/ws`;
      alice = await signIn(ws, "alice", USERS.alice);
      bob = await signIn(ws, "bob", USERS.bob);
      anon = await TestClient.connect(ws);
      alice.send({ type: "send", room: "general", text: "before", ref: "b" });
      await alice.next((f) => f.type === "message" && f.ref === "b");
      await bob.next((f) => f.type === "message" && f.text === "before");

      const sent = Date.now();
      proc.child.kill(signal);
      for (const c of [alice, bob]) {
        const sys = await c.next<F<"system">>((f) => f.type === "system" && f.event === "shutdown");
        assert.equal(sys.event, "shutdown");
        assert.ok(!Number.isNaN(Date.parse(sys.ts)));
        const closed = await c.waitClose();
        assert.deepEqual([closed.code, closed.reason], [1001, "server shutting down"]);
      }
      assert.equal((await anon.waitClose()).code, 1001, "a socket not signed in is closed too");
      assert.equal(anon.all.length, 0, "and hears nothing");
      const status = await proc.status;
      const took = Date.now() - sent;
      assert.equal(status.code, 0, proc.lines.join("\n"));
      assert.ok(proc.lines.includes("Shutting down…"), proc.lines.join("\n"));
      assert.ok(proc.lines.includes("Stopped"), "the whole shutdown ran, not the 5 s fallback");
      assert.ok(!proc.lines.some((l) => l.startsWith("error:")), proc.lines.join("\n"));
      // deno-lint-ignore no-console
      console.log(`  ${signal}: exited 0 after ${took} ms`);
      // Nothing listens any more.
      await assert.rejects(
        TestClient.connect(ws).then((c) => c.close()),
        /Could not connect/,
      );
    } finally {
      await closeAll(alice, bob, anon);
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/** A MemoryStore that records the order of appends and close, and refuses work once closed. */
class RecordingStore extends MemoryStore implements Store {
  events: string[] = [];
  #closed = false;

  override async append(draft: Draft): Promise<ChatMessage> {
    if (this.#closed) {
      this.events.push("append-after-close");
      throw new Error("Store is closed");
    }
    // Durable a little later, like a disk write.
    await new Promise((r) => setTimeout(r, 1));
    const msg = await super.append(draft);
    this.events.push(`append ${msg.text}`);
    return msg;
  }

  override async appendOnce(draft: Draft & { ref: string }): Promise<Appended> {
    if (this.#closed) {
      this.events.push("append-after-close");
      throw new Error("Store is closed");
    }
    await new Promise((r) => setTimeout(r, 1));
    const result = await super.appendOnce(draft);
    if (result.fresh) this.events.push(`append ${result.msg.text}`);
    return result;
  }

  override async close(): Promise<void> {
    this.events.push("close");
    this.#closed = true;
    await super.close();
  }
}

Deno.test("ChatServer.shutdown() closes the store once, last, after the hub stopped taking frames", async () => {
  const store = new RecordingStore();
  const t = await startTestServer({ users: USERS, store, args: ["--burst", "500"] });
  let closed = false;
  const alice = await signIn(t.ws, "alice", USERS.alice);
  try {
    const acked: string[] = [];
    alice.ws.addEventListener("message", (e) => {
      for (const line of String(e.data).split("\n")) {
        const f = JSON.parse(line);
        if (f.type === "message" && f.ref) acked.push(f.text);
      }
    });
    for (let i = 0; i < 100; i++) {
      alice.send({ type: "send", room: "general", text: `m${i}`, ref: `r${i}` });
    }
    await alice.next((f) => f.type === "message" && f.text === "m10");
    await t.close();
    closed = true;
    await alice.waitClose();
    assert.equal(store.events.filter((e) => e === "close").length, 1);
    assert.equal(store.events.at(-1), "close", store.events.slice(-5).join(", "));
    assert.ok(!store.events.includes("append-after-close"));
    // Every message acknowledged to the sender was stored.
    const kept = new Set(
      store.events.filter((e) => e.startsWith("append ")).map((e) => e.slice(7)),
    );
    for (const text of acked) {
      assert.ok(kept.has(text), `"${text}" was acknowledged but not stored`);
    }
    assert.ok(acked.length >= 11);
  } finally {
    await alice.close();
    if (!closed) await t.close();
  }
});
