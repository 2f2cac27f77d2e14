/**
 * Files over real HTTP on the real server: uploads and every refusal,
 * sending files, downloads checked against the conversation's members,
 * Range and caching, deletes and sweeps.
 */
import assert from "node:assert/strict";
import type { ChatMessage, FileInfo, ServerFrame } from "../protocol.ts";
import { FileJanitor } from "../server/files/janitor.ts";
import {
  closeAll,
  hashPassword,
  type SignedIn,
  signIn,
  startTestServer,
  type TestServer,
  waitUntil,
} from "./helpers.ts";
import { memoryLogger } from "../server/log.ts";

/** A 1×1 PNG. */
const PNG = Uint8Array.from(
  atob(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
  ),
  (c) => c.charCodeAt(0),
);

type Message = ChatMessage & { type: "message" };

/** `POST /api/files` with `body`; resolves the status and the parsed body (JSON or text). */
async function upload(
  t: TestServer,
  token: string | null,
  name: string | null,
  body: BodyInit | null,
  headers: Record<string, string> = {},
): Promise<{ status: number; file?: FileInfo; text?: string }> {
  const q = name === null ? "" : `?name=${encodeURIComponent(name)}`;
  const res = await fetch(`${t.http}/api/files${q}`, {
    method: "POST",
    headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...headers },
    body,
  });
  if (res.status === 201) return { status: 201, file: await res.json() };
  return { status: res.status, text: await res.text() };
}

/** GET a file link; resolves status, headers and body bytes. */
async function download(t: TestServer, url: string, headers: Record<string, string> = {}) {
  const res = await fetch(t.http + url, { headers });
  return {
    status: res.status,
    headers: res.headers,
    body: new Uint8Array(await res.arrayBuffer()),
  };
}

async function usage(t: TestServer): Promise<number> {
  return await t.server.hub.files.usage();
}

function tokenOf(c: SignedIn): string {
  return c.welcome.token!;
}

async function loginServer(args: string[] = []): Promise<TestServer> {
  return await startTestServer({
    users: {
      alice: await hashPassword("alice-pw-1"),
      bob: await hashPassword("bob-pw-12"),
      carol: await hashPassword("carol-pw-1"),
    },
    args,
  });
}

async function people(t: TestServer) {
  const alice = await signIn(t.ws, "alice", "alice-pw-1");
  const bob = await signIn(t.ws, "bob", "bob-pw-12");
  const carol = await signIn(t.ws, "carol", "carol-pw-1");
  return { alice, bob, carol };
}

/** Joins `room` and waits for the `joined`. */
async function join(c: SignedIn, room: string): Promise<void> {
  c.send({ type: "join", room });
  await c.next((f) => f.type === "joined" && f.room === room);
}

Deno.test("files: a member downloads what was sent to the room; others get 404, and so does a member who left", async () => {
  await using t = await loginServer();
  const { alice, bob, carol } = await people(t);
  try {
    await join(alice, "design");
    await join(bob, "design");
    const up = await upload(t, tokenOf(alice), "dot.png", PNG);
    assert.equal(up.status, 201);
    const f = up.file!;
    assert.equal(f.name, "dot.png");
    assert.equal(f.type, "image/png");
    assert.equal(f.size, PNG.length);
    assert.equal(f.width, 1);
    assert.equal(f.height, 1);
    assert.match(f.id, /^[A-Za-z0-9_-]{22}$/);
    assert.deepEqual(Object.keys(f), ["id", "name", "size", "type", "url", "width", "height"]);

    alice.send({ type: "send", room: "design", text: "", files: [f.id], ref: "r1" });
    const own = await alice.next<Message>((m) => m.type === "message" && m.ref === "r1");
    const got = await bob.next<Message>((m) => m.type === "message" && m.room === "design");
    assert.equal(own.text, "");
    assert.equal(own.files![0].id, f.id);
    assert.deepEqual({ ...got.files![0], url: "" }, { ...own.files![0], url: "" });
    // Each receiver's link is its own.
    assert.notEqual(got.files![0].url, own.files![0].url);
    assert.match(got.files![0].url!, /^\/files\/[A-Za-z0-9_-]{22}\/dot\.png\?v=bob&s=/);

    // bob's link works without any header, as an <img> would fetch it.
    const ok = await download(t, got.files![0].url!);
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.body, PNG);
    assert.equal(ok.headers.get("content-type"), "image/png");
    assert.match(ok.headers.get("content-disposition")!, /^inline; filename="dot.png"/);
    assert.equal(ok.headers.get("x-content-type-options"), "nosniff");
    assert.match(ok.headers.get("content-security-policy")!, /^sandbox/);
    assert.equal(ok.headers.get("etag"), `"${f.id}"`);
    assert.match(ok.headers.get("cache-control")!, /max-age=31536000/);
    assert.equal(ok.headers.get("accept-ranges"), "bytes");

    // carol is not in the room: neither her token nor any link of her own gets it.
    const asCarol = await download(t, got.files![0].url!, {
      authorization: `Bearer ${tokenOf(carol)}`,
    });
    assert.equal(asCarol.status, 404);
    assert.equal(carol.peek("message").length, 0);

    // A forged or altered link is the same 404 as a missing file.
    const url = new URL(t.http + got.files![0].url!);
    url.searchParams.set("v", "carol");
    assert.equal((await download(t, url.pathname + url.search)).status, 404);
    url.searchParams.set("v", "bob");
    url.searchParams.set("s", "A".repeat(22));
    assert.equal((await download(t, url.pathname + url.search)).status, 404);
    assert.equal((await download(t, `/files/${"x".repeat(22)}/a.png?v=bob&s=x`)).status, 404);

    bob.send({ type: "leave", room: "design" });
    await bob.next((m) => m.type === "left" && m.room === "design");
    assert.equal((await download(t, got.files![0].url!)).status, 404);
    // alice is still a member.
    assert.equal((await download(t, own.files![0].url!)).status, 200);
  } finally {
    await closeAll(alice, bob, carol);
  }
});

