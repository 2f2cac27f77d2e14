/**
 * The `chat` command: flags → config → start. Subcommands run the terminal
 * client, manage users and export history.
 *
 * @module
 */
import { USER_HELP, userCommand } from "./cli/user.ts";
import {
  type Config,
  ConfigError,
  optionsHelp,
  parseConfig,
  readDotEnv,
  VERSION,
} from "./server/config.ts";
import { consoleLogger } from "./server/log.ts";
import { type ChatServer, startServer } from "./server/server.ts";

const HELP = `chat ${VERSION}: a private group chat you run with one command.

Usage:
  chat [serve] [options]              Run the server (the default)
  chat client [URL] [options]         Chat from the terminal (see chat client --help)
  chat user add|passwd|remove|list    Manage users.json (see chat user --help)
  chat --version                      Print the version

Server options (flag > environment > .env file > default):
${optionsHelp()}
  -h, --help                     Show this help

Examples:
  chat                                 Serve on http://localhost:8000
  chat --port 9000 --data chat.db      Another port, history kept on disk
  chat user add alice                  Require a login from now on
  NGROK_AUTHTOKEN=… chat               Share it through a public ngrok URL
`;

function print(text: string): void {
  // deno-lint-ignore no-console
  console.log(text);
}

function printError(text: string): void {
  // deno-lint-ignore no-console
  console.error(`error: ${text}`);
}

/** Environment with `.env` underneath: real variables win. */
function environment(): Record<string, string | undefined> {
  let real: Record<string, string>;
  try {
    real = Deno.env.toObject();
  } catch {
    real = {};
  }
  return { ...readDotEnv(), ...real };
}

/** The startup banner: where to connect and how sign-in works. */
export function banner(server: ChatServer, config: Config): string {
  const ws = server.url.replace(/^http/, "ws") + "/ws";
  const auth = server.auth;
  const lines = [
    `chat ${VERSION} listening on ${server.hostname}:${server.port}`,
    `  Web app:    ${server.url}`,
    `  WebSocket:  ${ws}`,
  ];
  if (auth.mode === "login") {
    lines.push(
      `  Sign-in:    login required (${auth.userCount} user${
        auth.userCount === 1 ? "" : "s"
      } in ${config.usersPath})${config.allowSignup ? "; sign-up open" : ""}`,
    );
  } else {
    lines.push(
      `  Sign-in:    OPEN MODE: anyone who can reach this server joins with any free name.`,
      `              To require a login, add a user: chat user add NAME (writes ${config.usersPath})`,
    );
  }
  lines.push(
    config.dataPath
      ? `  History:    kept in ${config.dataPath}`
      : `  History:    in memory, last ${config.historyLimit} messages per room (add --data FILE to keep it)`,
  );
  return lines.join("\n");
}

async function serve(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    print(HELP);
    return 0;
  }
  const config = parseConfig(args, environment());
  const log = consoleLogger(config.quiet);
  const server = await startServer(config, { log });
  let stopping: Promise<void> | null = null;
  const stop = () => {
    if (stopping) {
      log.warn("Second signal: exiting without finishing the shutdown");
      Deno.exit(130);
    }
    log.info("Shutting down…");
    // A shutdown that hangs still ends the process.
    const force = setTimeout(() => {
      log.error("Shutdown took more than 5 seconds: exiting anyway");
      Deno.exit(1);
    }, 5000);
    stopping = server.shutdown().finally(() => clearTimeout(force));
  };
  Deno.addSignalListener("SIGINT", stop);
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", stop);
  // Only now: whoever waits for the banner may signal us at once.
  log.info(banner(server, config));
  await server.finished;
  // The listener stops first; the store is flushed and closed after: wait for that too.
  if (stopping) await stopping;
  log.info("Stopped");
  return 0;
}

/** Runs the command line; resolves the exit code. */
export async function main(args: string[]): Promise<number> {
  const [first, ...rest] = args;
  try {
    switch (first) {
      case "--version":
      case "-V":
      case "version":
        print(`chat ${VERSION} (deno ${Deno.version.deno})`);
        return 0;
      case "help":
        print(HELP);
        return 0;
      case "serve":
        return await serve(rest);
      case "user":
        if (rest[0] === "--help" || rest[0] === "-h") {
          print(USER_HELP);
          return 0;
        }
        return await userCommand(rest);
      default:
        if (first !== undefined && !first.startsWith("-")) {
          throw new ConfigError(
            `Unknown command "${first}": use serve, client or user (see chat --help)`,
          );
        }
        return await serve(args);
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      printError(err.message);
      return 2;
    }
    printError((err as Error).message);
    return 1;
  }
}

if (import.meta.main) {
  const code = await main(Deno.args);
  Deno.exit(code);
}
