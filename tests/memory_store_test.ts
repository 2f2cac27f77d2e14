import assert from "node:assert/strict";
import { MemoryStore } from "../server/memory_store.ts";
import { storeContract } from "./store_contract.ts";

storeContract(
  "MemoryStore",
  ({ keep }) => Promise.resolve(new MemoryStore({ limit: keep ?? 1000 })),
);

Deno.test("MemoryStore keeps at most maxTotal messages, trimming the least recently written", async () => {
  const s = new MemoryStore({ limit: 100, maxTotal: 10 });
  for (let i = 0; i < 6; i++) {
    await s.append({ conv: "old", room: "old", from: "u", text: `o${i}` });
  }
  for (let i = 0; i < 6; i++) {
    await s.append({ conv: "new", room: "new", from: "u", text: `n${i}` });
  }
  const old = await s.page("old", { limit: 50 });
  const fresh = await s.page("new", { limit: 50 });
  assert.deepEqual(old.messages.map((m) => m.text), ["o2", "o3", "o4", "o5"]);
  assert.equal(fresh.messages.length, 6);
  assert.equal(
    (await s.page("old", { since: 0, limit: 50 })).gap,
    true,
    "the client learns of the trim",
  );
  const next = await s.append({ conv: "old", room: "old", from: "u", text: "o6" });
  assert.equal(next.id, 7);
  assert.deepEqual((await s.page("new", { limit: 50 })).messages.map((m) => m.text), [
    "n1",
    "n2",
    "n3",
    "n4",
    "n5",
  ]);
});