Deno.test("files: uploads are refused with clear statuses, and a refused upload keeps nothing", async () => {
  await using t = await loginServer(["--max-upload", "1000", "--files-quota", "3000"]);
  const { alice, bob, carol } = await people(t);
  try {
    const token = tokenOf(alice);
    const none = await upload(t, null, "a.txt", "hello");
    assert.equal(none.status, 401);
    assert.match(none.text!, /Bearer/);
    assert.equal((await upload(t, "v1.bad.token", "a.txt", "hello")).status, 401);
    const noName = await upload(t, token, null, "hello");
    assert.equal(noName.status, 400);
    assert.match(noName.text!, /name=FILENAME/);
    for (const bad of ["", "..", ".", "/", "\u202e\u0000"]) {
      const r = await upload(t, token, bad, "hello");
      assert.equal(r.status, 400, `name ${JSON.stringify(bad)}`);
    }
    const empty = await upload(t, token, "a.txt", new Uint8Array(0));
    assert.equal(empty.status, 400);
    assert.match(empty.text!, /empty/);

    // Over --max-upload, said by Content-Length: refused before reading.
    const big = await upload(t, token, "big.bin", new Uint8Array(1001));
    assert.equal(big.status, 413);
    assert.match(big.text!, /larger than 1 KB/);
    // Without a length (streamed): refused as it crosses the limit.
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 5; i++) c.enqueue(new Uint8Array(300));
        c.close();
      },
    });
    const streamed = await upload(t, token, "big.bin", stream);
    assert.equal(streamed.status, 413);
    assert.equal(await usage(t), 0);

    // The quota: 3 × 900 bytes fit, a fourth does not (507), and nothing of it stays.
    for (let i = 0; i < 3; i++) {
      assert.equal((await upload(t, token, `f${i}.bin`, new Uint8Array(900).fill(1))).status, 201);
    }
    assert.equal(await usage(t), 2700);
    const full = await upload(t, token, "f3.bin", new Uint8Array(900).fill(1));
    assert.equal(full.status, 507);
    assert.match(full.text!, /storage is full/);
    assert.equal(await usage(t), 2700);
    // Nobody else was told anything; connections still work.
    for (const c of [alice, bob, carol]) {
      await c.barrier();
      assert.equal(c.peek("error").length, 0);
    }
  } finally {
    await closeAll(alice, bob, carol);
  }
});

