/**
 * The members panel of a large room, in a real browser on a real server (open
 * mode): `general` and `hall` hold 260 members each, three of them online
 * besides alice. The panel says how many there are and shows the first page
 * from `joined`, the online members first (in `general`, where everyone is,
 * all of them; in `hall`, those loaded), and asks for the next page with a
 * `members` request (one page at a time, each after the last name loaded)
 * only as the end of the list is scrolled near, until every name is listed
 * once. A newcomer to the large room moves the count (`member_count`)
 * without a line in the room; a join in a small room still shows in its
 * list and as a line. Screenshots of the panel: desktop (light) and phone
 * (dark), there with a page on its way. Without a browser: how a
 * conversation pages (one request at a time, duplicates and stale replies
 * dropped, joins past the names loaded left to their page).
 */
import assert from "node:assert/strict";
import type { BrowserContext, Page } from "playwright-core";
import { signal } from "@preact/signals";
import { MEMBERS_PAGE, type MembersPageFrame } from "../../protocol.ts";
import { Conversation } from "../../web/conversation.ts";
import { closeAll, type SignedIn, signIn as connect, startTestServer } from "../helpers.ts";
import { screenshot } from "./browser.ts";
import { type Person, person, ready, until, withBrowser } from "./people.ts";

/** Members who sign in once and leave: offline, `user000` … `user255`. */
const OFFLINE = Array.from({ length: 256 }, (_, i) => `user${String(i).padStart(3, "0")}`);
/** Members who stay online: one on the first page, two on the last. */
const ONLINE = ["aaron", "yann", "zoe"];
/** Everyone in `general` once alice is in, sorted. */
const EVERYONE = [...OFFLINE, ...ONLINE, "alice"].sort();

/** A frame the page sent or received over its WebSocket. */
type Frame = { type: string; [key: string]: unknown };

/** Records the frames every page of `context` sends and receives over its WebSockets. */
function recordFrames(context: BrowserContext): { sent: Frame[]; received: Frame[] } {
  const sent: Frame[] = [];
  const received: Frame[] = [];
  const parse = (payload: string | Buffer, into: Frame[]) => {
    // The server may batch frames, one JSON object a line.
    for (const line of String(payload).split("\n")) {
      if (line.trim() === "") continue;
      try {
        into.push(JSON.parse(line));
      } catch {
        // Not a frame of ours.
      }
    }
  };
  context.on("page", (page: Page) => {
    page.on("websocket", (ws) => {
      ws.on("framesent", (f) => parse(f.payload, sent));
      ws.on("framereceived", (f) => parse(f.payload, received));
    });
  });
  return { sent, received };
}

/** Joins in open mode under the person's name and waits until the app is ready. */
async function join(p: Person): Promise<void> {
  await p.page.getByLabel("Your name").fill(p.name);
  await p.page.getByRole("button", { name: "Join" }).click();
  await ready(p);
}

/** The members panel (open it when it is not: phones). */
async function openPanel(p: Person): Promise<void> {
  const button = p.page.locator('.topbar button[aria-label="Members"]');
  if (await button.getAttribute("aria-pressed") !== "true") await button.click();
  await p.page.locator('aside.panel[aria-label="Members"]').waitFor();
}

/** The names a list of the panel shows, in order. */
function names(p: Person, list: "online" | "offline"): Promise<string[]> {
  return p.page.locator(`.panel [data-list="${list}"] [data-member]`).evaluateAll((els) =>
    els.map((e) => (e as HTMLElement).dataset.member!)
  );
}

/** The panel's "N members" line. */
async function total(p: Person): Promise<string> {
  return (await p.page.locator(".panel .member-total").textContent())!.trim();
}

/** Scrolls the panel to its end. */
async function scrollToEnd(p: Person): Promise<void> {
  await p.page.locator(".panel .panel-body").evaluate((el) => {
    el.scrollTop = el.scrollHeight;
  });
}

/** Signs in `names` over WebSockets, a few at a time, into `room` too; closes them unless `keep`. */
async function signInAll(
  ws: string,
  names: string[],
  opts: { room?: string; keep?: boolean } = {},
): Promise<SignedIn[]> {
  const out: SignedIn[] = [];
  for (let i = 0; i < names.length; i += 8) {
    const batch = await Promise.all(
      names.slice(i, i + 8).map(async (n) => {
        const c = await connect(ws, n);
        if (opts.room !== undefined) {
          c.send({ type: "join", room: opts.room });
          await c.next((f) => f.type === "joined" && f.room === opts.room);
        }
        return c;
      }),
    );
    if (opts.keep) out.push(...batch);
    else await closeAll(...batch);
  }
  return out;
}

