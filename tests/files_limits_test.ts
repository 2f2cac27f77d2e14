/**
 * The upload limits over real HTTP on the real server: uploads per user,
 * per client address and per node (429 with Retry-After), and the idle
 * timeout of a stalled upload (408). Uploads are held open on bare TCP
 * sockets that send part of their body and then nothing; other client
 * addresses are real source addresses (127.0.0.x), as the server sees them
 * without --trust-proxy.
 */
import assert from "node:assert/strict";
import type { ChatMessage, FileInfo } from "../protocol.ts";
import {
  CHUNK_BYTES,
  type CommitInfo,
  type FileStore,
  type FileWriter,
} from "../server/files/files.ts";
import { MemoryFileStore } from "../server/files/memory.ts";
import {
  ADDR_UPLOAD_RATE,
  MAX_ACTIVE_UPLOADS,
  MAX_UPLOADS,
  MAX_UPLOADS_PER_ADDR,
  USER_UPLOAD_RATE,
} from "../server/http/files.ts";
import { closeAll, signIn, startTestServer, type TestServer, waitUntil } from "./helpers.ts";
import { RawRequest, type RawResponse } from "./raw.ts";

type Message = ChatMessage & { type: "message" };

/**
 * The server's own memory file store, counting the uploads under way: an
 * upload takes its slots before it creates its writer and gives them back
 * right after its commit or abort, so this count tells when a held upload
 * holds its slots, and when a closed one has let them go.
 */
class WatchedFiles implements FileStore {
  readonly #inner: MemoryFileStore;
  /** Uploads created and neither committed nor aborted. */
  active = 0;

  constructor() {
    this.#inner = new MemoryFileStore({ quota: 256 * CHUNK_BYTES });
  }

  get quota(): number {
    return this.#inner.quota;
  }

  async create(owner: string, name: string): Promise<FileWriter> {
    const w = await this.#inner.create(owner, name);
    this.active++;
    let open = true;
    const done = () => {
      if (open) this.active--;
      open = false;
    };
    return {
      id: w.id,
      write: (index, bytes) => w.write(index, bytes),
      commit: (info: CommitInfo) => w.commit(info).finally(done),
      abort: () => w.abort().finally(done),
    };
  }

  get(id: string) {
    return this.#inner.get(id);
  }
  read(id: string, start: number, end: number) {
    return this.#inner.read(id, start, end);
  }
  attach(owner: string, ids: readonly string[], conv: string, ref: string) {
    return this.#inner.attach(owner, ids, conv, ref);
  }
  rebind(from: string, to: string) {
    return this.#inner.rebind(from, to);
  }
  bind(ids: readonly string[], conv: string, msg: number) {
    return this.#inner.bind(ids, conv, msg);
  }
  remove(ids: readonly string[]) {
    return this.#inner.remove(ids);
  }
  sweepUnattached(before: number) {
    return this.#inner.sweepUnattached(before);
  }
  bound(after: string, limit: number) {
    return this.#inner.bound(after, limit);
  }
  usage() {
    return this.#inner.usage();
  }
  close() {
    return this.#inner.close();
  }
}

/** An open-mode server (any name signs in) on the watched store. */
async function server(uploadIdle?: number): Promise<{ t: TestServer; files: WatchedFiles }> {
  const files = new WatchedFiles();
  const t = await startTestServer({ files, ...(uploadIdle ? { uploadIdle } : {}) });
  return { t, files };
}

/** A session token for `name`: signs in over the WebSocket, then hangs up (the token stays good). */
async function tokenFor(t: TestServer, name: string): Promise<string> {
  const c = await signIn(t.ws, name);
  try {
    return c.welcome.token!;
  } finally {
    await c.close();
  }
}

/** The head of `POST /api/files?name=…`, with a length or chunked. */
function uploadHead(token: string, name: string, length: number | "chunked"): string {
  return `POST /api/files?name=${encodeURIComponent(name)} HTTP/1.1\r\n` +
    `Host: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\n` +
    (length === "chunked" ? "Transfer-Encoding: chunked\r\n" : `Content-Length: ${length}\r\n`) +
    "\r\n";
}

/**
 * Starts an upload that announces 1000 bytes, sends 10 and then nothing:
 * it holds its slots until its socket closes (or its idle time runs out).
 */
async function hold(
  t: TestServer,
  token: string,
  localAddress = "127.0.0.1",
): Promise<RawRequest> {
  const req = await RawRequest.open(t.server.port, uploadHead(token, "held.bin", 1000), {
    localAddress,
  });
  try {
    await req.write(new TextEncoder().encode("0123456789"));
    return req;
  } catch (err) {
    await req.close();
    throw err;
  }
}

