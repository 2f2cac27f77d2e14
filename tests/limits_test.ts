import assert from "node:assert/strict";
import { KeyedCounter, RoomQuota } from "../server/hub/limits.ts";
import { MemoryStore } from "../server/store/memory.ts";
import { FrameError } from "../protocol.ts";

Deno.test("KeyedCounter.add() stops at the ceiling and remove() frees a slot", () => {
  const c = new KeyedCounter();
  assert.deepEqual([c.add("a", 2), c.add("a", 2), c.add("a", 2)], [true, true, false]);
  assert.equal(c.add("b", 2), true);
  c.remove("a");
  assert.equal(c.add("a", 2), true);
  c.remove("a");
  c.remove("a");
  c.remove("a");
  assert.equal(c.get("a"), 0);
  assert.equal(c.size, 1, "keys at zero are forgotten");
});

Deno.test("RoomQuota.reserve() refuses a new room past the limit and counts creations in flight", async () => {
  const store = new MemoryStore();
  const quota = new RoomQuota(store, 2);
  const r1 = await quota.reserve("alice", "a");
  await store.join("alice", "a");
  r1();
  // Two joins of new rooms at once: only one fits.
  const [r2, r3] = await Promise.allSettled([
    quota.reserve("alice", "b"),
    quota.reserve("alice", "c"),
  ]);
  assert.equal(r2.status, "fulfilled");
  assert.equal(r3.status, "rejected");
  const err = (r3 as PromiseRejectedResult).reason;
  assert.ok(err instanceof FrameError);
  assert.equal(err.code, "limit_reached");
  assert.equal(err.message, 'Cannot create room "c": you have created 2 rooms, the most allowed');
  await store.join("alice", "b");
  (r2 as PromiseFulfilledResult<() => void>).value();
  // Existing rooms can always be joined; other users have their own count.
  (await quota.reserve("alice", "a"))();
  await store.join("bob", "x");
  (await quota.reserve("bob", "y"))();
  await assert.rejects(quota.reserve("alice", "d"), /created 2 rooms/);
});
