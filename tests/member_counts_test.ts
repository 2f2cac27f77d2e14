/**
 * {@link MemberCounts}: when a large room's coalesced count goes out. A count
 * costs a frame per connection, so a room's interval grows with the
 * connections it has on the node (0.5 ms each, between 1 s and 10 s).
 */
import assert from "node:assert/strict";
import { MemberCounts } from "../server/hub/member_counts.ts";

Deno.test("MemberCounts: each room waits its own interval, longer for rooms with thousands connected", () => {
  const counts = new MemberCounts(100);
  const conns: Record<string, number> = { small: 10, big: 5000, huge: 100_000 };
  const size = (room: string) => conns[room] ?? 0;
  assert.deepEqual(
    [10, 2000, 5000, 20_000, 100_000].map((n) => counts.intervalFor(n)),
    [1000, 1000, 2500, 10_000, 10_000],
  );
  // Nothing changed: nothing goes out.
  assert.deepEqual(counts.take(0, size), []);
  // A room's first count goes out at once, every room on its own.
  for (const room of ["small", "big", "huge"]) counts.note(room);
  assert.deepEqual(counts.take(0, size), ["small", "big", "huge"]);
  for (const room of ["small", "big", "huge"]) counts.note(room);
  assert.deepEqual(counts.take(999, size), []);
  assert.deepEqual(counts.take(1000, size), ["small"]);
  assert.deepEqual(counts.take(2499, size), []);
  assert.deepEqual(counts.take(2500, size), ["big"]);
  assert.deepEqual(counts.take(9999, size), []);
  assert.deepEqual(counts.take(10_000, size), ["huge"]);
  // Many changes between two counts: one count.
  for (let i = 0; i < 50; i++) counts.note("small");
  assert.deepEqual(counts.take(11_000, size), ["small"]);
  assert.deepEqual(counts.take(12_000, size), []);
  // A room that grew since its last count waits its new interval.
  conns.small = 8000;
  counts.note("small");
  assert.deepEqual(counts.take(14_999, size), []);
  assert.deepEqual(counts.take(15_000, size), ["small"]);
  // A renamed room's pending count follows it, with its last send time: it waits
  // out the room's interval under its new name, and a new room of the old name does not.
  const renamed = new MemberCounts(100);
  const big = () => 5000;
  renamed.note("big");
  assert.deepEqual(renamed.take(0, big), ["big"]);
  renamed.note("big");
  renamed.moved("big", "bigger");
  renamed.note("big");
  assert.deepEqual(renamed.take(2499, big), ["big"]);
  assert.deepEqual(renamed.take(2500, big), ["bigger"]);
});

Deno.test("MemberCounts: send times are forgotten once they can hold nothing back", () => {
  const counts = new MemberCounts(100);
  const size = () => 100_000;
  // Rooms counted once each, long ago: a later change in any goes out at once.
  for (let i = 0; i < 1000; i++) counts.note(`r${i}`);
  assert.equal(counts.take(0, size).length, 1000);
  assert.equal(counts.remembered, 1000);
  counts.note("r1");
  assert.deepEqual(counts.take(10_000, size), ["r1"]);
  assert.equal(counts.remembered, 1, "the other 999 rooms are forgotten");
  counts.note("r2");
  assert.deepEqual(counts.take(10_001, size), ["r2"]);
  counts.note("r2");
  assert.deepEqual(counts.take(20_000, size), [], "r2 was counted at 10,001");
  assert.deepEqual(counts.take(20_001, size), ["r2"]);
});
