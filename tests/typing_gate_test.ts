import assert from "node:assert/strict";
import { TypingGate } from "../server/hub/typing_gate.ts";

Deno.test("TypingGate.offer() lets a burst through, then holds changes", () => {
  const g = new TypingGate<string>({ burst: 3, interval: 1000 });
  const toggles = [true, false, true, false, true, false];
  const passed = toggles.map((on, i) => g.offer("k", on, `#${i}`, 0));
  assert.deepEqual(passed, [true, true, true, false, false, false]);
  assert.deepEqual(g.due(500), [], "no token yet");
  assert.deepEqual(g.due(1000), [{ active: false, info: "#5" }], "only the latest held state");
  assert.equal(g.offer("k", true, "#6", 1000), false, "no token left after the release");
});

Deno.test("TypingGate.due() drops a held change that ends where the others already are", () => {
  const g = new TypingGate<string>({ burst: 1, interval: 1000 });
  assert.equal(g.offer("k", true, "on", 0), true);
  assert.equal(g.offer("k", false, "off", 10), false);
  assert.equal(g.offer("k", true, "on again", 20), false);
  assert.deepEqual(g.due(1000), [], "they still see typing: nothing to say");
  assert.equal(g.offer("k", false, "off", 1100), true, "the token was not spent");
});

Deno.test("TypingGate.offer() gives each key its own budget", () => {
  const g = new TypingGate<string>({ burst: 1, interval: 1000 });
  assert.equal(g.offer("room\nalice", true, "a", 0), true);
  assert.equal(g.offer("room\nbob", true, "b", 0), true);
  assert.equal(g.offer("room\nalice", false, "a", 0), false);
});

Deno.test("TypingGate.due() bounds a flood to one change per interval and forgets idle typists", () => {
  const g = new TypingGate<number>({ burst: 4, interval: 1000 });
  let published = 0;
  for (let ms = 0; ms < 10_000; ms += 10) {
    if (g.offer("k", (ms / 10) % 2 === 0, ms, ms)) published++;
    if (ms % 100 === 0) published += g.due(ms).length;
  }
  assert.ok(published <= 4 + 10, `published ${published} changes for 1000 toggles`);
  for (let ms = 10_000; ms <= 20_000; ms += 100) g.due(ms);
  assert.equal(g.size, 0);
});
