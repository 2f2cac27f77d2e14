import assert from "node:assert/strict";
import { Batch, Outbox, type Sink, type Socket } from "../server/hub/outbox.ts";

/** A socket that records what it is sent; `buffered` plays the kernel's backlog. */
class RecordingSocket implements Socket {
  readyState = 1;
  buffered = 0;
  sent: string[] = [];
  closed: [number | undefined, string | undefined] | null = null;
  get bufferedAmount(): number {
    return this.buffered;
  }
  send(data: string): void {
    this.sent.push(data);
  }
  close(code?: number, reason?: string): void {
    this.closed = [code, reason];
    this.readyState = 3;
  }
}

function sink(): Sink & { socket: RecordingSocket } {
  return { socket: new RecordingSocket(), pending: null };
}

/** A scheduler the test runs by hand: `tick()` runs what is due. */
function manual() {
  let due: (() => void) | null = null;
  return {
    schedule(fn: () => void) {
      due = fn;
      return () => (due = null);
    },
    tick() {
      const fn = due;
      due = null;
      fn?.();
    },
    get pending() {
      return due !== null;
    },
  };
}

Deno.test("Outbox.push() sends at once when idle, then batches until a tick finds nothing", () => {
  const clock = manual();
  const outbox = new Outbox({ schedule: clock.schedule });
  const a = sink();
  outbox.push(a, "1");
  assert.deepEqual(a.socket.sent, ["1"], "the first frame leaves at once");
  outbox.push(a, "2");
  outbox.push(a, "3");
  assert.deepEqual(a.socket.sent, ["1"], "later frames wait for the tick");
  clock.tick();
  assert.deepEqual(a.socket.sent, ["1", "2\n3"], "one frame, one message per line, in order");
  outbox.push(a, "4");
  assert.deepEqual(a.socket.sent, ["1", "2\n3"], "still batching: the last tick had work");
  clock.tick();
  assert.deepEqual(a.socket.sent, ["1", "2\n3", "4"]);
  clock.tick();
  assert.equal(clock.pending, false, "a tick that found nothing ends batching");
  outbox.push(a, "5");
  assert.deepEqual(a.socket.sent, ["1", "2\n3", "4", "5"], "idle again: sent at once");
  outbox.close();
});

Deno.test("Outbox.fanout() shares one batch between members with the same pending frames", () => {
  const clock = manual();
  const outbox = new Outbox({ schedule: clock.schedule });
  const sender = sink(), b = sink(), c = sink(), d = sink();
  const room = [sender, b, c, d];
  outbox.fanout(room, "m0", sender);
  for (let i = 1; i <= 5; i++) outbox.fanout(room, `m${i}`, sender);
  outbox.push(d, "private");
  assert.equal(b.pending, c.pending, "b and c point at the same trie node");
  assert.notEqual(b.pending, d.pending, "d has one more frame");
  assert.equal(d.pending!.parent, b.pending, "d's queue extends the shared one");
  const shared = b.pending!.text;
  assert.equal(shared, c.pending!.text);
  clock.tick();
  assert.deepEqual(b.socket.sent, ["m0", "m1\nm2\nm3\nm4\nm5"]);
  assert.deepEqual(c.socket.sent, b.socket.sent);
  assert.deepEqual(d.socket.sent, ["m0", "m1\nm2\nm3\nm4\nm5\nprivate"]);
  assert.deepEqual(sender.socket.sent, [], "the skipped sink gets nothing");
  outbox.close();
});

Deno.test("Batch.then() returns the same node for the same frame and builds text once", () => {
  const root = Batch.root();
  const x = root.then("a").then("b");
  assert.equal(root.then("a").then("b"), x);
  assert.notEqual(root.then("a").then("c"), x, "a sibling is another node");
  assert.equal(root.then("a").then("c").parent, x.parent);
  assert.equal(x.count, 2);
  assert.equal(x.size, "a\nb".length);
  assert.equal(x.text, "a\nb");
});

