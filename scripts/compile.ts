/**
 * Builds the one-file `chat` executable (`deno task compile`), and is the one
 * place that says what the binary may do and what it carries: the tests run
 * main.ts with exactly {@link permissionFlags} from a folder holding exactly
 * {@link embeddedFiles}.
 *
 * The binary may:
 * - use the network (listen, Redis, the ngrok tunnel);
 * - read and write only `users.json` (with `users.json.lock`, which writers
 *   take turns on, and `users.json.tmp`, which is renamed over it),
 *   `.chat-secret`, `.chat-signouts` (sign-outs kept without `--data`, with
 *   its own `.lock` and `.tmp`) and the data file `chat.db` with its SQLite companions
 *   (`-wal`, `-shm`, `-journal`) in the folder it runs in, plus any
 *   `--data-dir` given here (the Docker image uses `/data`). Not the folder
 *   itself: so a write of users.json cannot sync the folder to disk there
 *   (server/auth/users.ts explains what that costs);
 * - read `.env`, `cert.pem` and `key.pem` there;
 * - read environment variables;
 * - load ngrok's native addon (`--allow-ffi`) and the three facts about the
 *   machine its loader asks for (`--allow-sys=cpus,networkInterfaces,hostname`), and `setPriority` so
 *   the password worker can lower its own priority.
 *
 * Relative paths are resolved when the binary starts, against the folder it
 * is started in. Everything else (the web app, docs/, the password worker) is
 * inside the binary.
 *
 * Usage: `deno task compile [--target TRIPLE] [--output FILE] [--data-dir DIR] [--print]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The project root (where deno.json is). */
export const ROOT: string = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The entry point. */
export const ENTRY = "main.ts";

/**
 * Files the module graph does not reach but the binary needs: workers (a
 * `new Worker(new URL(…))` is not an import) and docs for `chat docs`.
 */
export const INCLUDES: readonly string[] = [
  "server/auth/hash_worker.ts",
  "server/store/checkpoint_worker.ts",
  "docs/",
];

/** Files the binary reads and writes in its working directory. */
export const DATA_FILES: readonly string[] = [
  "users.json",
  "users.json.lock",
  "users.json.tmp",
  ".chat-secret",
  "vapid.json",
  ".chat-signouts",
  ".chat-signouts.lock",
  ".chat-signouts.tmp",
  "chat.db",
  "chat.db-wal",
  "chat.db-shm",
  "chat.db-journal",
];

/** Files the binary only reads in its working directory. */
export const READ_ONLY_FILES: readonly string[] = [".env", "cert.pem", "key.pem"];

/**
 * V8 flags the server runs with (`deno task start`, the binary, the bench),
 * for memory after a burst such as a storm of sign-ins:
 * - 4 MiB semi-spaces: V8 grows its young generation up to 16 MiB ones
 *   under a burst of garbage, about 48 MiB that the connections then pay for
 *   (a third of the memory per connection at 5,000);
 * - V8's memory reducer 2 s after the burst instead of 30 s: the heap the
 *   burst grew goes back to the system within seconds of the node going quiet.
 *
 * Fan-out and latency measure the same with them (docs/performance.md).
 */
export const V8_FLAGS =
  "--max-semi-space-size=4,--gc-memory-reducer-start-delay-ms=2000,--memory-reducer-delay-ms=2000";

/** Targets `deno compile --target` accepts. */
export const TARGETS: readonly string[] = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
];

/** Options for {@link permissionFlags} and {@link compileArgs}. */
export interface CompileOptions {
  /** Extra directories the binary may read and write entirely (e.g. `/data`). */
  dataDirs?: string[];
  /** Target triple (one of {@link TARGETS}); default: this machine. */
  target?: string;
  /** Output file. @default {"chat"} (`chat.exe` for Windows targets) */
  output?: string;
}

