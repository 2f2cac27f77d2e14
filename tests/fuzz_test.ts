/**
 * Property-based fuzzing (npm:fast-check) of the protocol parser and the hub.
 *
 * Random, structured and mutated frame sequences from several users go to a
 * real {@link Hub} (with in-memory sockets, for speed) and to a real server
 * over WebSockets. After every step the {@link Observer} checks what each
 * socket received:
 *
 * - the hub never throws and logs no internal error;
 * - every frame the parser rejects gets an `error` with the parser's code and message;
 * - a socket that has not signed in receives nothing but `error` frames;
 * - a direct message (or DM typing) never reaches a third user;
 * - room messages and typing reach a socket only while it is in the room;
 * - message ids of every conversation only go up, with no repeats;
 * - every server frame is valid JSON of a known type; close codes and
 *   reasons are well-formed.
 *
 * `FUZZ_RUNS` sets the number of sequences (`deno task fuzz` runs many more);
 * `FUZZ_SEED` replays a failure.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { Auth } from "../server/auth/auth.ts";
import { LocalBroker } from "../server/broker/broker.ts";
import { type Conn, Hub } from "../server/hub/hub.ts";
import { memoryLogger } from "../server/log.ts";
import { MemoryStore } from "../server/store/memory.ts";
import type { Socket } from "../server/hub/outbox.ts";
import { PasswordHasher } from "../server/auth/password.ts";
import {
  type ChatMessage,
  type ErrorCode,
  FrameError,
  parseClientFrame,
  type ServerFrame,
  splitFrames,
} from "../protocol.ts";
import { startTestServer, TestClient, waitUntil } from "./helpers.ts";

const RUNS = Number(Deno.env.get("FUZZ_RUNS") ?? 40);
const SEED = Deno.env.get("FUZZ_SEED") ? Number(Deno.env.get("FUZZ_SEED")) : undefined;
const MAX_TEXT = 256;

const PASSWORDS: Record<string, string> = {
  alice: "alice-pass",
  bob: "bob-pass1",
  carol: "carol-pass",
  dave: "dave-pass1",
};
const USERS = Object.keys(PASSWORDS);
const ERROR_CODES = new Set<ErrorCode>([
  "bad_request",
  "auth_failed",
  "not_authenticated",
  "name_taken",
  "too_large",
  "rate_limited",
  "limit_reached",
  "unknown_room",
  "unknown_user",
  "unavailable",
  "signup_disabled",
]);
const SERVER_TYPES = new Set([
  "welcome",
  "message",
  "joined",
  "left",
  "system",
  "typing",
  "presence",
  "rooms",
  "history",
  "read",
  "search",
  "pong",
  "error",
]);

// ---------------------------------------------------------------------------
// Arbitraries

const userName = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...USERS) },
  { weight: 1, arbitrary: fc.constantFrom("mallory", "erin", "") },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
);
const roomName = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom("general", "ops", "dev", "r-1") },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
);
const text = fc.oneof(
  { weight: 6, arbitrary: fc.string({ minLength: 1, maxLength: 40 }) },
  { weight: 1, arbitrary: fc.constantFrom(" ", "", "\u0000", "é😀", "x".repeat(MAX_TEXT + 1)) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 100 }) },
);
const id = fc.oneof(fc.nat(60), fc.constantFrom(-1, 1.5, 2 ** 60, "3"));
const ref = fc.option(fc.oneof(fc.string({ maxLength: 8 }), fc.constant("r".repeat(65))), {
  nil: undefined,
});
const target = fc.oneof(
  fc.record({ room: roomName }),
  fc.record({ to: userName }),
  fc.record({ room: roomName, to: userName }),
  fc.constant({}),
);

/** Frames shaped like the protocol's, often valid, sometimes a little off. */
const frameObject: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.record({
    type: fc.constant("auth"),
    username: userName,
    password: fc.oneof(fc.constantFrom(...Object.values(PASSWORDS)), fc.string({ maxLength: 12 })),
  }),
  fc.record({
    type: fc.constant("auth"),
    token: fc.constantFrom("$alice", "$bob", "$carol", "$expired", "$tampered", "v1.x.y", ""),
  }),
  fc.record({ type: fc.constant("register"), username: userName, password: fc.string() }),
  fc.record({
    type: fc.constant("join"),
    room: roomName,
    since: fc.option(id, { nil: undefined }),
  }),
  fc.record({ type: fc.constant("leave"), room: roomName }),
  fc.record({ type: fc.constantFrom("rooms", "ping") }),
  fc.tuple(target, text, ref).map(([t, text, ref]) => ({ type: "send", ...t, text, ref })),
  fc.tuple(target, fc.oneof(fc.boolean(), fc.constant("yes"))).map(([t, active]) => ({
    type: "typing",
    ...t,
    active,
  })),
  fc.tuple(target, fc.option(id, { nil: undefined }), fc.option(id, { nil: undefined })).map((
    [t, before, limit],
  ) => ({ type: "history", ...t, before, limit })),
  fc.tuple(target, id).map(([t, id]) => ({ type: "read", ...t, id })),
  fc.record({
    type: fc.constant("search"),
    q: text,
    room: fc.option(roomName, { nil: undefined }),
  }),
);

