/**
 * The acceptance test of living messages (issue 15, "Done when"): two people
 * in browsers and one in the terminal client edit, delete, react and reply
 * in a room and in a direct conversation, across two nodes sharing a real
 * redis-server and on one `--data` node killed with SIGKILL and restarted;
 * a device that was offline through all of it catches up to exactly the
 * state the online ones hold. States are compared as structures read from
 * each page's DOM, with each other and with the server's own history.
 *
 * @module
 */
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import type { Locator, Page } from "playwright-core";
import type { ChatMessage, ServerFrame } from "../../protocol.ts";
import { spawnServer } from "../chat_process.ts";
import { ConfigHome, ROOT } from "../client_helpers.ts";
import { closeAll, freePort, signIn as connect, type TestClient, waitUntil } from "../helpers.ts";
import { startCluster } from "../redis_helpers.ts";
import { Tmux } from "../tmux.ts";
import {
  Network,
  type Person,
  person,
  send,
  signIn,
  TIMEOUT,
  until,
  withBrowser,
} from "./people.ts";

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

const USERS = { alice: "alice-password", bob: "bob-password", carol: "carol-password" };

// ---------------------------------------------------------------------------
// Driving a page (as tests/e2e/living_test.ts does)

/** The confirmed message whose own text (not a quote of it) contains `text`. */
function row(p: Person, text: string): Locator {
  return p.page.locator(".msg[data-id]").filter({
    has: p.page.locator(":scope > .msg-body > .msg-text", { hasText: text }),
  });
}

/** The id of the confirmed message showing `text`. */
async function idOf(p: Person, text: string): Promise<number> {
  await row(p, text).waitFor();
  return Number(await row(p, text).getAttribute("data-id"));
}

/** Points at a message and clicks one of its toolbar buttons (by the start of its label). */
async function action(p: Person, text: string, label: string): Promise<void> {
  const r = row(p, text);
  await r.hover();
  await r.locator(".msg-actions").getByRole("button", { name: new RegExp(`^${label}`) }).click();
}

/** Reacts from the picker with the emoji called `name`. */
async function react(p: Person, text: string, name: string): Promise<void> {
  await action(p, text, "Add a reaction");
  const picker = p.page.locator("dialog.emoji-picker");
  await picker.getByRole("button", { name, exact: true }).click();
  await picker.waitFor({ state: "detached" });
}

/** Edits one's own message in place and saves with Enter. */
async function edit(p: Person, text: string, to: string): Promise<void> {
  const id = await idOf(p, text);
  await action(p, text, "Edit your message");
  const editor = p.page.locator(".msg-editor textarea");
  // Type only once the editor has the focus (it takes it after layout).
  await until(async () => await focused(p.page) === `edit-${id}`, "the editor has the focus");
  await editor.fill(to);
  await editor.press("Enter");
  await row(p, to).locator(".edited").waitFor();
}

/** Deletes one's own message, answering the question. */
async function remove(p: Person, text: string): Promise<void> {
  const id = await idOf(p, text);
  await action(p, text, "Delete your message");
  await p.page.getByRole("dialog", { name: "Delete this message?" })
    .getByRole("button", { name: "Delete", exact: true }).click();
  await p.page.locator(`.msg.deleted[data-id="${id}"]`).waitFor();
}

/** Replies to the message showing `text`. */
async function reply(p: Person, text: string, answer: string): Promise<void> {
  await action(p, text, "Reply to");
  await p.page.locator(".reply-bar").waitFor();
  await until(async () => await focused(p.page) === "composer", "the box has the focus");
  await send(p, answer);
  await p.page.locator(".reply-bar").waitFor({ state: "detached" });
}

function focused(page: Page): Promise<string> {
  return page.evaluate(() =>
    document.activeElement?.getAttribute("aria-label") ?? document.activeElement?.id ?? ""
  );
}

