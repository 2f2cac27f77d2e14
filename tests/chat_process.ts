/**
 * Test helpers that run `main.ts` as a real process: a server to kill with a
 * signal, or a command to run to its exit code.
 *
 * @module
 */
import { DEADLINE } from "./helpers.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** A `chat` server running in its own process. */
export interface ServerProcess extends AsyncDisposable {
  child: Deno.ChildProcess;
  port: number;
  ws: string;
  /** Everything it printed so far (stdout and stderr, by line). */
  output: string[];
  /** Sends a signal and waits for the exit status. */
  kill(signal: Deno.Signal): Promise<Deno.CommandStatus>;
}

/** How to run a `chat` process. */
export interface RunOptions {
  /** Extra environment variables. */
  env?: Record<string, string>;
  /**
   * Run as root without the capabilities that bypass file permissions, so a
   * read-only file is read-only for the test too (no-op for other users).
   * @default {false}
   */
  dropRoot?: boolean;
}

function command(args: string[], options: RunOptions, piped: boolean): Deno.Command {
  let cmd = Deno.execPath();
  let full = ["run", "-A", MAIN, ...args];
  if (options.dropRoot && Deno.uid() === 0) {
    full = ["--bounding-set", "-dac_override,-dac_read_search", cmd, ...full];
    cmd = "setpriv";
  }
  return new Deno.Command(cmd, {
    args: full,
    env: { NO_COLOR: "1", ...options.env },
    stdin: "null",
    stdout: piped ? "piped" : "null",
    stderr: "piped",
  });
}

async function drain(stream: ReadableStream<Uint8Array>, into: string[], onLine: () => void) {
  let rest = "";
  const decoder = new TextDecoder();
  for await (const chunk of stream) {
    rest += decoder.decode(chunk, { stream: true });
    const lines = rest.split("\n");
    rest = lines.pop()!;
    into.push(...lines);
    onLine();
  }
  if (rest !== "") into.push(rest);
  onLine();
}

/** Starts `chat` with `args` and waits for its "listening on HOST:PORT" banner. */
export async function spawnServer(
  args: string[],
  options: RunOptions = {},
): Promise<ServerProcess> {
  const child = command(args, options, true).spawn();
  const output: string[] = [];
  const changed = new Set<() => void>();
  const notify = () => {
    for (const f of changed) f();
  };
  const drained = Promise.all([
    drain(child.stdout, output, notify),
    drain(child.stderr, output, notify),
  ]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    notify();
    return s;
  });
  const deadline = Date.now() + DEADLINE;
  let port = 0;
  while (port === 0) {
    const m = output.map((l) => / listening on [^ ]+:(\d+)$/.exec(l)).find((x) => x);
    if (m) {
      port = Number(m[1]);
      break;
    }
    if (exited || Date.now() > deadline) {
      if (!exited) child.kill("SIGKILL");
      await status;
      await drained;
      throw new Error(`The server did not start: ${output.join("\n")}`);
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, 200);
      function done() {
        clearTimeout(t);
        changed.delete(done);
        resolve();
      }
      changed.add(done);
    });
  }
  const kill = async (signal: Deno.Signal) => {
    if (!exited) {
      try {
        child.kill(signal);
      } catch {
        // Exited meanwhile.
      }
    }
    const s = await status;
    await drained;
    return s;
  };
  return {
    child,
    port,
    ws: `ws://127.0.0.1:${port}/ws`,
    output,
    kill,
    [Symbol.asyncDispose]: async () => {
      await kill("SIGKILL");
    },
  };
}

/** Runs `chat` with `args` to its exit (killed after {@link DEADLINE}). */
export async function runChat(
  args: string[],
  options: RunOptions = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = command(args, options, true).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), DEADLINE);
  try {
    const out = await child.output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } finally {
    clearTimeout(timer);
  }
}