const knownUser = fc.constantFrom(...USERS);
const knownRoom = fc.constantFrom("general", "ops", "dev", "r-1");
const goodTarget = fc.oneof(fc.record({ room: knownRoom }), fc.record({ to: knownUser }));
const goodText = fc.string({ minLength: 1, maxLength: 40 }).filter((t) => t.trim() !== "");
const goodRef = fc.option(fc.string({ maxLength: 8 }), { nil: undefined });

/** Frames that follow the protocol (they may still be refused: rooms not joined, and so on). */
const validFrame: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.tuple(goodTarget, goodText, goodRef).map(([t, text, ref]) => ({
      type: "send",
      ...t,
      text,
      ref,
    })),
  },
  { weight: 3, arbitrary: fc.record({ type: fc.constant("join"), room: knownRoom }) },
  {
    weight: 1,
    arbitrary: fc.record({ type: fc.constant("join"), room: knownRoom, since: fc.nat(30) }),
  },
  { weight: 1, arbitrary: fc.record({ type: fc.constant("leave"), room: knownRoom }) },
  {
    weight: 2,
    arbitrary: fc.tuple(goodTarget, fc.boolean()).map(([t, active]) => ({
      type: "typing",
      ...t,
      active,
    })),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(goodTarget, fc.nat(30)).map(([t, before]) => ({
      type: "history",
      ...t,
      before,
    })),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(goodTarget, fc.nat(30)).map(([t, id]) => ({ type: "read", ...t, id })),
  },
  {
    weight: 1,
    arbitrary: fc.record({ type: fc.constant("search"), q: fc.constantFrom("a", "hello", "x y") }),
  },
  { weight: 1, arbitrary: fc.record({ type: fc.constantFrom("rooms", "ping") }) },
);

/** A frame object with one field replaced by an arbitrary JSON value. */
const fieldMutated = fc.tuple(frameObject, fc.nat(), fc.jsonValue({ maxDepth: 2 })).map(
  ([o, i, v]) => {
    const keys = Object.keys(o);
    return { ...o, [keys[i % keys.length]]: v };
  },
);

/** Character-level damage to a frame's JSON text. */
const textMutated = fc.tuple(
  frameObject.map((o) => JSON.stringify(o)),
  fc.array(
    fc.tuple(fc.constantFrom("del", "ins", "dup", "cut"), fc.nat(), fc.string({ maxLength: 3 })),
    {
      minLength: 1,
      maxLength: 3,
    },
  ),
).map(([s, edits]) => {
  for (const [op, at, str] of edits) {
    const i = s.length === 0 ? 0 : at % s.length;
    if (op === "del") s = s.slice(0, i) + s.slice(i + 1);
    else if (op === "ins") s = s.slice(0, i) + str + s.slice(i);
    else if (op === "dup") s = s.slice(0, i) + s.slice(i, i + 8) + s.slice(i);
    else s = s.slice(0, i);
  }
  return s;
});

