/**
 * The interactive terminal client under a real pseudo-terminal (tmux),
 * against the real server: what a person sees and types.
 */
import assert from "node:assert/strict";
import type { ServerFrame } from "../protocol.ts";
import {
  closeAll,
  signIn,
  signInWithToken,
  signOut,
  startTestServer,
  waitUntil,
} from "./helpers.ts";
import { ConfigHome, ROOT } from "./client_helpers.ts";
import { TcpProxy } from "./tcp_proxy.ts";
import { count, Tmux } from "./tmux.ts";

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

const USERS = { alice: "alice-pass", bob: "bob-pass1" };

/** Starts `chat client ARGS…` in `tty`, keeping its saved sessions in `config`. */
function startClient(
  tty: Tmux,
  config: ConfigHome,
  args: string[],
  options: { width?: number } = {},
): Promise<void> {
  return tty.start([Deno.execPath(), ...config.run, "client", ...args], {
    cwd: ROOT,
    env: config.env,
    ...options,
  });
}

/** The last non-empty line of the screen. */
function lastLine(screen: string): string {
  return screen.split("\n").filter((l) => l.trim() !== "").at(-1) ?? "";
}

Deno.test("chat client (terminal) signs in, shows history, and keeps the input line while messages arrive", async () => {
  await using t = await startTestServer({ users: USERS });
  const bob = await signIn(t.ws, "bob", USERS.bob);
  await using config = new ConfigHome();
  await using tty = new Tmux();
  try {
    for (let i = 1; i <= 3; i++) {
      bob.send({ type: "send", room: "general", text: `earlier ${i}`, ref: `e${i}` });
      await bob.next((f) => f.type === "message" && f.ref === `e${i}`);
    }
    await startClient(tty, config, [t.ws]);
    await tty.waitFor("Username:");
    await tty.line("alice");
    await tty.waitFor("Password for alice:");
    await tty.line(USERS.alice);
    let screen = await tty.waitFor("bob: earlier 3");
    assert.ok(!screen.includes(USERS.alice), "the password is not echoed");
    assert.match(screen, /Signed in to ws:\/\/127\.0\.0\.1:\d+\/ws as alice\./);
    assert.match(screen, /-- You are in #general with bob\n\d\d:\d\d bob: earlier 1\n/);
    assert.match(screen, /\d\d:\d\d bob: earlier 2\n\d\d:\d\d bob: earlier 3/);

    // A message and a typing flag arrive while alice is half-way through a line.
    await tty.type("hello wor");
    await tty.waitFor("#general> hello wor");
    const typing = await bob.next<F<"typing">>("typing");
    assert.deepEqual([typing.room, typing.user, typing.active], ["general", "alice", true]);
    bob.send({ type: "typing", room: "general", active: true });
    await tty.waitFor("bob is typing… #general> hello wor");
    bob.send({ type: "send", room: "general", text: "live from bob" });
    screen = await tty.waitFor(/bob: live from bob\n#general> hello wor$/);
    assert.equal(lastLine(screen), "#general> hello wor", "the input survives, typing cleared");
    assert.equal(await tty.cursorLine(), "#general> hello wor");
    await tty.type("ld");
    await tty.press("Enter");
    const mine = await bob.next<F<"message">>((f) => f.type === "message" && f.from === "alice");
    assert.equal(mine.text, "hello world");
    assert.equal(mine.room, "general");
    const stopped = await bob.next<F<"typing">>("typing");
    assert.deepEqual([stopped.user, stopped.active], ["alice", false], "sending ends typing");
    screen = await tty.waitFor(/alice: hello world\n#general>$/);

    // /join, then a message there, with no room label since it is the current room.
    await tty.line("/join random");
    await tty.waitFor("-- You are in #random (nobody else is here yet)");
    await tty.waitFor(/#random>$/);
    bob.send({ type: "join", room: "random" });
    await bob.next("joined");
    await tty.waitFor("* bob joined #random");
    bob.send({ type: "send", room: "random", text: "over here" });
    bob.send({ type: "send", room: "general", text: "back in general" });
    await tty.waitFor(/\d\d:\d\d bob: over here\n/);
    await tty.waitFor(/\d\d:\d\d #general bob: back in general\n/);

    // Direct messages both ways.
    await tty.line("/dm bob psst");
    const dm = await bob.next<F<"message">>((f) => f.type === "message" && f.to === "bob");
    assert.deepEqual([dm.from, dm.text], ["alice", "psst"]);
    await tty.waitFor("alice → bob: psst");
    bob.send({ type: "send", to: "alice", text: "back at you" });
    await tty.waitFor("bob → you: back at you");

    // Help, an unknown command, and a misused one.
    await tty.line("/help");
    screen = await tty.waitFor("/search TEXT       Find messages containing every word of TEXT");
    await tty.line("/frobnicate");
    screen = await tty.waitFor('! Unknown command "/frobnicate"\nCommands:\n  /join ROOM');
    await tty.line("/history lots");
    await tty.waitFor("! Usage: /history [N], where N is a whole number from 1 to 200");

    await tty.line("/quit");
    assert.equal(await tty.exitCode(), 0);
    await bob.barrier();
    assert.equal(
      bob.all.filter((f) => f.type === "message" && f.from === "alice").length,
      2,
      "alice sent exactly two messages",
    );
  } finally {
    await closeAll(bob);
  }
});

Deno.test("chat client (terminal) answers /who, /rooms, /history, /search and /leave", async () => {
  await using t = await startTestServer();
  const bob = await signIn(t.ws, "bob");
  await using config = new ConfigHome();
  await using tty = new Tmux();
  try {
    bob.send({ type: "join", room: "ops" });
    await bob.next("joined");
    for (const text of ["deploy started", "deploy finished", "lunch?"]) {
      bob.send({ type: "send", room: "ops", text });
    }
    await bob.next((f) => f.type === "message" && f.text === "lunch?");
    await startClient(tty, config, ["--user", "alice", "--room", "ops", t.ws], { width: 60 });
    await tty.waitFor("-- You are in #ops with bob");
    await tty.waitFor(/#ops>$/);
    await tty.line("/who");
    await tty.waitFor("-- In #ops (2): alice and bob\n-- Online (2): alice and bob");
    await tty.line("/rooms");
    await tty.waitFor(
      "-- 2 rooms:\n  #general  2 members  (you are in it)\n  #ops      2 members  (you are in it)",
    );
    await tty.line("/history 2");
    await tty.waitFor(
      /-- Last 2 messages in #ops:\n\d\d:\d\d bob: deploy finished\n\d\d:\d\d bob: lunch\?/,
    );
    await tty.line("/search deploy");
    await tty.waitFor(
      /-- 2 messages match "deploy":\n\d\d:\d\d #ops bob: deploy started\n\d\d:\d\d #ops bob: deploy finished/,
    );
    await tty.line("/search nothing-like-this");
    await tty.waitFor('-- No messages match "nothing-like-this"');
    await tty.line("/leave");
    await tty.waitFor("-- You left #ops; now in #general");
    const sys = await bob.next<F<"system">>((f) => f.type === "system" && f.event === "leave");
    assert.deepEqual([sys.room, sys.user], ["ops", "alice"]);
    await tty.waitFor(/#general>$/);

    // /dm without text makes the DM the conversation.
    await tty.line("/dm bob");
    await tty.waitFor("-- Talking with bob: what you type goes to them only");
    await tty.waitFor(/@bob>$/);
    await tty.line("private words");
    const dm = await bob.next<F<"message">>((f) => f.type === "message" && f.to === "bob");
    assert.deepEqual([dm.from, dm.text], ["alice", "private words"]);
    await tty.waitFor("alice → bob: private words");
    await tty.line("/who");
    await tty.waitFor("-- Talking with bob, who is online");
    await tty.line("/leave");
    await tty.waitFor("-- Back in #general");

    // A line longer than the terminal scrolls sideways instead of wrapping.
    const long = Array.from({ length: 30 }, (_, i) => `w${i}`).join(" ") + " end";
    await tty.type(long);
    await tty.waitFor(/ end$/);
    const input = await tty.cursorLine();
    assert.ok(input.startsWith("#general> "), input);
    assert.ok(input.length <= 60, `fits in 60 columns: "${input}"`);
    assert.ok(input.endsWith("w29 end"), input);
    await tty.press("C-u");
    await tty.waitFor(/#general>$/);
    await tty.press("C-d");
    assert.equal(await tty.exitCode(), 0);
  } finally {
    await closeAll(bob);
  }
});

Deno.test("chat client (terminal) asks no password in open mode, ends on SIGTERM, and asks again after a wrong password", async () => {
  await using open = await startTestServer();
  await using config = new ConfigHome();
  await using tty = new Tmux();
  await startClient(tty, config, [`localhost:${open.server.port}`]);
  await tty.waitFor("Username:");
  await tty.line("carol");
  let screen = await tty.waitFor(/as carol \(open mode\)/);
  assert.ok(!screen.includes("Password"), "no password prompt in open mode");
  await tty.waitFor(/#general>$/);
  // SIGTERM ends the client like /quit would, leaving raw mode first.
  Deno.kill(await tty.pid(), "SIGTERM");
  assert.equal(await tty.exitCode(), 143);
  await tty.kill();

  await using login = await startTestServer({ users: USERS });
  await using tty2 = new Tmux();
  await startClient(tty2, config, ["--user", "alice", login.ws]);
  await tty2.waitFor("Password for alice:");
  await tty2.line("not-the-password");
  await tty2.waitFor("Wrong username or password\nPassword for alice:");
  await tty2.line(USERS.alice);
  screen = await tty2.waitFor(/#general>$/);
  assert.ok(!screen.includes("not-the-password"));
  await tty2.line("/quit");
  assert.equal(await tty2.exitCode(), 0);
});

Deno.test("chat client (terminal) reconnects after a dropped connection and shows what it missed once", async () => {
  await using t = await startTestServer();
  const proxy = new TcpProxy(t.server.port);
  const bob = await signIn(t.ws, "bob");
  await using config = new ConfigHome();
  await using tty = new Tmux();
  try {
    await startClient(tty, config, ["--user", "alice", proxy.ws]);
    await tty.waitFor(/#general>$/);
    bob.send({ type: "send", room: "general", text: "before the drop" });
    await tty.waitFor("bob: before the drop");
    proxy.refuse = true;
    await proxy.cut();
    await tty.waitFor("-- The connection was lost: reconnecting in");
    await tty.waitFor(/\(offline\) #general>$/);
    bob.send({ type: "send", room: "general", text: "while away 1" });
    bob.send({ type: "send", room: "general", text: "while away 2" });
    await bob.next((f) => f.type === "message" && f.text === "while away 2");
    await tty.type("typed offline");
    proxy.refuse = false;
    let screen = await tty.waitFor("-- Back online: 2 messages you missed are above");
    assert.match(screen, /bob: while away 1\n.*bob: while away 2\n-- Back online/);
    await tty.waitFor(/\n#general> typed offline$/);
    bob.send({ type: "send", room: "general", text: "live again" });
    screen = await tty.waitFor("bob: live again");
    for (const text of ["before the drop", "while away 1", "while away 2", "live again"]) {
      assert.equal(count(screen, `bob: ${text}`), 1, text);
    }
    await tty.press("Enter");
    const m = await bob.next<F<"message">>((f) => f.type === "message" && f.from === "alice");
    assert.equal(m.text, "typed offline");
    await tty.line("/quit");
    assert.equal(await tty.exitCode(), 0);
  } finally {
    await closeAll(bob);
    await proxy.close();
  }
});

Deno.test("chat client (terminal) signs in with the saved session without asking, and asks again once it ended", async () => {
  await using t = await startTestServer({ users: USERS });
  await using config = new ConfigHome();
  {
    await using tty = new Tmux();
    await startClient(tty, config, [t.ws]);
    await tty.waitFor("Username:");
    await tty.line("alice");
    await tty.waitFor("Password for alice:");
    await tty.line(USERS.alice);
    await tty.waitFor(/#general>$/);
    await tty.line("/quit");
    assert.equal(await tty.exitCode(), 0);
  }
  const first = (await config.tokens())[t.ws];
  assert.equal(first.user, "alice");
  {
    await using tty = new Tmux();
    await startClient(tty, config, [t.ws]);
    const screen = await tty.waitFor(/#general>$/);
    assert.match(screen, /Signed in to ws:\/\/127\.0\.0\.1:\d+\/ws as alice\./);
    assert.ok(!screen.includes("Username") && !screen.includes("Password"), screen);
    await tty.line("/quit");
    assert.equal(await tty.exitCode(), 0);
  }
  // Signed out elsewhere (another terminal, the web app): the next start asks again.
  assert.equal(await signOut(t.http, (await config.tokens())[t.ws].token), 204);
  {
    await using tty = new Tmux();
    await startClient(tty, config, [t.ws]);
    await tty.waitFor(`Your saved session for ${t.ws} has ended: sign in again\nUsername:`);
    await tty.line("alice");
    await tty.waitFor("Password for alice:");
    await tty.line(USERS.alice);
    const screen = await tty.waitFor(/#general>$/);
    assert.equal(count(screen, "has ended"), 1);
    await tty.line("/quit");
    assert.equal(await tty.exitCode(), 0);
  }
  const renewed = (await config.tokens())[t.ws];
  assert.equal(renewed.user, "alice");
  assert.notEqual(renewed.token, first.token);
});

Deno.test("chat client (terminal) without file permissions asks nothing more and says once it will forget", async () => {
  await using t = await startTestServer();
  await using tty = new Tmux();
  await tty.start([
    Deno.execPath(),
    "run",
    "--allow-net",
    "--allow-env=CHAT_PASSWORD",
    "main.ts",
    "client",
    "--user",
    "alice",
    t.ws,
  ], { cwd: ROOT });
  const notice =
    "-- Your session will not be remembered: no permission to read the environment variable XDG_CONFIG_HOME";
  await tty.waitFor(notice);
  const screen = await tty.waitFor(/#general>$/);
  assert.equal(count(screen, notice), 1);
  assert.ok(!screen.includes("Deno requests"), "no permission prompt");
  await tty.line("/quit");
  assert.equal(await tty.exitCode(), 0);
});

Deno.test("chat client (terminal) /passwd asks without echo, changes the password and keeps the session", async () => {
  await using t = await startTestServer({ users: USERS });
  await using config = new ConfigHome();
  await using tty = new Tmux();
  const laptop = await signIn(t.ws, "alice", USERS.alice);
  try {
    await startClient(tty, config, ["--user", "alice", t.ws]);
    await tty.waitFor("Password for alice:");
    await tty.line(USERS.alice);
    await tty.waitFor(/#general>$/);
    // Saved in the background after the welcome.
    const before = await waitUntil(
      async () => (await config.tokens())[t.ws]?.token,
      "a saved token",
    );

    // A wrong current password, in words.
    await tty.line("/passwd");
    await tty.waitFor(/Current password:$/);
    await tty.line("not-my-password");
    await tty.waitFor(/New password:$/);
    await tty.line("brand-new-pass");
    await tty.waitFor(/New password again:$/);
    await tty.line("brand-new-pass");
    await tty.waitFor("! Password not changed: your current password is wrong");
    // Two different new ones: nothing is sent.
    await tty.line("/passwd");
    await tty.waitFor(/Current password:$/);
    await tty.line(USERS.alice);
    await tty.waitFor(/New password:$/);
    await tty.line("brand-new-pass");
    await tty.waitFor(/New password again:$/);
    await tty.line("brand-new-typo");
    await tty.waitFor("! The new passwords do not match: password not changed");

    await tty.line("/passwd");
    await tty.waitFor(/Current password:$/);
    await tty.line(USERS.alice);
    await tty.waitFor(/New password:$/);
    await tty.line("brand-new-pass");
    await tty.waitFor(/New password again:$/);
    await tty.line("brand-new-pass");
    const screen = await tty.waitFor("-- Password changed; your other sessions were signed out");
    for (const secret of [USERS.alice, "not-my-password", "brand-new-pass", "brand-new-typo"]) {
      assert.ok(!screen.includes(secret), `"${secret}" is not echoed:\n${screen}`);
    }
    assert.equal((await laptop.waitClose()).code, 4003, "the other session ended");
    // The new token is saved and works; the chat goes on.
    const saved = await waitUntil(async () => {
      const token = (await config.tokens())[t.ws].token;
      return token !== before ? token : null;
    }, "the new token is saved");
    const again = await signInWithToken(t.ws, saved);
    await again.close();
    await tty.line("still here");
    await laptop.close();
    const reader = await signIn(t.ws, "alice", "brand-new-pass");
    try {
      reader.send({ type: "history", room: "general", limit: 1 });
      const page = await reader.next<F<"history">>("history");
      assert.equal(page.messages.at(-1)?.text, "still here");
    } finally {
      await reader.close();
    }
    // Up recalls commands, never a password.
    await tty.press("Up");
    await tty.waitFor(/#general> still here$/);
    await tty.press("Up");
    await tty.waitFor(/#general> \/passwd$/);
    await tty.press("C-u");
    await tty.line("/quit");
    assert.equal(await tty.exitCode(), 0);
  } finally {
    await closeAll(laptop);
  }
});

Deno.test("chat client (terminal) edits, deletes, reacts and replies, and shows others' changes", async () => {
  await using t = await startTestServer({ users: USERS });
  const bob = await signIn(t.ws, "bob", USERS.bob);
  await using config = new ConfigHome();
  await using tty = new Tmux();
  try {
    bob.send({ type: "send", room: "general", text: "is the **deploy** done?", ref: "q" });
    const question = await bob.next<F<"message">>((f) => f.type === "message" && f.ref === "q");
    await startClient(tty, config, ["--user", "alice", t.ws]);
    await tty.waitFor("Password for alice:");
    await tty.line(USERS.alice);
    // Markdown is styled on a terminal: the asterisks are gone.
    await tty.waitFor(/\d\d:\d\d bob: is the deploy done\?\n/);
    await tty.waitFor(/#general>$/);
    await tty.line("/ids");
    await tty.waitFor("-- Message ids are shown in front of lines (/ids hides them)");

    // Send, then fix the last message without naming it.
    await tty.line("not yet");
    const mine = await bob.next<F<"message">>((f) => f.type === "message" && f.from === "alice");
    await tty.waitFor(new RegExp(`#${mine.id} \\d\\d:\\d\\d alice: not yet\\n`));
    await tty.line("/edit done _now_");
    const edited = await bob.next<F<"edited">>("edited");
    assert.deepEqual([edited.room, edited.id, edited.text], ["general", mine.id, "done _now_"]);
    await tty.waitFor(new RegExp(`\\d\\d:\\d\\d alice edited #${mine.id}: done now\\n`));

    // React, then the same again takes it back.
    await tty.line(`/react ${question.id} 👍`);
    const on = await bob.next<F<"reaction">>("reaction");
    assert.deepEqual([on.id, on.emoji, on.user, on.on], [question.id, "👍", "alice", true]);
    await tty.waitFor(`alice reacted 👍 to #${question.id} (bob: is the deploy done?)`);
    await tty.line(`/react ${question.id} 👍`);
    const off = await bob.next<F<"reaction">>("reaction");
    assert.deepEqual([off.id, off.emoji, off.user, off.on], [question.id, "👍", "alice", false]);
    await tty.waitFor(`alice removed 👍 from #${question.id} (bob: is the deploy done?)`);

    // A reply quotes its original on the line before it.
    await tty.line(`/reply ${question.id} yes, **all green**`);
    const reply = await bob.next<F<"message">>((f) => f.type === "message" && f.from === "alice");
    assert.equal(reply.text, "yes, **all green**");
    assert.deepEqual(reply.replyTo, {
      id: question.id,
      from: "bob",
      snippet: "is the **deploy** done?",
    });
    await tty.waitFor(
      new RegExp(
        ` +↳ #${question.id} bob: is the deploy done\\?\\n#${reply.id} \\d\\d:\\d\\d alice: yes, all green\\n`,
      ),
    );
    await tty.line("/delete");
    const deleted = await bob.next<F<"deleted">>("deleted");
    assert.equal(deleted.id, reply.id, "the last message is the reply");
    await tty.waitFor(`alice deleted #${reply.id}`);

    // Someone else's edit and reaction show as short lines.
    bob.send({ type: "edit", room: "general", id: question.id, text: "is the deploy done now?" });
    await tty.waitFor(`bob edited #${question.id}: is the deploy done now?`);
    bob.send({ type: "react", room: "general", id: mine.id, emoji: "🎉", on: true });
    await tty.waitFor(`bob reacted 🎉 to #${mine.id} (alice: done now)`);

    // Refusals read like every other error; the chat goes on.
    await tty.line(`/edit ${question.id} mine now`);
    await tty.waitFor(`! Message #${question.id} is someone else's: only its author may edit it`);
    await tty.line("/react 9999 👍");
    await tty.waitFor("! There is no message #9999 here (or it was deleted)");
    await tty.line("/react 1 nope");
    await tty.waitFor('! "nope" is not one emoji');

    // The server refuses raw control characters; character references that
    // Markdown decodes into them never reach the terminal either.
    bob.send({ type: "send", room: "general", text: "&#27;[2J&#27;[Hwiped? &#x9b;31mred?" });
    const screen = await tty.waitFor("bob: [2J[Hwiped? 31mred?");
    assert.match(screen, /-- You are in #general with bob\n/, "nothing was cleared");
    // History shows the current state of each message.
    await tty.line("/history 4");
    await tty.waitFor(
      new RegExp(
        `-- Last 4 messages in #general:\\n#${question.id} \\d\\d:\\d\\d bob: is the deploy done now\\? \\(edited\\)\\n` +
          `#${mine.id} \\d\\d:\\d\\d alice: done now \\(edited\\) \\[🎉 1\\]\\n` +
          // A tombstone keeps no text, reactions or quote.
          `#${reply.id} \\d\\d:\\d\\d alice: message deleted\\n` +
          `#\\d+ \\d\\d:\\d\\d bob: \\[2J\\[Hwiped\\? 31mred\\?\\n`,
      ),
    );

    // The same in a direct message.
    await tty.line("/dm bob");
    await tty.waitFor(/@bob>$/);
    await tty.line("see you at 5");
    const dm = await bob.next<F<"message">>((f) => f.type === "message" && f.to === "bob");
    await tty.line("/edit see you at 6");
    const dmEdit = await bob.next<F<"edited">>((f) => f.type === "edited" && f.to !== undefined);
    assert.deepEqual([dmEdit.to, dmEdit.id, dmEdit.text], ["alice", dm.id, "see you at 6"]);
    await tty.waitFor(`alice edited #${dm.id}: see you at 6`);
    bob.send({ type: "react", to: "alice", id: dm.id, emoji: "👌", on: true });
    await tty.waitFor(`bob reacted 👌 to #${dm.id} (alice: see you at 6)`);
    await tty.line(`/react ${dm.id} 👌`);
    const dmReact = await bob.next<F<"reaction">>((f) =>
      f.type === "reaction" && f.to !== undefined && f.user === "alice"
    );
    assert.deepEqual([dmReact.to, dmReact.user, dmReact.on], ["alice", "alice", true]);
    await tty.line("/quit");
    assert.equal(await tty.exitCode(), 0);
    await bob.barrier();
    assert.deepEqual(
      bob.all.filter((f) => f.type === "message" && f.from === "alice").length,
      3,
      "alice sent three messages",
    );
  } finally {
    await closeAll(bob);
  }
});

Deno.test("chat client (terminal) shows the changes made while it was offline after reconnecting", async () => {
  await using t = await startTestServer();
  const proxy = new TcpProxy(t.server.port);
  const bob = await signIn(t.ws, "bob");
  await using config = new ConfigHome();
  await using tty = new Tmux();
  try {
    await startClient(tty, config, ["--user", "alice", proxy.ws]);
    await tty.waitFor(/#general>$/);
    bob.send({ type: "send", room: "general", text: "teh plan", ref: "p" });
    const plan = await bob.next<F<"message">>((f) => f.type === "message" && f.ref === "p");
    await tty.waitFor("bob: teh plan");
    await tty.line("good plan");
    const mine = await bob.next<F<"message">>((f) => f.type === "message" && f.from === "alice");
    proxy.refuse = true;
    await proxy.cut();
    await tty.waitFor(/\(offline\) #general>$/);
    bob.send({ type: "edit", room: "general", id: plan.id, text: "the plan" });
    await bob.next("edited");
    bob.send({ type: "react", room: "general", id: mine.id, emoji: "👍", on: true });
    await bob.next("reaction");
    bob.send({ type: "send", room: "general", text: "and one more" });
    await bob.next((f) => f.type === "message" && f.text === "and one more");
    proxy.refuse = false;
    const screen = await tty.waitFor(
      "-- Back online: 1 message you missed and 2 changes to earlier ones are above",
    );
    assert.match(screen, new RegExp(`bob edited #${plan.id}: the plan\\n`));
    assert.match(screen, new RegExp(`bob reacted 👍 to #${mine.id} \\(alice: good plan\\)\\n`));
    assert.match(screen, /bob: and one more\n/);
    assert.equal(count(screen, "bob edited"), 1);
    await tty.line("/quit");
    assert.equal(await tty.exitCode(), 0);
  } finally {
    await closeAll(bob);
    await proxy.close();
  }
});

Deno.test("chat client (terminal): an admin deletes someone else's message; it shows as removed by an admin", async () => {
  await using t = await startTestServer({
    users: { alice: { password: "alice-pass", role: "admin" }, bob: USERS.bob },
  });
  const bob = await signIn(t.ws, "bob", USERS.bob);
  await using config = new ConfigHome();
  await using tty = new Tmux();
  try {
    bob.send({ type: "send", room: "general", text: "rude words", ref: "r1" });
    const rude = await bob.next<F<"message">>((f) => f.type === "message" && f.ref === "r1");
    await startClient(tty, config, [t.ws]);
    await tty.waitFor("Username:");
    await tty.line("alice");
    await tty.waitFor("Password for alice:");
    await tty.line("alice-pass");
    await tty.waitFor("bob: rude words");
    await tty.line(`/delete ${rude.id}`);
    const deleted = await bob.next<F<"deleted">>("deleted");
    assert.deepEqual(deleted, {
      type: "deleted",
      room: "general",
      id: rude.id,
      seq: rude.seq + 1,
      from: "bob",
      ts: rude.ts,
      removed: true,
    });
    await tty.waitFor(`bob's message #${rude.id} was removed by an admin`);
    await tty.line("/history 1");
    await tty.waitFor(
      new RegExp(
        `-- Last 1 message in #general:\\n(#${rude.id} )?\\d\\d:\\d\\d bob: message removed by an admin\\n`,
      ),
    );
  } finally {
    await closeAll(bob);
  }
});

const ADMIN_USERS = { alice: { password: "alice-pass", role: "admin" }, bob: "bob-pass-1" };

/** Starts `chat client --user USER ARGS…` in `tty`, signing in with CHAT_PASSWORD. */
function startAs(
  tty: Tmux,
  config: ConfigHome,
  user: string,
  password: string,
  args: string[],
): Promise<void> {
  return tty.start([Deno.execPath(), ...config.run, "client", "--user", user, ...args], {
    cwd: ROOT,
    env: { ...config.env, CHAT_PASSWORD: password },
  });
}

Deno.test("chat client (terminal): an admin kicks, makes a room read-only and bans; the member sees each, then exits 1", async () => {
  await using t = await startTestServer({ users: ADMIN_USERS });
  await using aliceConfig = new ConfigHome();
  await using bobConfig = new ConfigHome();
  await using alice = new Tmux();
  await using bob = new Tmux();
  await startAs(alice, aliceConfig, "alice", "alice-pass", ["--room", "lounge", t.ws]);
  await alice.waitFor("-- You are in #lounge (nobody else is here yet)");
  await startAs(bob, bobConfig, "bob", "bob-pass-1", ["--room", "lounge", t.ws]);
  await bob.waitFor("-- You are in #lounge with alice");
  await alice.waitFor("* bob joined #lounge");

  // Members neither see the admin commands nor may use them.
  await bob.line("/help");
  let screen = await bob.waitFor("/quit              Leave the chat");
  assert.ok(!screen.includes("Admin commands"), screen);
  assert.ok(screen.includes("  /invite USER       Add USER to this room"), screen);
  await bob.line("/kick alice");
  await bob.waitFor("! /kick is for admins: you are a member");
  await bob.line("/readonly on");
  await bob.waitFor("! /readonly is for admins: you are a member");
  await alice.line("/help");
  await alice.waitFor("Admin commands:\n  /kick USER");

  // A kick: both sides say it in words; bob is back in #general.
  await alice.line("/kick bob");
  await alice.waitFor("-- You removed bob from #lounge");
  await bob.waitFor("! alice removed you from #lounge; now in #general");
  await bob.waitFor(/#general>$/);
  await alice.line("/kick bob");
  await alice.waitFor(`! "bob" is not in room "lounge"`);

  // Read-only: the prompt says so, and a member's message is refused by the server.
  await alice.line("/join general");
  await alice.waitFor(/#general>$/);
  await alice.line("/readonly on");
  await alice.waitFor("-- You made #general read-only");
  await alice.waitFor(/#general \(read-only\)>$/);
  await bob.waitFor("-- alice made #general read-only");
  await bob.waitFor(/#general \(read-only\)>$/);
  await bob.line("may I?");
  await bob.waitFor("! Not sent: Only admins post in #general: it is read-only");
  await alice.line("/readonly on");
  await alice.waitFor("-- #general is read-only already");
  await alice.line("/readonly off");
  await bob.waitFor("-- alice let everyone post in #general again");
  await bob.waitFor(/#general>$/);
  screen = await alice.waitFor("-- You let everyone post in #general again");
  assert.equal(screen.split("You made #general read-only").length, 2, "said once:\n" + screen);

  // A ban: bob's client says why and ends with 1, leaving the terminal usable.
  await alice.line("/ban bob 1h spam, twice");
  await alice.waitFor(/-- You banned bob until \d{4}-\d\d-\d\d \d\d:\d\d: spam, twice/);
  screen = await bob.waitFor(/\[exited \d+\]/);
  assert.match(screen, /! You are banned from this chat until .+: spam, twice\n\[exited 1\]/);
  assert.ok(!/reconnect/i.test(screen), screen);
  await alice.waitFor("* bob went offline");
  await alice.line("/unban bob");
  await alice.waitFor("-- bob is no longer banned");
  await alice.line("/unban bob");
  await alice.waitFor("-- bob was not banned");
  await alice.line("/quit");
  assert.equal(await alice.exitCode(), 0);
});

Deno.test("chat client (terminal): /atroom lets only admins use @room; a member's is not sent, in the server's words", async () => {
  await using t = await startTestServer({ users: ADMIN_USERS });
  await using aliceConfig = new ConfigHome();
  await using bobConfig = new ConfigHome();
  await using alice = new Tmux();
  await using bob = new Tmux();
  await startAs(alice, aliceConfig, "alice", "alice-pass", ["--room", "dev", t.ws]);
  await alice.waitFor("-- You are in #dev (nobody else is here yet)");
  await startAs(bob, bobConfig, "bob", "bob-pass-1", ["--room", "dev", t.ws]);
  await bob.waitFor("-- You are in #dev with alice");

  await bob.line("/atroom on");
  await bob.waitFor("! /atroom is for admins: you are a member");
  await alice.line("/atroom on");
  await alice.waitFor("-- You let only admins use @room and @here in #dev");
  await bob.waitFor("-- alice let only admins use @room and @here in #dev");
  await alice.line("/atroom on");
  await alice.waitFor("-- #dev lets only admins use @room already");
  await bob.line("@room lunch?");
  await bob.waitFor("! Not sent: Only admins may notify everyone in #dev with @room or @here");
  await bob.line("lunch, anyone?");
  await alice.waitFor(/bob: lunch, anyone\?/);
  await alice.line("@here lunch at noon");
  await bob.waitFor(/alice: @here lunch at noon/);
  // Joining again says so.
  await bob.line("/join general");
  await bob.waitFor(/#general>$/);
  await bob.line("/join dev");
  await bob.waitFor("-- In #dev only admins notify everyone with @room or @here");
  await alice.line("/atroom off");
  await bob.waitFor("-- alice let everyone use @room and @here in #dev again");
  await alice.line("/quit");
  assert.equal(await alice.exitCode(), 0);
});

Deno.test("chat client (terminal): a member creates a private room and invites someone, who is told", async () => {
  await using t = await startTestServer({ users: ADMIN_USERS });
  await using aliceConfig = new ConfigHome();
  await using bobConfig = new ConfigHome();
  await using alice = new Tmux();
  await using bob = new Tmux();
  await startAs(alice, aliceConfig, "alice", "alice-pass", [t.ws]);
  await alice.waitFor(/#general>$/);
  await startAs(bob, bobConfig, "bob", "bob-pass-1", [t.ws]);
  await bob.waitFor(/#general>$/);

  await bob.line("/join plans private");
  await bob.waitFor("-- You are in private room #plans (nobody else is here yet)");
  await bob.waitFor(/#plans \(private\)>$/);
  // Invisible to everyone else, admins included.
  await alice.line("/rooms");
  let screen = await alice.waitFor("-- 1 room:\n  #general  2 members  (you are in it)");
  assert.ok(!screen.includes("#plans"), screen);

  await bob.line("/invite alice");
  await bob.waitFor("-- You added alice to #plans");
  await alice.waitFor("-- bob added you to #plans: /join plans to talk there");
  await alice.line("/rooms");
  await alice.waitFor(
    "-- 2 rooms:\n  #general  2 members  (you are in it)\n  #plans    2 members  (private)  (you are in it)",
  );
  await alice.line("/join plans");
  await alice.waitFor("-- You are in private room #plans with bob");
  await alice.waitFor(/#plans \(private\)>$/);
  await alice.line("secret plans");
  await bob.waitFor(/\d\d:\d\d alice: secret plans/);
  await bob.line("/invite alice");
  await bob.waitFor('! "alice" is in #plans already');
  screen = await bob.screen();
  assert.equal(screen.split("added alice").length, 2, "the invitation is told once:\n" + screen);
  assert.ok(!screen.includes("You joined #plans in another window"), screen);
  screen = await alice.screen();
  assert.ok(!screen.includes("You joined #plans in another window"), screen);

  // Made an admin meanwhile (on the admin page): told at once, and /help grows.
  const [{ token }] = Object.values(await aliceConfig.tokens());
  const res = await fetch(`http://127.0.0.1:${t.server.port}/api/people/bob/role`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ role: "admin" }),
  });
  assert.equal(res.status, 200, await res.text());
  await bob.waitFor("-- You are now an admin (/help lists the admin commands)");
  await bob.line("/help");
  await bob.waitFor("Admin commands:\n  /kick USER");
  await bob.line("/quit");
  assert.equal(await bob.exitCode(), 0);
});

const RENAME_USERS = { ...ADMIN_USERS, carol: "carol-pass" };

Deno.test("chat client (terminal): an admin renames the member's room; the notice, prompt and sending follow; a member is refused in words", async () => {
  await using t = await startTestServer({ users: RENAME_USERS });
  const carol = await signIn(t.ws, "carol", RENAME_USERS.carol);
  await using aliceConfig = new ConfigHome();
  await using bobConfig = new ConfigHome();
  await using alice = new Tmux();
  await using bob = new Tmux();
  try {
    carol.send({ type: "join", room: "lounge" });
    await carol.next("joined");
    await startAs(alice, aliceConfig, "alice", "alice-pass", ["--room", "lounge", t.ws]);
    await alice.waitFor("-- You are in #lounge with carol");
    await startAs(bob, bobConfig, "bob", "bob-pass-1", ["--room", "lounge", t.ws]);
    await bob.waitFor("-- You are in #lounge with alice and carol");
    await bob.waitFor(/#lounge>$/);

    // A member may ask; the server refuses, and the client says so in words.
    await bob.line("/rename den");
    await bob.waitFor("! Cannot rename #lounge: only admins rename rooms");
    await bob.waitFor(/#lounge>$/);
    await alice.line("/help");
    await alice.waitFor("\n  /rename [ROOM] NEW Rename this room (or ROOM) to NEW");

    await alice.line("/rename #den");
    await alice.waitFor("* you renamed #lounge to #den");
    await alice.waitFor(/#den>$/);
    let screen = await bob.waitFor("* alice renamed #lounge to #den");
    await bob.waitFor(/#den>$/);
    const renamed = await carol.next<F<"room_renamed">>("room_renamed");
    assert.deepEqual(renamed, { type: "room_renamed", room: "lounge", name: "den", by: "alice" });

    // What bob types now goes to #den; his client knows the room by its new name.
    await bob.line("hello den");
    const m = await carol.next<F<"message">>("message");
    assert.deepEqual([m.room, m.from, m.text], ["den", "bob", "hello den"]);
    await alice.waitFor(/\n\d\d:\d\d bob: hello den\n/);
    await bob.line("/who");
    await bob.waitFor("-- In #den (3): alice, bob and carol");
    await bob.line("/rooms");
    screen = await bob.waitFor(/-- 2 rooms:\n {2}#den +3 members {2}\(you are in it\)\n/);
    assert.ok(!screen.includes("#lounge  "), screen);
    assert.equal(screen.split("renamed #lounge to #den").length, 2, "told once:\n" + screen);

    // The admin's refusals, in words.
    await alice.line("/rename general lobby");
    await alice.waitFor(
      `! Cannot rename #general to #lobby: everyone is in "general": it keeps its name`,
    );
    await alice.line("/rename den general");
    await alice.waitFor("! Cannot rename #den to #general: there is a room #general already");
    await alice.line("/rename nowhere somewhere");
    await alice.waitFor(
      "! Cannot rename #nowhere: there is no such room (or it is private and you are not in it)",
    );
    await alice.line("/rename den");
    await alice.waitFor("! #den has that name already");
    await alice.line("/quit");
    assert.equal(await alice.exitCode(), 0);
    await bob.line("/quit");
    assert.equal(await bob.exitCode(), 0);
  } finally {
    await closeAll(carol);
  }
});

Deno.test("chat client (terminal): a room renamed while it was offline is the room on screen after reconnecting", async () => {
  await using t = await startTestServer({ users: RENAME_USERS });
  const proxy = new TcpProxy(t.server.port);
  const alice = await signIn(t.ws, "alice", "alice-pass");
  await using bobConfig = new ConfigHome();
  await using bob = new Tmux();
  try {
    await startAs(bob, bobConfig, "bob", "bob-pass-1", ["--room", "lounge", proxy.ws]);
    await bob.waitFor(/#lounge>$/);
    alice.send({ type: "join", room: "lounge" });
    await alice.next("joined");
    await bob.line("before");
    await alice.next((f) => f.type === "message" && f.text === "before");

    proxy.refuse = true;
    await proxy.cut();
    await bob.waitFor(/\(offline\) #lounge>$/);
    alice.send({ type: "rename_room", room: "lounge", name: "den", ref: "r1" });
    await alice.next((f) => f.type === "room_renamed" && f.ref === "r1");
    alice.send({ type: "send", room: "den", text: "while away", ref: "s1" });
    await alice.next((f) => f.type === "message" && f.ref === "s1");
    await bob.type("typed offline");
    proxy.refuse = false;

    let screen = await bob.waitFor("-- Back online: 1 message you missed is above");
    assert.match(
      screen,
      /\* #lounge was renamed to #den while you were away\n\d\d:\d\d alice: while away\n-- Back online/,
    );
    assert.ok(!/Could not rejoin|Cannot join/.test(screen), screen);
    await bob.waitFor(/\n#den> typed offline$/);
    await bob.press("Enter");
    const m = await alice.next<F<"message">>((f) => f.type === "message" && f.from === "bob");
    assert.deepEqual([m.room, m.text], ["den", "typed offline"]);
    // No room of the old name was made again.
    await bob.line("/rooms");
    screen = await bob.waitFor(/-- 2 rooms:\n {2}#den +2 members {2}\(you are in it\)\n/);
    assert.ok(!screen.includes("#lounge  "), screen);
    await bob.line("/quit");
    assert.equal(await bob.exitCode(), 0);
  } finally {
    await closeAll(alice);
    await proxy.close();
  }
});

Deno.test("chat client (terminal): /who in a large room counts everyone and follows member_count", async () => {
  await using t = await startTestServer({ args: ["--announce-below", "3"] });
  await using config = new ConfigHome();
  await using tty = new Tmux();
  const names = Array.from({ length: 104 }, (_, i) => `m${String(i).padStart(3, "0")}`);
  for (const name of names) await (await signIn(t.ws, name)).close();
  await startClient(tty, config, ["--user", "alice", "--room", "general", t.ws], { width: 200 });
  await tty.waitFor(/#general>$/);
  await tty.line("/who");
  // The first page (100 names: alice and m000 to m098), then how many more.
  await tty.waitFor("m097, m098 and 5 more");
  await tty.waitFor("-- In #general (105): alice, m000, m001");
  // A join that is not posted (a room of 3 or more) still moves the count.
  await (await signIn(t.ws, "zed")).close();
  await waitUntil(async () => {
    await tty.line("/who");
    return (await tty.screen()).includes("-- In #general (106):");
  }, "the count followed zed's join");
  assert.ok(!(await tty.screen()).includes("zed joined"), "the join was not posted");
});