/** Each reaction chip of a message: `emoji count`, and ` mine` when it is the user's. */
function chips(r: Locator): Promise<string> {
  return r.locator(".reaction:not(.add)").evaluateAll((els) =>
    els.map((el) =>
      `${el.getAttribute("data-emoji")} ${el.querySelector(".reaction-count")!.textContent}${
        el.getAttribute("aria-pressed") === "true" ? " mine" : ""
      }`
    ).join(", ")
  );
}

/** Waits until a message's chips read `want` ("" for none). */
async function chipsAre(p: Person, text: string, want: string): Promise<void> {
  const r = row(p, text);
  await until(async () => await chips(r) === want, `${p.name} sees "${want}" under "${text}"`);
}

/** Opens a conversation (`#room` or `@peer`) from the sidebar. */
async function open(p: Person, key: string): Promise<void> {
  await p.page.locator(`[data-conv="${key}"]`).click();
  await p.page.locator(`[data-conv="${key}"][aria-current="page"]`).waitFor({ state: "attached" });
}

/** Presses "Retry now" until the page is connected again. */
async function reconnect(p: Person): Promise<void> {
  await until(async () => {
    if (await p.page.locator('.app[data-ready="true"][data-conn="open"]').count() > 0) return true;
    const retry = p.page.getByRole("button", { name: "Retry now" }).first();
    if (await retry.count() > 0) await retry.click({ timeout: 1000 }).catch(() => {});
    return false;
  }, `${p.name}'s page reconnects`);
}

// ---------------------------------------------------------------------------
// State, as a page shows it and as the server holds it

/** One message's state: what a person can see of it. */
interface State {
  id: number;
  from: string;
  /** The text as shown ("message deleted" for a tombstone). */
  text: string;
  deleted: boolean;
  /** The "(edited)" mark's title (the time), or null when not edited. */
  edited: string | null;
  /** Who reacted with each emoji, in the order shown. */
  reactions: [string, string[]][];
  /** The quote above a reply. */
  reply: { from: string; snippet: string; deleted: boolean } | null;
}

/** The conversation on screen as {@link State}s, oldest first (fails on unsent rows). */
async function shown(p: Person): Promise<State[]> {
  const raw = await p.page.locator(".msg[data-id], .msg.pending").evaluateAll((els) =>
    els.map((el) => {
      const body = el.querySelector(":scope > .msg-body");
      const textEl = body?.querySelector(":scope > .msg-text");
      const copy = textEl?.cloneNode(true) as HTMLElement | undefined;
      copy?.querySelector(".edited")?.remove();
      const quote = body?.querySelector(":scope > .reply-quote");
      return {
        pending: el.classList.contains("pending"),
        id: Number(el.getAttribute("data-id")),
        from: el.getAttribute("data-from") ?? "",
        text: (copy?.textContent ?? "").trim(),
        deleted: el.classList.contains("deleted"),
        edited: textEl?.querySelector(".edited")?.getAttribute("title") ?? null,
        chips: [...(body?.querySelectorAll(".reaction:not(.add)") ?? [])].map((c) => ({
          emoji: c.getAttribute("data-emoji") ?? "",
          label: c.getAttribute("aria-label") ?? "",
          count: Number(c.querySelector(".reaction-count")?.textContent),
        })),
        reply: quote
          ? {
            from: quote.querySelector(".reply-from")?.textContent ?? "",
            snippet: quote.querySelector(".reply-snippet")?.textContent ?? "",
            deleted: quote.querySelector(".reply-snippet")?.classList.contains("gone") ?? false,
          }
          : null,
      };
    })
  );
  assert.deepEqual(raw.filter((m) => m.pending), [], `${p.name} has no unsent messages`);
  return raw.map(({ pending: _, chips, ...m }) => ({
    ...m,
    reactions: chips.map((c) => {
      // The label says who: "🎉 2: you and alice" (the page's user is "you").
      const who = c.label.slice(`${c.emoji} ${c.count}: `.length);
      const users = who.split(/, | and /).map((n) => n === "you" ? p.name : n);
      assert.equal(users.length, c.count, `"${c.label}" names everyone`);
      return [c.emoji, users] as [string, string[]];
    }),
  }));
}

