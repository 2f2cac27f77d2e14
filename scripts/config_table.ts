/**
 * Prints the configuration table for the README from the flag table in
 * server/config.ts; `--write` replaces it between the README's markers.
 * tests/readme_test.ts fails when the README is out of date.
 *
 * @module
 */
import { OPTIONS } from "../server/config.ts";

/** The markdown table of every server flag. */
export function configTable(): string {
  const rows = OPTIONS.map((o) => {
    const flag = `\`--${o.flag}${o.arg ? ` ${o.arg}` : ""}\``;
    const env = o.env ? o.env.map((e) => `\`${e}\``).join(", ") : "";
    const def = o.default === undefined || o.default === "" ? "" : `\`${o.default}\``;
    return `| ${flag} | ${env} | ${def} | ${o.help} |`;
  });
  return ["| Flag | Environment | Default | What it does |", "| --- | --- | --- | --- |", ...rows]
    .join("\n");
}

/** Markers around the generated table in README.md. */
export const MARKERS = ["<!-- config-table:start -->", "<!-- config-table:end -->"] as const;

if (import.meta.main) {
  const table = configTable();
  if (Deno.args.includes("--write")) {
    const path = new URL("../README.md", import.meta.url);
    const readme = await Deno.readTextFile(path);
    const [a, b] = MARKERS;
    const start = readme.indexOf(a), end = readme.indexOf(b);
    if (start === -1 || end === -1) throw new Error(`README.md lacks the ${a} … ${b} markers`);
    await Deno.writeTextFile(
      path,
      readme.slice(0, start + a.length) + "\n" + table + "\n" + readme.slice(end),
    );
  } else {
    // deno-lint-ignore no-console
    console.log(table);
  }
}
