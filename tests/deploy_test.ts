/**
 * The container files: no Docker engine runs here, so the Dockerfile is
 * linted and its key instructions checked, docker-compose.yml is parsed (and
 * validated by docker-compose when installed), and the nginx config really
 * proxies WebSockets to two chat nodes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { validate } from "dockerfile-utils";
import { parse as parseYaml } from "yaml";
import { embeddedFiles, ROOT } from "../scripts/compile.ts";
import { closeAll, freePort, signIn, startTestServer, waitUntil } from "./helpers.ts";
import { rawHttp, upgradeRequest } from "./raw.ts";

const read = (path: string) => Deno.readTextFile(join(ROOT, path));

/** Dockerfile instructions, continuation lines joined, comments dropped. */
function instructions(text: string): { op: string; args: string }[] {
  const logical = text.replace(/\\\n/g, " ").split("\n")
    .map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
  return logical.map((l) => {
    const [op, ...rest] = l.split(/\s+/);
    return { op: op.toUpperCase(), args: rest.join(" ") };
  });
}

Deno.test("Dockerfile passes the dockerfile-utils linter", async () => {
  const text = await read("Dockerfile");
  const problems = validate(text).map((d) =>
    `line ${d.range.start.line + 1}: ${d.message} (${d.severity === 1 ? "error" : "warning"})`
  );
  assert.deepEqual(problems, []);
  // The linter does find mistakes: an instruction it does not know fails.
  assert.ok(validate(text.replace("EXPOSE 8000", "EXPOSE port")).length > 0);
});

Deno.test("Dockerfile compiles in the Deno image and runs chat unprivileged in a slim one", async () => {
  const ins = instructions(await read("Dockerfile"));
  const all = (op: string) => ins.filter((i) => i.op === op).map((i) => i.args);
  const froms = all("FROM");
  assert.equal(froms.length, 2, "two stages");
  assert.equal(froms[0], "denoland/deno:${DENO_VERSION} AS build");
  assert.ok(all("ARG").includes(`DENO_VERSION=${Deno.version.deno}`), "same Deno as the tests");
  assert.doesNotMatch(froms[1], /deno/, "the final image has no Deno toolchain");
  const final = ins.slice(ins.findLastIndex((i) => i.op === "FROM"));
  const inFinal = (op: string) => final.filter((i) => i.op === op).map((i) => i.args);
  assert.ok(all("RUN").some((r) => /deno task compile .*--data-dir \/data/.test(r)));
  assert.ok(
    inFinal("COPY").some((c) => /--from=build \/out\/chat \/usr\/local\/bin\/chat/.test(c)),
  );
  const user = inFinal("USER");
  assert.equal(user.length, 1);
  assert.ok(!["root", "0", "0:0"].includes(user[0]), "not root");
  assert.deepEqual(inFinal("EXPOSE"), ["8000"]);
  assert.deepEqual(inFinal("VOLUME"), ['["/data"]']);
  assert.match(inFinal("HEALTHCHECK")[0], /CMD \["\/usr\/local\/bin\/chat", "health"\]$/);
  assert.deepEqual(inFinal("ENTRYPOINT"), ['["/usr/local/bin/chat"]']);
  const env = inFinal("ENV").join(" ");
  assert.match(env, /USERS_FILE=\/data\/users\.json/);
  assert.match(env, /DATA=\/data\/chat\.db/);
  assert.doesNotMatch(env, /TOKEN|SECRET/, "no secrets baked into the image");
});

/** Whether a .dockerignore pattern list excludes `path` (or a folder above it). */
function ignored(patterns: string[], path: string): boolean {
  let out = false;
  for (const raw of patterns) {
    const negate = raw.startsWith("!");
    const p = (negate ? raw.slice(1) : raw).replace(/^\/+/, "").replace(/\/+$/, "");
    const re = new RegExp(
      "^" + p.split("**").map((part) =>
        part.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*").replace(/\?/g, "[^/]")
      ).join(".*") + "(/.*)?$",
    );
    if (re.test(path)) {
      out = !negate;
    }
  }
  return out;
}

Deno.test(".dockerignore keeps what the binary embeds and drops local state", async () => {
  const patterns = (await read(".dockerignore")).split("\n").map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  const needed = [...await embeddedFiles(), "scripts/compile.ts"];
  for (const f of needed) assert.ok(!ignored(patterns, f), `"${f}" must reach the build`);
  for (const f of [".env", "users.json", ".chat-secret", "chat.db", "chat.db-wal", "chat"]) {
    assert.ok(ignored(patterns, f), `"${f}" must stay out of the image`);
  }
  assert.ok(ignored(patterns, "web/node_modules/x/index.js"));
  assert.ok(ignored(patterns, ".git/HEAD"));
});

interface Service {
  build?: unknown;
  image?: string;
  profiles?: string[];
  ports?: string[];
  volumes?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}