/** What a client may put in one WebSocket message. */
const wireData: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  { weight: 12, arbitrary: validFrame.map((o) => JSON.stringify(o)) },
  { weight: 5, arbitrary: frameObject.map((o) => JSON.stringify(o)) },
  { weight: 2, arbitrary: fieldMutated.map((o) => JSON.stringify(o)) },
  { weight: 2, arbitrary: textMutated },
  { weight: 1, arbitrary: fc.json({ maxDepth: 2 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 8 }) },
);

const CONNS = 6;
type Command =
  | { kind: "frame"; conn: number; data: string | Uint8Array }
  | { kind: "burst"; conn: number; data: (string | Uint8Array)[] }
  | { kind: "signin"; conn: number; user: string }
  | { kind: "tick"; ms: number }
  | { kind: "close"; conn: number };

const command: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 12,
    arbitrary: fc.record({
      kind: fc.constant("frame" as const),
      conn: fc.nat(CONNS - 1),
      data: wireData,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("burst" as const),
      conn: fc.nat(CONNS - 1),
      data: fc.array(wireData, { minLength: 2, maxLength: 6 }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("signin" as const),
      conn: fc.nat(CONNS - 1),
      user: fc.constantFrom(...USERS),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("tick" as const),
      ms: fc.integer({ min: 0, max: 8000 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("close" as const), conn: fc.nat(CONNS - 1) }),
  },
);

// ---------------------------------------------------------------------------
// The invariants

/** What one socket has seen, and the checks on it. */
class View {
  user: string | null = null;
  rooms = new Set<string>();
  /** Highest message id seen per conversation (room, or sorted DM pair). */
  last = new Map<string, number>();
  errors: Extract<ServerFrame, { type: "error" }>[] = [];
  frames = 0;
  closedBy: { code: number; reason: string } | null = null;
  /** Broken invariants; checked by the test after every step (throwing here would land in the hub). */
  violations: string[] = [];

  constructor(readonly name: string) {}

  /** Throws if any invariant was broken so far. */
  assertOk(): void {
    if (this.violations.length > 0) throw new Error(this.violations.join("\n"));
  }

  #fail(message: string, frame: unknown): void {
    this.violations.push(
      `${this.name}${this.user ? ` (${this.user})` : ""}: ${message}: ${
        JSON.stringify(frame).slice(0, 300)
      }`,
    );
  }

  /** Checks one raw text frame as sent by the server. */
  take(data: string): void {
    let frames: ServerFrame[];
    try {
      frames = splitFrames(data);
    } catch {
      this.#fail("the server sent a frame that is not JSON", data);
      return;
    }
    for (const f of frames) this.#check(f);
  }

  #check(f: ServerFrame): void {
    this.frames++;
    if (!SERVER_TYPES.has(f.type)) this.#fail("unknown frame type", f);
    if (this.user === null && f.type !== "error" && f.type !== "welcome") {
      this.#fail("chat data before sign-in", f);
    }
    switch (f.type) {
      case "error":
        if (!ERROR_CODES.has(f.code)) this.#fail("unknown error code", f);
        if (typeof f.message !== "string" || f.message === "" || f.message.length > 300) {
          this.#fail("bad error message", f);
        }
        if (/\n\s+at /.test(f.message)) this.#fail("stack trace in an error", f);
        this.errors.push(f);
        return;
      case "welcome":
        if (this.user !== null) this.#fail("a second welcome", f);
        this.user = f.user;
        for (const r of f.rooms) this.rooms.add(r);
        return;
      case "joined":
        this.rooms.add(f.room);
        this.#messages(f.history, true);
        return;
      case "left":
        this.rooms.delete(f.room);
        this.last.delete(f.room);
        return;
      case "message":
        if (f.room !== undefined && !this.rooms.has(f.room)) {
          this.#fail(`a message for room "${f.room}" it is not in`, f);
        }
        this.#messages([f], false);
        return;
      case "history":
      case "search":
        this.#private(f.messages);
        return;
      case "typing":
        if (f.room !== undefined && !this.rooms.has(f.room)) {
          this.#fail("typing for a room it is not in", f);
        }
        if (f.to !== undefined && f.to !== this.user && f.user !== this.user) {
          this.#fail("a DM typing event for someone else", f);
        }
        return;
    }
  }

  #private(messages: ChatMessage[]): void {
    for (const m of messages) {
      if (m.to !== undefined && m.from !== this.user && m.to !== this.user) {
        this.#fail("a direct message between two other users", m);
      }
    }
  }

  #messages(messages: ChatMessage[], replay: boolean): void {
    this.#private(messages);
    for (const m of messages) {
      const conv = m.room ?? [m.from, m.to].sort().join(":");
      const last = this.last.get(conv) ?? 0;
      // The one exception (docs/protocol.md, join): the sender's own copy, carrying
      // its ref, is its acknowledgement and comes even if a `joined` held it.
      const ack = m.ref !== undefined && m.from === this.user;
      if (!replay && m.id <= last && !ack) {
        this.#fail(`message ${m.id} after ${last} in "${conv}"`, m);
      }
      this.last.set(conv, replay ? m.id : Math.max(last, m.id));
    }
  }

  closed(code: number, reason: string): void {
    if (!(code === 1000 || code === 1001 || (code >= 4000 && code <= 4999))) {
      this.#fail("close code outside 1000, 1001, 4000-4999", code);
    }
    if (new TextEncoder().encode(reason).length > 123) {
      this.#fail("close reason over 123 bytes", reason);
    }
    this.closedBy ??= { code, reason };
  }
}

