/**
 * The contract every {@link Broker} keeps, seen from one node. Each broker's
 * test calls {@link brokerContract} with a factory (hono's
 * `runTest({ newRouter })` shape, as `store_contract.ts` does for stores).
 *
 * Every check waits for a condition: a check that nothing arrived waits for
 * a sentinel event published after it instead.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Broker, BrokerEvent, ChatMessageEvent, Origin } from "../server/broker/broker.ts";
import type { Draft } from "../server/store/store.ts";
import { conversationKey } from "../protocol.ts";
import { waitUntil } from "./helpers.ts";

/** A broker on a fresh, empty backend; disposing it closes the broker, then its backend. */
export type BrokerFixture = { broker: Broker } & AsyncDisposable;

/** Opens a broker on a fresh, empty backend. */
export type OpenBroker = () => Promise<BrokerFixture>;

/** Every event the broker delivers to this node, in delivery order. */
export class Received {
  readonly events: BrokerEvent[] = [];

  /** Subscribes to `broker`. */
  constructor(broker: Broker) {
    broker.subscribe((e) => this.events.push(e));
  }

  /** Waits until `n` events have arrived, and returns them. */
  async count(n: number): Promise<BrokerEvent[]> {
    await waitUntil(() => this.events.length >= n, `${n} events arrived`);
    return this.events;
  }

  /**
   * Publishes a sentinel through `broker` and waits for it: everything
   * published before it has arrived by then. Returns what arrived before it.
   */
  async settle(broker: Broker): Promise<BrokerEvent[]> {
    const sentinel: BrokerEvent = { kind: "signout", user: "~", session: crypto.randomUUID() };
    await broker.publish(sentinel);
    await waitUntil(
      () => this.events.some((e) => e.kind === "signout" && e.session === sentinel.session),
      "the sentinel arrived",
    );
    return this.events.filter((e) => !(e.kind === "signout" && e.session === sentinel.session));
  }
}

/** A room message from `from`. */
export function said(room: string, from: string, text: string): Draft {
  return { conv: room, room, from, text };
}

/** A direct message from `from` to `to`. */
export function whispered(from: string, to: string, text: string): Draft {
  return { conv: conversationKey(from, { to }), to, from, text };
}

/** One event of every kind but messages, each with every field it may carry. */
export function everyKind(origin: Origin): BrokerEvent[] {
  const ts = "2025-01-02T03:04:05.678Z";
  return [
    { kind: "typing", conv: "general", room: "general", user: "alice", active: true },
    { kind: "typing", conv: "@alice:bob", to: "bob", user: "alice", active: false },
    { kind: "member", user: "alice", room: "general", joined: true, ts, since: 7, origin },
    { kind: "member", user: "alice", room: "general", joined: false, ts },
    { kind: "read", user: "bob", conv: "general", room: "general", id: 3, origin },
    { kind: "read", user: "bob", conv: "@alice:bob", to: "alice", id: 1 },
    { kind: "signout", user: "alice", session: "s1" },
    { kind: "passwd", user: "alice", session: "s2", fingerprint: "f00d" },
    { kind: "topic", room: "general", topic: "Ship it", user: "bob", ts },
    { kind: "topic", room: "general", topic: "", user: "bob", ts },
  ];
}