/** A whole upload of `text` from `localAddress`; resolves the response. */
async function uploadFrom(
  t: TestServer,
  token: string,
  localAddress: string,
  text: string,
): Promise<RawResponse> {
  const body = new TextEncoder().encode(text);
  await using req = await RawRequest.open(
    t.server.port,
    uploadHead(token, "whole.txt", body.length),
    { localAddress },
  );
  await req.write(body);
  return await req.response();
}

/** A whole upload with fetch (from 127.0.0.1); resolves status, headers and body. */
async function upload(t: TestServer, token: string, text: string) {
  const res = await fetch(`${t.http}/api/files?name=whole.txt`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
    body: text,
  });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

/** Closes every request, ignoring errors. */
async function closeRequests(reqs: RawRequest[]): Promise<void> {
  await Promise.all(reqs.map((r) => r.close().catch(() => {})));
}

Deno.test("POST /api/files refuses a user's fifth upload under way with 429; others still upload", async () => {
  const { t, files } = await server();
  const held: RawRequest[] = [];
  try {
    assert.equal(MAX_ACTIVE_UPLOADS, 4);
    const alice = await tokenFor(t, "alice");
    const bob = await tokenFor(t, "bob");
    for (let i = 0; i < MAX_ACTIVE_UPLOADS; i++) held.push(await hold(t, alice));
    await waitUntil(() => files.active === MAX_ACTIVE_UPLOADS, "alice's 4 uploads are under way");

    const fifth = await upload(t, alice, "five");
    assert.equal(fifth.status, 429);
    assert.equal(fifth.headers.get("retry-after"), "1");
    assert.equal(fifth.body, "You have 4 uploads under way: wait for one to finish\n");
    // Refused before it started: nothing was created for it.
    assert.equal(files.active, MAX_ACTIVE_UPLOADS);

    const other = await upload(t, bob, "bob's");
    assert.equal(other.status, 201);
    assert.equal((JSON.parse(other.body) as FileInfo).size, 5);
    assert.equal(held.some((r) => r.peek() !== null || r.ended), false, "the held ones wait");

    // Hanging up gives the slots back, and keeps nothing of the held uploads.
    await closeRequests(held.splice(0));
    await waitUntil(() => files.active === 0, "the held uploads are aborted");
    assert.equal(await files.usage(), 5);
    const again = await upload(t, alice, "again");
    assert.equal(again.status, 201);
    assert.equal(await files.usage(), 10);
  } finally {
    await closeRequests(held);
    await t.close();
  }
});

Deno.test("POST /api/files refuses a ninth upload from one client address with 429; another address still uploads", async () => {
  const { t, files } = await server();
  const held: RawRequest[] = [];
  try {
    assert.equal(MAX_UPLOADS_PER_ADDR, 8);
    const tokens: string[] = [];
    for (let i = 0; i <= MAX_UPLOADS_PER_ADDR; i++) tokens.push(await tokenFor(t, `user${i}`));
    // Eight people, one upload each, all from 127.0.0.1.
    for (let i = 0; i < MAX_UPLOADS_PER_ADDR; i++) held.push(await hold(t, tokens[i]));
    await waitUntil(() => files.active === MAX_UPLOADS_PER_ADDR, "8 uploads are under way");

    const ninth = tokens[MAX_UPLOADS_PER_ADDR];
    const refused = await upload(t, ninth, "nine");
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get("retry-after"), "5");
    assert.equal(refused.body, "Too many uploads under way: try again shortly\n");

    // The same person from another address is not held back by 127.0.0.1's uploads.
    const elsewhere = await uploadFrom(t, ninth, "127.0.0.2", "from two");
    assert.equal(elsewhere.status, 201, elsewhere.body);
    assert.equal((JSON.parse(elsewhere.body) as FileInfo).size, 8);
    // 127.0.0.1 is still full.
    assert.equal((await upload(t, ninth, "nine")).status, 429);

    // One of them hangs up: its slot at 127.0.0.1 comes back.
    await held.shift()!.close();
    await waitUntil(
      () => files.active === MAX_UPLOADS_PER_ADDR - 1,
      "the closed upload is aborted",
    );
    assert.equal((await upload(t, ninth, "nine")).status, 201);
    assert.equal(await files.usage(), 8 + 4);
  } finally {
    await closeRequests(held);
    await t.close();
  }
});

