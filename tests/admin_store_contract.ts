/**
 * The contract every {@link AdminStore} keeps. Each backend's test calls
 * {@link adminStoreContract} with a factory, as `store_contract.ts` does for
 * messages.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type AdminStore,
  AUDIT_KEEP,
  type AuditEntry,
  type Ban,
  type Invite,
  MAX_LIVE_INVITES,
  newInviteCode,
  type Redeemed,
  SPENT_INVITE_KEEP,
} from "../server/admin/admin.ts";

/** What a fresh admin store is opened with. */
export interface OpenAdminStoreOptions {
  /** The store's clock (ms since the epoch), for audit entries made with `at: 0`. */
  now: () => number;
}

/** Opens a fresh, empty admin store; its `close()` releases everything it used. */
export type OpenAdminStore<S extends AdminStore = AdminStore> = (
  options: OpenAdminStoreOptions,
) => Promise<S>;

/** The tests' "now": 2026-01-01. */
export const T = Date.UTC(2026, 0, 1);

const DAY = 24 * 3600 * 1000;

/** A fresh invite made at {@link T}: one use, for a week, by alice. */
export function anInvite(fields: Partial<Invite> = {}): Invite {
  return {
    code: newInviteCode(),
    by: "alice",
    created: T,
    expires: T + 7 * DAY,
    uses: 1,
    used: 0,
    admin: false,
    usedBy: [],
    ...fields,
  };
}

/** The invite a redeem returned, or a failed assertion saying why there is none. */
function taken(r: Redeemed): Invite {
  assert.ok(r.ok, `redeemed: ${JSON.stringify(r)}`);
  return r.invite;
}

