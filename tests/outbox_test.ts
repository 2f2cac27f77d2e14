import assert from "node:assert/strict";
import { Batch, Outbox, type Sink, type Socket } from "../server/outbox.ts";

class FakeSocket implements Socket {
  readyState = 1;
  bufferedAmount = 0;
  sent: string[] = [];
  closed: [number | undefined, string | undefined] | null = null;
  send(data: string) {
    this.sent.push(data);
  }
  close(code?: number, reason?: string) {
    this.closed = [code, reason];
    this.readyState = 3;
  }
}

function sink(): Sink & { socket: FakeSocket } {
  return { socket: new FakeSocket(), pending: null };
}

function manual() {
  const queue: (() => void)[] = [];
  return {
    schedule: (fn: () => void) => {
      queue.push(fn);
      return () => {
        const i = queue.indexOf(fn);
        if (i !== -1) queue.splice(i, 1);
      };
    },
    run() {
      const fns = queue.splice(0);
      for (const f of fns) f();
    },
    get pending() {
      return queue.length;
    },
  };
}

Deno.test("Outbox.fanout() sends at once when idle, then batches a burst into one frame", () => {
  const clock = manual();
  const box = new Outbox({ schedule: clock.schedule });
  const a = sink(), b = sink();
  box.fanout([a, b], "m1");
  assert.deepEqual(a.socket.sent, ["m1"]);
  box.fanout([a, b], "m2");
  box.fanout([a, b], "m3");
  assert.deepEqual(a.socket.sent, ["m1"], "queued while batching");
  clock.run();
  assert.deepEqual(a.socket.sent, ["m1", "m2\nm3"]);
  assert.deepEqual(b.socket.sent, ["m1", "m2\nm3"]);
  assert.equal(a.socket.sent[1], b.socket.sent[1]);
  assert.equal(clock.pending, 1, "one more tick decides whether the backlog lasts");
  clock.run();
  assert.equal(clock.pending, 0);
  box.fanout([a], "m4");
  assert.deepEqual(a.socket.sent.at(-1), "m4", "idle again: sent at once");
  box.close();
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
  clock.run();
  assert.deepEqual(a.socket.sent, ["warmup", "1\n2"]);
  assert.deepEqual(b.socket.sent, ["1\nonly-b\n2"]);
  assert.deepEqual(c.socket.sent, ["1\n2+ref"]);
  box.close();
});

Deno.test("Batch.then() shares one node per sequence and builds its text once", () => {
  const root = Batch.root();
  const x = root.then("a").then("b");
  const y = root.then("a").then("b");
  assert.equal(x, y);
  assert.equal(x.text, "a\nb");
  assert.equal(x.count, 2);
  assert.equal(x.size, 3);
  assert.notEqual(root.then("a").then("c"), x);
});

Deno.test("Outbox sends a full batch early, capped by frames and size", () => {
  const clock = manual();
  const box = new Outbox({ schedule: clock.schedule, maxBatchFrames: 3, maxBatchSize: 1000 });
  const a = sink();
  box.push(a, "x");
  for (let i = 0; i < 7; i++) box.push(a, `m${i}`);
  assert.deepEqual(a.socket.sent, ["x", "m0\nm1\nm2", "m3\nm4\nm5"]);
  clock.run();
  assert.deepEqual(a.socket.sent.at(-1), "m6");
  box.close();
});

Deno.test("Outbox cuts off a slow consumer and leaves the others alone", () => {
  const clock = manual();
  const slow: Sink[] = [];
  const box = new Outbox({
    schedule: clock.schedule,
    maxBuffered: 100,
    onSlow: (s) => slow.push(s),
  });
  const a = sink(), stuck = sink();
  stuck.socket.bufferedAmount = 95;
  box.fanout([a, stuck], "0123456789");
  assert.deepEqual(slow, [stuck]);
  assert.deepEqual(a.socket.sent, ["0123456789"]);
  assert.deepEqual(stuck.socket.sent, []);
  box.close();
});

Deno.test("Outbox skips sockets that are not open", () => {
  const clock = manual();
  const box = new Outbox({ schedule: clock.schedule });
  const a = sink();
  a.socket.readyState = 2;
  box.push(a, "x");
  assert.deepEqual(a.socket.sent, []);
  box.close();
});
