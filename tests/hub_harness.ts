/**
 * The in-memory hub harness: a hub with fake sockets, a manual clock, a
 * store whose calls can be held, and outbox ticks run by hand. Shared by the
 * hub tests and the limit tests that need no real socket.
 */
import assert from "node:assert/strict";
import { Auth } from "../server/auth/auth.ts";
import { LocalBroker } from "../server/broker/broker.ts";
import { type Conn, Hub, type HubOptions } from "../server/hub/hub.ts";
import { memoryLogger } from "../server/log.ts";
import { MemoryStore } from "../server/store/memory.ts";
import type {
  ClaimResult,
  NameClaim,
  Page,
  PageQuery,
  SearchScope,
} from "../server/store/store.ts";
import type { Socket } from "../server/hub/outbox.ts";
import { PasswordHasher } from "../server/auth/password.ts";
import { type ChatMessage, type ServerFrame, splitFrames } from "../protocol.ts";

/** A socket that keeps what the hub sends it, split into frames. */
export class FakeSocket implements Socket {
  readyState = 1;
  bufferedAmount = 0;
  frames: ServerFrame[] = [];
  closed: { code?: number; reason?: string } | null = null;
  send(data: string) {
    this.frames.push(...splitFrames(data));
  }
  close(code?: number, reason?: string) {
    this.closed = { code, reason };
    this.readyState = 3;
  }
  take(type: string): ServerFrame[] {
    const out = this.frames.filter((f) => f.type === type);
    this.frames = this.frames.filter((f) => f.type !== type);
    return out;
  }
}

/** A memory store whose calls can be held, to interleave a request with others. */
export class GatedStore extends MemoryStore {
  #gates = new Map<string, Promise<void>>();
  #reached = new Map<string, PromiseWithResolvers<void>>();
  /** Holds every later call of `method` until the returned function runs. */
  hold(
    method:
      | "touchUser"
      | "page"
      | "roomExists"
      | "roomsOf"
      | "staleClaims"
      | "search"
      | "claimName",
  ): () => void {
    const gate = Promise.withResolvers<void>();
    this.#gates.set(method, gate.promise);
    this.#reached.set(method, Promise.withResolvers<void>());
    return () => {
      this.#gates.delete(method);
      gate.resolve();
    };
  }
  /** Resolves once a call of a held `method` is waiting at its gate. */
  reached(method: string): Promise<void> {
    return this.#reached.get(method)!.promise;
  }
  override async touchUser(user: string, seen?: number): Promise<void> {
    this.#reached.get("touchUser")?.resolve();
    await this.#gates.get("touchUser");
    return super.touchUser(user, seen);
  }
  override async page(conv: string, query: PageQuery): Promise<Page> {
    this.#reached.get("page")?.resolve();
    await this.#gates.get("page");
    return super.page(conv, query);
  }
  override async roomExists(room: string): Promise<boolean> {
    this.#reached.get("roomExists")?.resolve();
    await this.#gates.get("roomExists");
    return super.roomExists(room);
  }
  /** Fails the next releaseName() (a store that goes away mid-way). */
  failRelease = false;
  override async releaseName(
    name: string,
    session: string,
    seenBefore?: number,
  ): Promise<string[] | null> {
    if (this.failRelease) {
      this.failRelease = false;
      throw new Error("the store went away");
    }
    return await super.releaseName(name, session, seenBefore);
  }
  override async claimName(
    name: string,
    session: string,
    now: number,
    create: boolean,
  ): Promise<ClaimResult> {
    this.#reached.get("claimName")?.resolve();
    await this.#gates.get("claimName");
    try {
      return await super.claimName(name, session, now, create);
    } finally {
      this.claims++;
    }
  }
  /** claimName() calls finished (a sign-in, a close in open mode, the sweep). */
  claims = 0;
  /** Searches started in all. */
  searches = 0;
  /** Searches under way now, and the most there ever were at once. */
  searching = 0;
  mostSearching = 0;
  override async search(q: string, scope: SearchScope): Promise<ChatMessage[]> {
    this.searches++;
    this.searching++;
    this.mostSearching = Math.max(this.mostSearching, this.searching);
    try {
      this.#reached.get("search")?.resolve();
      await this.#gates.get("search");
      return await super.search(q, scope);
    } finally {
      this.searching--;
    }
  }
  /** Reads at once but answers when released, like a reply still on the wire. */
  override async staleClaims(before: number, limit: number): Promise<NameClaim[]> {
    const claims = await super.staleClaims(before, limit);
    this.#reached.get("staleClaims")?.resolve();
    await this.#gates.get("staleClaims");
    return claims;
  }
  /** Reads at once but answers when released, like a reply still on the wire. */
  override async roomsOf(user: string): Promise<string[]> {
    const rooms = await super.roomsOf(user);
    this.#reached.get("roomsOf")?.resolve();
    await this.#gates.get("roomsOf");
    return rooms;
  }
}

