import assert from "node:assert/strict";
import { build } from "../web/build.ts";

Deno.test("build() output matches the committed web/dist (run `deno task build`)", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "chat-web-dist-" });
  try {
    await build(tmp);
    const dist = new URL("../web/dist/", import.meta.url);
    const fresh = [...Deno.readDirSync(tmp)].map((e) => e.name).sort();
    const committed = [...Deno.readDirSync(dist)].map((e) => e.name).sort();
    assert.deepEqual(committed, fresh, "web/dist has other files than a build makes");
    for (const name of fresh) {
      const a = await Deno.readTextFile(`${tmp}/${name}`);
      const b = await Deno.readTextFile(new URL(name, dist));
      assert.ok(
        a === b,
        `web/dist/${name} is stale: run "deno task build" and commit web/dist`,
      );
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
