/**
 * Tab in the interactive terminal client, under a real pseudo-terminal
 * (tmux) against the real server: names, commands and rooms complete, and
 * Tab again goes through the matches.
 */
import assert from "node:assert/strict";
import { closeAll, type SignedIn, signIn, startTestServer } from "../helpers.ts";
import { ConfigHome, ROOT } from "../client_helpers.ts";
import { Tmux } from "../tmux.ts";

const USERS = { alice: "alice-pass", bob: "bob-pass1", bea: "bea-pass1", carol: "carol-pass" };

Deno.test("chat client (terminal): Tab completes @names and goes through the matches, /commands and rooms", async () => {
  // Rooms of more than 3 members take @room from admins only.
  await using t = await startTestServer({ users: USERS, args: ["--room-mention-max", "3"] });
  await using config = new ConfigHome();
  await using tty = new Tmux();
  let bob: SignedIn | undefined;
  let bea: SignedIn | undefined;
  try {
    bob = await signIn(t.ws, "bob", USERS.bob);
    bea = await signIn(t.ws, "bea", USERS.bea);
    for (const c of [bob, bea]) {
      c.send({ type: "join", room: "dev" });
      await c.next((f) => f.type === "joined" && f.room === "dev");
    }
    await tty.start(
      [Deno.execPath(), ...config.run, "client", t.ws, "--user", "alice", "--room", "dev"],
      { cwd: ROOT, env: { ...config.env, CHAT_PASSWORD: USERS.alice, NO_COLOR: "1" } },
    );
    await tty.waitFor(/-- You are in #dev with bea and bob\n[^]*#dev>$/);

    // Two names start with "b": the first Tab puts in the first and lists both; Tab again
    // goes through them, round and round.
    await tty.type("hi @b");
    await tty.waitFor(/#dev> hi @b$/);
    await tty.press("Tab");
    await tty.waitFor(/-- @bea {2}@bob\n#dev> hi @bea$/);
    await tty.press("Tab");
    await tty.waitFor(/#dev> hi @bob$/);
    await tty.press("Tab");
    await tty.waitFor(/#dev> hi @bea$/);
    await tty.press("Tab");
    await tty.waitFor(/#dev> hi @bob$/);
    assert.equal(await tty.cursorLine(), "#dev> hi @bob", "the space after the name is typed too");
    await tty.type("ship it");
    await tty.press("Enter");
    const sent = await bob.next((f) => f.type === "message" && f.from === "alice");
    assert.equal(sent.type === "message" && sent.text, "hi @bob ship it");
    await tty.waitFor(/alice: hi @bob ship it\n#dev>$/);

    // One match: it goes in with its space, and nothing is listed.
    await tty.type("@BE");
    await tty.press("Tab");
    await tty.waitFor(/#dev> @bea$/);
    await tty.type("x");
    await tty.waitFor(/#dev> @bea x$/);
    await tty.press("C-u");
    await tty.waitFor(/#dev>$/);

    // #dev has 3 members: alice's @room reaches everyone there.
    await tty.type("@ro");
    await tty.press("Tab");
    await tty.waitFor(/#dev> @room$/);
    await tty.press("C-u");
    await tty.waitFor(/#dev>$/);

    // Commands, then rooms after /join.
    await tty.type("/jo");
    await tty.press("Tab");
    await tty.waitFor(/#dev> \/join$/);
    await tty.type("gen");
    await tty.press("Tab");
    await tty.waitFor(/#dev> \/join general$/);
    await tty.press("Enter");
    await tty.waitFor(/#general>$/);

    // In general, carol (who is in no room with alice) is still a name Tab knows once online.
    const carol = await signIn(t.ws, "carol", USERS.carol);
    try {
      await tty.waitFor("carol");
      await tty.type("@c");
      await tty.press("Tab");
      await tty.waitFor(/#general> @carol$/);
      // #general has 4 members now, more than 3: no @room for alice (no admin) there.
      await tty.press("C-u");
      await tty.type("@ro");
      await tty.press("Tab");
      await tty.type("!");
      await tty.waitFor(/#general> @ro!$/);
    } finally {
      await carol.close();
    }
    await tty.press("C-u");
    await tty.line("/quit");
    assert.equal(await tty.exitCode(), 0);
  } finally {
    await closeAll(bob, bea);
  }
});