Deno.test("files: the type comes from the bytes and names are cleaned", async () => {
  await using t = await loginServer();
  const alice = await signIn(t.ws, "alice", "alice-pw-1");
  try {
    const html = "<html><script>alert(document.cookie)</script></html>";
    const up = await upload(t, tokenOf(alice), "../../etc/cat.png", html);
    assert.equal(up.status, 201);
    assert.equal(up.file!.type, "text/plain");
    assert.equal(up.file!.name, "cat.png");
    assert.equal(up.file!.width, undefined);
    const got = await download(t, up.file!.url!);
    assert.equal(got.status, 200);
    assert.equal(got.headers.get("content-type"), "text/plain; charset=utf-8");
    assert.match(got.headers.get("content-disposition")!, /^attachment; filename="cat.png"/);
    assert.equal(new TextDecoder().decode(got.body), html);

    const bidi = await upload(t, tokenOf(alice), "invoice\u202egpj.exe", "x");
    assert.equal(bidi.file!.name, "invoicegpj.exe");
    const svg = await upload(
      t,
      tokenOf(alice),
      "logo.svg",
      '<svg xmlns="http://www.w3.org/2000/svg"/>',
    );
    assert.equal(svg.file!.type, "text/plain");
  } finally {
    await closeAll(alice);
  }
});

Deno.test("files: send refuses files that are not the sender's unsent uploads, and nothing is sent", async () => {
  await using t = await loginServer();
  const { alice, bob, carol } = await people(t);
  try {
    const mine = (await upload(t, tokenOf(alice), "a.txt", "a")).file!;
    const bobs = (await upload(t, tokenOf(bob), "b.txt", "b")).file!;
    const refuse = async (frame: Record<string, unknown>, code: string) => {
      alice.send({ type: "send", room: "general", text: "x", ...frame });
      const err = await alice.next<ServerFrame & { type: "error" }>("error");
      assert.equal(err.code, code, JSON.stringify(frame));
      assert.equal(err.ref, frame.ref);
      return err;
    };
    const e1 = await refuse({ files: [bobs.id], ref: "a" }, "unknown_file");
    assert.match(e1.message, new RegExp(bobs.id));
    await refuse({ files: ["A".repeat(22)], ref: "b" }, "unknown_file");
    // All or nothing: mine is not used up by a send that named bob's too.
    await refuse({ files: [mine.id, bobs.id], ref: "c" }, "unknown_file");
    await refuse({ files: [mine.id, mine.id], ref: "d" }, "bad_request");
    await refuse({ files: ["not an id"], ref: "e" }, "bad_request");
    await refuse({
      files: Array.from({ length: 11 }, (_, i) => `${i}`.padStart(22, "A")),
      ref: "f",
    }, "bad_request");
    await refuse({ files: "x", ref: "g" }, "bad_request");

    alice.send({ type: "send", room: "general", files: [mine.id], ref: "ok" });
    const sent = await alice.next<Message>((m) => m.type === "message" && m.ref === "ok");
    assert.equal(sent.text, "");
    assert.equal(sent.files!.length, 1);
    // Once sent, it cannot be sent again (another ref).
    await refuse({ files: [mine.id], ref: "again" }, "unknown_file");
    // A resend with the same ref is the same message, not a refusal.
    alice.send({ type: "send", room: "general", text: "", files: [mine.id], ref: "ok" });
    const again = await alice.next<Message>((m) => m.type === "message" && m.ref === "ok");
    assert.equal(again.id, sent.id);
    assert.equal(again.files![0].id, mine.id);

    await bob.barrier();
    await carol.barrier();
    const seen = (c: SignedIn) => c.peek("message").filter((m) => m.type === "message");
    assert.deepEqual(seen(bob).map((m) => (m as Message).id), [sent.id]);
    assert.deepEqual(seen(carol).map((m) => (m as Message).id), [sent.id]);
    assert.equal(bob.peek("error").length, 0);
  } finally {
    await closeAll(alice, bob, carol);
  }
});