/** The error `parseClientFrame` gives for `data`, or null when it parses. */
function parseError(
  data: string | Uint8Array,
): { code: string; message: string; ref?: string } | null {
  if (typeof data !== "string") {
    return { code: "bad_request", message: "Binary frames are not supported: send JSON text" };
  }
  try {
    parseClientFrame(data, { maxMessageBytes: MAX_TEXT });
    return null;
  } catch (err) {
    if (!(err instanceof FrameError)) throw err;
    const e: { code: string; message: string; ref?: string } = {
      code: err.code,
      message: err.message,
    };
    if (err.ref !== undefined) e.ref = err.ref;
    return e;
  }
}

// ---------------------------------------------------------------------------
// The hub with in-memory sockets

class FakeSocket implements Socket {
  readyState = 1;
  bufferedAmount = 0;
  conn: Conn | null = null;
  constructor(readonly view: View, readonly hub: Hub) {}
  send(data: string): void {
    if (this.readyState !== 1) {
      throw new Error(`${this.view.name}: send on a socket that is not open`);
    }
    this.view.take(data);
  }
  close(code = 1000, reason = ""): void {
    if (this.readyState !== 1) return;
    this.readyState = 3;
    this.view.closed(code, reason);
    // The real close event comes later.
    const conn = this.conn;
    setTimeout(() => conn && this.hub.close(conn), 0);
  }
}

const hasher = new PasswordHasher();