/** Creates or joins `room` from the room browser; waits until it is open. */
async function joinRoom(p: Person, room: string): Promise<void> {
  await p.page.getByRole("button", { name: "Browse or create rooms" }).click();
  await p.page.locator("#room-input").fill(room);
  await p.page.locator("#room-input").press("Enter");
  await p.page.locator(".topbar h1", { hasText: room }).waitFor();
}

Deno.test("web app: the members panel pages through a large room, online members first", async (t) => {
  const server = await startTestServer();
  let online: SignedIn[] = [];
  try {
    // Everyone is in `general` (open mode joins it); all but alice are in `hall` too.
    await signInAll(server.ws, OFFLINE, { room: "hall" });
    online = await signInAll(server.ws, ONLINE, { room: "hall", keep: true });
    await withBrowser(async (browser) => {
      let frames: { sent: Frame[]; received: Frame[] } = { sent: [], received: [] };
      const alice = await person(browser, server.http + "/", "alice", {
        setup: (context) => {
          frames = recordFrames(context);
          return Promise.resolve();
        },
      });
      await join(alice);
      await openPanel(alice);
      const page = alice.page;
      const asked = (room: string) =>
        frames.sent.filter((f) => f.type === "members" && f.room === room);
      const pages = (room: string) =>
        frames.received.filter((f) => f.type === "members" && f.room === room);

      await t.step("general: the count, the first page, everyone online first", async () => {
        await until(async () => (await total(alice)) === "260 members · 100 listed", "the count");
        const joined = frames.received.find((f) => f.type === "joined" && f.room === "general");
        assert.equal(joined?.memberCount, 260);
        assert.deepEqual(joined?.members, EVERYONE.slice(0, MEMBERS_PAGE));
        // Everyone is in the lobby: who is online is listed first, loaded or not.
        assert.deepEqual(await names(alice, "online"), ["aaron", "alice", "yann", "zoe"]);
        await page.locator(".panel h3", { hasText: "Online — 4" }).waitFor();
        assert.deepEqual(
          await names(alice, "offline"),
          EVERYONE.slice(0, MEMBERS_PAGE).filter((n) => !ONLINE.includes(n) && n !== "alice"),
        );
        assert.equal(await page.locator(".panel h3", { hasText: /^Offline$/ }).count(), 1);
        assert.equal(await page.locator(".panel .members-more").count(), 1);
        assert.deepEqual(asked("general"), [], "no page is asked for before the end is near");
        assert.equal(
          await page.locator('.topbar button[aria-label="Members"] .count').textContent(),
          "260",
        );
        await page.locator(".subtitle", { hasText: "260 members · 4 online" }).waitFor();
      });

      await t.step("hall: online among those loaded, then page after page to the end", async () => {
        await joinRoom(alice, "hall");
        await until(async () => (await total(alice)) === "260 members · 100 listed", "the count");
        // yann and zoe come with the last page.
        assert.deepEqual(await names(alice, "online"), ["aaron", "alice"]);
        await page.locator(".panel h3", { hasText: /^Online$/ }).waitFor();
        // Who is online among the members not loaded is not known: not said.
        assert.equal(
          (await page.locator(".subtitle-text").textContent())!.trim(),
          "260 members",
        );
        assert.deepEqual(asked("hall"), [], "no page is asked for before the end is near");
        await screenshot(page, "members-large-desktop");

        for (const listed of ["200 listed", null]) {
          await scrollToEnd(alice);
          await until(
            async () => (await total(alice)) === `260 members${listed ? ` · ${listed}` : ""}`,
            `the panel lists ${listed ?? "everyone"}`,
          );
        }
        await page.locator(".panel .members-more").waitFor({ state: "detached" });
        assert.deepEqual(
          asked("hall").map(({ type, room, after, limit }) => ({ type, room, after, limit })),
          [
            { type: "members", room: "hall", after: EVERYONE[99], limit: undefined },
            { type: "members", room: "hall", after: EVERYONE[199], limit: undefined },
          ],
          "one page at a time, each after the last name loaded",
        );
        assert.deepEqual(pages("hall").map((f) => [f.after, f.members, f.count, f.more]), [
          [EVERYONE[99], EVERYONE.slice(100, 200), 260, true],
          [EVERYONE[199], EVERYONE.slice(200), 260, false],
        ]);
        const on = await names(alice, "online");
        const off = await names(alice, "offline");
        assert.deepEqual(on, ["aaron", "alice", "yann", "zoe"]);
        assert.deepEqual(off, EVERYONE.filter((n) => !on.includes(n)));
        assert.equal(new Set([...on, ...off]).size, 260, "no name twice");
        await page.locator(".panel h3", { hasText: "Online — 4" }).waitFor();
        await page.locator(".panel h3", { hasText: "Offline — 256" }).waitFor();
        await page.locator(".subtitle", { hasText: "260 members · 4 online" }).waitFor();
        // Nothing more to ask for, however far it is scrolled.
        await scrollToEnd(alice);
        await page.locator(".panel").evaluate(() => new Promise(requestAnimationFrame));
        assert.equal(asked("hall").length, 2);
        assert.deepEqual(asked("general"), []);
      });

      await t.step("a newcomer to the large room moves the count, with no line", async () => {
        const [newbie] = await signInAll(server.ws, ["newbie"], { room: "hall", keep: true });
        try {
          await until(async () => (await total(alice)).startsWith("261 members"), "261 members");
          const counts = frames.received.filter((f) =>
            f.type === "member_count" && f.room === "hall"
          );
          assert.deepEqual(counts.at(-1), { type: "member_count", room: "hall", count: 261 });
          assert.ok(
            !frames.received.some((f) => f.type === "system" && f.user === "newbie"),
            "no join is announced in a room of 100 members or more",
          );
          await page.locator(".subtitle", { hasText: "261 members" }).waitFor();
          assert.equal(await page.locator(".notice", { hasText: "newbie" }).count(), 0);
        } finally {
          await newbie.close();
        }
      });

      await t.step("a join in a small room shows in its list and as a line", async () => {
        await joinRoom(alice, "small");
        await openPanel(alice);
        await until(async () => (await total(alice)) === "1 member", "alice alone");
        const zoe = online[ONLINE.indexOf("zoe")];
        zoe.send({ type: "join", room: "small" });
        await page.locator('.panel [data-list="online"] [data-member="zoe"]').waitFor();
        assert.equal(await total(alice), "2 members");
        assert.deepEqual(await names(alice, "online"), ["alice", "zoe"]);
        await page.locator(".notice", { hasText: "zoe joined #small" }).waitFor();
        assert.deepEqual(asked("small"), [], "a whole list asks for no page");
      });

      await t.step("on a phone, in the dark: a page on its way says so", async () => {
        // The server's pages of members are held until the test lets them through.
        let hold = true;
        const held: (() => void)[] = [];
        const phone = await person(browser, server.http + "/", "bea", {
          phone: true,
          dark: true,
          setup: (context) =>
            context.routeWebSocket(/\/ws$/, (ws) => {
              const upstream = ws.connectToServer();
              upstream.onMessage((message) => {
                if (hold && String(message).includes('"type":"members"')) {
                  held.push(() => ws.send(message));
                } else ws.send(message);
              });
            }),
        });
        await join(phone);
        await openPanel(phone);
        await until(async () => (await total(phone)) === "262 members · 100 listed", "the count");
        await screenshot(phone.page, "members-large-phone-dark");
        await scrollToEnd(phone);
        const loading = phone.page.locator(".panel .members-more[role=status]", {
          hasText: "Loading more members…",
        });
        await loading.waitFor();
        await until(() => Promise.resolve(held.length === 1), "the page is asked for");
        await loading.scrollIntoViewIfNeeded();
        await screenshot(phone.page, "members-loading-phone-dark");
        hold = false;
        held.shift()!();
        await until(
          async () => (await total(phone)) === "262 members · 200 listed",
          "the next page is listed",
        );
        assert.equal(await loading.count(), 0);
        assert.deepEqual(phone.errors, []);
      });
      assert.deepEqual(alice.errors, []);
    }, server);
  } finally {
    await closeAll(...online);
  }
});

