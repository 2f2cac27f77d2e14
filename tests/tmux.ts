/**
 * A pseudo-terminal for tests: one program in a detached tmux session on a
 * private tmux server, keys sent to it, and its screen read back.
 *
 * @module
 */
import { DEADLINE } from "./helpers.ts";
import { childEnv } from "./chat_process.ts";

/** The line a finished program leaves on the screen: `[exited N]`. */
export const EXITED = /\[exited (\d+)\]/;

function quote(arg: string): string {
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** One program running under tmux, on a tmux server of its own. */
export class Tmux implements AsyncDisposable {
  /** Directory of the tmux server's socket, removed by {@link Tmux.kill}. */
  readonly dir: string = Deno.makeTempDirSync({ prefix: "chat-tmux-" });

  async #tmux(...args: string[]): Promise<string> {
    const out = await new Deno.Command("tmux", {
      args: ["-S", `${this.dir}/socket`, "-f", "/dev/null", ...args],
      stdout: "piped",
      stderr: "piped",
      clearEnv: true,
      env: childEnv({ TERM: "xterm-256color" }),
    }).output();
    if (!out.success) {
      throw new Error(`tmux ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
    }
    return new TextDecoder().decode(out.stdout);
  }

  /**
   * Starts `argv` in a `width`×`height` terminal in `cwd`. When it ends,
   * `[exited CODE]` is printed and the pane stays for reading.
   */
  async start(
    argv: string[],
    options: { cwd: string; width?: number; height?: number; env?: Record<string, string> },
  ): Promise<void> {
    const env = Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${quote(v)} `).join("");
    const shell = `${env}${argv.map(quote).join(" ")}; echo "[exited $?]"; sleep 600`;
    await this.#tmux(
      "new-session",
      "-d",
      "-s",
      "main",
      "-x",
      String(options.width ?? 120),
      "-y",
      String(options.height ?? 40),
      "-c",
      options.cwd,
      shell,
    );
  }

  /** Types literal text. */
  async type(text: string): Promise<void> {
    await this.#tmux("send-keys", "-t", "main", "-l", text);
  }

  /** Presses keys by tmux name (`Enter`, `C-d`, `Left`…). */
  async press(...keys: string[]): Promise<void> {
    await this.#tmux("send-keys", "-t", "main", ...keys);
  }

  /** Types a line and presses Enter. */
  async line(text: string): Promise<void> {
    await this.type(text);
    await this.press("Enter");
  }

  /** The screen and its scrollback, wrapped lines joined, trailing blanks dropped (spaces at line ends too). */
  async screen(): Promise<string> {
    const text = await this.#tmux("capture-pane", "-p", "-J", "-S", "-1000", "-t", "main");
    return text.replace(/\s+$/, "");
  }

  /** The line the cursor is on (the input line). */
  async cursorLine(): Promise<string> {
    const y = Number((await this.#tmux("display", "-p", "-t", "main", "#{cursor_y}")).trim());
    const visible = (await this.#tmux("capture-pane", "-p", "-t", "main")).split("\n");
    return visible[y] ?? "";
  }

  /** Waits until the screen matches `what`; resolves the screen. */
  async waitFor(what: string | RegExp, timeout = 2 * DEADLINE): Promise<string> {
    const deadline = Date.now() + timeout;
    while (true) {
      const screen = await this.screen();
      if (typeof what === "string" ? screen.includes(what) : what.test(screen)) return screen;
      if (Date.now() > deadline) {
        throw new Error(`Timed out waiting for ${what} on the screen:\n${screen}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Process id of the program (the child of the pane's shell). */
  async pid(): Promise<number> {
    const shell = (await this.#tmux("display", "-p", "-t", "main", "#{pane_pid}")).trim();
    const children = await Deno.readTextFile(`/proc/${shell}/task/${shell}/children`);
    const pids = children.trim().split(/\s+/).filter((p) => p !== "");
    if (pids.length !== 1) throw new Error(`Expected one child of the pane's shell, got ${pids}`);
    return Number(pids[0]);
  }

  /**
   * Waits until the program's main thread is blocked reading its stdin
   * (Linux, from `/proc`): a question asked in line mode there, such as
   * Deno's permission prompt, is ready for its answer. Deno drops whatever
   * is typed before that (it empties stdin until it has been quiet for
   * 100 ms), so a test answers only then.
   */
  async waitForStdinRead(timeout = 2 * DEADLINE): Promise<void> {
    const pid = await this.pid();
    const deadline = Date.now() + timeout;
    while (true) {
      // "0 0x0 …": the read(2) system call, on file descriptor 0.
      const call = await Deno.readTextFile(`/proc/${pid}/task/${pid}/syscall`).catch(() => "");
      if (call.startsWith("0 0x0 ")) return;
      if (Date.now() > deadline) {
        throw new Error(`Timed out waiting for a read of stdin:\n${await this.screen()}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Waits for the program to end; resolves its exit code. */
  async exitCode(): Promise<number> {
    const screen = await this.waitFor(EXITED);
    return Number(EXITED.exec(screen)![1]);
  }

  /** Stops the tmux server and everything in it. */
  async kill(): Promise<void> {
    await this.#tmux("kill-server").catch(() => {});
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  /** `await using` support. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.kill();
  }
}

/** How many times `text` appears in `screen`. */
export function count(screen: string, text: string): number {
  return screen.split(text).length - 1;
}