async function hubRun(loginMode: boolean, commands: Command[]): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "chat-fuzz-" });
  const log = memoryLogger();
  const secret = "fuzz-secret-fuzz-secret-fuzz-secret-42";
  const usersPath = `${dir}/users.json`;
  if (loginMode) await Deno.writeTextFile(usersPath, JSON.stringify(PASSWORDS));
  const auth = await Auth.create({ usersPath, secret, hasher, log });
  const old = await Auth.create({ usersPath, secret, hasher, log, tokenTtl: -60 });
  const store = new MemoryStore({ limit: 50 });
  let clock = Date.now();
  const hub = new Hub({
    store,
    broker: new LocalBroker(store),
    auth,
    log,
    now: () => clock,
    maxMessageBytes: MAX_TEXT,
    limits: { frameRate: 1e6, frameBurst: 1e6, maxRoomsPerUser: 3, maxConnsPerUser: 3 },
    throttle: { userFree: 3, addrFree: 6, baseDelay: 500, maxWait: 2000 },
  });
  const sockets: FakeSocket[] = [];
  const views: View[] = [];
  let opened = 0;
  const open = (i: number) => {
    const view = new View(`socket ${opened++}`);
    views.push(view);
    const s = new FakeSocket(view, hub);
    s.conn = hub.open(s, { addr: `10.0.0.${i % 3}` });
    hub.opened(s.conn);
    sockets[i] = s;
  };
  const tokens = (data: string | Uint8Array) =>
    typeof data === "string" && data.includes('"$')
      ? data.replace(/"\$(\w+)"/g, (_, who: string) => {
        if (who === "expired") return JSON.stringify(old.issueToken("alice", "fuzz-old"));
        if (who === "tampered") {
          return JSON.stringify(auth.issueToken("bob", "fuzz-bob").slice(0, -2) + "AA");
        }
        return JSON.stringify(auth.issueToken(who, "fuzz"));
      })
      : data;
  const settle = async () => {
    const deadline = Date.now() + 10_000;
    while (true) {
      await new Promise((r) => setTimeout(r, 0));
      await new Promise((r) => setTimeout(r, 0));
      const busy = sockets.some((s) => s.conn && !s.conn.closed && s.conn.backlog !== null);
      if (!busy) return;
      if (Date.now() > deadline) throw new Error("A sign-in never finished");
      // Let throttled sign-ins have their turn.
      clock += 500;
      hub.tick(clock);
      await new Promise((r) => setTimeout(r, 1));
    }
  };
  const receive = (s: FakeSocket, data: string | Uint8Array) => {
    try {
      hub.receive(s.conn!, data);
    } catch (err) {
      throw new Error(
        `Hub.receive() threw for ${JSON.stringify(String(data)).slice(0, 200)}: ${
          (err as Error).stack
        }`,
      );
    }
  };
  try {
    for (let i = 0; i < CONNS; i++) open(i);
    // Most sockets start signed in (alice has two tabs); the last two do not.
    ["alice", "bob", "carol", "alice"].forEach((user, i) =>
      receive(
        sockets[i],
        JSON.stringify({ type: "auth", username: user, password: PASSWORDS[user] }),
      )
    );
    await settle();
    for (const c of commands) {
      if (c.kind === "tick") {
        clock += c.ms;
        hub.tick(clock);
      } else if (c.kind === "close") {
        const s = sockets[c.conn];
        if (s.readyState === 1) {
          s.readyState = 3;
          hub.close(s.conn!);
        }
        open(c.conn);
      } else {
        let s = sockets[c.conn];
        if (s.readyState !== 1) {
          open(c.conn);
          s = sockets[c.conn];
        }
        if (c.kind === "signin") {
          receive(
            s,
            JSON.stringify({ type: "auth", username: c.user, password: PASSWORDS[c.user] }),
          );
        } else if (c.kind === "burst") {
          for (const d of c.data) if (s.readyState === 1) receive(s, tokens(d));
        } else {
          const data = tokens(c.data);
          const before = s.view.errors.length;
          const expected = parseError(data);
          receive(s, data);
          await settle();
          if (expected) {
            const got = s.view.errors.slice(before);
            assert.equal(
              got.length,
              1,
              `one error for ${JSON.stringify(String(data)).slice(0, 100)}`,
            );
            const e: Record<string, unknown> = { code: got[0].code, message: got[0].message };
            if (got[0].ref !== undefined) e.ref = got[0].ref;
            assert.deepEqual(e, expected);
          }
        }
      }
      await settle();
      for (const v of views) v.assertOk();
    }
    hub.shutdown();
    await settle();
    for (const v of views) v.assertOk();
    for (const s of sockets) {
      assert.equal(s.readyState, 3, `${s.view.name} is closed at shutdown`);
    }
    const internal = log.lines.filter((l) => l.startsWith("error:"));
    assert.deepEqual(internal, [], "no internal errors");
  } finally {
    hub.shutdown();
    await new Promise((r) => setTimeout(r, 5));
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("parseClientFrame() never throws anything but FrameError, and valid frames keep their fields", () => {
  fc.assert(
    fc.property(wireData, (data) => {
      if (typeof data !== "string") return;
      try {
        const f = parseClientFrame(data, { maxMessageBytes: MAX_TEXT });
        assert.equal(typeof f.type, "string");
        const raw = JSON.parse(data);
        if (raw.type !== undefined) assert.equal(f.type, raw.type);
        for (const [k, v] of Object.entries(f)) {
          if (k === "type" || k === "active" || v === undefined) continue;
          assert.deepEqual(v, raw[k], `field "${k}" is kept as sent`);
        }
      } catch (err) {
        if (!(err instanceof FrameError)) throw err;
        assert.ok(err.code === "bad_request" || err.code === "too_large", err.code);
        assert.ok(err.message.length > 0 && err.message.length < 200, err.message);
        assert.ok(!err.message.endsWith("."), "std style: no trailing period");
      }
    }),
    { numRuns: RUNS * 50, seed: SEED },
  );
});

Deno.test("Hub keeps its invariants under random and mutated frame sequences from several users", async () => {
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.array(command, { minLength: 10, maxLength: 60, size: "max" }),
        hubRun,
      ),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
  } finally {
    hasher.close();
  }
});