/** A `members` reply for room `room`. */
function reply(
  room: string,
  after: string | undefined,
  members: string[],
  count: number,
  more: boolean,
  ref?: string,
): MembersPageFrame {
  return {
    type: "members",
    room,
    ...(after === undefined ? {} : { after }),
    members,
    count,
    more,
    ...(ref === undefined ? {} : { ref }),
  };
}

Deno.test("Conversation pages a room's members: one page at a time, stale replies dropped", () => {
  const conv = new Conversation("#hall", signal("alice"));
  assert.equal(conv.askMembers("r0"), null, "nothing to ask before `joined`");
  conv.resetMembers(["carl", "alice", "bob"], 7);
  assert.deepEqual(conv.members.value, ["alice", "bob", "carl"]);
  assert.equal(conv.membersComplete.value, false);
  assert.deepEqual(conv.askMembers("r1", 1000), { after: "carl" });
  assert.equal(conv.loadingMembers.value, true);
  assert.equal(conv.askMembers("r2", 2000), null, "one page on its way at a time");

  // Another request's answer, or one for another `after`, is not this page.
  assert.equal(conv.takeMembers(reply("hall", "carl", ["x"], 7, true, "other")), false);
  assert.equal(conv.takeMembers(reply("hall", "bob", ["x"], 7, true, "r1")), false);
  // Duplicates are dropped, the list stays sorted, the count follows the server.
  assert.equal(
    conv.takeMembers(reply("hall", "carl", ["dora", "carl", "eve"], 8, true, "r1")),
    true,
  );
  assert.deepEqual(conv.members.value, ["alice", "bob", "carl", "dora", "eve"]);
  assert.equal(conv.memberCount.value, 8);
  assert.equal(conv.loadingMembers.value, false);
  assert.equal(conv.takeMembers(reply("hall", "carl", ["zed"], 8, true, "r1")), false, "once");

  // A join past the names loaded waits for its page; one before them is listed now.
  conv.memberJoined("yuri");
  conv.memberJoined("bea");
  assert.deepEqual(conv.members.value, ["alice", "bea", "bob", "carl", "dora", "eve"]);
  assert.equal(conv.memberCount.value, 10);
  conv.memberLeft("zack");
  assert.equal(conv.memberCount.value, 9, "a leave past the names loaded is counted");
  conv.memberLeft("bob");
  assert.deepEqual(conv.members.value, ["alice", "bea", "carl", "dora", "eve"]);
  assert.equal(conv.memberCount.value, 8);

  // A page asked for before a rejoin (a reconnect) or a rename is not taken.
  assert.deepEqual(conv.askMembers("r3", 3000), { after: "eve" });
  conv.resetMembers(["alice", "bea", "carl"], 8);
  assert.equal(conv.loadingMembers.value, false);
  assert.equal(conv.takeMembers(reply("hall", "eve", ["fay"], 8, true, "r3")), false);
  assert.deepEqual(conv.askMembers("r4", 4000), { after: "carl" });
  conv.rename("lounge");
  assert.equal(conv.takeMembers(reply("hall", "carl", ["dora"], 8, true, "r4")), false);
  // A server that echoes no ref: matched by room and `after`.
  assert.deepEqual(conv.askMembers("r5", 5000), { after: "carl" });
  assert.equal(conv.takeMembers(reply("hall", "carl", ["dora"], 8, true)), false);
  assert.equal(conv.takeMembers(reply("lounge", "carl", ["dora", "eve", "fay"], 8, true)), true);

  // A page given up (no answer, or refused for the limits) may be asked for again; a refusal
  // for another reason stops the paging until the next `joined`.
  assert.deepEqual(conv.askMembers("r6", 6000), { after: "fay" });
  assert.equal(conv.askMembers("r7", 6000 + 14_999), null);
  assert.deepEqual(
    conv.askMembers("r7", 6000 + 15_000),
    { after: "fay" },
    "a stale one is given up",
  );
  assert.equal(conv.cancelMembers("r6"), false);
  assert.equal(conv.cancelMembers("r7", true), true);
  assert.equal(conv.moreMembers.value, false);
  assert.equal(conv.askMembers("r8", 30_000), null);
  conv.resetMembers(["alice", "bea", "carl"], 8);
  assert.equal(conv.moreMembers.value, true);

  // The last page: every member listed, nothing more to ask for; a join is listed at once.
  assert.deepEqual(conv.askMembers("r9", 40_000), { after: "carl" });
  conv.takeMembers(reply("lounge", "carl", ["dora", "eve", "fay", "gus", "hal"], 8, false, "r9"));
  assert.equal(conv.membersComplete.value, true);
  assert.equal(conv.askMembers("r10", 50_000), null);
  conv.memberJoined("zoe");
  assert.equal(conv.members.value.at(-1), "zoe");
  assert.equal(conv.memberCount.value, 9);
  assert.equal(conv.membersComplete.value, true);
});