/** A hub with a manual clock and synchronous batching (open mode unless `users` is given). */
export async function setup(
  options: { users?: Record<string, string>; limits?: Partial<HubOptions["limits"]> } = {},
) {
  const dir = await Deno.makeTempDir();
  const usersPath = `${dir}/users.json`;
  if (options.users) await Deno.writeTextFile(usersPath, JSON.stringify(options.users));
  const hasher = new PasswordHasher();
  const log = memoryLogger();
  const auth = await Auth.create({ usersPath, hasher, log });
  const store = new GatedStore();
  const broker = new LocalBroker(store);
  let now = 1_000_000;
  const ticks: (() => void)[] = [];
  const hub = new Hub({
    store,
    broker,
    auth,
    log,
    now: () => now,
    limits: { frameRate: 1000, frameBurst: 1000, ...options.limits },
    outbox: {
      schedule: (fn) => {
        ticks.push(fn);
        return () => {};
      },
    },
  });
  /** Turns the event loop and runs the outbox ticks until `check` holds. */
  const until = async (check: () => boolean | Promise<boolean>) => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      for (const f of ticks.splice(0)) f();
      if (await check()) return;
      if (Date.now() > deadline) throw new Error("Timed out waiting for a condition");
      await new Promise((r) => setTimeout(r, 0));
    }
  };
  /** Signs `name` in (with `password` in login mode) and waits for the welcome. */
  const connect = async (name: string, password?: string) => {
    const socket = new FakeSocket();
    const conn = hub.open(socket, { addr: "127.0.0.1" });
    hub.receive(
      conn,
      JSON.stringify({ type: "auth", username: name, ...(password ? { password } : {}) }),
    );
    await until(() => socket.frames.some((f) => f.type === "welcome" || socket.closed !== null));
    const welcome = socket.take("welcome")[0] as Extract<ServerFrame, { type: "welcome" }>;
    assert.ok(welcome, `${name} is welcomed`);
    return { socket, conn, welcome };
  };
  return {
    hub,
    auth,
    log,
    store,
    broker,
    usersPath,
    until,
    connect,
    /** The harness clock (ms). */
    now: () => now,
    advance: (ms: number) => {
      now += ms;
      hub.tick(now);
    },
    /** Moves the clock without running the timers. */
    skip: (ms: number) => {
      now += ms;
    },
    async [Symbol.asyncDispose]() {
      hub.shutdown();
      hasher.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Hands `frame` to the hub as if `conn` sent it. */
export function send(hub: Hub, conn: Conn, frame: unknown) {
  hub.receive(conn, JSON.stringify(frame));
}

/** What another node does when `user` joins `room` there: store it, then announce it. */
export async function joinElsewhere(
  h: Harness,
  user: string,
  room: string,
): Promise<void> {
  await h.store.join(user, room);
  await h.broker.publish({
    kind: "member",
    user,
    room,
    joined: true,
    ts: new Date().toISOString(),
  });
}

/** The harness {@link setup} returns. */
export type Harness = Awaited<ReturnType<typeof setup>>;