/** A message from the server's history as {@link State} (with `edited` as a mark, not a time). */
function stateOf(m: ChatMessage): Omit<State, "edited"> & { edited: boolean } {
  return {
    id: m.id,
    from: m.from,
    text: m.deleted ? "message deleted" : m.text,
    deleted: m.deleted === true,
    edited: !m.deleted && m.edited !== undefined,
    reactions: Object.entries(m.reactions ?? {}),
    reply: m.replyTo && !m.deleted
      ? {
        from: m.replyTo.from,
        snippet: m.replyTo.deleted ? "message deleted" : m.replyTo.snippet,
        deleted: m.replyTo.deleted === true,
      }
      : null,
  };
}

/** What a page shows, with the edit time reduced to whether there is one. */
function marked(states: State[]) {
  return states.map((s) => ({ ...s, edited: s.edited !== null }));
}

/** The whole conversation as the server holds it now, read by `c`. */
async function history(c: TestClient, where: { room?: string; to?: string }) {
  c.send({ type: "history", ...where, limit: 200 });
  const page = await c.next<F<"history">>((f) =>
    f.type === "history" && (f.room ?? null) === (where.room ?? null) &&
    (f.to ?? null) === (where.to ?? null)
  );
  assert.equal(page.more, false);
  return page.messages.map(stateOf);
}

/**
 * Waits until every page shows the same conversation as the first, which
 * must be what the server holds; fails with the difference.
 */
