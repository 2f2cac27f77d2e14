/**
 * nginx in front of two nodes, with the WebSocket proxying config that
 * docs/scaling.md shows: clients connect to one address, land on different
 * nodes, and chat as one.
 */
import assert from "node:assert/strict";
import type { ServerFrame } from "../protocol.ts";
import { closeAll, freePort, signIn, waitUntil } from "./helpers.ts";
import { startCluster } from "./redis_helpers.ts";

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

const NGINX = ["/usr/sbin/nginx", "/usr/bin/nginx"].find((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});

/** The config of docs/scaling.md, with test paths and ports filled in. */
export function nginxConfig(dir: string, port: number, nodes: number[]): string {
  return `worker_processes 1;
error_log ${dir}/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;

  map $http_upgrade $connection_upgrade {
    default upgrade;
    ''      close;
  }
  upstream chat {
${nodes.map((p) => `    server 127.0.0.1:${p};`).join("\n")}
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://chat;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
    }
  }
}
`;
}

/** Signs in as "erin" with an Origin header, like a browser; resolves the first frame. */
async function browserLike(url: string, origin: string): Promise<ServerFrame> {
  // Deno's WebSocket takes extra headers (a browser sets Origin itself).
  const ws = new WebSocket(url, { headers: { origin } } as unknown as string[]);
  try {
    return await new Promise<ServerFrame>((resolve, reject) => {
      ws.onopen = () => ws.send(JSON.stringify({ type: "auth", username: "erin" }));
      ws.onmessage = (e) => resolve(JSON.parse(String(e.data).split("\n")[0]));
      ws.onclose = (e) => reject(new Error(`Closed before a frame: ${e.code} ${e.reason}`));
    });
  } finally {
    if (ws.readyState !== WebSocket.CLOSED) {
      const closed = new Promise((r) => (ws.onclose = r));
      ws.close();
      await closed;
    }
  }
}

Deno.test({
  name: "RedisBroker: nginx in front of two nodes spreads clients that chat as one",
  ignore: NGINX === undefined,
  async fn() {
    await using cluster = await startCluster(2);
    const [n0, n1] = cluster.nodes;
    const dir = await Deno.makeTempDir({ prefix: "chat-nginx-" });
    const port = freePort();
    const conf = `${dir}/nginx.conf`;
    await Deno.writeTextFile(conf, nginxConfig(dir, port, [n0.port, n1.port]));
    const nginx = new Deno.Command(NGINX!, {
      args: ["-e", `${dir}/error.log`, "-c", conf, "-p", dir, "-g", "daemon off;"],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const clients: Awaited<ReturnType<typeof signIn>>[] = [];
    try {
      const url = `http://127.0.0.1:${port}`;
      await waitUntil(
        () =>
          fetch(`${url}/healthz`).then((r) => r.json()).then((h) => h.status === "ok", () => false),
        "nginx answers",
      );
      for (const name of ["alice", "bob", "carol", "dave"]) {
        clients.push(await signIn(`ws://127.0.0.1:${port}/ws`, name));
      }
      const [h0, h1] = [await n0.health(), await n1.health()];
      assert.equal(h0.users, 2, "round robin put two users on node 0");
      assert.equal(h1.users, 2, "and two on node 1");
      const [alice, bob, carol, dave] = clients;
      for (const [i, c] of clients.entries()) {
        c.send({ type: "send", room: "general", text: `hello from ${i}`, ref: `r${i}` });
        await c.next((f) => f.type === "message" && f.ref === `r${i}`);
      }
      for (const c of clients) {
        await waitUntil(() => c.all.filter((f) => f.type === "message").length === 4, "4 messages");
        const got = c.all.filter((f): f is F<"message"> => f.type === "message");
        assert.deepEqual(got.map((m) => m.text), [0, 1, 2, 3].map((i) => `hello from ${i}`));
      }
      alice.send({ type: "send", to: "bob", text: "via nginx" });
      assert.equal(
        (await bob.next<F<"message">>((f) => f.type === "message" && f.to === "bob")).text,
        "via nginx",
      );
      await Promise.all([carol.barrier(), dave.barrier()]);
      assert.equal(carol.peek((f) => f.type === "message" && f.to !== undefined).length, 0);
      assert.equal(dave.peek((f) => f.type === "message" && f.to !== undefined).length, 0);
      await waitUntil(
        () => alice.all.some((f) => f.type === "presence" && f.online?.length === 4),
        "alice sees all four online",
      );
      // A browser that loaded the page from nginx sends nginx's origin: it must pass the check.
      const welcome = await browserLike(`ws://127.0.0.1:${port}/ws`, `http://127.0.0.1:${port}`);
      assert.equal(welcome.type, "welcome");
    } finally {
      await closeAll(...clients);
      try {
        nginx.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      const out = await nginx.output();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      if (out.code !== 0 && out.signal === null) {
        // deno-lint-ignore no-console
        console.error(new TextDecoder().decode(out.stderr));
      }
    }
  },
});

if (NGINX === undefined) {
  // deno-lint-ignore no-console
  console.warn("Skipping the nginx test: nginx is not installed (apt-get install nginx)");
}
