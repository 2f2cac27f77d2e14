import assert from "node:assert/strict";
import { isRoute, parseRoute, routeHash, slugify } from "../web/route.ts";

Deno.test("routeHash() names rooms, direct conversations and messages", () => {
  assert.equal(routeHash("#general"), "#/general");
  assert.equal(routeHash("#general", 42), "#/general/42");
  assert.equal(routeHash("@bob"), "#/@bob");
  // A message in a direct conversation names both people, in a fixed order.
  assert.equal(routeHash("@bob", 7, "alice"), "#/@alice+bob/7");
  assert.equal(routeHash("@alice", 7, "bob"), "#/@alice+bob/7");
});

Deno.test("parseRoute() reads links back, from either side of a direct conversation", () => {
  assert.deepEqual(parseRoute("#/general", "alice"), { key: "#general" });
  assert.deepEqual(parseRoute("#/general/42", "alice"), { key: "#general", id: 42 });
  assert.deepEqual(parseRoute("#/general/", "alice"), { key: "#general" });
  assert.deepEqual(parseRoute("#/@bob", "alice"), { key: "@bob" });
  assert.deepEqual(parseRoute("#/@alice+bob/7", "alice"), { key: "@bob", id: 7 });
  assert.deepEqual(parseRoute("#/@alice+bob/7", "bob"), { key: "@alice", id: 7 });
  assert.deepEqual(parseRoute("#/@Alice+bob/7", "alice"), { key: "@bob", id: 7 });
});

Deno.test("parseRoute() ignores what is not a link of ours", () => {
  for (
    const hash of [
      "",
      "#",
      "#composer",
      "#/",
      "#/bad name",
      "#/general/x",
      "#/general/1/2",
      "#/general/1234567890123456",
      "#/@a+b+c/1",
      "#/%E0%A4%A",
      "#/" + "a".repeat(33),
      "#/<script>",
    ]
  ) {
    assert.equal(parseRoute(hash, "alice"), null, hash);
  }
  // Two other people's conversation, or a pair link before anyone signed in.
  assert.equal(parseRoute("#/@bob+carol/3", "alice"), null);
  assert.equal(parseRoute("#/@alice+bob/3", null), null);
  assert.ok(isRoute("#/@alice+bob/3"));
  assert.ok(!isRoute("#composer"));
});

Deno.test("slugify() turns what someone typed into a valid room name", () => {
  assert.equal(slugify("Design team"), "design-team");
  assert.equal(slugify("  #Design   Team!! "), "design-team");
  assert.equal(slugify("Café crème"), "cafe-creme");
  assert.equal(slugify("release_2026"), "release_2026");
  assert.equal(slugify("---"), "");
  assert.equal(slugify("日本"), "");
  const long = slugify("a very long room name that goes on and on and on");
  assert.ok(long.length <= 32 && !long.endsWith("-"), long);
});
