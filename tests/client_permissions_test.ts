/**
 * `/upload` and `/download` outside the folders `deno task client` may use:
 * the real `chat client` in a pseudo-terminal (tmux), started with exactly
 * the task's permissions and a HOME of its own, against the real server.
 * Deno's own question appears for exactly the one file; y lets the transfer
 * go on, n refuses it in one line and changes nothing.
 */
import assert from "node:assert/strict";
import type { FileInfo, ServerFrame } from "../protocol.ts";
import { closeAll, DEADLINE, type SignedIn, signIn, startTestServer } from "./helpers.ts";
import { clientRun, denoDir, randomBytes, ROOT, TempDir } from "./client_helpers.ts";
import { count, Tmux } from "./tmux.ts";

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

const USERS = { alice: "alice-pass", bob: "bob-pass1" };

/** Options for {@link startClient}. */
interface StartOptions {
  /** Flags for `deno run` besides the task's. */
  flags?: string[];
  /** A file stderr goes to (not the terminal). */
  stderr?: string;
}

/**
 * `chat client -u alice URL` in `tty`, run as `deno task client` runs it
 * (its permissions, with HOME a temporary folder), in `cwd`, which it may
 * neither read nor write. Resolves once the input line is there.
 */
async function startClient(
  tty: Tmux,
  url: string,
  dirs: { home: string; cwd: string },
  options: StartOptions = {},
): Promise<void> {
  const [run, ...rest] = clientRun(`${dirs.home}/.config/chat`)
    .map((a) => a === "main.ts" ? `${ROOT}main.ts` : a);
  const argv = [
    Deno.execPath(),
    run,
    ...options.flags ?? [],
    ...rest,
    "client",
    "-u",
    "alice",
    url,
  ];
  await tty.start(
    options.stderr === undefined
      ? argv
      : ["sh", "-c", `exec "$0" "$@" 2>>'${options.stderr}'`, ...argv],
    {
      cwd: dirs.cwd,
      width: 260,
      env: { HOME: dirs.home, DENO_DIR: await denoDir(), CHAT_PASSWORD: USERS.alice },
    },
  );
  await tty.waitFor(/-- You are in #general[^\n]*\n(?:.*\n)*#general> ?$/);
}

/** Answers Deno's question on screen with `answer`, once Deno reads the answer. */
async function answer(tty: Tmux, key: "y" | "n"): Promise<void> {
  await tty.waitFor(/Allow\? \[y\/n\/A\][^\n]*> ?$/);
  await tty.waitForStdinRead();
  await tty.line(key);
}

/** Waits for the input line to be the client's own prompt again, with `text` typed. */
async function waitForPrompt(tty: Tmux, text = ""): Promise<void> {
  const deadline = Date.now() + DEADLINE;
  while ((await tty.cursorLine()).trimEnd() !== `#general> ${text}`.trimEnd()) {
    if (Date.now() > deadline) {
      throw new Error(`The prompt did not come back:\n${await tty.screen()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Proves the terminal is back in raw mode: typing `text`, Left and `_` is
 * drawn by the client's own line editor at once (a terminal in line mode
 * would only echo the keys); Enter sends it. Resolves the text sent.
 */
async function assertRawMode(tty: Tmux, bob: SignedIn, text: string): Promise<string> {
  await tty.type(text);
  await tty.press("Left");
  await tty.type("_");
  const edited = `${text.slice(0, -1)}_${text.slice(-1)}`;
  await waitForPrompt(tty, edited);
  await tty.press("Enter");
  await bob.next<F<"message">>((f) => f.type === "message" && f.text === edited);
  return edited;
}

/** The messages alice sent that bob received so far. */
function fromAlice(bob: SignedIn): F<"message">[] {
  return bob.all.filter((f): f is F<"message"> => f.type === "message" && f.from === "alice");
}

Deno.test("chat client (terminal) /upload outside its folders asks Deno's question for the file: y uploads it, n sends nothing", async () => {
  await using t = await startTestServer({ users: USERS });
  await using home = new TempDir("chat-home-");
  await using work = new TempDir("chat-work-");
  await using outside = new TempDir("chat-outside-");
  await using tty = new Tmux();
  const bob = await signIn(t.ws, "bob", USERS.bob);
  const notes = `${outside.path}/notes.bin`;
  const secret = `${outside.path}/secret.bin`;
  await Deno.writeFile(notes, randomBytes(30_000));
  await Deno.writeFile(secret, randomBytes(10_000));
  try {
    await startClient(tty, t.ws, { home: home.path, cwd: work.path });

    // y: the question names exactly the file; the upload goes on and is sent.
    await tty.line(`/upload ${notes} the notes`);
    let screen = await tty.waitFor(/Allow\? \[y\/n\/A\][^\n]*> ?$/);
    assert.ok(screen.includes(`Deno requests read access to "${notes}".`), screen);
    assert.equal(count(screen, "Deno requests"), 1);
    assert.equal(fromAlice(bob).length, 0, "nothing is sent before the answer");
    await answer(tty, "y");
    const sent = await bob.next<F<"message">>((f) => f.type === "message" && f.from === "alice");
    assert.equal(sent.text, "the notes");
    assert.deepEqual(sent.files?.map((f) => [f.name, f.size]), [["notes.bin", 30_000]]);
    screen = await tty.waitFor("-- Uploaded notes.bin (30 KB)");
    assert.ok(screen.includes(`Granted read access to "${notes}".`), screen);
    await waitForPrompt(tty);
    await assertRawMode(tty, bob, "after yes");
    // Granted for the rest of the run: no second question.
    await tty.line(`/upload ${notes}`);
    await bob.next<F<"message">>((f) =>
      f.type === "message" && f.from === "alice" && f.text === "" && f.files?.length === 1
    );
    screen = await tty.screen();
    assert.equal(count(screen, "Deno requests"), 0);
    assert.equal(count(screen, `Granted read access to "${notes}".`), 1);

    // n: one line, nothing sent, the chat goes on.
    const before = fromAlice(bob).length;
    await tty.line(`/upload ${secret} not this one`);
    await tty.waitFor(`Deno requests read access to "${secret}".`);
    await answer(tty, "n");
    screen = await tty.waitFor(`! Not uploaded: reading "${secret}" was not allowed`);
    assert.equal(count(screen, "Not uploaded"), 1);
    await waitForPrompt(tty);
    const after = await assertRawMode(tty, bob, "after no");
    assert.deepEqual(fromAlice(bob).slice(before).map((m) => m.text), [after]);
    // Deno asks once a run: the second try says what to do instead of asking.
    await tty.line(`/upload ${secret}`);
    screen = await tty.waitFor(
      `! Not uploaded: no permission to read "${secret}": it was refused earlier, and Deno asks only once a run: restart the client and answer y, or start deno run with --allow-read=DIR for its folder`,
    );
    assert.equal(count(screen, "Deno requests"), 0, "no question this time");
    assert.equal(count(screen, `Denied read access to "${secret}".`), 1);
    await tty.line("/quit");
    assert.equal(await tty.exitCode(), 0);
    assert.deepEqual(fromAlice(bob).slice(before).map((m) => m.text), [after]);
  } finally {
    await closeAll(bob);
  }
});

/** Uploads `bytes` as bob (`POST /api/files`) and sends it to #general; resolves the file. */
async function shareAsBob(
  http: string,
  bob: SignedIn,
  name: string,
  bytes: Uint8Array<ArrayBuffer>,
): Promise<FileInfo> {
  const res = await fetch(`${http}/api/files?name=${encodeURIComponent(name)}`, {
    method: "POST",
    headers: { authorization: `Bearer ${bob.welcome.token}` },
    body: bytes,
  });
  assert.equal(res.status, 201);
  const info: FileInfo = await res.json();
  bob.send({ type: "send", room: "general", text: `here is ${name}`, ref: name, files: [info.id] });
  await bob.next((f) => f.type === "message" && f.ref === name);
  return info;
}

Deno.test("chat client (terminal) /download outside its folders asks Deno's question for the file alone: y saves it, n leaves nothing", async () => {
  await using t = await startTestServer({ users: USERS });
  await using home = new TempDir("chat-home-");
  await using work = new TempDir("chat-work-");
  await using outside = new TempDir("chat-outside-");
  await using folder = new TempDir("chat-folder-");
  await using tty = new Tmux();
  const bob = await signIn(t.ws, "bob", USERS.bob);
  const bytes = randomBytes(40_000);
  try {
    await startClient(tty, t.ws, { home: home.path, cwd: work.path });
    const file = await shareAsBob(t.http, bob, "report.bin", bytes);
    await tty.waitFor("📎 report.bin (40 KB)");

    // y: the default is ~/Downloads, which the client may not look into: the
    // question is for the file there; the folder is not there, so the file
    // goes in the current folder instead, asked for too.
    await tty.line(`/download ${file.id.slice(0, 8)}`);
    let screen = await tty.waitFor(/Allow\? \[y\/n\/A\][^\n]*> ?$/);
    assert.ok(
      screen.includes(`Deno requests write access to "${home.path}/Downloads/report.bin".`),
      `the question is for the file alone:\n${screen}`,
    );
    await answer(tty, "y");
    await tty.waitFor(`Deno requests write access to "report.bin".`);
    await answer(tty, "y");
    screen = await tty.waitFor("-- Saved report.bin (40 KB) as ./report.bin");
    assert.deepEqual(await Deno.readFile(`${work.path}/report.bin`), bytes);
    await waitForPrompt(tty);
    await assertRawMode(tty, bob, "saved it");

    // n: a path outside; one line, no file, nothing else changes.
    const target = `${outside.path}/copy.bin`;
    await tty.line(`/download ${file.id} ${target}`);
    await tty.waitFor(`Deno requests write access to "${target}".`);
    await answer(tty, "n");
    screen = await tty.waitFor(`! Not downloaded: writing "${target}" was not allowed`);
    assert.equal(count(screen, "Not downloaded"), 1);
    assert.deepEqual([...Deno.readDirSync(outside.path)], [], "no file, not even an empty one");
    await waitForPrompt(tty);
    await assertRawMode(tty, bob, "kept nothing");

    // Taken: the next free name is asked for too, and the first file stays as it was.
    await tty.line(`/download ${file.id}`);
    await tty.waitFor(`Deno requests write access to "report (1).bin".`);
    await answer(tty, "y");
    await tty.waitFor(
      "-- Saved report.bin (40 KB) as ./report (1).bin (./report.bin exists already)",
    );
    assert.deepEqual(await Deno.readFile(`${work.path}/report (1).bin`), bytes);
    assert.deepEqual(await Deno.readFile(`${work.path}/report.bin`), bytes);

    // Once ~/Downloads is there, the file goes in it (allowed already: no question).
    await Deno.mkdir(`${home.path}/Downloads`);
    await tty.line(`/download ${file.id.slice(0, 8)}`);
    screen = await tty.waitFor(`-- Saved report.bin (40 KB) as ${home.path}/Downloads/report.bin`);
    assert.equal(count(screen, "Granted write access"), 3, "no new question");
    assert.deepEqual(await Deno.readFile(`${home.path}/Downloads/report.bin`), bytes);

    // A folder it may not look into, typed without a final /: the question
    // names it as typed, and the file goes in it.
    await tty.line(`/download ${file.id} ${folder.path}`);
    await tty.waitFor(`Deno requests write access to "${folder.path}".`);
    await answer(tty, "y");
    await tty.waitFor(`-- Saved report.bin (40 KB) as ${folder.path}/report.bin`);
    assert.deepEqual(await Deno.readFile(`${folder.path}/report.bin`), bytes);
    await tty.line("/quit");
    assert.equal(await tty.exitCode(), 0);
  } finally {
    await closeAll(bob);
  }
});

Deno.test("chat client (terminal) refuses /upload and /download without a question where Deno cannot ask, saying what to do", async (t) => {
  await using server = await startTestServer({ users: USERS });
  await using outside = new TempDir("chat-outside-");
  const notes = `${outside.path}/notes.bin`;
  await Deno.writeFile(notes, randomBytes(1000));
  const bob = await signIn(server.ws, "bob", USERS.bob);
  const nobody = "and nobody to ask: run the client in a terminal, or with";
  try {
    const file = await shareAsBob(server.http, bob, "report.bin", randomBytes(2000));
    const variants: [string, (dir: string) => StartOptions][] = [
      ["--no-prompt", () => ({ flags: ["--no-prompt"] })],
      ["stderr not a terminal", (dir) => ({ stderr: `${dir}/stderr.txt` })],
    ];
    for (const [name, options] of variants) {
      await t.step(name, async () => {
        await using home = new TempDir("chat-home-");
        await using work = new TempDir("chat-work-");
        await using tty = new Tmux();
        await startClient(tty, server.ws, { home: home.path, cwd: work.path }, options(home.path));
        await tty.line(`/upload ${notes} the notes`);
        await tty.waitFor(
          `! Not uploaded: no permission to read "${notes}" ${nobody} --allow-read=FOLDER\n`,
        );
        const target = `${outside.path}/copy.bin`;
        await tty.line(`/download ${file.id} ${target}`);
        await tty.waitFor(
          `! Not downloaded: no permission to write "${target}" ${nobody} --allow-write=FOLDER\n`,
        );
        // Without a path, the Downloads folder is what may not be written.
        await tty.line(`/download ${file.id.slice(0, 8)}`);
        await tty.waitFor(
          `! Not downloaded: no permission to write "${home.path}/Downloads/report.bin" ${nobody} --allow-write=FOLDER\n`,
        );
        await tty.line(`after ${name}`);
        const next = await bob.next<F<"message">>((f) =>
          f.type === "message" && f.from === "alice"
        );
        assert.equal(next.text, `after ${name}`, "nothing was sent before");
        assert.equal(count(await tty.screen(), "Deno requests"), 0);
        assert.deepEqual([...Deno.readDirSync(outside.path)].map((e) => e.name), ["notes.bin"]);
        await tty.line("/quit");
        assert.equal(await tty.exitCode(), 0);
      });
    }
  } finally {
    await closeAll(bob);
  }
});
