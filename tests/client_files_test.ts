/**
 * The terminal client's files: `uploadFile` and `downloadFile` against a
 * small fake HTTP server (what goes over the wire, refusals, cancelling),
 * then `/upload` and `/download` in the interactive client against the real
 * server, in process (a fake terminal) and as the real `chat client` in tmux.
 */
import assert from "node:assert/strict";
import type { ServerFrame } from "../protocol.ts";
import {
  baseName,
  destination,
  downloadFile,
  expandHome,
  localName,
  numbered,
  type Progress,
  TransferError,
  uploadFile,
} from "../client/files.ts";
import { Session, type SessionEvent } from "../client/session.ts";
import { type TerminalIO, TerminalUI } from "../client/terminal.ts";
import { closeAll, signIn, startTestServer, waitUntil } from "./helpers.ts";
import { ConfigHome, denoDir, randomBytes, ROOT, TempDir } from "./client_helpers.ts";
import { Tmux } from "./tmux.ts";

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

const USERS = { alice: "alice-pass", bob: "bob-pass1" };

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)).toHex();
}

/** A fake HTTP server on a free port; `ws` is the chat URL a client would be given. */
function fakeServer(handler: (req: Request) => Response | Promise<Response>) {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
  return {
    server,
    ws: `ws://127.0.0.1:${server.addr.port}/ws`,
    http: `http://127.0.0.1:${server.addr.port}`,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** Records progress calls. */
function progress(): { calls: [number, number | null][]; onProgress: Progress } {
  const calls: [number, number | null][] = [];
  return { calls, onProgress: (done, total) => calls.push([done, total]) };
}

Deno.test("numbered(), localName(), baseName() and expandHome() name files safely", () => {
  assert.equal(numbered("photo.png", 1), "photo (1).png");
  assert.equal(numbered("dir/archive.tar.gz", 2), "dir/archive (2).tar.gz");
  assert.equal(numbered("/a.b/README", 1), "/a.b/README (1)");
  assert.equal(numbered(".bashrc", 1), ".bashrc (1)");
  assert.equal(numbered("my photo.jpeg", 3), "my photo (3).jpeg");
  assert.equal(localName("../../etc/passwd"), ".._.._etc_passwd");
  assert.equal(localName("a\\b\x1bc"), "a_b_c");
  assert.equal(localName(".."), "download");
  assert.equal(localName(" "), "download");
  assert.equal(baseName("/tmp/x/photo.png"), "photo.png");
  assert.equal(baseName("C:\\Users\\ann\\a.txt"), "a.txt");
  assert.equal(baseName("dir/"), "dir");
  const home = Deno.env.get("HOME");
  if (home) assert.equal(expandHome("~/a.txt"), `${home}/a.txt`);
  assert.equal(expandHome("a/~/b"), "a/~/b");
});

Deno.test("destination() is the file's name here, in a directory, or the path given", async () => {
  await using dir = new TempDir();
  assert.equal(destination("photo.png"), "photo.png");
  assert.equal(destination("../photo.png"), ".._photo.png");
  assert.equal(destination("photo.png", dir.path), `${dir.path}/photo.png`);
  assert.equal(destination("photo.png", `${dir.path}/new/`), `${dir.path}/new/photo.png`);
  assert.equal(destination("photo.png", `${dir.path}/other.png`), `${dir.path}/other.png`);
});

Deno.test("uploadFile() streams the file with the token and its name, and reports progress", async () => {
  await using dir = new TempDir();
  const bytes = randomBytes(1_500_000);
  const path = `${dir.path}/my photo é.bin`;
  await Deno.writeFile(path, bytes);
  const seen: { auth: string | null; name: string | null; type: string | null; sha?: string } = {
    auth: null,
    name: null,
    type: null,
  };
  await using fake = fakeServer(async (req) => {
    const url = new URL(req.url);
    assert.equal(req.method, "POST");
    assert.equal(url.pathname, "/api/files");
    seen.auth = req.headers.get("authorization");
    seen.name = url.searchParams.get("name");
    seen.type = req.headers.get("content-type");
    const body = new Uint8Array(await req.arrayBuffer());
    seen.sha = await sha256(body);
    return Response.json({
      id: "A".repeat(22),
      name: seen.name,
      size: body.length,
      type: "application/octet-stream",
      url: `/files/${"A".repeat(22)}/x?v=alice&s=sig`,
    }, { status: 201 });
  });
  const p = progress();
  const info = await uploadFile(path, { wsUrl: fake.ws, token: "tok-123", ...p });
  assert.equal(seen.auth, "Bearer tok-123");
  assert.equal(seen.name, "my photo é.bin");
  assert.equal(seen.type, "application/octet-stream");
  assert.equal(seen.sha, await sha256(bytes), "the server got the file byte for byte");
  assert.deepEqual([info.id, info.name, info.size], ["A".repeat(22), "my photo é.bin", 1_500_000]);
  assert.deepEqual(p.calls[0], [0, 1_500_000]);
  assert.deepEqual(p.calls.at(-1), [1_500_000, 1_500_000]);
  assert.ok(p.calls.length > 3, "progress in several steps");
  assert.ok(p.calls.every(([d], i) => i === 0 || d >= p.calls[i - 1][0]), "never backwards");
});

Deno.test("uploadFile() says the server's sentence for a refusal, or its status", async () => {
  await using dir = new TempDir();
  const path = `${dir.path}/big.bin`;
  await Deno.writeFile(path, randomBytes(3_000_000));
  let answer = new Response("The file is larger than 1 MB, this chat's limit\n", { status: 413 });
  // The server answers without reading the body, as a real one does past --max-upload.
  await using fake = fakeServer(() => answer);
  await assert.rejects(
    () => uploadFile(path, { wsUrl: fake.ws, token: "t" }),
    (err) => {
      assert.ok(err instanceof TransferError);
      assert.equal(err.message, "The file is larger than 1 MB, this chat's limit");
      assert.equal(err.status, 413);
      assert.equal(err.cancelled, false);
      return true;
    },
  );
  answer = new Response("<html>Bad gateway</html>", { status: 502, statusText: "Bad Gateway" });
  await assert.rejects(
    () => uploadFile(path, { wsUrl: fake.ws, token: "t" }),
    { message: "The server answered 502 Bad Gateway" },
  );
  await fake.server.shutdown();
  await assert.rejects(
    () => uploadFile(path, { wsUrl: fake.ws, token: "t" }),
    { message: /^Cannot connect to 127\.0\.0\.1:\d+: connection refused/ },
  );
});

Deno.test("uploadFile() refuses a missing file and a directory without asking the server", async () => {
  await using dir = new TempDir();
  let requests = 0;
  await using fake = fakeServer(() => {
    requests++;
    return new Response("no", { status: 500 });
  });
  await assert.rejects(
    () => uploadFile(`${dir.path}/nope.txt`, { wsUrl: fake.ws, token: "t" }),
    { message: `There is no file "${dir.path}/nope.txt"` },
  );
  await assert.rejects(
    () => uploadFile(dir.path, { wsUrl: fake.ws, token: "t" }),
    { message: `"${dir.path}" is a directory: give a file` },
  );
  assert.equal(requests, 0);
});

Deno.test("uploadFile() stops when its signal aborts, and closes the file", async () => {
  await using dir = new TempDir();
  const path = `${dir.path}/slow.bin`;
  await Deno.writeFile(path, randomBytes(4_000_000));
  const release = Promise.withResolvers<void>();
  const started = Promise.withResolvers<void>();
  await using fake = fakeServer(async (req) => {
    // Takes a little, then stops reading: the client's upload stalls.
    const reader = req.body!.getReader();
    await reader.read();
    started.resolve();
    await release.promise;
    await reader.cancel().catch(() => {});
    return new Response("late", { status: 500 });
  });
  const abort = new AbortController();
  const upload = uploadFile(path, { wsUrl: fake.ws, token: "t", signal: abort.signal });
  try {
    await started.promise;
    abort.abort();
    await assert.rejects(upload, (err) => err instanceof TransferError && err.cancelled);
  } finally {
    release.resolve();
  }
});

Deno.test("downloadFile() streams to the path, or beside it when taken, sending the token", async () => {
  await using dir = new TempDir();
  const bytes = randomBytes(700_000);
  let auth: string | null = null;
  await using fake = fakeServer((req) => {
    auth = req.headers.get("authorization");
    if (!new URL(req.url).pathname.startsWith("/files/ok/")) {
      return new Response("Not found", { status: 404 });
    }
    return new Response(bytes, { headers: { "content-length": String(bytes.length) } });
  });
  const p = progress();
  const first = await downloadFile(
    `${fake.http}/files/ok/photo.png?v=bob&s=x`,
    `${dir.path}/photo.png`,
    {
      wsUrl: fake.ws,
      token: "tok-b",
      ...p,
    },
  );
  assert.equal(auth, "Bearer tok-b");
  assert.deepEqual(first, { path: `${dir.path}/photo.png`, size: 700_000 });
  assert.equal(await sha256(await Deno.readFile(first.path)), await sha256(bytes));
  assert.deepEqual(p.calls.at(-1), [700_000, 700_000]);

  // Never over an existing file.
  const second = await downloadFile(`${fake.http}/files/ok/photo.png`, `${dir.path}/photo.png`, {
    wsUrl: fake.ws,
  });
  assert.deepEqual(second, {
    path: `${dir.path}/photo (1).png`,
    size: 700_000,
    taken: `${dir.path}/photo.png`,
  });
  assert.equal((await Deno.stat(`${dir.path}/photo.png`)).size, 700_000);

  await assert.rejects(
    () => downloadFile(`${fake.http}/files/gone/x.txt`, `${dir.path}/x.txt`, { wsUrl: fake.ws }),
    (err) =>
      err instanceof TransferError && err.status === 404 &&
      /no such file for you/.test(err.message),
  );
  await assert.rejects(() => Deno.stat(`${dir.path}/x.txt`), Deno.errors.NotFound);
});

Deno.test("uploadFile() and downloadFile() ask nothing for paths they may use, and are ready before the server is asked", async () => {
  // Run with -A: every path is granted, so `ask` must not be called.
  await using dir = new TempDir();
  await Deno.writeFile(`${dir.path}/a.bin`, randomBytes(1000));
  const events: string[] = [];
  await using fake = fakeServer(async (req) => {
    events.push(`server ${req.method}`);
    if (req.method === "POST") {
      await req.body?.cancel();
      return Response.json({ id: "x", name: "a.bin", size: 1000, type: "", url: "/files/x/a" }, {
        status: 201,
      });
    }
    return new Response("not found", { status: 404 });
  });
  const ask = (access: string, path: string) => {
    events.push(`ask ${access} ${path}`);
    return Promise.resolve("granted" as const);
  };
  await uploadFile(`${dir.path}/a.bin`, {
    wsUrl: fake.ws,
    token: "t",
    ask,
    onReady: () => events.push("ready"),
  });
  assert.deepEqual(events, ["ready", "server POST"]);
  events.length = 0;
  // The file is created first (then removed when the server has none).
  await assert.rejects(
    () =>
      downloadFile(`${fake.http}/files/gone/b.bin`, `${dir.path}/b.bin`, {
        wsUrl: fake.ws,
        ask,
        onReady: () => events.push(`ready ${Deno.statSync(`${dir.path}/b.bin`).isFile}`),
      }),
    (err) => err instanceof TransferError && err.status === 404,
  );
  assert.deepEqual(events, ["ready true", "server GET"]);
  await assert.rejects(() => Deno.stat(`${dir.path}/b.bin`), Deno.errors.NotFound);
});

Deno.test("downloadFile() cancelled half-way leaves no partial file", async () => {
  await using dir = new TempDir();
  const release = Promise.withResolvers<void>();
  await using fake = fakeServer(() => {
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(randomBytes(100_000));
        await release.promise;
        controller.close();
      },
    });
    return new Response(body, { headers: { "content-length": "200000" } });
  });
  const abort = new AbortController();
  const got = Promise.withResolvers<void>();
  const download = downloadFile(`${fake.http}/files/x/a.bin`, `${dir.path}/a.bin`, {
    wsUrl: fake.ws,
    signal: abort.signal,
    onProgress: (done) => done > 0 && got.resolve(),
  });
  try {
    await got.promise;
    abort.abort();
    await assert.rejects(download, (err) => err instanceof TransferError && err.cancelled);
    await assert.rejects(() => Deno.stat(`${dir.path}/a.bin`), Deno.errors.NotFound);
  } finally {
    release.resolve();
  }
});