Deno.test("POST /api/files refuses the 65th upload under way on a node with 429, from any address", async () => {
  const { t, files } = await server();
  const held: RawRequest[] = [];
  try {
    assert.equal(MAX_UPLOADS, 64);
    // 16 people, 4 uploads each (their own limit), 8 per address (that address's limit)
    // from 127.0.0.1 to 127.0.0.8.
    const people = MAX_UPLOADS / MAX_ACTIVE_UPLOADS;
    const perAddr = MAX_UPLOADS_PER_ADDR / MAX_ACTIVE_UPLOADS;
    const tokens: string[] = [];
    for (let i = 0; i < people; i++) tokens.push(await tokenFor(t, `user${i}`));
    const last = await tokenFor(t, "latecomer");
    const starts: Promise<RawRequest>[] = [];
    for (let i = 0; i < people; i++) {
      const from = `127.0.0.${Math.floor(i / perAddr) + 1}`;
      for (let k = 0; k < MAX_ACTIVE_UPLOADS; k++) starts.push(hold(t, tokens[i], from));
    }
    const results = await Promise.allSettled(starts);
    for (const r of results) if (r.status === "fulfilled") held.push(r.value);
    for (const r of results) if (r.status === "rejected") throw r.reason;
    await waitUntil(() => files.active === MAX_UPLOADS, "64 uploads are under way");

    // A new person from a new address: neither of their own limits is reached.
    const refused = await uploadFrom(t, last, "127.0.0.9", "late");
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get("retry-after"), "5");
    assert.equal(refused.body, "Too many uploads under way: try again shortly\n");
    assert.equal(files.active, MAX_UPLOADS);
    assert.equal(held.some((r) => r.peek() !== null || r.ended), false, "the held ones wait");

    await held.shift()!.close();
    await waitUntil(() => files.active === MAX_UPLOADS - 1, "the closed upload is aborted");
    const admitted = await uploadFrom(t, last, "127.0.0.9", "late");
    assert.equal(admitted.status, 201, admitted.body);
    assert.equal(await files.usage(), 4);
  } finally {
    await closeRequests(held);
    await t.close();
  }
});

Deno.test("POST /api/files answers a stalled upload with 408 and keeps nothing of it; chat goes on meanwhile", async (ctx) => {
  const idle = 500;
  const { t, files } = await server(idle);
  const bob = await signIn(t.ws, "bob");
  const carol = await signIn(t.ws, "carol");
  try {
    const alice = await tokenFor(t, "alice");

    await ctx.step("with a Content-Length, after a chunk was stored", async () => {
      await using req = await RawRequest.open(
        t.server.port,
        uploadHead(alice, "stalled.bin", 3 * CHUNK_BYTES),
      );
      // Two chunks and a bit: chunk 1 is written (chunk 0 waits for the end), then nothing.
      await req.write(new Uint8Array(2 * CHUNK_BYTES + 100).fill(7));
      await waitUntil(async () => (await files.usage()) === CHUNK_BYTES, "a chunk is stored");

      // Chat is not held up by the stalled upload.
      bob.send({ type: "send", room: "general", text: "still here?", ref: "b1" });
      const got = await carol.next<Message>((f) => f.type === "message" && f.from === "bob");
      assert.equal(got.text, "still here?");
      assert.equal(req.peek(), null, "the message came before the upload's idle time ran out");

      const res = await req.response();
      assert.equal(res.status, 408);
      assert.equal(res.headers.get("connection"), "close");
      assert.match(res.body, /^The upload stalled: nothing arrived for /);
      assert.equal(await files.usage(), 0, "nothing of the stalled upload is kept");
      assert.equal(files.active, 0);
    });

    await ctx.step("chunked, with no chunk stored yet", async () => {
      await using req = await RawRequest.open(
        t.server.port,
        uploadHead(alice, "stalled.bin", "chunked"),
      );
      await req.write(new TextEncoder().encode("a\r\n0123456789\r\n"));
      await waitUntil(() => files.active === 1, "the upload is under way");
      const res = await req.response();
      assert.equal(res.status, 408);
      assert.equal(res.headers.get("connection"), "close");
      assert.equal(await files.usage(), 0);
      assert.equal(files.active, 0);
    });

    // The slots are back: alice's next upload goes through.
    const ok = await upload(t, alice, "done");
    assert.equal(ok.status, 201);
    assert.equal(await files.usage(), 4);
    await bob.barrier();
    await carol.barrier();
    assert.equal(bob.peek("error").length + carol.peek("error").length, 0);
  } finally {
    await closeAll(bob, carol);
    await t.close();
  }
});

