import assert from "node:assert/strict";
import type { ChatMessage } from "../protocol.ts";
import type { Draft } from "../server/store/store.ts";
import { LocalBroker } from "../server/broker/broker.ts";
import { MemoryStore } from "../server/store/memory.ts";
import { brokerContract } from "./broker_contract.ts";

brokerContract("LocalBroker", () => {
  const store = new MemoryStore({ limit: 1000 });
  const broker = new LocalBroker(store);
  return Promise.resolve({
    broker,
    [Symbol.asyncDispose]: async () => {
      await broker.close();
      await store.close();
    },
  });
});

Deno.test("LocalBroker delivers store calls in call order, whichever settles first", async () => {
  // A store whose first append settles only when told: the change after it settles at once.
  const release = Promise.withResolvers<void>();
  class SlowFirst extends MemoryStore {
    #first = true;
    override async append(draft: Draft): Promise<ChatMessage> {
      const msg = await super.append(draft);
      if (this.#first) {
        this.#first = false;
        await release.promise;
      }
      return msg;
    }
  }
  const store = new SlowFirst();
  const broker = new LocalBroker(store);
  const seen: string[] = [];
  broker.subscribe((e) => {
    if (e.kind === "message") seen.push(`message ${e.msg.seq}`);
    if (e.kind === "change") seen.push(`${e.applied.kind} ${e.applied.seq}`);
  });
  try {
    const origin = { node: "local", conn: 1 };
    const draft = { conv: "general", room: "general", from: "alice", text: "hi" };
    const sent = broker.publishMessage(draft, origin);
    const change = broker.publishChange(
      { kind: "react", conv: "general", id: 1, user: "bob", emoji: "👍", on: true },
      origin,
    );
    const refused = broker.publishChange(
      { kind: "edit", conv: "general", id: 1, user: "bob", text: "mine" },
      origin,
    );
    assert.deepEqual(await refused, { ok: false, refusal: "forbidden" });
    assert.equal((await change).ok, true);
    assert.deepEqual(seen, [], "nothing goes out before the message before it");
    release.resolve();
    await sent;
    assert.deepEqual(seen, ["message 1", "reaction 2"]);
  } finally {
    await broker.close();
    await store.close();
  }
});
