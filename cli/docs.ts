/**
 * `chat docs [NAME]`: the project's docs/*.md, shipped inside the compiled
 * binary (scripts/compile.ts includes docs/), readable offline.
 *
 * @module
 */
import { UsageError } from "./flags.ts";

/** `chat docs --help`. */
export const DOCS_HELP = `Read the documentation that ships with chat.

Usage:
  chat docs           List the documents
  chat docs NAME      Print one (e.g. chat docs deployment)
`;

const DOCS_DIR = new URL("../docs/", import.meta.url);

function out(text: string): void {
  // deno-lint-ignore no-console
  console.log(text);
}

/** Names (without .md) and titles of the built-in documents, sorted by name. */
export async function listDocs(dir: URL = DOCS_DIR): Promise<{ name: string; title: string }[]> {
  const docs: { name: string; title: string }[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile || !entry.name.endsWith(".md")) continue;
    const text = await Deno.readTextFile(new URL(entry.name, dir));
    const title = /^#\s+(.+)$/m.exec(text)?.[1].trim() ?? "";
    docs.push({ name: entry.name.slice(0, -3), title });
  }
  return docs.sort((a, b) => a.name.localeCompare(b.name));
}

/** Runs `chat docs …`; resolves the exit code. */
export async function docsCommand(args: string[]): Promise<number> {
  const [name, extra] = args;
  if (name === "--help" || name === "-h") {
    out(DOCS_HELP);
    return 0;
  }
  if (extra !== undefined) throw new UsageError(`Unexpected argument "${extra}" (see --help)`);
  const docs = await listDocs();
  if (name === undefined) {
    const width = Math.max(...docs.map((d) => d.name.length));
    out(docs.map((d) => `  ${d.name.padEnd(width)}  ${d.title}`).join("\n"));
    out("\nRead one with: chat docs NAME");
    return 0;
  }
  const wanted = name.replace(/\.md$/, "").toLowerCase();
  if (!docs.some((d) => d.name === wanted)) {
    throw new UsageError(
      `There is no document "${name}": choose one of ${docs.map((d) => d.name).join(", ")}`,
    );
  }
  out(await Deno.readTextFile(new URL(`${wanted}.md`, DOCS_DIR)));
  return 0;
}
