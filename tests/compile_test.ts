/**
 * `deno compile` cannot download its runtime here, so these tests prove the
 * rest: main.ts runs from a folder holding only what the binary embeds, with
 * only the permissions the binary bakes in, started from an empty folder.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import {
  compileArgs,
  DATA_FILES,
  embeddedFiles,
  INCLUDES,
  permissionFlags,
  ROOT,
  V8_FLAGS,
} from "../scripts/compile.ts";
import { isHashed } from "../server/auth/password.ts";
import { WEB_APP_FILES } from "../server/http/static.ts";
import { closeAll, freePort, signIn, waitUntil } from "./helpers.ts";

Deno.test("compileArgs() bakes in the permission flags, includes and target", async (t) => {
  await t.step("default build", () => {
    const args = compileArgs();
    assert.equal(args[0], "compile");
    assert.equal(args.at(-1), "main.ts");
    for (const flag of permissionFlags()) assert.ok(args.includes(flag), flag);
    for (const inc of INCLUDES) assert.ok(args.join(" ").includes(`--include ${inc}`), inc);
    assert.ok(args.includes("server/auth/hash_worker.ts"), "the password worker is included");
    assert.ok(
      args.includes("server/store/checkpoint_worker.ts"),
      "the checkpoint worker is included",
    );
    assert.ok(args.includes(`--v8-flags=${V8_FLAGS}`), "the V8 flags");
    assert.ok(!args.includes("-A") && !args.includes("--allow-all"));
    assert.ok(!args.some((a) => a === "--allow-read" || a === "--allow-write"), "scoped fs");
    assert.equal(
      args[args.indexOf("--output") + 1],
      Deno.build.os === "windows" ? "chat.exe" : "chat",
    );
  });
  await t.step("other platforms", () => {
    const mac = compileArgs({ target: "aarch64-apple-darwin" });
    assert.equal(mac[mac.indexOf("--target") + 1], "aarch64-apple-darwin");
    const win = compileArgs({ target: "x86_64-pc-windows-msvc" });
    assert.equal(win[win.indexOf("--output") + 1], "chat.exe");
    assert.throws(() => compileArgs({ target: "sparc-sun-solaris" }), {
      name: "RangeError",
      message: /^Unknown target "sparc-sun-solaris": use one of x86_64-unknown-linux-gnu/,
    });
  });
  await t.step("--data-dir grants a whole directory", () => {
    const flags = permissionFlags({ dataDirs: ["/data"] });
    const read = flags.find((f) => f.startsWith("--allow-read="))!.split("=")[1].split(",");
    const write = flags.find((f) => f.startsWith("--allow-write="))!.split("=")[1].split(",");
    assert.ok(read.includes("/data") && write.includes("/data"));
    assert.ok(!write.includes("./.env"), ".env is read-only");
  });
});

Deno.test("deno task start and dev run the server with the binary's V8 flags", async () => {
  const { tasks } = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
  assert.match(V8_FLAGS, /^--[a-z-]+=\d+(,--[a-z-]+=\d+)*$/);
  for (const task of ["start", "dev"]) {
    const server = (tasks[task] as string).split("&").find((c) => c.includes("main.ts"))!;
    assert.ok(server.includes(` --v8-flags=${V8_FLAGS} `), `${task}: ${server}`);
  }
});

Deno.test("deno task compile --print shows the command it runs", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "compile", "--print", "--target", "x86_64-apple-darwin"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.match(text, /^deno compile --allow-net --allow-read=\.\/users\.json,/);
  assert.match(text, /--target x86_64-apple-darwin --output chat main\.ts\n$/);
  const bad = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "compile", "--print", "--target", "nope"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(bad.code, 2);
  assert.match(new TextDecoder().decode(bad.stderr), /^error: Unknown target "nope"/);
});

Deno.test("embeddedFiles() follows the module graph and the includes", async () => {
  const files = await embeddedFiles();
  for (const f of ["main.ts", "server/server.ts", "server/auth/hash_worker.ts", "deno.json"]) {
    assert.ok(files.includes(f), f);
  }
  assert.ok(files.includes("docs/deployment.md"), "docs ship inside");
  // The web app is part of the binary: every file the static table serves is embedded.
  for (const { path } of WEB_APP_FILES) {
    assert.ok(files.includes(`web/dist${path}`), `web/dist${path} is embedded`);
  }
  assert.ok(!files.some((f) => f.startsWith("tests/")), "no tests");
  assert.ok(!files.some((f) => f.startsWith("scripts/")), "no build scripts");
});

/** Where the npm packages live; the binary carries them in its own file system. */
async function npmCache(): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stdout: "piped" })
    .output();
  return JSON.parse(new TextDecoder().decode(out.stdout)).npmCache;
}

/**
 * The binary's permissions and V8 flags, as `deno run` flags for a copy in
 * `app` (so this Deno is shown to accept the V8 flags: an unknown one stops
 * it). A compiled binary may always read its own embedded files (Deno grants
 * read access to its virtual file system), so the copy and the npm packages
 * are added to --allow-read; nothing else is.
 */
