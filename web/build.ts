/**
 * Builds the web app into `web/dist/`: the Preact bundle and the service
 * worker (`deno bundle`), the static files beside them, and the PNG icons
 * as base64 in `icons.json` (the server embeds text and JSON only). The server embeds `web/dist/` with text
 * imports, so the build output is committed; a test rebuilds into a
 * temporary folder and fails when it differs.
 *
 * Usage: `deno task build` (= `deno run -A web/build.ts`), `--out DIR` to
 * build elsewhere, `--watch` to rebuild on every change under `web/`.
 *
 * @module
 */
import { parseArgs } from "node:util";

const WEB = new URL(".", import.meta.url);

/** Files copied as they are: source name → name in the output. */
export const STATIC_FILES: Record<string, string> = {
  "index.html": "index.html",
  "favicon.svg": "favicon.svg",
  "manifest.webmanifest": "manifest.webmanifest",
};

/** PNG icons (in `web/icons/`) served at `/<name>`, carried in `icons.json`. */
export const ICONS: readonly string[] = [
  "icon-192.png",
  "icon-512.png",
  "badge-96.png",
  "maskable-192.png",
  "maskable-512.png",
];

/** Scripts bundled: entry point in `web/` → name in the output. */
const BUNDLES: Record<string, string> = { "app.tsx": "app.js", "sw.ts": "sw.js" };

/**
 * Stylesheets joined, in this order, into `app.css`: the page's one
 * stylesheet (the server serves and hashes that one file).
 */
export const STYLESHEETS: readonly string[] = ["styles.css", "markdown.css", "files.css"];

/**
 * Builds everything into `outDir`, writing only files whose content changed
 * (so a watching server restarts only for real changes). Resolves the names
 * of the files written; throws with the bundler's output when it fails.
 */
export async function build(outDir: string): Promise<string[]> {
  await Deno.mkdir(outDir, { recursive: true });
  const tmp = await Deno.makeTempDir({ prefix: "chat-web-build-" });
  try {
    const files: Record<string, Uint8Array> = {};
    for (const [entry, name] of Object.entries(BUNDLES)) {
      files[name] = await bundle(entry, `${tmp}/${name}`);
    }
    for (const [from, to] of Object.entries(STATIC_FILES)) {
      files[to] = await Deno.readFile(new URL(from, WEB));
    }
    const css = await Promise.all(STYLESHEETS.map((f) => Deno.readTextFile(new URL(f, WEB))));
    files["app.css"] = new TextEncoder().encode(css.join("\n"));
    const icons: Record<string, string> = {};
    for (const name of ICONS) {
      icons[name] = (await Deno.readFile(new URL(`icons/${name}`, WEB))).toBase64();
    }
    files["icons.json"] = new TextEncoder().encode(JSON.stringify(icons, null, 1) + "\n");
    const written: string[] = [];
    for (const [name, bytes] of Object.entries(files)) {
      const path = `${outDir}/${name}`;
      const old = await Deno.readFile(path).catch(() => null);
      if (old && equal(old, bytes)) continue;
      await Deno.writeFile(path, bytes);
      written.push(name);
    }
    return written;
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

async function bundle(entry: string, out: string): Promise<Uint8Array> {
  const res = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--quiet",
      "--platform=browser",
      "--minify",
      "-o",
      out,
      new URL(entry, WEB).pathname,
    ],
    cwd: new URL("..", WEB).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!res.success) {
    const text = new TextDecoder().decode(res.stderr) + new TextDecoder().decode(res.stdout);
    throw new Error(`Cannot bundle "web/${entry}": ${text.trim()}`);
  }
  return await Deno.readFile(out);
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

async function watch(outDir: string): Promise<void> {
  const distPath = new URL("dist/", WEB).pathname;
  const watcher = Deno.watchFs(new URL(".", WEB).pathname, { recursive: true });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const rebuild = async () => {
    try {
      const written = await build(outDir);
      if (written.length === 0) return;
      // deno-lint-ignore no-console
      console.log(`Rebuilt ${written.join(", ")} at ${new Date().toLocaleTimeString()}`);
    } catch (err) {
      // deno-lint-ignore no-console
      console.error((err as Error).message);
    }
  };
  // deno-lint-ignore no-console
  console.log(`Watching web/ for changes (output: ${outDir})`);
  for await (const event of watcher) {
    if (event.paths.every((p) => p.startsWith(distPath) || p.startsWith(outDir + "/"))) continue;
    clearTimeout(timer);
    timer = setTimeout(rebuild, 100);
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { out: { type: "string" }, watch: { type: "boolean" } },
  });
  const outDir = values.out ?? new URL("dist", WEB).pathname;
  try {
    await build(outDir);
  } catch (err) {
    // deno-lint-ignore no-console
    console.error(`error: ${(err as Error).message}`);
    Deno.exit(1);
  }
  // deno-lint-ignore no-console
  console.log(`Built ${outDir}`);
  if (values.watch) await watch(outDir);
}
