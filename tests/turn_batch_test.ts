/** {@link TurnBatch}: the calls of one event-loop turn become one run, each caller gets its own answer. */
import assert from "node:assert/strict";
import { TurnBatch } from "../server/turn_batch.ts";

Deno.test("TurnBatch runs each turn's items once, in order, and answers each caller", async () => {
  const runs: number[][] = [];
  const batch = new TurnBatch<number, string>((items) => {
    runs.push(items);
    return Promise.resolve(items.map((n) => `#${n}`));
  });
  const first = await Promise.all([1, 2, 3].map((n) => batch.add(n)));
  assert.deepEqual(first, ["#1", "#2", "#3"]);
  // A later turn: a run of its own.
  const later = batch.add(4);
  const last = await Promise.all([later, batch.add(5)]);
  assert.deepEqual(last, ["#4", "#5"]);
  assert.deepEqual(runs, [[1, 2, 3], [4, 5]]);
  // A run that only has to be waited for.
  const done: string[][] = [];
  const writes = new TurnBatch<string>((items) => Promise.resolve(void done.push(items)));
  assert.equal(await writes.add("a"), undefined);
  assert.deepEqual(done, [["a"]]);
});

Deno.test("TurnBatch: a failed run fails every caller of its turn, and the next turn runs afresh", async () => {
  let fail = true;
  const batch = new TurnBatch<string, number>((items) =>
    fail
      ? Promise.reject(new Error(`down (${items.length})`))
      : Promise.resolve(items.map((s) => s.length))
  );
  const results = await Promise.allSettled([batch.add("a"), batch.add("bb")]);
  assert.deepEqual(results.map((r) => r.status === "rejected" && (r.reason as Error).message), [
    "down (2)",
    "down (2)",
  ]);
  fail = false;
  assert.deepEqual(await Promise.all([batch.add("ccc"), batch.add("d")]), [3, 1]);
});