Deno.test("files: a DM's file reaches its two parties only; deleting the message deletes the file", async () => {
  await using t = await loginServer();
  const { alice, bob, carol } = await people(t);
  try {
    const f = (await upload(t, tokenOf(alice), "notes.txt", "secret plans")).file!;
    alice.send({ type: "send", to: "bob", text: "for you", files: [f.id], ref: "d1" });
    const own = await alice.next<Message>((m) => m.type === "message" && m.ref === "d1");
    const got = await bob.next<Message>((m) => m.type === "message" && m.to === "bob");
    assert.match(got.files![0].url!, /v=bob/);
    assert.equal((await download(t, got.files![0].url!)).status, 200);
    // carol holding bob's link with her own token: not a party.
    const withCarol = await download(t, got.files![0].url!, {
      authorization: `Bearer ${tokenOf(carol)}`,
    });
    assert.equal(withCarol.status, 404);
    assert.equal(await usage(t), "secret plans".length);

    alice.send({ type: "delete", to: "bob", id: own.id, ref: "x" });
    const tomb = await bob.next<ServerFrame & { type: "deleted" }>("deleted");
    assert.equal(tomb.id, own.id);
    await waitUntil(async () => (await t.server.hub.files.get(f.id)) === null, "the file goes");
    assert.equal((await download(t, got.files![0].url!)).status, 404);
    assert.equal((await download(t, own.files![0].url!)).status, 404);
    assert.equal(await usage(t), 0);
    // The tombstone has no files, in history too.
    bob.send({ type: "history", to: "alice" });
    const page = await bob.next<ServerFrame & { type: "history" }>("history");
    assert.equal(page.messages.find((m) => m.id === own.id)?.files, undefined);
  } finally {
    await closeAll(alice, bob, carol);
  }
});

Deno.test("files: history, joined and search give each reader links signed for them", async () => {
  await using t = await loginServer();
  const { alice, bob, carol } = await people(t);
  try {
    const f = (await upload(t, tokenOf(alice), "plan.pdf", "%PDF-1.4\n%âãÏÓ\n1 0 obj\n")).file!;
    assert.equal(f.type, "application/pdf");
    alice.send({
      type: "send",
      room: "general",
      text: "the quarterly plan",
      files: [f.id],
      ref: "p",
    });
    await alice.next((m) => m.type === "message" && m.ref === "p");
    await join(carol, "general").catch(() => {});
    carol.send({ type: "history", room: "general" });
    const page = await carol.next<ServerFrame & { type: "history" }>("history");
    const mine = page.messages.find((m) => m.files?.[0]?.id === f.id)!;
    assert.match(mine.files![0].url!, /v=carol/);
    const got = await download(t, mine.files![0].url!);
    assert.equal(got.status, 200);
    assert.match(got.headers.get("content-disposition")!, /^attachment/);

    bob.send({ type: "search", q: "quarterly" });
    const found = await bob.next<ServerFrame & { type: "search" }>("search");
    assert.match(found.messages[0].files![0].url!, /v=bob/);
    // Found by the file's name too.
    bob.send({ type: "search", q: "plan.pdf" });
    const byName = await bob.next<ServerFrame & { type: "search" }>("search");
    assert.deepEqual(byName.messages.map((m) => m.files?.[0]?.id), [f.id]);

    // A newcomer's joined page carries links for them too.
    const dave = await signIn(t.ws, "alice", "alice-pw-1");
    try {
      dave.send({ type: "join", room: "general" });
      const joined = await dave.next<ServerFrame & { type: "joined" }>("joined");
      const m = joined.history.find((x) => x.files?.[0]?.id === f.id)!;
      assert.match(m.files![0].url!, /v=alice/);
    } finally {
      await dave.close();
    }
  } finally {
    await closeAll(alice, bob, carol);
  }
});

Deno.test("files: Range, HEAD and If-None-Match", async () => {
  await using t = await loginServer();
  const alice = await signIn(t.ws, "alice", "alice-pw-1");
  try {
    const bytes = new Uint8Array(700_000);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) & 0xff;
    const f = (await upload(t, tokenOf(alice), "data.bin", bytes)).file!;
    assert.equal(f.type, "application/octet-stream");
    assert.equal(f.size, bytes.length);
    const whole = await download(t, f.url!);
    assert.deepEqual(whole.body, bytes);
    assert.equal(whole.headers.get("content-length"), String(bytes.length));

    // Across a chunk boundary (256 KiB).
    const part = await download(t, f.url!, { range: "bytes=262000-263000" });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get("content-range"), `bytes 262000-263000/${bytes.length}`);
    assert.deepEqual(part.body, bytes.slice(262000, 263001));
    const tail = await download(t, f.url!, { range: "bytes=-10" });
    assert.deepEqual(tail.body, bytes.slice(-10));
    const open = await download(t, f.url!, { range: "bytes=699990-" });
    assert.deepEqual(open.body, bytes.slice(699990));
    const outside = await download(t, f.url!, { range: "bytes=700000-" });
    assert.equal(outside.status, 416);
    assert.equal(outside.headers.get("content-range"), `bytes */${bytes.length}`);

    const cached = await download(t, f.url!, { "if-none-match": `"${f.id}"` });
    assert.equal(cached.status, 304);
    assert.equal(cached.body.length, 0);

    const head = await fetch(t.http + f.url!, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), String(bytes.length));
    assert.equal((await head.arrayBuffer()).byteLength, 0);
  } finally {
    await closeAll(alice);
  }
});

