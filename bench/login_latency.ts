/**
 * Does password hashing stall message delivery? Runs the real server (a
 * child process, users.json with argon2id hashes), streams messages to a
 * room of receivers and measures delivery latency, first idle, then while
 * new connections sign in with passwords at a steady rate (20 per second by
 * default). Prints p50/p99 for both phases and the sign-in latency.
 *
 * Usage:
 *   deno run -A bench/login_latency.ts [--seconds 10] [--receivers 20]
 *     [--messages 50] [--logins 20] [--json] [--plaintext] [--pin]
 *
 * `--pin` runs the server (and its hashing worker) on core 0 and this
 * process (the clients) on core 1, as `deno task bench` does; without it the
 * system spreads both over every core.
 *
 * `--plaintext` stores the passwords unhashed (the seed-era format): the
 * same sign-in traffic without argon2, to tell the cost of hashing from the
 * cost of the connections themselves.
 *
 * Talks only to 127.0.0.1 and ends by itself.
 *
 * @module
 */
import { V8_FLAGS } from "../scripts/compile.ts";
import { parseArgs } from "node:util";
import { PasswordHasher } from "../server/auth/password.ts";
import { splitFrames } from "../protocol.ts";

const { values: opts } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "10" },
    receivers: { type: "string", default: "20" },
    messages: { type: "string", default: "50" },
    logins: { type: "string", default: "20" },
    json: { type: "boolean", default: false },
    plaintext: { type: "boolean", default: false },
    pin: { type: "boolean", default: false },
  },
});
const SECONDS = Number(opts.seconds);
const RECEIVERS = Number(opts.receivers);
const MSG_RATE = Number(opts.messages);
const LOGIN_RATE = Number(opts.logins);
const LOGIN_USERS = 10;
const PASSWORD = "bench-password";

function log(line: string): void {
  // deno-lint-ignore no-console
  if (!opts.json) console.error(line);
}

function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

function summary(values: number[]) {
  const r = (n: number) => Math.round(n * 100) / 100;
  return {
    count: values.length,
    p50: r(quantile(values, 0.5)),
    p99: r(quantile(values, 0.99)),
    max: r(Math.max(...values)),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Opens a socket, signs in with a password and resolves it after `welcome`. */
async function signIn(url: string, username: string): Promise<WebSocket> {
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", username, password: PASSWORD }));
    ws.onmessage = (e) => {
      for (const f of splitFrames(String(e.data))) {
        if (f.type === "welcome") resolve();
        if (f.type === "error") reject(new Error(`${username}: ${f.code}: ${f.message}`));
      }
    };
    ws.onclose = () => reject(new Error(`${username}: closed during sign-in`));
  });
  ws.onclose = null;
  return ws;
}