// Deno 2.9.6 (its own HTTP/1.1 path) keeps the connection open after a
// response sent before the request body ended, `connection: close` or not
// (denoland/deno#36624 and around): a stalled client keeps its socket after
// its 408. What the server can promise is that such a client cannot hold up
// its shutdown, and that the store is closed cleanly all the same.
Deno.test("a stalled upload's connection cannot hold up the server's shutdown", async () => {
  const files = new WatchedFiles();
  const t = await startTestServer({ files, uploadIdle: 300, closeGrace: 300 });
  let closed = false;
  try {
    const alice = await tokenFor(t, "alice");
    await using req = await RawRequest.open(t.server.port, uploadHead(alice, "stalled.bin", 1000));
    await req.write(new TextEncoder().encode("0123456789"));
    assert.equal((await req.response()).status, 408);
    assert.equal(files.active, 0);
    // Ends although the client still holds its connection open.
    await t.close();
    closed = true;
    assert.equal(await files.usage(), 0);
  } finally {
    if (!closed) await t.close();
  }
});

Deno.test("a client that hangs up mid-upload leaves nothing, and no error in the log", async () => {
  const files = new WatchedFiles();
  const t = await startTestServer({ files });
  try {
    const alice = await tokenFor(t, "alice");
    const req = await RawRequest.open(t.server.port, uploadHead(alice, "gone.bin", 600_000));
    try {
      // More than a chunk, so that something reached the store before the hang-up.
      await req.write(new Uint8Array(300_000).fill(7));
      await waitUntil(() => files.active === 1, "the upload is under way");
    } finally {
      await req.close();
    }
    await waitUntil(() => files.active === 0, "the upload is given up");
    assert.equal(await files.usage(), 0);
    assert.deepEqual(t.log.filter((l) => /error|failed/i.test(l)), []);
    // The slot is back.
    assert.equal((await upload(t, alice, "after")).status, 201);
  } finally {
    await t.close();
  }
});

Deno.test("an upload that trickles in under the slowest rate is dropped with 408", async () => {
  const files = new WatchedFiles();
  const t = await startTestServer({
    files,
    uploadMinRate: { bytesPerSecond: 100_000, windowMs: 400 },
  });
  try {
    const alice = await tokenFor(t, "alice");
    await using req = await RawRequest.open(
      t.server.port,
      uploadHead(alice, "slow.bin", 1_000_000),
    );
    // A few bytes every 50 ms: never idle, far below 100 KB/s. Bounded: 10 s at most.
    for (let i = 0; i < 200 && req.peek() === null && !req.ended; i++) {
      await req.write(new Uint8Array(10).fill(1));
      await new Promise((r) => setTimeout(r, 50));
    }
    const res = await req.response();
    assert.equal(res.status, 408);
    assert.match(res.body, /too slow: under 100 KB\/s for 0\.4 seconds/);
    await waitUntil(() => files.active === 0, "the slot is given back");
    assert.equal(await files.usage(), 0);
    // A normal upload is not affected.
    assert.equal((await upload(t, alice, "fast")).status, 201);
  } finally {
    await t.close();
  }
});

Deno.test("POST /api/files limits how fast one user and one address start uploads", async () => {
  const { t, files } = await server();
  try {
    const alice = await tokenFor(t, "alice");
    const bob = await tokenFor(t, "bob");
    // A burst goes through (a folder of photos dropped at once), then uploads
    // started faster than the rate are refused (bounded: the refill is slow).
    let accepted = 0;
    let refused: Awaited<ReturnType<typeof upload>> | null = null;
    const usedBefore: number[] = [];
    for (let i = 0; i < 2 * USER_UPLOAD_RATE.burst && refused === null; i++) {
      usedBefore.push(await files.usage());
      const r = await upload(t, alice, `f${i}`);
      if (r.status === 201) accepted++;
      else refused = r;
    }
    assert.ok(refused !== null, "a user cannot start uploads faster than the rate for long");
    assert.ok(accepted >= USER_UPLOAD_RATE.burst, `the burst went through: ${accepted}`);
    const used = usedBefore.at(-1)!;
    assert.equal(refused.status, 429);
    assert.match(refused.body, /Too many uploads: slow down/);
    assert.ok(Number(refused.headers.get("retry-after")) >= 1);
    assert.equal(await files.usage(), used);
    // Someone else, from another address, is not slowed down.
    assert.equal((await uploadFrom(t, bob, "127.0.0.2", "mine")).status, 201);
    // The address counts too: names are free in open mode.
    const names = await Promise.all(
      Array.from({ length: 3 }, (_, i) => tokenFor(t, `n${i}`)),
    );
    let ok = 0, tooMany = 0;
    for (let i = 0; i < 2 * ADDR_UPLOAD_RATE.burst && tooMany === 0; i++) {
      const r = await uploadFrom(t, names[i % 3], "127.0.0.3", `a${i}`);
      if (r.status === 201) ok++;
      else if (r.status === 429) tooMany++;
    }
    assert.equal(tooMany, 1, "one address cannot start uploads faster than its rate for long");
    assert.ok(ok >= ADDR_UPLOAD_RATE.burst, `the address's burst went through: ${ok}`);
  } finally {
    await t.close();
  }
});