Deno.test("Outbox caps a batch by frames and by size, keeping order", async (t) => {
  await t.step("frames", () => {
    const clock = manual();
    const outbox = new Outbox({ schedule: clock.schedule, maxBatchFrames: 3 });
    const a = sink();
    for (let i = 0; i < 8; i++) outbox.push(a, String(i));
    clock.tick();
    assert.deepEqual(a.socket.sent, ["0", "1\n2\n3", "4\n5\n6", "7"]);
    outbox.close();
  });
  await t.step("size", () => {
    const clock = manual();
    const outbox = new Outbox({ schedule: clock.schedule, maxBatchSize: 10 });
    const a = sink();
    for (const text of ["x", "aaaa", "bbbb", "cccc", "dddddddddddd"]) outbox.push(a, text);
    clock.tick();
    assert.deepEqual(a.socket.sent, ["x", "aaaa\nbbbb", "cccc", "dddddddddddd"]);
    assert.ok(a.socket.sent.every((s) => s.length <= 10 || !s.includes("\n")));
    outbox.close();
  });
});

Deno.test("Outbox cuts a slow consumer counting the batched bytes", () => {
  const clock = manual();
  const slow: Sink[] = [];
  const outbox = new Outbox({
    schedule: clock.schedule,
    maxBuffered: 100,
    onSlow: (s) => slow.push(s),
  });
  const a = sink(), b = sink();
  outbox.fanout([a, b], "x".repeat(40));
  a.socket.buffered = 40;
  b.socket.buffered = 40;
  // Each frame alone fits under the bound; the batch of two does not for a.
  outbox.fanout([a, b], "y".repeat(30));
  outbox.fanout([a, b], "z".repeat(30));
  b.socket.buffered = 0;
  clock.tick();
  assert.deepEqual(slow, [a], "a would have buffered 40 + 61 bytes");
  assert.deepEqual(a.socket.sent, ["x".repeat(40)]);
  assert.deepEqual(b.socket.sent, ["x".repeat(40), `${"y".repeat(30)}\n${"z".repeat(30)}`]);
  outbox.close();
});

Deno.test("Outbox.discard() drops a sink's queue and closed sockets get nothing", () => {
  const clock = manual();
  const outbox = new Outbox({ schedule: clock.schedule });
  const a = sink(), b = sink();
  outbox.fanout([a, b], "1");
  outbox.fanout([a, b], "2");
  outbox.discard(a);
  b.socket.readyState = 3;
  clock.tick();
  assert.deepEqual(a.socket.sent, ["1"]);
  assert.deepEqual(b.socket.sent, ["1"]);
  outbox.close();
});

Deno.test("Outbox flushes on the default scheduler after the current task", async () => {
  const outbox = new Outbox();
  const a = sink();
  try {
    outbox.push(a, "1");
    outbox.push(a, "2");
    outbox.push(a, "3");
    assert.deepEqual(a.socket.sent, ["1"]);
    // One timer turn is the point of this test, not a guess: the default
    // scheduler must flush after the current task, and no later.
    await new Promise((r) => setTimeout(r, 0));
    assert.deepEqual(a.socket.sent, ["1", "2\n3"]);
  } finally {
    outbox.close();
  }
});

Deno.test("Outbox keeps per-connection order across shared and personal frames", () => {
  const clock = manual();
  const box = new Outbox({ schedule: clock.schedule });
  const a = sink(), b = sink(), c = sink();
  box.push(a, "warmup");
  box.fanout([a, b, c], "1");
  box.push(b, "only-b");
  box.fanout([a, b, c], "2", c);
  box.push(c, "2+ref");
  clock.tick();
  assert.deepEqual(a.socket.sent, ["warmup", "1\n2"]);
  assert.deepEqual(b.socket.sent, ["1\nonly-b\n2"]);
  assert.deepEqual(c.socket.sent, ["1\n2+ref"]);
  box.close();
});

Deno.test("Outbox sends one frame larger than maxBuffered to a socket with nothing buffered", () => {
  const clock = manual();
  const slow: Sink[] = [];
  const outbox = new Outbox({
    schedule: clock.schedule,
    maxBuffered: 1024,
    onSlow: (s) => slow.push(s),
  });
  const a = sink();
  const big = "x".repeat(5000);
  outbox.push(a, big);
  assert.deepEqual(a.socket.sent, [big], "a large reply to an idle socket goes out");
  assert.deepEqual(slow, []);
  // Once something is buffered, the backlog rule applies again.
  a.socket.buffered = 5000;
  outbox.push(a, "next");
  clock.tick();
  assert.deepEqual(slow, [a], "a backlog past maxBuffered is a slow consumer");
  assert.equal(outbox.replyBytes, 256, "replies are bounded to a quarter of maxBuffered");
});