/** Registers the contract tests for one broker. */
export function brokerContract(name: string, open: OpenBroker): void {
  const test = (what: string, fn: (broker: Broker) => Promise<void>) =>
    Deno.test(`${name} ${what}`, async () => {
      await using fixture = await open();
      await fn(fixture.broker);
    });

  test("publishMessage() delivers the stored message to this node with its origin", async (b) => {
    const got = new Received(b);
    const origin = { node: b.node, conn: 1 };
    const room = await b.publishMessage(said("general", "alice", "hi"), origin);
    const dm = await b.publishMessage(whispered("alice", "bob", "psst"), origin);
    assert.equal(room.fresh, true);
    assert.equal(dm.fresh, true);
    assert.deepEqual(
      [room.msg, dm.msg].map(({ ts: _, ...m }) => m),
      [
        { id: 1, seq: 1, room: "general", from: "alice", text: "hi" },
        { id: 1, seq: 1, to: "bob", from: "alice", text: "psst" },
      ],
    );
    const expected: ChatMessageEvent[] = [
      { kind: "message", conv: "general", msg: room.msg, origin },
      { kind: "message", conv: "@alice:bob", msg: dm.msg, origin },
    ];
    assert.deepEqual(await got.settle(b), expected);
  });

  test("publishMessage() delivers each conversation's messages in id order", async (b) => {
    const got = new Received(b);
    const drafts = Array.from(
      { length: 60 },
      (_, i) => i % 3 === 2 ? whispered("bob", "alice", `d${i}`) : said(`r${i % 3}`, "u", `m${i}`),
    );
    // All at once, as many connections sending together would.
    const sent = await Promise.all(
      drafts.map((d, i) => b.publishMessage(d, { node: b.node, conn: i, ref: `k${i}` })),
    );
    const events = await got.settle(b);
    assert.equal(events.length, 60);
    for (const conv of ["r0", "r1", "@alice:bob"]) {
      const ids = events.filter((e) => e.kind === "message" && e.conv === conv)
        .map((e) => (e as ChatMessageEvent).msg.id);
      assert.deepEqual(ids, Array.from({ length: 20 }, (_, i) => i + 1), conv);
    }
    // Each delivery is the message its sender was answered with.
    const byRef = new Map(events.map((e) => [(e as ChatMessageEvent).origin?.ref, e]));
    sent.forEach((s, i) => {
      assert.equal(s.fresh, true);
      assert.deepEqual(byRef.get(`k${i}`), {
        kind: "message",
        conv: drafts[i].conv,
        msg: s.msg,
        origin: { node: b.node, conn: i, ref: `k${i}` },
      });
    });
  });

  test("publishMessage() answers a resend with the stored message and delivers nothing", async (b) => {
    const got = new Received(b);
    const origin = { node: b.node, conn: 1, ref: "k1" };
    const first = await b.publishMessage(said("general", "alice", "hi"), origin);
    const again = await b.publishMessage(said("general", "alice", "hi"), { ...origin, conn: 2 });
    assert.equal(first.fresh, true);
    assert.equal(again.fresh, false);
    assert.deepEqual(again.msg, first.msg);
    assert.deepEqual(await got.settle(b), [
      { kind: "message", conv: "general", msg: first.msg, origin },
    ]);
  });

  test("publish() delivers every kind of event to this node, unchanged and in call order", async (b) => {
    const got = new Received(b);
    const events = everyKind({ node: b.node, conn: 4 });
    await Promise.all(events.map((e) => b.publish(e)));
    assert.deepEqual(await got.count(events.length), events);
    assert.deepEqual(await got.settle(b), events, "nothing more");
  });

  test("publish() delivers after the messages whose publishMessage() resolved", async (b) => {
    const got = new Received(b);
    const origin = { node: b.node, conn: 1 };
    const member: BrokerEvent = {
      kind: "member",
      user: "bob",
      room: "general",
      joined: true,
      ts: "2025-01-02T03:04:05.678Z",
    };
    const one = await b.publishMessage(said("general", "alice", "one"), origin);
    await b.publish(member);
    const two = await b.publishMessage(said("general", "alice", "two"), origin);
    assert.deepEqual(await got.settle(b), [
      { kind: "message", conv: "general", msg: one.msg, origin },
      member,
      { kind: "message", conv: "general", msg: two.msg, origin },
    ]);
  });

  test("subscribe() replaces the handler", async (b) => {
    const first = new Received(b);
    const second = new Received(b);
    const event: BrokerEvent = { kind: "signout", user: "alice", session: "s1" };
    await b.publish(event);
    assert.deepEqual(await second.settle(b), [event]);
    assert.deepEqual(first.events, []);
  });

  test("online() and offline() report each change once, naming the user", async (b) => {
    const changes: (string | undefined)[] = [];
    b.onPresence((user) => changes.push(user));
    assert.equal(b.isOnline("alice"), false);
    b.online("alice");
    b.online("alice");
    b.online("bob");
    assert.deepEqual(changes, ["alice", "bob"]);
    assert.equal(b.isOnline("alice"), true);
    assert.deepEqual([...b.onlineUsers()].sort(), ["alice", "bob"]);
    b.offline("alice");
    b.offline("alice");
    b.offline("carol");
    assert.deepEqual(changes, ["alice", "bob", "alice"]);
    assert.equal(b.isOnline("alice"), false);
    assert.deepEqual([...b.onlineUsers()], ["bob"]);
    // Presence does not travel as events.
    assert.deepEqual(await new Received(b).settle(b), []);
  });

  test("status is ok while the broker runs", (b) => {
    assert.equal(b.status, "ok");
    return Promise.resolve();
  });

  test("close() stops delivery and may be called again", async (b) => {
    const got = new Received(b);
    const before: BrokerEvent = { kind: "signout", user: "alice", session: "s1" };
    await b.publish(before);
    await got.count(1);
    await b.close();
    // Nothing can arrive once close() resolved: publishing is no sentinel any more.
    await b.publish({ kind: "signout", user: "alice", session: "s2" }).catch(() => {});
    await b.publishMessage(said("general", "alice", "late"), { node: b.node, conn: 1 })
      .catch(() => {});
    assert.deepEqual(got.events, [before]);
    await b.close();
  });
}