/** Registers the contract tests for one backend. */
export function adminStoreContract<S extends AdminStore>(
  name: string,
  open: OpenAdminStore<S>,
): void {
  const test = (what: string, fn: (s: AdminStore, clock: { now: number }) => Promise<void>) =>
    Deno.test(`${name}: ${what}`, async () => {
      const clock = { now: T };
      const s = await open({ now: () => clock.now });
      try {
        await fn(s, clock);
      } finally {
        await s.close();
      }
    });

  test("createInvite() keeps an invite as given; invite() reads it; invites() lists newest first", async (s) => {
    const a = anInvite();
    const b = anInvite({ created: T + 2, by: "", uses: 5, admin: true });
    const c = anInvite({ created: T + 1, expires: T + DAY });
    // Made in the same millisecond: the larger code first, in every backend.
    const [d, e] = [anInvite({ created: T + 3 }), anInvite({ created: T + 3 })]
      .sort((x, y) => x.code < y.code ? 1 : -1);
    for (const invite of [a, b, c, e, d]) await s.createInvite(invite);
    assert.deepEqual(await s.invite(a.code), a);
    assert.deepEqual(await s.invite(b.code), b);
    assert.deepEqual(await s.invites(T + 10), [d, e, b, c, a]);
    assert.equal(await s.invite(newInviteCode()), null);
    for (const bad of ["", "short", `${a.code}:by`, `${a.code}x`]) {
      assert.equal(await s.invite(bad), null, `"${bad}" is no invite`);
    }
    const read = await s.invite(a.code);
    read!.usedBy.push("mallory");
    read!.used = 1;
    assert.deepEqual(await s.invite(a.code), a, "what a read returns is a copy");
  });

  test("createInvite() refuses a code that exists or is not a code, keeping nothing", async (s) => {
    const a = anInvite();
    await s.createInvite(a);
    await assert.rejects(s.createInvite({ ...a, by: "mallory", uses: 50 }));
    assert.deepEqual(await s.invite(a.code), a, "the first one is untouched");
    await assert.rejects(s.createInvite(anInvite({ code: "x:by" })), RangeError);
    await assert.rejects(s.createInvite(anInvite({ code: "" })), RangeError);
    assert.deepEqual(await s.invites(T), [a]);
  });

  test("invites() drops each invite SPENT_INVITE_KEEP after it expired or was revoked", async (s) => {
    const short = anInvite({ expires: T + 10 });
    const revoked = anInvite({ created: T + 1 });
    const usedUp = anInvite({ created: T + 2 });
    for (const invite of [short, revoked, usedUp]) await s.createInvite(invite);
    assert.equal(await s.revokeInvite(revoked.code, T + 5), true);
    taken(await s.redeem(usedUp.code, "bob", T + 6));
    const codes = async (now: number) => (await s.invites(now)).map((i) => i.code);
    assert.deepEqual(await codes(T + 9), [usedUp.code, revoked.code, short.code]);
    assert.deepEqual(
      await codes(T + 5 + SPENT_INVITE_KEEP - 1),
      [usedUp.code, revoked.code, short.code],
      "spent invites stay listed for a while",
    );
    assert.deepEqual(await codes(T + 5 + SPENT_INVITE_KEEP), [usedUp.code, short.code]);
    assert.equal(await s.invite(revoked.code), null, "a dropped invite is gone");
    assert.deepEqual(await codes(T + 10 + SPENT_INVITE_KEEP), [usedUp.code]);
    assert.equal(await s.invite(short.code), null);
    assert.equal((await s.invite(usedUp.code))?.used, 1, "a used-up one stays until it expires");
    assert.deepEqual(await codes(usedUp.expires + SPENT_INVITE_KEEP), []);
    assert.equal(await s.invite(usedUp.code), null);
    assert.deepEqual(await s.redeem(usedUp.code, "carol", T + 7), { ok: false, why: "unknown" });
  });

  test("revokeInvite() revokes once: false for a second time and for no invite", async (s) => {
    const a = anInvite({ uses: 3 });
    await s.createInvite(a);
    assert.equal(await s.revokeInvite(a.code, T + 5), true);
    assert.deepEqual(await s.invite(a.code), { ...a, revoked: T + 5 });
    assert.equal(await s.revokeInvite(a.code, T + 6), false);
    assert.equal((await s.invite(a.code))?.revoked, T + 5, "the first time stays");
    assert.equal(await s.revokeInvite(newInviteCode(), T + 6), false);
    assert.equal(await s.revokeInvite("x:by", T + 6), false);
    assert.deepEqual(await s.redeem(a.code, "bob", T + 7), { ok: false, why: "revoked" });
  });

  test("redeem() takes one use while one is left, and says exactly why not", async (s) => {
    const a = anInvite({ uses: 2, expires: T + 100, admin: true });
    await s.createInvite(a);
    assert.deepEqual(await s.redeem(a.code, "bob", T + 1), {
      ok: true,
      invite: { ...a, used: 1, usedBy: ["bob"] },
    });
    assert.deepEqual(await s.redeem(a.code, "Carol", T + 99), {
      ok: true,
      invite: { ...a, used: 2, usedBy: ["bob", "Carol"] },
    });
    assert.deepEqual(await s.redeem(a.code, "dave", T + 2), { ok: false, why: "used" });
    assert.deepEqual(await s.redeem(a.code, "dave", T + 100), { ok: false, why: "expired" });
    assert.deepEqual(await s.invite(a.code), { ...a, used: 2, usedBy: ["bob", "Carol"] });

    const b = anInvite({ uses: 5, expires: T + 100 });
    await s.createInvite(b);
    assert.deepEqual(await s.redeem(b.code, "bob", T + 100), { ok: false, why: "expired" });
    assert.deepEqual(await s.redeem(b.code, "bob", T + 1000), { ok: false, why: "expired" });
    assert.equal(taken(await s.redeem(b.code, "bob", T + 99)).used, 1, "up to its last ms");
    assert.equal(await s.revokeInvite(b.code, T + 50), true);
    assert.deepEqual(await s.redeem(b.code, "carol", T + 51), { ok: false, why: "revoked" });
    assert.deepEqual(
      await s.redeem(b.code, "carol", T + 1000),
      { ok: false, why: "revoked" },
      "revoked before expired",
    );
    assert.deepEqual(await s.invite(b.code), { ...b, used: 1, usedBy: ["bob"], revoked: T + 50 });

    for (const code of [newInviteCode(), "", "nope", `${a.code}:by`]) {
      assert.deepEqual(await s.redeem(code, "bob", T), { ok: false, why: "unknown" }, code);
    }
  });

  test("release() gives a use back only for a name that holds one", async (s) => {
    const a = anInvite({ uses: 1 });
    await s.createInvite(a);
    taken(await s.redeem(a.code, "bob", T + 1));
    assert.deepEqual(await s.redeem(a.code, "carol", T + 2), { ok: false, why: "used" });
    await s.release(a.code, "carol");
    await s.release(a.code, "BOB");
    await s.release(newInviteCode(), "bob");
    await s.release("x:by", "bob");
    assert.deepEqual(
      await s.invite(a.code),
      { ...a, used: 1, usedBy: ["bob"] },
      "nothing given back",
    );
    assert.equal(await s.liveInvites(T + 3), 0);
    await s.release(a.code, "bob");
    assert.deepEqual(await s.invite(a.code), a, "bob's use is back");
    assert.equal(await s.liveInvites(T + 3), 1, "and the invite can be used again");
    await s.release(a.code, "bob");
    assert.deepEqual(await s.invite(a.code), a, "only once");
    assert.deepEqual(taken(await s.redeem(a.code, "carol", T + 4)), {
      ...a,
      used: 1,
      usedBy: ["carol"],
    });

    const b = anInvite({ uses: 3 });
    await s.createInvite(b);
    for (const who of ["bob", "carol", "bob"]) taken(await s.redeem(b.code, who, T + 1));
    await s.release(b.code, "bob");
    assert.deepEqual(await s.invite(b.code), { ...b, used: 2, usedBy: ["bob", "carol"] });
    assert.equal(await s.revokeInvite(b.code, T + 2), true);
    await s.release(b.code, "carol");
    assert.deepEqual(
      await s.invite(b.code),
      { ...b, used: 1, usedBy: ["bob"], revoked: T + 2 },
      "also once revoked",
    );
    assert.equal(await s.liveInvites(T + 3), 0, "a revoked invite stays unusable");
  });

  test("redeem() gives exactly 3 of 20 concurrent redeems of a 3-use invite", async (s) => {
    const a = anInvite({ uses: 3 });
    await s.createInvite(a);
    const names = Array.from({ length: 20 }, (_, i) => `user${i}`);
    const results = await Promise.all(names.map((n) => s.redeem(a.code, n, T + 1)));
    const won = names.filter((_, i) => results[i].ok);
    assert.equal(won.length, 3);
    for (const [i, r] of results.entries()) {
      if (r.ok) assert.equal(r.invite.usedBy.at(-1), names[i], "each winner ends usedBy");
      else assert.deepEqual(r, { ok: false, why: "used" });
    }
    const after = await s.invite(a.code);
    assert.equal(after?.used, 3);
    assert.deepEqual([...after!.usedBy].sort(), won.sort());
  });

  test("liveInvites() counts invites that can still be used", async (s) => {
    const ok = anInvite();
    const short = anInvite({ expires: T + 10 });
    const revoked = anInvite();
    const usedUp = anInvite();
    for (const invite of [ok, short, revoked, usedUp]) await s.createInvite(invite);
    assert.equal(await s.liveInvites(T), 4);
    await s.revokeInvite(revoked.code, T + 1);
    taken(await s.redeem(usedUp.code, "bob", T + 1));
    assert.equal(await s.liveInvites(T + 9), 2);
    assert.equal(await s.liveInvites(T + 10), 1, "an invite is dead when it expires");
    await s.release(usedUp.code, "bob");
    assert.equal(await s.liveInvites(T + 10), 2);
    assert.equal(await s.liveInvites(ok.expires), 0);
  });

  test(`createInvite() refuses a new invite while ${MAX_LIVE_INVITES} can still be used`, async (s) => {
    const short = anInvite({ expires: T + 10 });
    await s.createInvite(short);
    const rest = Array.from({ length: MAX_LIVE_INVITES - 1 }, () => anInvite());
    await Promise.all(rest.map((i) => s.createInvite(i)));
    assert.equal(await s.liveInvites(T + 1), MAX_LIVE_INVITES);
    const more = anInvite({ created: T + 5 });
    await assert.rejects(s.createInvite(more), RangeError);
    assert.equal(await s.invite(more.code), null, "nothing kept");
    assert.equal(await s.liveInvites(T + 5), MAX_LIVE_INVITES);
    // Counted when the invite is made: the short one has expired by then.
    await s.createInvite({ ...more, created: T + 10 });
    await assert.rejects(s.createInvite(anInvite({ created: T + 11 })), RangeError);
    await s.revokeInvite(rest[0].code, T + 11);
    const afterRevoke = anInvite({ created: T + 12 });
    await s.createInvite(afterRevoke);
    await assert.rejects(s.createInvite(anInvite({ created: T + 12 })), RangeError);
    taken(await s.redeem(rest[1].code, "bob", T + 13));
    await s.createInvite(anInvite({ created: T + 14 }));
    assert.equal(await s.liveInvites(T + 14), MAX_LIVE_INVITES);
    assert.equal((await s.invites(T + 14)).length, MAX_LIVE_INVITES + 3, "spent ones stay listed");
  });

  test("ban(), banned() and unban() ignore case; a ban ends at its until", async (s) => {
    const ban: Ban = { user: "Mallory", by: "alice", at: T, reason: "spam" };
    await s.ban(ban);
    assert.deepEqual(await s.banned("Mallory", T + 1), ban);
    assert.deepEqual(await s.banned("mallory", T + 1), ban);
    assert.deepEqual(await s.banned("MALLORY", T + 1), ban);
    assert.equal(await s.banned("bob", T + 1), null);
    const timed: Ban = { user: "mallory", by: "bob", at: T + 2, until: T + 100 };
    await s.ban(timed);
    assert.deepEqual(await s.banned("Mallory", T + 99), timed, "a new ban replaces the old");
    assert.equal(await s.banned("Mallory", T + 100), null, "over at its until");
    assert.deepEqual(await s.bans(T + 100), []);
    await s.ban(ban);
    assert.equal(await s.unban("MALLORY"), true);
    assert.equal(await s.banned("mallory", T + 1), null);
    assert.equal(await s.unban("mallory"), false, "no ban left to lift");
    assert.equal(await s.unban("nobody"), false);
  });

  test("bans() lists the bans in force, oldest first", async (s) => {
    const bans: Ban[] = [
      { user: "Zed", by: "alice", at: T + 1 },
      { user: "eve", by: "", at: T + 3, until: T + 50, reason: "flood" },
      { user: "Bob", by: "alice", at: T + 1, until: T + 1000 },
      { user: "carol", by: "alice", at: T, until: T + 20 },
    ];
    for (const b of bans) await s.ban(b);
    // Banned in the same millisecond: by name, ignoring case.
    assert.deepEqual(await s.bans(T + 10), [bans[3], bans[2], bans[0], bans[1]]);
    assert.deepEqual(await s.bans(T + 20), [bans[2], bans[0], bans[1]]);
    assert.deepEqual(await s.bans(T + 1000), [bans[0]]);
    await s.unban("zed");
    assert.deepEqual(await s.bans(T + 1000), []);
  });

  test(
    "audit() numbers entries; auditLog() reads them newest first, pages back, at most 500",
    async (s, clock) => {
      clock.now = T + 777;
      const first = await s.audit({
        at: 0,
        by: "",
        action: "role",
        target: "alice",
        detail: "admin",
      });
      assert.deepEqual(first, {
        id: first.id,
        at: T + 777,
        by: "",
        action: "role",
        target: "alice",
        detail: "admin",
      }, "at 0: the store's clock");
      const second = await s.audit({ at: T + 5, by: "alice", action: "ban", target: "mallory" });
      assert.deepEqual(second, {
        id: second.id,
        at: T + 5,
        by: "alice",
        action: "ban",
        target: "mallory",
      });
      assert.ok(second.id > first.id);
      assert.deepEqual(await s.auditLog({ limit: 10 }), [second, first]);
      assert.deepEqual(await s.auditLog({ limit: 1 }), [second]);
      assert.deepEqual(await s.auditLog({ before: second.id, limit: 10 }), [first]);
      assert.deepEqual(await s.auditLog({ before: first.id, limit: 10 }), []);
      assert.deepEqual(await s.auditLog({ limit: 0 }), []);

      const entries = [first, second];
      for (let i = 0; i < 600; i++) {
        entries.push(await s.audit({ at: T + i, by: "alice", action: "kick", target: `u${i}` }));
      }
      const ids = entries.map((e) => e.id);
      assert.deepEqual(ids, [...ids].sort((a, b) => a - b), "ids increase");
      assert.equal(new Set(ids).size, ids.length);
      const newest = entries.toReversed();
      assert.deepEqual(await s.auditLog({ limit: 10_000 }), newest.slice(0, 500), "500 at most");
      const page2 = await s.auditLog({ before: newest[499].id, limit: 500 });
      assert.deepEqual(page2, newest.slice(500));
      assert.deepEqual(await s.auditLog({ before: newest[10].id, limit: 3 }), newest.slice(11, 14));
    },
  );

  test(`audit() keeps the newest ${AUDIT_KEEP} entries`, async (s) => {
    const over = 50;
    const ids: number[] = [];
    // In batches: concurrent calls, as many requests would make them.
    for (let i = 0; i < AUDIT_KEEP + over; i += 1000) {
      const batch = Array.from(
        { length: Math.min(1000, AUDIT_KEEP + over - i) },
        (_, j) => s.audit({ at: T + i + j, by: "alice", action: "kick", target: `u${i + j}` }),
      );
      ids.push(...(await Promise.all(batch)).map((e) => e.id));
    }
    assert.equal(new Set(ids).size, AUDIT_KEEP + over, "every entry has its own id");
    const all: AuditEntry[] = [];
    let before: number | undefined;
    for (;;) {
      const page = await s.auditLog({ before, limit: 500 });
      if (page.length === 0) break;
      all.push(...page);
      before = page.at(-1)!.id;
    }
    const kept = ids.toSorted((a, b) => a - b).slice(over).toReversed();
    assert.equal(all.length, AUDIT_KEEP);
    assert.deepEqual(all.map((e) => e.id), kept, "the oldest went first");
    const newest = all[0];
    assert.equal(newest.target, `u${AUDIT_KEEP + over - 1}`);
  });
}