async function same(
  pages: Person[],
  server: TestClient,
  where: { room?: string; to?: string },
): Promise<State[]> {
  const truth = await history(server, where);
  const first = pages[0];
  const deadline = Date.now() + TIMEOUT;
  while (true) {
    const states = await Promise.all(pages.map(shown));
    const agree = states.every((s) =>
      isDeepStrictEqual(s, states[0]) && isDeepStrictEqual(marked(s), truth)
    );
    if (agree) return states[0];
    if (Date.now() > deadline) {
      for (const [i, s] of states.entries()) {
        assert.deepEqual(
          marked(s),
          truth,
          `${pages[i].name} (page ${i}) shows what the server holds`,
        );
        assert.deepEqual(s, states[0], `page ${i} shows what ${first.name}'s page 0 shows`);
      }
      throw new Error("The pages disagree");
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Whether `word` occurs anywhere in the bytes of the data file or its log. */
async function inFile(path: string, word: string): Promise<boolean> {
  const latin1 = new TextDecoder("latin1");
  for (const file of [path, `${path}-wal`]) {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(file);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) continue;
      throw err;
    }
    // One byte, one character: an ASCII word is found wherever its bytes are.
    if (latin1.decode(bytes).includes(word)) return true;
  }
  return false;
}

/** Sends as a raw client and waits for the acknowledgement. */
async function say(
  c: TestClient,
  where: { room?: string; to?: string },
  text: string,
  replyTo?: number,
): Promise<F<"message">> {
  const ref = crypto.randomUUID().slice(0, 8);
  c.send({ type: "send", ...where, text, ref, ...(replyTo ? { replyTo } : {}) });
  return await c.next<F<"message">>((f) => f.type === "message" && f.ref === ref);
}

/** Sends a change request as a raw client and waits for its own acknowledgement. */
async function change(c: TestClient, frame: Record<string, unknown>): Promise<void> {
  const ref = crypto.randomUUID().slice(0, 8);
  c.send({ ...frame, ref });
  const answer = await c.next((f) => (f as { ref?: string }).ref === ref);
  assert.notEqual(answer.type, "error", JSON.stringify(answer));
}

// ---------------------------------------------------------------------------

Deno.test("living messages, accepted: two browsers and a terminal on two nodes through Redis, and a device that was offline", async () => {
  const cluster = await startCluster(2, { users: USERS });
  const [nodeA, nodeB] = cluster.nodes;
  await withBrowser(async (browser) => {
    await using config = new ConfigHome();
    await using tty = new Tmux();
    const net = new Network();
    // carol's terminal on node B starts while the pages sign in.
    const terminal = (async () => {
      await tty.start([Deno.execPath(), ...config.run, "client", "--user", "carol", nodeB.ws], {
        cwd: ROOT,
        env: config.env,
        width: 160,
        height: 60,
      });
      await tty.waitFor("Password for carol:");
      await tty.line(USERS.carol);
      await tty.waitFor(/#general>$/);
      await tty.line("/ids");
      await tty.waitFor("-- Message ids are shown in front of lines");
    })();
    // Awaited below; a failure before that must not surface as an unhandled rejection.
    terminal.catch(() => {});
    const alice = await person(browser, nodeA.http + "/", "alice");
    const bob = await person(browser, nodeB.http + "/", "bob");
    // bob's second device, on the other node: offline during all the changes.
    const away = await person(browser, nodeA.http + "/", "bob", {
      setup: (c) => net.attach(c),
    });
    await Promise.all([
      signIn(alice, USERS.alice),
      signIn(bob, USERS.bob),
      signIn(away, USERS.bob),
      terminal,
    ]);
    const reader = await connect(nodeA.ws, "bob", USERS.bob);
    try {
      // What everyone has seen before bob's second device goes offline.
      await send(alice, "the plan is on the wiki");
      await send(alice, "the staging password is hunter2");
      await send(bob, "who reviews the release");
      await tty.line("carol checking in");
      const plan = await idOf(away, "the plan is on the wiki");
      const secret = await idOf(away, "the staging password");
      const question = await idOf(away, "who reviews the release");
      const checkin = await idOf(away, "carol checking in");
      await tty.waitFor(new RegExp(`#${checkin} \\d\\d:\\d\\d carol: carol checking in\\n`));

      await alice.page.evaluate(() => (location.hash = "#/@bob"));
      await alice.page.locator('[data-conv="@bob"][aria-current="page"]').waitFor({
        state: "attached",
      });
      await send(alice, "dm draft to fix");
      await send(alice, "dm oops wrong chat");
      await open(bob, "@alice");
      await row(bob, "dm oops wrong chat").waitFor();
      await send(bob, "dm can you call me");
      await open(away, "@alice");
      await row(away, "dm can you call me").waitFor();
      await open(away, "#general");
      // A mark that a reload would wipe.
      await away.page.evaluate(() => ((globalThis as { __same?: boolean }).__same = true));

      await net.cut();
      await away.page.locator('.app[data-conn="waiting"]').waitFor();

      // In the DM (alice on node A, bob on node B): every action from a browser.
      await edit(alice, "dm draft to fix", "dm draft, fixed");
      await row(bob, "dm draft, fixed").locator(".edited").waitFor();
      await react(bob, "dm draft, fixed", "eyes");
      await chipsAre(alice, "dm draft, fixed", "👀 1");
      await chipsAre(bob, "dm draft, fixed", "👀 1 mine");
      await row(alice, "dm draft, fixed").locator(".reaction[data-emoji='👀']").click();
      await chipsAre(bob, "dm draft, fixed", "👀 2 mine");
      await chipsAre(alice, "dm draft, fixed", "👀 2 mine");
      await row(alice, "dm draft, fixed").locator(".reaction[data-emoji='👀']").click();
      await chipsAre(bob, "dm draft, fixed", "👀 1 mine");
      await chipsAre(alice, "dm draft, fixed", "👀 1");
      await reply(alice, "dm can you call me", "dm yes after lunch");
      const dmAnswer = row(bob, "dm yes after lunch").locator(".reply-quote");
      await dmAnswer.waitFor();
      assert.equal(await dmAnswer.locator(".reply-from").textContent(), "bob");
      // The quote follows a later edit of its original.
      await edit(bob, "dm can you call me", "dm can you call me at 3");
      await row(alice, "dm can you call me at 3").locator(".edited").waitFor();
      for (const p of [alice, bob]) {
        await row(p, "dm yes after lunch").locator(".reply-snippet", {
          hasText: "dm can you call me at 3",
        }).waitFor();
      }
      await remove(alice, "dm oops wrong chat");
      await bob.page.locator(".msg.deleted", { hasText: "message deleted" }).waitFor();
      assert.equal(await row(bob, "dm oops").count(), 0);

      // In the room: the browsers, then the terminal, each seen by the others.
      await open(alice, "#general");
      await open(bob, "#general");
      await edit(alice, "the plan is on the wiki", "the plan is on the wiki, page 2");
      await row(bob, "the plan is on the wiki, page 2").locator(".edited").waitFor();
      await tty.waitFor(`alice edited #${plan}: the plan is on the wiki, page 2`);
      await react(bob, "the plan is on the wiki, page 2", "thumbs up");
      await chipsAre(alice, "the plan is on the wiki, page 2", "👍 1");
      await tty.waitFor(`bob reacted 👍 to #${plan} (alice: the plan is on the wiki, page 2)`);
      await react(alice, "who reviews the release", "fire");
      await chipsAre(bob, "who reviews the release", "🔥 1");
      await tty.waitFor(`alice reacted 🔥 to #${question} (bob: who reviews the release)`);
      await chipsAre(alice, "who reviews the release", "🔥 1 mine");
      await row(alice, "who reviews the release").locator(".reaction[data-emoji='🔥']").click();
      await chipsAre(bob, "who reviews the release", "");
      await tty.waitFor(`alice removed 🔥 from #${question} (bob: who reviews the release)`);
      await reply(bob, "the plan is on the wiki, page 2", "I read it");
      await reply(bob, "the staging password", "too late, I saw it");
      const read = await idOf(alice, "I read it");
      await row(alice, "I read it").locator(".reply-quote", { hasText: "page 2" }).waitFor();
      await tty.waitFor(
        new RegExp(
          ` +↳ #${plan} alice: the plan is on the wiki, page 2\\n#${read} \\d\\d:\\d\\d bob: I read it\\n`,
        ),
      );
      await row(alice, "too late, I saw it").locator(".reply-quote", { hasText: "hunter2" })
        .waitFor();
      await tty.waitFor(
        new RegExp(
          ` +↳ #${secret} alice: the staging password is hunter2\\n#\\d+ \\d\\d:\\d\\d bob: too late, I saw it\\n`,
        ),
      );
      await remove(alice, "the staging password");
      await row(bob, "too late, I saw it").locator(".reply-snippet.gone", {
        hasText: "message deleted",
      }).waitFor();
      await bob.page.locator(`.msg.deleted[data-id="${secret}"]`).waitFor();
      await tty.waitFor(`alice deleted #${secret}`);

      await tty.line(`/edit ${checkin} carol checking in from the train`);
      await tty.waitFor(`carol edited #${checkin}: carol checking in from the train`);
      await tty.line(`/react ${plan} 🎉`);
      await tty.waitFor(`carol reacted 🎉 to #${plan}`);
      await tty.line(`/reply ${question} carol can review it`);
      await tty.waitFor(
        /bob: who reviews the release\n#\d+ \d\d:\d\d carol: carol can review it\n/,
      );
      for (const p of [alice, bob]) {
        await row(p, "carol checking in from the train").locator(".edited").waitFor();
        await chipsAre(
          p,
          "the plan is on the wiki, page 2",
          p === bob ? "👍 1 mine, 🎉 1" : "👍 1, 🎉 1",
        );
        await row(p, "carol can review it").locator(".reply-quote", {
          hasText: "who reviews the release",
        }).waitFor();
      }

      // bob's second device comes back: the same room, then the same DM, without a reload.
      net.restore();
      await reconnect(away);
      const room = await same([bob, alice, away], reader, { room: "general" });
      assert.deepEqual(
        room.map((m) => [m.from, m.text, m.edited !== null, m.reply?.snippet ?? null]),
        [
          ["alice", "the plan is on the wiki, page 2", true, null],
          ["alice", "message deleted", false, null],
          ["bob", "who reviews the release", false, null],
          ["carol", "carol checking in from the train", true, null],
          ["bob", "I read it", false, "the plan is on the wiki, page 2"],
          ["bob", "too late, I saw it", false, "message deleted"],
          ["carol", "carol can review it", false, "who reviews the release"],
        ],
      );
      assert.deepEqual(room[0].reactions, [["👍", ["bob"]], ["🎉", ["carol"]]]);
      for (const p of [alice, bob, away]) await open(p, p === alice ? "@bob" : "@alice");
      const dm = await same([bob, away], reader, { to: "alice" });
      assert.deepEqual(await shown(alice), dm, "alice's side of the DM is the same");
      assert.deepEqual(
        dm.map((m) => [m.from, m.text, m.edited !== null, m.reactions, m.reply?.snippet ?? null]),
        [
          ["alice", "dm draft, fixed", true, [["👀", ["bob"]]], null],
          ["alice", "message deleted", false, [], null],
          ["bob", "dm can you call me at 3", true, [], null],
          ["alice", "dm yes after lunch", false, [], "dm can you call me at 3"],
        ],
      );
      assert.equal(
        await away.page.evaluate(() => (globalThis as { __same?: boolean }).__same),
        true,
        "no reload",
      );
      // The DM reached nobody else.
      assert.doesNotMatch(await tty.screen(), /dm /);
      for (const p of [alice, bob, away]) assert.deepEqual(p.errors, [], p.name);
      await tty.line("/quit");
      assert.equal(await tty.exitCode(), 0);
    } finally {
      await closeAll(reader);
    }
  }, cluster);
});

Deno.test("living messages, accepted: --data survives kill -9, and a device that was offline catches up after the restart", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-accept-" });
  const data = `${dir}/chat.db`;
  await Deno.writeTextFile(`${dir}/users.json`, JSON.stringify(USERS));
  const port = freePort();
  const args = [
    "--data",
    data,
    "--port",
    String(port),
    "--host",
    "127.0.0.1",
    "--users",
    `${dir}/users.json`,
  ];
  const http = `http://127.0.0.1:${port}`;
  let server = await spawnServer(args);
  const stop = {
    async [Symbol.asyncDispose]() {
      await server.kill("SIGKILL");
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
  await withBrowser(async (browser) => {
    const net = new Network();
    const bob = await person(browser, http + "/", "bob");
    const away = await person(browser, http + "/", "bob", { setup: (c) => net.attach(c) });
    await Promise.all([signIn(bob, USERS.bob), signIn(away, USERS.bob)]);
    let alice: TestClient | undefined = await connect(server.ws, "alice", USERS.alice);
    let reader: TestClient | undefined;
    try {
      const general = { room: "general" };
      const dmBob = { to: "bob" };
      const notes = await say(alice, general, "release notes draft");
      const vault = await say(alice, general, "the vault code is quokkazanzibar");
      await send(bob, "bob asks about the notes");
      const asks = await idOf(bob, "bob asks about the notes");
      const keep = await say(alice, dmBob, "dm edit me");
      const gone = await say(alice, dmBob, "dm secret marmotkazoo");
      for (const p of [bob, away]) {
        await open(p, "@alice");
        await row(p, "dm secret marmotkazoo").waitFor();
        await open(p, "#general");
        await row(p, "the vault code").waitFor();
      }
      // Marks that a reload would wipe.
      for (const p of [bob, away]) {
        await p.page.evaluate(() => ((globalThis as { __same?: boolean }).__same = true));
      }
      await net.cut();
      await away.page.locator('.app[data-conn="waiting"]').waitFor();

      // Changes in the room and the DM, the last one a delete right before the kill.
      await change(alice, { type: "edit", ...general, id: notes.id, text: "release notes final" });
      await change(alice, { type: "react", ...general, id: asks, emoji: "👍", on: true });
      await change(alice, { type: "react", ...general, id: notes.id, emoji: "🎉", on: true });
      await change(alice, { type: "react", ...general, id: notes.id, emoji: "🎉", on: false });
      await react(bob, "release notes final", "fire");
      await say(alice, general, "about that vault", vault.id);
      await change(alice, {
        type: "edit",
        ...general,
        id: vault.id,
        text: "the vault code is zanzibarquokka",
      });
      await change(alice, { type: "edit", ...dmBob, id: keep.id, text: "dm edited" });
      await change(alice, { type: "react", ...dmBob, id: keep.id, emoji: "👀", on: true });
      await say(alice, dmBob, "dm forget the secret", gone.id);
      await change(alice, { type: "delete", ...dmBob, id: gone.id });
      await change(alice, { type: "delete", ...general, id: vault.id });
      // The online page got them live.
      await bob.page.locator(`.msg.deleted[data-id="${vault.id}"]`).waitFor();
      await row(bob, "about that vault").locator(".reply-snippet.gone").waitFor();
      await chipsAre(bob, "release notes final", "🔥 1 mine");

      const killed = await server.kill("SIGKILL");
      assert.equal(killed.signal, "SIGKILL");
      await alice.waitClose();
      await closeAll(alice);
      alice = undefined;
      server = await spawnServer(args);

      net.restore();
      await reconnect(bob);
      await reconnect(away);
      reader = await connect(server.ws, "bob", USERS.bob);
      const room = await same([bob, away], reader, general);
      assert.deepEqual(
        room.map((m) => [m.from, m.text, m.edited !== null, m.reactions, m.reply?.snippet ?? null]),
        [
          ["alice", "release notes final", true, [["🔥", ["bob"]]], null],
          ["alice", "message deleted", false, [], null],
          ["bob", "bob asks about the notes", false, [["👍", ["alice"]]], null],
          ["alice", "about that vault", false, [], "message deleted"],
        ],
      );
      for (const p of [bob, away]) await open(p, "@alice");
      const dm = await same([bob, away], reader, { to: "alice" });
      assert.deepEqual(
        dm.map((m) => [m.from, m.text, m.edited !== null, m.reactions, m.reply?.snippet ?? null]),
        [
          ["alice", "dm edited", true, [["👀", ["alice"]]], null],
          ["alice", "message deleted", false, [], null],
          ["alice", "dm forget the secret", false, [], "message deleted"],
        ],
      );
      for (const p of [bob, away]) {
        assert.deepEqual(p.errors, [], p.name);
        assert.equal(
          await p.page.evaluate(() => (globalThis as { __same?: boolean }).__same),
          true,
          "no reload",
        );
      }

      // Deleted text is gone from the file and its log once checkpointed: the
      // restarted server empties a log left behind by the kill.
      for (const word of ["quokkazanzibar", "zanzibarquokka", "marmotkazoo"]) {
        await waitUntil(async () => !(await inFile(data, word)), `"${word}" is gone from ${data}`);
      }
      // Everyone leaves, then the server stops as an operator stops it, which
      // checkpoints the file once more and removes its log.
      await closeAll(reader);
      reader = undefined;
      for (const p of [bob, away]) await p.context.close();
      const stopped = await server.kill("SIGTERM");
      assert.equal(stopped.code, 0, server.lines.join("\n"));
      for (const word of ["quokkazanzibar", "zanzibarquokka", "marmotkazoo"]) {
        assert.equal(await inFile(data, word), false, `"${word}" is not in the file`);
      }
      assert.equal(await inFile(data, "release notes final"), true, "the file is the one used");
    } finally {
      await closeAll(alice, reader);
    }
  }, stop);
});