function binaryFlags(app: string, npm: string): string[] {
  return [
    ...permissionFlags().map((f) => f.startsWith("--allow-read=") ? `${f},${app},${npm}` : f),
    `--v8-flags=${V8_FLAGS}`,
  ];
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

Deno.test("chat runs from an empty folder with only what the binary embeds", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "chat-binary-" });
  const app = join(tmp, "app");
  const cwd = join(tmp, "work");
  await Deno.mkdir(cwd);
  const files = await embeddedFiles();
  for (const f of files) {
    await Deno.mkdir(join(app, dirname(f)), { recursive: true });
    await Deno.copyFile(join(ROOT, f), join(app, f));
  }
  const flags = binaryFlags(app, await npmCache());
  const main = join(app, "main.ts");
  const chat = async (args: string[], env: Record<string, string> = {}): Promise<Run> => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...flags, main, ...args],
      cwd,
      env: { NO_COLOR: "1", ...env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  };
  let child: Deno.ChildProcess | undefined;
  let pumps: Promise<void>[] = [];
  let alice, bob;
  try {
    // Users: the password worker and hash-wasm must come from the copy.
    for (const [name, pw] of [["alice", "alice-pass"], ["bob", "bob-password"]]) {
      const add = await chat(["user", "add", name], { CHAT_PASSWORD: pw });
      assert.equal(add.code, 0, add.stderr);
      // The first user of a file is its admin.
      const as = name === "alice" ? " as an admin" : "";
      assert.equal(add.stdout, `Added "${name}" to ./users.json${as}\n`);
    }
    const users = JSON.parse(await Deno.readTextFile(join(cwd, "users.json")));
    assert.ok(isHashed(users.alice.password) && isHashed(users.bob));
    assert.equal(users.alice.role, "admin");

    const docs = await chat(["docs"]);
    assert.equal(docs.code, 0, docs.stderr);
    assert.match(docs.stdout, /deployment/);
    const doc = await chat(["docs", "deployment"]);
    assert.match(doc.stdout, /^# /);

    // Files outside the working folder get one clear sentence, no stack trace.
    const elsewhere = await chat(["--users", join(tmp, "users.json")]);
    assert.equal(elsewhere.code, 2);
    assert.match(
      elsewhere.stderr,
      /^error: Cannot read the users file ".*users\.json": grant it with --allow-read/,
    );
    assert.doesNotMatch(elsewhere.stderr, /^\s+at /m);
    const addElsewhere = await chat(["user", "add", "carol", "--users", join(tmp, "u.json")], {
      CHAT_PASSWORD: "carol-pass",
    });
    assert.equal(addElsewhere.code, 1);
    assert.match(addElsewhere.stderr, /^error: Cannot read ".*u\.json": grant it/);

    const port = freePort();
    child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...flags,
        main,
        "--host",
        "127.0.0.1",
        "--port",
        String(port),
        "--data",
        "chat.db",
      ],
      cwd,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let stdout = "", stderr = "";
    const pump = async (
      stream: ReadableStream<Uint8Array<ArrayBuffer>>,
      add: (s: string) => void,
    ) => {
      for await (const s of stream.pipeThrough(new TextDecoderStream())) add(s);
    };
    pumps = [
      pump(child.stdout, (s) => stdout += s),
      pump(child.stderr, (s) => stderr += s),
    ];
    await waitUntil(() => stdout.includes("History:") || stderr.includes("error"), "banner", 60_000)
      .catch(() => {});
    assert.match(
      stdout,
      /login required \(2 users in \.\/users\.json\)/,
      `stdout: ${stdout}\nstderr: ${stderr}`,
    );
    assert.equal(stderr, "", "nothing to warn about");

    const base = `http://127.0.0.1:${port}`;
    const health = await fetch(`${base}/healthz`);
    assert.equal(health.status, 200);
    const body = await health.json();
    assert.equal(body.status, "ok");
    assert.equal(body.publicUrl, null);

    // The web app, served from what the binary embeds: a build without it fails here.
    const page = await fetch(`${base}/`);
    const html = await page.text();
    assert.equal(page.status, 200, html.slice(0, 200));
    assert.match(page.headers.get("content-type") ?? "", /text\/html/);
    assert.match(html, /<html/i);

    alice = await signIn(`ws://127.0.0.1:${port}/ws`, "alice", "alice-pass");
    bob = await signIn(`ws://127.0.0.1:${port}/ws`, "bob", "bob-password");
    alice.send({ type: "send", room: "general", text: "from the binary", ref: "r1" });
    const got = await bob.next((f) => f.type === "message");
    assert.equal(got.type === "message" && got.text, "from the binary");
    assert.equal(got.type === "message" && got.from, "alice");

    await closeAll(alice, bob);
    child.kill("SIGTERM");
    assert.equal((await child.status).code, 0);
    await Promise.all(pumps);
    child = undefined;
    pumps = [];

    const left = [];
    for await (const e of Deno.readDir(cwd)) left.push(e.name);
    assert.ok(left.includes("users.json") && left.includes(".chat-secret"), left.join());
    for (const name of left) assert.ok(DATA_FILES.includes(name), `unexpected file "${name}"`);
  } finally {
    await closeAll(alice, bob);
    if (child) {
      try {
        child.kill("SIGKILL");
      } catch {
        // It exited on its own; the assertion above says why.
      }
      await child.status;
    }
    await Promise.all(pumps);
    await Deno.remove(tmp, { recursive: true });
  }
});