/** Moves every thread of this process to `core`; false where that cannot be done. */
async function pinSelf(core: number): Promise<boolean> {
  if (navigator.hardwareConcurrency < 2) return false;
  try {
    const out = await new Deno.Command("taskset", {
      args: ["-a", "-cp", String(core), String(Deno.pid)],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success;
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "chat-login-bench-" });
  let child: Deno.ChildProcess | undefined;
  const sockets: WebSocket[] = [];
  try {
    let hash = PASSWORD;
    if (!opts.plaintext) {
      log("Hashing passwords (argon2id, 19 MiB, t=2, p=1)…");
      const hasher = new PasswordHasher();
      hash = await hasher.hash(PASSWORD);
      hasher.close();
    }
    const users: Record<string, string> = { sender: hash };
    for (let i = 0; i < RECEIVERS; i++) users[`r${i}`] = hash;
    for (let i = 0; i < LOGIN_USERS; i++) users[`login${i}`] = hash;
    await Deno.writeTextFile(`${dir}/users.json`, JSON.stringify(users));

    const pinned = opts.pin && await pinSelf(1);
    if (opts.pin && !pinned) log("Cannot pin (taskset missing or one core): running unpinned");
    const deno = pinned ? ["taskset", "-c", "0", Deno.execPath()] : [Deno.execPath()];
    child = new Deno.Command(deno[0], {
      args: [
        ...deno.slice(1),
        "run",
        "--allow-net=127.0.0.1",
        "--allow-read",
        `--allow-write=${dir}`,
        "--allow-env",
        "--allow-sys=setPriority",
        `--v8-flags=${V8_FLAGS}`,
        new URL("../main.ts", import.meta.url).pathname,
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        "--users",
        `${dir}/users.json`,
        "--rate",
        "1000",
        "--burst",
        "1000",
      ],
      cwd: dir,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const port = await (async () => {
      const reader = child.stdout.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      while (true) {
        const { value, done } = await reader.read();
        if (done) throw new Error("The server exited before listening");
        buf += decoder.decode(value, { stream: true });
        const m = /listening on 127\.0\.0\.1:(\d+)/.exec(buf);
        if (m) {
          // Keep draining stdout so the server never blocks on a full pipe.
          (async () => {
            while (!(await reader.read().catch(() => ({ done: true }))).done) { /* discard */ }
          })();
          return Number(m[1]);
        }
      }
    })();
    const url = `ws://127.0.0.1:${port}/ws`;

    log(`Signing in ${RECEIVERS} receivers and a sender…`);
    const latencies: number[] = [];
    let phase: "warmup" | "idle" | "logins" = "warmup";
    const byPhase: Record<string, number[]> = { idle: [], logins: [] };
    for (let i = 0; i < RECEIVERS; i++) {
      const ws = await signIn(url, `r${i}`);
      ws.onmessage = (e) => {
        const now = performance.now();
        for (const f of splitFrames(String(e.data))) {
          if (f.type !== "message" || f.from !== "sender") continue;
          const [sentAt, sentPhase] = f.text.split("|");
          if (sentPhase === "idle" || sentPhase === "logins") {
            byPhase[sentPhase].push(now - Number(sentAt));
          } else latencies.push(now - Number(sentAt));
        }
      };
      sockets.push(ws);
    }
    const sender = await signIn(url, "sender");
    sockets.push(sender);

    let streaming = true;
    const stream = (async () => {
      const interval = 1000 / MSG_RATE;
      let next = performance.now();
      while (streaming) {
        sender.send(JSON.stringify({
          type: "send",
          room: "general",
          text: `${performance.now()}|${phase}`,
        }));
        next += interval;
        await sleep(Math.max(0, next - performance.now()));
      }
    })();

    await sleep(2000);
    // Idle and login windows alternate, so that other load on the machine hits both alike;
    // the gap after a login window lets its last hashes finish before the next idle one.
    const WINDOW = 2;
    log(
      `${SECONDS} s idle and ${SECONDS} s with ${LOGIN_RATE} password sign-ins/s, in ${WINDOW} s windows; ` +
        `${MSG_RATE} messages/s to ${RECEIVERS} receivers throughout…`,
    );
    const loginTimes: number[] = [];
    const loginErrors: Record<string, number> = {};
    const inFlight: Promise<void>[] = [];
    const loginInterval = 1000 / LOGIN_RATE;
    let n = 0;
    for (let w = 0; w < Math.ceil(SECONDS / WINDOW); w++) {
      phase = "idle";
      await sleep(WINDOW * 1000);
      phase = "logins";
      const end = performance.now() + WINDOW * 1000;
      let next = performance.now();
      while (performance.now() < end) {
        const started = performance.now();
        const user = `login${n++ % LOGIN_USERS}`;
        inFlight.push(
          signIn(url, user).then((ws) => {
            loginTimes.push(performance.now() - started);
            ws.close();
          }, (err: Error) => {
            const code = /: (\w+): /.exec(err.message)?.[1] ?? "closed";
            loginErrors[code] = (loginErrors[code] ?? 0) + 1;
          }),
        );
        next += loginInterval;
        await sleep(Math.max(0, next - performance.now()));
      }
      phase = "warmup";
      await Promise.all(inFlight);
      await sleep(1000);
    }
    streaming = false;
    await stream;
    await sleep(500);

    const idle = summary(byPhase.idle);
    const busy = summary(byPhase.logins);
    const logins = summary(loginTimes);
    const result = {
      machine: { cpus: navigator.hardwareConcurrency, deno: Deno.version.deno },
      settings: {
        seconds: SECONDS,
        receivers: RECEIVERS,
        messagesPerSecond: MSG_RATE,
        loginsPerSecond: LOGIN_RATE,
        passwords: opts.plaintext ? "plaintext" : "argon2id",
        pinned,
      },
      deliveryIdleMs: idle,
      deliveryDuringLoginsMs: busy,
      p99Ratio: Math.round((busy.p99 / idle.p99) * 100) / 100,
      signInMs: { ...logins, attempted: n, refused: loginErrors },
    };
    if (opts.json) {
      // deno-lint-ignore no-console
      console.log(JSON.stringify(result, null, 2));
    } else {
      log("");
      log(
        `delivery idle:          p50 ${idle.p50} ms, p99 ${idle.p99} ms (${idle.count} deliveries)`,
      );
      log(
        `delivery during logins: p50 ${busy.p50} ms, p99 ${busy.p99} ms (${busy.count} deliveries)`,
      );
      log(`p99 ratio:              ${result.p99Ratio}× (the goal is at most 2×)`);
      log(
        `sign-ins:               ${logins.count} of ${n} in ${SECONDS} s, p50 ${logins.p50} ms, p99 ${logins.p99} ms; refused: ${
          JSON.stringify(loginErrors)
        }`,
      );
    }
  } finally {
    for (const ws of sockets) ws.close();
    if (child) {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

await main();
