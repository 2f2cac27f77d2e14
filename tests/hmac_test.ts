/** {@link HmacKey} signs exactly as node:crypto's createHmac does, for any key and message. */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { HmacKey } from "../server/auth/hmac.ts";
import { Rng } from "./chaos/prng.ts";

Deno.test("HmacKey matches createHmac for keys and messages of every length", () => {
  const rng = new Rng(19);
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => rng.int(256));
  // Keys shorter than, equal to and longer than a block; messages empty to several blocks.
  for (const keyLength of [0, 1, 32, 63, 64, 65, 200]) {
    const key = bytes(keyLength);
    const hmac = new HmacKey(key);
    for (const length of [0, 1, 55, 56, 64, 100, 1000]) {
      const message = bytes(length);
      assert.deepEqual(
        hmac.sign(message),
        createHmac("sha256", key).update(message).digest(),
        `key ${keyLength}, message ${length}`,
      );
    }
    // Strings are signed as UTF-8, and signing leaves the key as it was.
    for (const text of ["", "v1.payload", "fp:zoë:☃:3", "𝄞".repeat(40)]) {
      assert.equal(
        hmac.sign(text).toString("base64url"),
        createHmac("sha256", key).update(text).digest("base64url"),
        JSON.stringify(text),
      );
    }
  }
  assert.equal(
    new HmacKey("secret").sign("x").toString("hex"),
    createHmac("sha256", "secret").update("x").digest("hex"),
  );
});
