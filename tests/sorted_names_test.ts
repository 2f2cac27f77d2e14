import assert from "node:assert/strict";
import { SortedNames } from "../server/sorted_names.ts";
import { Rng } from "./chaos/prng.ts";

const ALPHABET = "ABMZabmyz01589-_";

/** A name from a small alphabet, so that adds and deletes hit the same names often. */
function nameOf(next: () => number): string {
  let s = "";
  const n = 1 + Math.floor(next() * 3);
  for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(next() * ALPHABET.length)];
  return s;
}

/** Names after `after` in a plain sorted array, at most `limit`. */
function expectedAfter(sorted: string[], after: string | undefined, limit: number): string[] {
  return sorted.filter((n) => after === undefined || n > after).slice(0, limit);
}

Deno.test("SortedNames.add() and delete() keep names unique and in JS order", () => {
  const names = new SortedNames();
  for (const n of ["carol", "_x", "Bob", "-a", "alice", "9", "bob"]) {
    assert.equal(names.add(n), true);
  }
  assert.equal(names.add("alice"), false);
  assert.deepEqual([...names], ["-a", "9", "Bob", "_x", "alice", "bob", "carol"]);
  assert.equal(names.size, 7);
  assert.equal(names.has("Bob"), true);
  assert.equal(names.has("bo"), false);
  assert.equal(names.has("zed"), false);
  assert.equal(names.delete("zed"), false);
  assert.equal(names.delete("Bob"), true);
  assert.equal(names.delete("Bob"), false);
  assert.equal(names.has("Bob"), false);
  assert.equal(names.size, 6);
});

Deno.test("SortedNames.after() pages strictly after a name, present or not", async (t) => {
  const names = new SortedNames();
  for (const n of ["b", "d", "f"]) names.add(n);
  await t.step("from the first", () => assert.deepEqual(names.after(undefined, 2), ["b", "d"]));
  await t.step("after a member", () => assert.deepEqual(names.after("b", 5), ["d", "f"]));
  await t.step("after a non-member", () => assert.deepEqual(names.after("c", 5), ["d", "f"]));
  await t.step("before every name", () => assert.deepEqual(names.after("a", 1), ["b"]));
  await t.step("after the last", () => assert.deepEqual(names.after("f", 5), []));
  await t.step("past every name", () => assert.deepEqual(names.after("z", 5), []));
  await t.step("a limit of 0", () => assert.deepEqual(names.after(undefined, 0), []));
  await t.step("empty", () => assert.deepEqual(new SortedNames().after(undefined, 5), []));
});

Deno.test("SortedNames pages across chunks as a sorted array does", () => {
  const names = new SortedNames();
  const all: string[] = [];
  // Added in reverse: every chunk splits at its front, the worst case for splice.
  for (let i = 5000; i > 0; i--) {
    const n = `u${String(i).padStart(5, "0")}`;
    names.add(n);
    all.unshift(n);
  }
  assert.deepEqual([...names], all);
  for (const limit of [1, 7, 512, 513, 1000]) {
    const seen: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = names.after(after, limit);
      if (page.length === 0) break;
      assert.ok(page.length <= limit);
      seen.push(...page);
      after = page.at(-1);
    }
    assert.deepEqual(seen, all, `limit ${limit}`);
  }
  // Emptied from the middle outwards: chunks empty and merge.
  for (let i = 2000; i < 4500; i++) names.delete(all[i]);
  const left = [...all.slice(0, 2000), ...all.slice(4500)];
  assert.deepEqual([...names], left);
  assert.deepEqual(names.after(all[1999], 3), all.slice(4500, 4503));
  assert.deepEqual(names.after(all[3000], 3), all.slice(4500, 4503));
});

Deno.test("SortedNames matches a plain sorted array under random adds and deletes", () => {
  for (const seed of [1, 2, 3]) {
    const rng = new Rng(seed);
    const next = () => rng.next();
    const names = new SortedNames();
    const plain = new Set<string>();
    for (let step = 0; step < 20_000; step++) {
      const n = nameOf(next);
      // Mostly adds early, mostly deletes late: chunks split, then empty and merge.
      if (next() < (step < 12_000 ? 0.75 : 0.2)) {
        assert.equal(names.add(n), !plain.has(n), `seed ${seed} step ${step}: add "${n}"`);
        plain.add(n);
      } else {
        assert.equal(names.delete(n), plain.has(n), `seed ${seed} step ${step}: delete "${n}"`);
        plain.delete(n);
      }
      if (step % 500 !== 0) continue;
      const sorted = [...plain].sort();
      assert.deepEqual([...names], sorted, `seed ${seed} step ${step}`);
      assert.equal(names.size, sorted.length);
      const after = next() < 0.2 ? undefined : nameOf(next);
      const limit = Math.floor(next() * 600);
      assert.deepEqual(names.after(after, limit), expectedAfter(sorted, after, limit));
      assert.equal(names.has(n), plain.has(n));
    }
  }
});
