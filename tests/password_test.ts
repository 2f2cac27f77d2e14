import assert from "node:assert/strict";
import {
  ARGON2_PARAMS,
  HasherBusyError,
  isHashed,
  PasswordHasher,
} from "../server/auth/password.ts";

Deno.test("PasswordHasher.hash() writes argon2id at the OWASP cost (19 MiB, t=2, p=1)", async () => {
  const h = new PasswordHasher();
  try {
    const hash = await h.hash("correct horse");
    assert.match(hash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    assert.deepEqual(ARGON2_PARAMS, { m: 19456, t: 2, p: 1, len: 32 });
    assert.ok(isHashed(hash));
    assert.notEqual(await h.hash("correct horse"), hash, "a fresh salt every time");
  } finally {
    h.close();
  }
});

Deno.test("PasswordHasher.verify() accepts the password only, including for unknown and empty input", async () => {
  const h = new PasswordHasher();
  try {
    const hash = await h.hash("correct horse");
    assert.equal(await h.verify("correct horse", hash), true);
    assert.equal(await h.verify("correct horsf", hash), false);
    assert.equal(await h.verify("", hash), false, "argon2 refuses empty input: still a plain no");
    assert.equal(await h.verify("", undefined), false);
    assert.equal(await h.verify("anything", undefined), false, "unknown users: no");
    assert.equal(await h.verify("seed-pass", "seed-pass"), true, "seed-era plaintext");
    assert.equal(await h.verify("", "seed-pass"), false);
  } finally {
    h.close();
  }
});

Deno.test("PasswordHasher.hash() runs off the main thread: timers keep firing while it works", async () => {
  const h = new PasswordHasher();
  try {
    await h.hash("warm up the worker");
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    try {
      await Promise.all([h.hash("one"), h.hash("two"), h.hash("three")]);
    } finally {
      clearInterval(timer);
    }
    // Three argon2id hashes take tens of milliseconds at least; a blocked loop would tick ~once.
    assert.ok(ticks >= 5, `the event loop ran ${ticks} timer callbacks during hashing`);
  } finally {
    h.close();
  }
});

Deno.test("PasswordHasher refuses checks beyond its queue instead of letting them wait", async () => {
  const h = new PasswordHasher({ maxQueue: 2 });
  try {
    const jobs = [h.hash("one-password"), h.hash("two-password"), h.hash("three-password")];
    const settled = await Promise.allSettled(jobs);
    assert.deepEqual(settled.map((r) => r.status), ["fulfilled", "fulfilled", "rejected"]);
    const third = settled[2] as PromiseRejectedResult;
    assert.ok(third.reason instanceof HasherBusyError);
    assert.match(third.reason.message, /try again in a few seconds/);
    assert.match(
      await h.hash("four-password"),
      /^\$argon2id\$/,
      "room again once the queue drains",
    );
  } finally {
    h.close();
  }
});