/** The permission flags baked into the binary. */
export function permissionFlags(options: CompileOptions = {}): string[] {
  const rw = [...DATA_FILES.map((f) => `./${f}`), ...(options.dataDirs ?? [])];
  const ro = READ_ONLY_FILES.map((f) => `./${f}`);
  return [
    "--allow-net",
    `--allow-read=${[...rw, ...ro].join(",")}`,
    `--allow-write=${rw.join(",")}`,
    "--allow-env",
    "--allow-ffi",
    "--allow-sys=cpus,networkInterfaces,hostname,setPriority",
  ];
}

/** The `deno compile …` arguments (without the `deno`). */
export function compileArgs(options: CompileOptions = {}): string[] {
  if (options.target !== undefined && !TARGETS.includes(options.target)) {
    throw new RangeError(
      `Unknown target "${options.target}": use one of ${TARGETS.join(", ")}`,
    );
  }
  const windows = options.target?.includes("windows") ??
    Deno.build.os === "windows";
  const output = options.output ?? (windows ? "chat.exe" : "chat");
  return [
    "compile",
    ...permissionFlags(options),
    `--v8-flags=${V8_FLAGS}`,
    ...INCLUDES.flatMap((i) => ["--include", i]),
    // Only the npm packages main.ts reaches (not test tools from deno.json).
    "--exclude-unused-npm",
    ...(options.target ? ["--target", options.target] : []),
    "--output",
    output,
    ENTRY,
  ];
}

async function walk(path: string, out: string[]): Promise<void> {
  const info = await Deno.stat(path);
  if (!info.isDirectory) {
    out.push(path);
    return;
  }
  for await (const entry of Deno.readDir(path)) await walk(join(path, entry.name), out);
}

/**
 * The project files the binary embeds, relative to {@link ROOT}, sorted:
 * every local module `deno info` finds from main.ts (text imports such as
 * the web bundle included), everything in {@link INCLUDES}, and the config
 * and lock files that resolve npm packages.
 */
export async function embeddedFiles(root: string = ROOT): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", ENTRY],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`deno info failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  const graph = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: { specifier: string; local?: string }[];
  };
  const files = new Set<string>();
  for (const m of graph.modules) {
    if (!m.specifier.startsWith("file:") || !m.local) continue;
    const rel = relative(root, m.local);
    if (rel.startsWith("..")) {
      throw new Error(`main.ts imports "${m.local}", which is outside the project`);
    }
    files.add(rel);
  }
  for (const inc of INCLUDES) {
    const found: string[] = [];
    await walk(join(root, inc), found);
    for (const f of found) files.add(relative(root, f));
  }
  for (const f of ["deno.json", "deno.lock"]) files.add(f);
  return [...files].sort();
}

if (import.meta.main) {
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
      options: {
        target: { type: "string" },
        output: { type: "string", short: "o" },
        "data-dir": { type: "string", multiple: true },
        print: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    });
  } catch (err) {
    // deno-lint-ignore no-console
    console.error(`error: ${(err as Error).message}`);
    Deno.exit(2);
  }
  if (parsed.values.help) {
    // deno-lint-ignore no-console
    console.log(
      `Build the chat executable.

Usage: deno task compile [--target TRIPLE] [--output FILE] [--data-dir DIR] [--print]

  --target TRIPLE   Build for another platform: ${TARGETS.join(", ")}
  --output FILE     Where to write it (default ./chat, or chat.exe for Windows)
  --data-dir DIR    Also let the binary read and write everything in DIR (repeatable)
  --print           Print the deno compile command instead of running it`,
    );
    Deno.exit(0);
  }
  let args: string[];
  try {
    args = compileArgs({
      target: parsed.values.target,
      output: parsed.values.output,
      dataDirs: parsed.values["data-dir"],
    });
  } catch (err) {
    // deno-lint-ignore no-console
    console.error(`error: ${(err as Error).message}`);
    Deno.exit(2);
  }
  if (parsed.values.print) {
    // deno-lint-ignore no-console
    console.log(["deno", ...args].map((a) => /[^\w./=,:-]/.test(a) ? `'${a}'` : a).join(" "));
    Deno.exit(0);
  }
  const status = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn().status;
  Deno.exit(status.code);
}