Deno.test("the real server keeps its invariants under random frames over WebSockets", async () => {
  await using t = await startTestServer({
    users: PASSWORDS,
    args: ["--rate", "100000", "--burst", "100000", "--max-message", String(MAX_TEXT)],
    tickInterval: 20,
  });
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(fc.nat(3), wireData), { minLength: 5, maxLength: 30 }),
      async (steps) => {
        const views: View[] = [];
        const clients: TestClient[] = [];
        let ending = false;
        try {
          for (let i = 0; i < 4; i++) {
            const c = await TestClient.connect(t.ws);
            const v = new View(`client ${i}`);
            c.ws.addEventListener("message", (e) => v.take(String(e.data)));
            c.ws.addEventListener("close", (e) => {
              if (!ending) v.closed(e.code, e.reason);
            });
            if (i < 3) {
              const user = USERS[i];
              c.send({ type: "auth", username: user, password: PASSWORDS[user] });
              await c.next("welcome");
            }
            clients.push(c);
            views.push(v);
          }
          for (const [i, data] of steps) {
            const c = clients[i];
            if (c.ws.readyState !== WebSocket.OPEN) continue;
            const before = views[i].errors.length;
            const expected = parseError(data);
            c.send(
              typeof data === "string"
                ? data.replace(
                  /"\$(\w+)"/g,
                  (_, who) => JSON.stringify(t.server.auth.issueToken(who, "fuzz")),
                )
                : data,
            );
            if (expected) {
              // Other errors (from earlier valid frames) may come first: look for this one.
              await waitUntil(
                () =>
                  c.closeEvent !== null ||
                  views[i].errors.slice(before).some((e) =>
                    e.code === expected.code && e.message === expected.message
                  ),
                `the error ${JSON.stringify(expected)}`,
              );
            }
            views[i].assertOk();
          }
          // Everything sent has been handled once a ping comes back on each open socket.
          for (const c of clients) {
            if (c.ws.readyState === WebSocket.OPEN && !c.closeEvent) {
              await c.barrier().catch(() => {});
            }
          }
          for (const v of views) v.assertOk();
        } finally {
          ending = true;
          await Promise.all(clients.map((c) => c.close()));
        }
      },
    ),
    { numRuns: Math.max(3, Math.round(RUNS / 8)), seed: SEED, endOnFailure: true },
  );
  assert.deepEqual(t.log.filter((l) => l.startsWith("error:")), []);
});