Deno.test("docker-compose.yml: one node by default, Redis + two nodes + nginx as a profile", async (t) => {
  const text = await read("docker-compose.yml");
  const doc = parseYaml(text, { merge: true }) as {
    services: Record<string, Service>;
    volumes: Record<string, unknown>;
  };
  const s = doc.services;
  await t.step("single node", () => {
    assert.equal(s.chat.profiles, undefined, "starts by default");
    assert.deepEqual(s.chat.ports, ["8000:8000"]);
    assert.deepEqual(s.chat.volumes, ["chat-data:/data"]);
    assert.equal(s.chat.environment?.NGROK_AUTHTOKEN, "${NGROK_AUTHTOKEN:-}");
    assert.equal(s.chat.environment?.NGROK_DOMAIN, "${NGROK_DOMAIN:-}");
    assert.ok("chat-data" in doc.volumes);
  });
  await t.step("scaled profile", async () => {
    for (const name of ["redis", "chat1", "chat2", "nginx"]) {
      assert.deepEqual(s[name].profiles, ["scaled"], name);
    }
    for (const name of ["chat1", "chat2"]) {
      const env = s[name].environment!;
      assert.equal(env.REDIS_URL, "redis://redis:6379", name);
      assert.equal(env.CHAT_SECRET, "${CHAT_SECRET:-}", name);
      assert.equal(env.DATA, "", `${name}: no SQLite file shared between nodes`);
      assert.equal(env.TRUST_PROXY, "true", name);
      assert.equal(s[name].depends_on?.redis.condition, "service_healthy");
      assert.ok(s[name].volumes?.includes("chat-data:/data"), "users.json is shared");
    }
    assert.deepEqual(s.redis.healthcheck?.test, ["CMD", "redis-cli", "ping"]);
    assert.deepEqual(Object.keys(s.nginx.depends_on ?? {}).sort(), ["chat1", "chat2"]);
    const mount = s.nginx.volumes?.[0] ?? "";
    assert.match(mount, /^\.\/deploy\/nginx\.conf:\/etc\/nginx\/nginx\.conf:ro$/);
    await Deno.stat(join(ROOT, "deploy/nginx.conf"));
  });
});

async function findCompose(): Promise<string[] | null> {
  for (const cmd of [["docker-compose"], ["docker", "compose"]]) {
    try {
      const out = await new Deno.Command(cmd[0], {
        args: [...cmd.slice(1), "version"],
        stdout: "null",
        stderr: "null",
      }).output();
      if (out.success) return cmd;
    } catch {
      // not installed
    }
  }
  return null;
}

const compose = await findCompose();

Deno.test({
  name: "docker-compose config accepts the file with and without the scaled profile",
  ignore: compose === null,
  async fn() {
    for (const profile of [[], ["--profile", "scaled"]]) {
      const out = await new Deno.Command(compose![0], {
        args: [...compose!.slice(1), ...profile, "config", "-q"],
        cwd: ROOT,
        env: { CHAT_SECRET: "", NGROK_AUTHTOKEN: "" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    }
  },
});

const nginx = await (async () => {
  try {
    return (await new Deno.Command("nginx", { args: ["-v"], stderr: "null" }).output()).success;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "deploy/nginx.conf proxies WebSockets to both chat nodes with Host and Origin intact",
  ignore: !nginx,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "chat-nginx-" });
    const a = await startTestServer({ args: ["--trust-proxy"] });
    const b = await startTestServer({ args: ["--trust-proxy"] });
    const port = freePort();
    const conf = (await read("deploy/nginx.conf"))
      .replace("server chat1:8000", `server 127.0.0.1:${a.server.port}`)
      .replace("server chat2:8000", `server 127.0.0.1:${b.server.port}`)
      .replace("listen 80;", `listen 127.0.0.1:${port};`)
      // One worker: round-robin state is per worker, so with several the two
      // sign-ins below could land on the same node.
      .replace("worker_processes auto;", "worker_processes 1;");
    assert.ok(conf.includes(`127.0.0.1:${b.server.port}`) && conf.includes(`:${port};`));
    assert.ok(conf.includes("worker_processes 1;"));
    await Deno.writeTextFile(join(tmp, "nginx.conf"), conf);
    const args = ["-p", tmp, "-c", join(tmp, "nginx.conf"), "-g", `pid ${tmp}/nginx.pid;`];
    const check = await new Deno.Command("nginx", { args: [...args, "-t"], stderr: "piped" })
      .output();
    assert.ok(check.success, new TextDecoder().decode(check.stderr));
    const child = new Deno.Command("nginx", {
      args: [...args, "-g", "daemon off;"],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let stderr = "";
    const pump = (async () => {
      for await (const s of child.stderr.pipeThrough(new TextDecoderStream())) stderr += s;
    })();
    let alice, bob;
    try {
      await waitUntil(async () => {
        try {
          (await Deno.connect({ hostname: "127.0.0.1", port })).close();
          return true;
        } catch {
          return false;
        }
      }, "nginx listens");
      const host = `127.0.0.1:${port}`;
      // The browser's Origin includes the port; nginx must pass Host with it.
      const same = upgradeRequest({ Host: host, Origin: `http://${host}` });
      assert.equal((await rawHttp(port, same)).status, 101);
      const evil = upgradeRequest({ Host: host, Origin: "http://evil.example" });
      assert.equal((await rawHttp(port, evil)).status, 403);
      alice = await signIn(`ws://${host}/ws`, "alice");
      bob = await signIn(`ws://${host}/ws`, "bob");
      await waitUntil(
        () => a.server.hub.connections >= 1 && b.server.hub.connections >= 1,
        "both nodes hold a client",
      );
      alice.send({ type: "send", room: "general", text: "through nginx", ref: "n1" });
      const own = await alice.next((f) => f.type === "message");
      assert.equal(own.type === "message" && own.text, "through nginx");
      const health = await fetch(`http://${host}/healthz`);
      assert.equal((await health.json()).status, "ok");
    } finally {
      await closeAll(alice, bob);
      child.kill("SIGTERM");
      await child.status;
      await pump;
      await a.close();
      await b.close();
      await Deno.remove(tmp, { recursive: true });
    }
    assert.doesNotMatch(stderr, /\[(error|crit|alert|emerg)\]/, stderr);
  },
});
