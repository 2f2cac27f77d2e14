/**
 * Runs the real `chat` command (main.ts) as a child process and reads its
 * output, for tests of signals, exit codes and TLS.
 *
 * @module
 */
import { DEADLINE } from "./helpers.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** A running `chat` process. */
export interface ChatProcess extends AsyncDisposable {
  child: Deno.ChildProcess;
  /** The port from the banner. */
  port: number;
  /** Every line printed so far, stdout and stderr interleaved. */
  lines: string[];
  /** Waits for a line matching `re`. */
  waitFor(re: RegExp, timeout?: number): Promise<string>;
  /** Resolves the exit status. */
  status: Promise<Deno.CommandStatus>;
}

/**
 * Starts `deno run main.ts ARGS` in `cwd` with the server's scoped permissions
 * and waits for its banner.
 */
export async function spawnChat(
  args: string[],
  opts: { cwd: string; env?: Record<string, string> },
): Promise<ChatProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      MAIN,
      "--port",
      "0",
      "--host",
      "127.0.0.1",
      ...args,
    ],
    cwd: opts.cwd,
    env: { NO_COLOR: "1", ...opts.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    let buf = "";
    const decoder = new TextDecoder();
    for await (const bytes of stream) {
      buf += decoder.decode(bytes, { stream: true });
      let i;
      while ((i = buf.indexOf("\n")) !== -1) {
        lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
        for (const w of waiters) w();
      }
    }
    if (buf) lines.push(buf);
    for (const w of waiters) w();
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  let exited = false;
  const status = child.status.then(async (s) => {
    await pumps;
    exited = true;
    for (const w of waiters) w();
    return s;
  });
  const waitFor = async (re: RegExp, timeout = DEADLINE): Promise<string> => {
    const deadline = Date.now() + timeout;
    while (true) {
      const hit = lines.find((l) => re.test(l));
      if (hit !== undefined) return hit;
      if (exited) throw new Error(`Process exited before printing ${re}:\n${lines.join("\n")}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`Timed out waiting for ${re}:\n${lines.join("\n")}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, left);
        function done() {
          clearTimeout(t);
          waiters.delete(done);
          resolve();
        }
        waiters.add(done);
      });
    }
  };
  let port: number;
  try {
    const banner = await waitFor(/listening on 127\.0\.0\.1:\d+/);
    port = Number(/:(\d+)/.exec(banner)![1]);
  } catch (err) {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await status;
    throw err;
  }
  return {
    child,
    port,
    lines,
    waitFor,
    status,
    async [Symbol.asyncDispose]() {
      if (!exited) {
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
      }
      await status;
    },
  };
}