// ---------------------------------------------------------------------------
// The interactive client in process, against the real server

/** A terminal the test types into and reads from. */
class FakeTerminal implements TerminalIO {
  #out = "";
  #input: Uint8Array[] = [];
  #wake: (() => void) | null = null;
  #ended = false;

  async read(buf: Uint8Array): Promise<number | null> {
    while (this.#input.length === 0) {
      if (this.#ended) return null;
      await new Promise<void>((r) => this.#wake = r);
    }
    const chunk = this.#input.shift()!;
    buf.set(chunk);
    return chunk.length;
  }
  write(bytes: Uint8Array): void {
    this.#out += new TextDecoder().decode(bytes);
  }
  columns(): number {
    return 300;
  }
  setRaw(): void {}
  onSignals(): () => void {
    return () => {};
  }

  /** Types keys. */
  type(text: string): void {
    this.#input.push(new TextEncoder().encode(text));
    this.#wake?.();
  }
  /** Types a line and Enter. */
  line(text: string): void {
    this.type(`${text}\r`);
  }
  /** End of input. */
  end(): void {
    this.#ended = true;
    this.#wake?.();
  }
  /** The lines printed so far (above the input line), without styles. */
  lines(): string[] {
    return this.#out.split("\r\n").slice(0, -1).map((seg) => plain(seg.split("\x1b[2K").at(-1)!));
  }
  /** Every input line drawn so far, in order. */
  prompts(): string[] {
    return this.#out.split("\r\x1b[2K").slice(1).map((seg) => plain(seg.split("\r")[0]));
  }
  /** Waits for a printed line matching `what`; resolves it. */
  waitFor(what: string | RegExp): Promise<string> {
    const test = (l: string) => typeof what === "string" ? l.includes(what) : what.test(l);
    return waitUntil(() => this.lines().find(test), `a line ${what}`);
  }
}

/** Text without ANSI escape sequences. */
function plain(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "");
}

/** The interactive client for `user`, in process, on a fake terminal. */
async function startUI(url: string, user: string, password: string) {
  const term = new FakeTerminal();
  const early: SessionEvent[] = [];
  let ui: TerminalUI | null = null;
  const session = new Session({
    url,
    username: user,
    password,
    onEvent: (e) => ui ? ui.handle(e) : early.push(e),
  });
  const welcome = await session.start();
  ui = new TerminalUI({ session, welcome, url, color: false, io: term });
  for (const e of early) ui.handle(e);
  const running = ui.run();
  await term.waitFor("-- You are in #general");
  return {
    term,
    session,
    async [Symbol.asyncDispose]() {
      ui!.quit(0);
      await running;
      term.end();
      await session.close();
    },
  };
}

Deno.test("/upload sends a file that another client sees, /download saves it byte for byte", async () => {
  await using t = await startTestServer({ users: USERS });
  await using dir = new TempDir();
  const bytes = randomBytes(1_200_000);
  await Deno.writeFile(`${dir.path}/my photo.bin`, bytes);
  await using alice = await startUI(t.ws, "alice", USERS.alice);
  await using bob = await startUI(t.ws, "bob", USERS.bob);

  alice.term.line(`/upload "${dir.path}/my photo.bin" here it **is**`);
  await alice.term.waitFor("-- Uploaded my photo.bin (1.2 MB)");
  await alice.term.waitFor(/^\d\d:\d\d alice: here it \*\*is\*\*$/);
  // The file's line ends with the command that saves it; its link is on the next line.
  const seen = await bob.term.waitFor(/^ {2}📎 my photo\.bin \(1\.2 MB\) · \/download [\w-]{8}$/);
  const link = await bob.term.waitFor(/^ {4}http:\/\//);
  const m = /\/files\/([A-Za-z0-9_-]{22})\/my%20photo\.bin\?v=bob&s=/.exec(link);
  assert.ok(m, `the link is signed for bob: ${link}`);
  assert.ok(link.startsWith(`    ${t.http}/files/`), "the link is absolute");
  const id = m[1];
  const command = seen.slice(seen.indexOf("/download"));
  assert.equal(command, `/download ${id.slice(0, 8)}`);
  // The upload's progress was drawn in front of the prompt, and is gone after it.
  assert.ok(alice.term.prompts().some((p) => /^Uploading my photo\.bin \d+% \(/.test(p)));
  assert.equal(alice.term.prompts().at(-1), "#general> ");

  // The command as shown, with a directory: that takes the file's name.
  const out = `${dir.path}/out`;
  await Deno.mkdir(out);
  bob.term.line(`${command} ${out}`);
  await bob.term.waitFor(`-- Saved my photo.bin (1.2 MB) as ${out}/my photo.bin`);
  assert.equal(await sha256(await Deno.readFile(`${out}/my photo.bin`)), await sha256(bytes));
  // Again: beside it, saying so.
  bob.term.line(`/download ${id} ${out}/`);
  await bob.term.waitFor(
    `-- Saved my photo.bin (1.2 MB) as ${out}/my photo (1).bin (${out}/my photo.bin exists already)`,
  );
  assert.equal((await Deno.stat(`${out}/my photo (1).bin`)).size, 1_200_000);

  bob.term.line("/download zzzzzz");
  await bob.term.waitFor(
    `! There is no file "zzzzzz" in this conversation's messages: give the id shown after it (/download ID)`,
  );
  // History shows files too; a message of a file alone starts with it.
  alice.term.line(`/upload ${dir.path}/my\\ photo.bin`);
  await alice.term.waitFor(/^\d\d:\d\d alice: 📎 my photo\.bin \(1\.2 MB\) · \/download [\w-]{8}$/);
  bob.term.line("/history 2");
  await bob.term.waitFor("-- Last 2 messages in #general:");
  await waitUntil(
    () =>
      bob.term.lines().filter((l) => /📎 my photo\.bin \(1\.2 MB\) · \/download [\w-]{8}$/.test(l))
          .length >= 4 &&
      bob.term.lines().filter((l) => l.startsWith(`    ${t.http}/files/`)).length >= 4,
    "bob sees both files live and in history, each with its link below",
  );
});

Deno.test("/download without a path saves into $XDG_DOWNLOAD_DIR, else ~/Downloads, else the current directory", async (t) => {
  await using server = await startTestServer({ users: USERS });
  await using dir = new TempDir();
  const bytes = randomBytes(5000);
  await Deno.writeFile(`${dir.path}/a.bin`, bytes);
  const saved = { home: Deno.env.get("HOME"), xdg: Deno.env.get("XDG_DOWNLOAD_DIR") };
  const cwd = Deno.cwd();
  const restore = (name: string, value: string | undefined) =>
    value === undefined ? Deno.env.delete(name) : Deno.env.set(name, value);
  await using alice = await startUI(server.ws, "alice", USERS.alice);
  try {
    alice.term.line(`/upload ${dir.path}/a.bin`);
    const line = await alice.term.waitFor(/alice: 📎 a\.bin \(5 KB\) · \/download [\w-]{8}$/);
    const command = line.slice(line.indexOf("/download"));
    for (const sub of ["xdg", "home/Downloads", "cwd"]) {
      await Deno.mkdir(`${dir.path}/${sub}`, { recursive: true });
    }
    Deno.env.set("HOME", `${dir.path}/home`);
    Deno.chdir(`${dir.path}/cwd`);

    await t.step("$XDG_DOWNLOAD_DIR when it is a folder", async () => {
      Deno.env.set("XDG_DOWNLOAD_DIR", `${dir.path}/xdg/`);
      alice.term.line(command);
      await alice.term.waitFor(`-- Saved a.bin (5 KB) as ${dir.path}/xdg/a.bin`);
      assert.deepEqual(await Deno.readFile(`${dir.path}/xdg/a.bin`), bytes);
    });
    await t.step("~/Downloads when $XDG_DOWNLOAD_DIR is not a folder", async () => {
      Deno.env.set("XDG_DOWNLOAD_DIR", `${dir.path}/missing`);
      alice.term.line(command);
      await alice.term.waitFor(`-- Saved a.bin (5 KB) as ${dir.path}/home/Downloads/a.bin`);
      alice.term.line(command);
      await alice.term.waitFor(
        `-- Saved a.bin (5 KB) as ${dir.path}/home/Downloads/a (1).bin (${dir.path}/home/Downloads/a.bin exists already)`,
      );
    });
    await t.step("the current directory when neither is there", async () => {
      Deno.env.set("XDG_DOWNLOAD_DIR", "xdg"); // relative: ignored
      await Deno.remove(`${dir.path}/home/Downloads`, { recursive: true });
      alice.term.line(command);
      await alice.term.waitFor("-- Saved a.bin (5 KB) as ./a.bin");
      assert.deepEqual(await Deno.readFile(`${dir.path}/cwd/a.bin`), bytes);
    });
  } finally {
    Deno.chdir(cwd);
    restore("HOME", saved.home);
    restore("XDG_DOWNLOAD_DIR", saved.xdg);
  }
});

Deno.test("/upload of a file over --max-upload says the server's sentence and sends nothing", async () => {
  await using t = await startTestServer({ users: USERS, args: ["--max-upload", "2KB"] });
  await using dir = new TempDir();
  await Deno.writeFile(`${dir.path}/big.bin`, randomBytes(50_000));
  const bob = await signIn(t.ws, "bob", USERS.bob);
  await using alice = await startUI(t.ws, "alice", USERS.alice);
  try {
    alice.term.line(`/upload ${dir.path}/big.bin too big`);
    await alice.term.waitFor("! Not uploaded: the file is larger than 2 KB, this chat's limit");
    alice.term.line(`/upload ${dir.path}/nothing.bin`);
    await alice.term.waitFor(`! Not uploaded: there is no file "${dir.path}/nothing.bin"`);
    alice.term.line("after");
    await bob.next<F<"message">>((f) => f.type === "message" && f.text === "after");
    assert.equal(
      bob.all.filter((f) => f.type === "message" && f.from === "alice").length,
      1,
      "only the line after was sent",
    );
  } finally {
    await closeAll(bob);
  }
});

Deno.test("Ctrl+C cancels an upload under way, keeping the line typed meanwhile", async () => {
  await using t = await startTestServer({ users: USERS });
  await using dir = new TempDir();
  const fifo = `${dir.path}/stream`;
  const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
  assert.ok(made.success, "mkfifo");
  await using alice = await startUI(t.ws, "alice", USERS.alice);
  // A FIFO gives the upload bytes as the test writes them: it stays under way.
  const writer = Deno.open(fifo, { write: true });
  alice.term.line(`/upload ${fifo}`);
  const w = await writer;
  try {
    await w.write(randomBytes(100_000));
    await waitUntil(
      () =>
        alice.term.prompts().some((p) =>
          p.startsWith("Uploading stream 0% (") || /^Uploading stream \(\d/.test(p)
        ),
      "the progress shows",
    );
    alice.term.line(`/upload ${fifo}`);
    await alice.term.waitFor(
      "! An upload of stream is under way: wait for it, or press Ctrl+C to cancel it",
    );
    alice.term.type("half a line");
    await waitUntil(() => alice.term.prompts().at(-1)?.endsWith("#general> half a line"), "typed");
    alice.term.type("\x03");
    await alice.term.waitFor("-- Upload of stream cancelled");
    await waitUntil(
      () => alice.term.prompts().at(-1) === "#general> half a line",
      "the line survives Ctrl+C",
    );
  } finally {
    w.close();
  }
  // With no transfer, Ctrl+C clears the line as before.
  alice.term.type("\x03");
  await waitUntil(() => alice.term.prompts().at(-1) === "#general> ", "the line is cleared");
});

// ---------------------------------------------------------------------------
// The real `chat client` in a pseudo-terminal

/**
 * `deno run` arguments of `deno task client`, plus read and write access to
 * `dir`, with main.ts by its full path (the client runs in `dir`).
 */
function runWithFiles(config: ConfigHome, dir: string): string[] {
  return config.run.map((a) =>
    a.startsWith("--allow-read=") || a.startsWith("--allow-write=")
      ? `${a},${dir}`
      : a === "main.ts"
      ? `${ROOT}main.ts`
      : a
  );
}

Deno.test("chat client (terminal) uploads and downloads files where it may, and asks where it may not", async () => {
  await using t = await startTestServer({ users: USERS });
  await using dir = new TempDir();
  await using config = new ConfigHome();
  await using tty = new Tmux();
  const bob = await signIn(t.ws, "bob", USERS.bob);
  const bytes = randomBytes(300_000);
  await Deno.writeFile(`${dir.path}/report.pdf`, bytes);
  try {
    // HOME is the folder it may use: whether HOME/Downloads is there can be told.
    await tty.start([
      Deno.execPath(),
      ...runWithFiles(config, dir.path),
      "client",
      "-u",
      "alice",
      t.ws,
    ], {
      cwd: dir.path,
      env: { ...config.env, HOME: dir.path, DENO_DIR: await denoDir() },
      width: 80,
    });
    await tty.waitFor("Password for alice:");
    await tty.line(USERS.alice);
    await tty.waitFor(/#general>$/);
    await tty.line("/upload report.pdf the report");
    const sent = await bob.next<F<"message">>((f) => f.type === "message" && f.from === "alice");
    assert.equal(sent.text, "the report");
    assert.deepEqual(sent.files?.map((f) => [f.name, f.size]), [["report.pdf", 300_000]]);
    await tty.waitFor("-- Uploaded report.pdf (300 KB)");
    // At 80 columns: the command to save it on a line of its own, the link below.
    const command = `/download ${sent.files![0].id.slice(0, 8)}`;
    await tty.waitFor(
      new RegExp(
        `alice: the report\\n {2}📎 report\\.pdf \\(300 KB\\) · ${command}\\n {4}http://127\\.0\\.0\\.1:\\d+/files/`,
      ),
    );

    // Without ~/Downloads, the default is the current directory, never over a file.
    await tty.line(command);
    await tty.waitFor(
      "-- Saved report.pdf (300 KB) as ./report (1).pdf (./report.pdf exists already)",
    );
    assert.equal(
      await sha256(await Deno.readFile(`${dir.path}/report (1).pdf`)),
      await sha256(bytes),
    );
    // With it, the file goes there.
    await Deno.mkdir(`${dir.path}/Downloads`);
    await tty.line(command);
    await tty.waitFor(`-- Saved report.pdf (300 KB) as ${dir.path}/Downloads/report.pdf`);
    assert.equal(
      await sha256(await Deno.readFile(`${dir.path}/Downloads/report.pdf`)),
      await sha256(bytes),
    );

    // Outside what it was allowed, Deno asks for exactly that file (see
    // client_permissions_test.ts); n refuses it in one line.
    await tty.line("/upload /etc/hostname");
    await tty.waitFor('Deno requests read access to "/etc/hostname".');
    await tty.waitForStdinRead();
    await tty.line("n");
    await tty.waitFor('! Not uploaded: reading "/etc/hostname" was not allowed');
    await tty.line("/quit");
    assert.equal(await tty.exitCode(), 0);
  } finally {
    await closeAll(bob);
  }
});