Deno.test("files: an unsent upload is its owner's only, and is swept after an hour", async () => {
  await using t = await loginServer();
  const { alice, bob, carol } = await people(t);
  try {
    const f = (await upload(t, tokenOf(alice), "draft.txt", "draft")).file!;
    assert.equal((await download(t, f.url!)).status, 200);
    const asBob = await download(t, f.url!, { authorization: `Bearer ${tokenOf(bob)}` });
    assert.equal(asBob.status, 404);
    const janitor = new FileJanitor(t.server.hub.files, t.server.hub.store, memoryLogger());
    // Not yet an hour: kept.
    assert.equal(await janitor.sweep(Date.now()), 0);
    assert.equal(await janitor.sweep(Date.now() + 61 * 60_000), 1);
    assert.equal((await download(t, f.url!)).status, 404);
    alice.send({ type: "send", room: "general", files: [f.id], ref: "late" });
    const err = await alice.next<ServerFrame & { type: "error" }>("error");
    assert.equal(err.code, "unknown_file");
  } finally {
    await closeAll(alice, bob, carol);
  }
});

Deno.test("files: a file whose message is dropped by the history limit is swept with it", async () => {
  await using t = await loginServer(["--history", "2"]);
  const alice = await signIn(t.ws, "alice", "alice-pw-1");
  try {
    const f = (await upload(t, tokenOf(alice), "old.txt", "old")).file!;
    alice.send({ type: "send", room: "general", files: [f.id], ref: "f" });
    await alice.next((m) => m.type === "message" && m.ref === "f");
    const janitor = new FileJanitor(t.server.hub.files, t.server.hub.store, memoryLogger());
    assert.equal(await janitor.sweep(Date.now()), 0);
    for (let i = 0; i < 3; i++) {
      alice.send({ type: "send", room: "general", text: `m${i}`, ref: `m${i}` });
      await alice.next((m) => m.type === "message" && m.ref === `m${i}`);
    }
    assert.equal(await janitor.sweep(Date.now()), 1);
    assert.equal(await t.server.hub.files.get(f.id), null);
  } finally {
    await closeAll(alice);
  }
});

Deno.test("files: one user has at most 4 uploads under way", async () => {
  await using t = await loginServer();
  const alice = await signIn(t.ws, "alice", "alice-pw-1");
  const stalls: ReadableStreamDefaultController<Uint8Array>[] = [];
  const running: Promise<unknown>[] = [];
  try {
    for (let i = 0; i < 4; i++) {
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          stalls.push(c);
          c.enqueue(new Uint8Array(10));
        },
      });
      running.push(upload(t, tokenOf(alice), `s${i}.bin`, body));
    }
    // Wait until the server counts all four, then a fifth is refused.
    let fifth;
    for (let i = 0;; i++) {
      fifth = await upload(t, tokenOf(alice), "fifth.bin", "x");
      if (fifth.status === 429) break;
      assert.equal(fifth.status, 201);
      assert.ok(i < 1000, "the stalled uploads are counted");
    }
    assert.match(fifth.text!, /uploads under way/);
  } finally {
    for (const c of stalls) c.close();
    await Promise.allSettled(running);
    await closeAll(alice);
  }
});

