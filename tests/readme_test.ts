import assert from "node:assert/strict";
import { configTable, MARKERS } from "../scripts/config_table.ts";

const README = new URL("../README.md", import.meta.url);

/** A markdown table with cell padding removed (deno fmt aligns columns). */
function cells(table: string): string[][] {
  return table.trim().split("\n").map((line) =>
    line.split("|").slice(1, -1).map((c) => c.trim().replace(/^-+$/, "---"))
  );
}

Deno.test("README configuration table matches the server's flags", async () => {
  const readme = await Deno.readTextFile(README);
  const [a, b] = MARKERS;
  const block = readme.slice(readme.indexOf(a) + a.length, readme.indexOf(b)).trim();
  assert.deepEqual(
    cells(block),
    cells(configTable()),
    "run: deno run -A scripts/config_table.ts --write",
  );
});

Deno.test("README gives the pinned commands that work with only Node.js", async () => {
  const readme = await Deno.readTextFile(README);
  const ci = await Deno.readTextFile(new URL("../.ci/run", import.meta.url));
  const version = /DENO_VERSION=(\S+)/.exec(ci)![1];
  assert.ok(readme.includes(`npx -y deno@${version} task start`));
  assert.ok(readme.includes(`npx -y deno@${version} task test`));
  for (const link of readme.matchAll(/\]\(((?:docs|tests)\/[^)#]+)/g)) {
    await Deno.stat(new URL(`../${link[1]}`, import.meta.url)); // every linked file exists
  }
});