Deno.test("files: a photo comes back without its GPS position or camera serial, still the right way up", async () => {
  await using t = await loginServer();
  const { alice, bob, carol } = await people(t);
  try {
    const photo = await Deno.readFile(new URL("./fixtures/images/photo.jpg", import.meta.url));
    const text = (b: Uint8Array) => new TextDecoder("latin1").decode(b);
    assert.match(text(photo), /SN4242SECRET/);
    // The name says PNG and the request says HTML: the bytes say JPEG.
    const up = await upload(t, tokenOf(alice), "IMG_0001.png", photo, {
      "content-type": "text/html",
    });
    assert.equal(up.status, 201);
    const f = up.file!;
    assert.equal(f.type, "image/jpeg");
    // 64×48 taken sideways (orientation 6): shown 48×64.
    assert.deepEqual([f.width, f.height], [48, 64]);
    assert.ok(f.size < photo.length);
    alice.send({
      type: "send",
      room: "general",
      text: "view from the top",
      files: [f.id],
      ref: "j",
    });
    const got = await bob.next<Message>((m) => m.type === "message" && m.from === "alice");
    const r = await download(t, got.files![0].url!);
    assert.equal(r.status, 200);
    assert.equal(r.body.length, f.size);
    const out = text(r.body);
    for (
      const secret of ["SN4242SECRET", "SecretArtist", "SecretCreator", "SecretComment", "GPS"]
    ) {
      assert.ok(!out.includes(secret), `${secret} is gone`);
    }
    // Still a JPEG (SOI … EOI) that keeps its orientation in a minimal Exif.
    assert.deepEqual([...r.body.subarray(0, 2)], [0xff, 0xd8]);
    assert.deepEqual([...r.body.subarray(-2)], [0xff, 0xd9]);
    assert.match(out, /Exif\0\0/);
    assert.match(r.headers.get("content-disposition")!, /^inline/);
  } finally {
    await closeAll(alice, bob, carol);
  }
});

Deno.test("files: a send that reuses a ref with other text cannot take files another message carries", async () => {
  await using t = await loginServer();
  const alice = await signIn(t.ws, "alice", "alice-pw-1");
  try {
    const f = (await upload(t, tokenOf(alice), "a.txt", "a")).file!;
    alice.send({ type: "send", room: "general", text: "first", files: [f.id], ref: "same" });
    const first = await alice.next<Message>((m) => m.type === "message" && m.ref === "same");
    alice.send({ type: "send", room: "general", text: "second", files: [f.id], ref: "same" });
    const err = await alice.next<ServerFrame & { type: "error" }>("error");
    assert.equal(err.code, "unknown_file");
    // The real resend (same text) is still the same message.
    alice.send({ type: "send", room: "general", text: "first", files: [f.id], ref: "same" });
    const again = await alice.next<Message>((m) => m.type === "message" && m.ref === "same");
    assert.equal(again.id, first.id);
  } finally {
    await closeAll(alice);
  }
});

Deno.test("files: a HEIC or AVIF photo comes back with its Exif and XMP zeroed, a damaged one is refused", async () => {
  await using t = await loginServer();
  const { alice, bob, carol } = await people(t);
  try {
    const text = (b: Uint8Array) => Array.from(b, (c) => String.fromCharCode(c)).join("");
    const cases: [string, string, number, number][] = [
      ["photo.heic", "image/heic", 64, 48],
      // Turned a quarter by its irot property.
      ["photo.avif", "image/avif", 48, 64],
    ];
    for (const [name, type, width, height] of cases) {
      const photo = await Deno.readFile(new URL(`./fixtures/images/${name}`, import.meta.url));
      assert.match(text(photo), /SN4242SECRET/);
      const up = await upload(t, tokenOf(alice), "IMG_0002.jpg", photo);
      assert.equal(up.status, 201, up.text);
      const f = up.file!;
      assert.equal(f.type, type);
      assert.deepEqual([f.width, f.height], [width, height]);
      // Zeroed in place: the same length, every offset still right.
      assert.equal(f.size, photo.length);
      alice.send({ type: "send", room: "general", text: name, files: [f.id], ref: name });
      const got = await bob.next<Message>((m) => m.type === "message" && m.text === name);
      const r = await download(t, got.files![0].url!);
      assert.equal(r.status, 200);
      assert.equal(r.body.length, photo.length);
      const out = text(r.body);
      for (const secret of ["SN4242SECRET", "SecretArtist", "SecretCreator", "<x:xmpmeta"]) {
        assert.ok(!out.includes(secret), `${secret} is gone from ${name}`);
      }
      assert.equal(out.slice(4, 8), "ftyp");
      assert.match(r.headers.get("content-disposition")!, /^attachment/);
    }
    // Cut inside its meta box: refused, nothing kept.
    const heic = await Deno.readFile(new URL("./fixtures/images/photo.heic", import.meta.url));
    const before = await usage(t);
    const bad = await upload(t, tokenOf(alice), "cut.heic", heic.subarray(0, 200));
    assert.equal(bad.status, 400);
    assert.match(bad.text!, /Cannot read the HEIC image/);
    assert.equal(await usage(t), before);
  } finally {
    await closeAll(alice, bob, carol);
  }
});
