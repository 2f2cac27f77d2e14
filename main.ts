/**
 * The `chat` command: flags → config → start. Subcommands run the terminal
 * client, manage users and export history.
 *
 * @module
 */
import { USER_HELP, userCommand } from "./cli/user.ts";
import { CLIENT_HELP, clientCommand } from "./client/main.ts";
import { serverOptionsHelp } from "./cli/help.ts";
import {
  type Config,
  ConfigError,
  parseConfig,
  readDotEnv,
  suggest,
  VERSION,
} from "./server/config.ts";
import { consoleLogger } from "./server/log.ts";
import { type ChatServer, startServer } from "./server/server.ts";

const HELP = `chat ${VERSION}: a private group chat you run with one command.

Usage:
  chat [serve] [options]               Run the server (the default command)
  chat client [URL] [options]          Chat from a terminal or a script
  chat user add|passwd|remove|list     Manage who may sign in (users.json)
  chat help [COMMAND]                  Show the help of a command
  chat --version                       Print the version

Server options (flag > environment variable > .env file > default):
${serverOptionsHelp()}

Without users.json the server runs in open mode: anyone who can reach it
joins with any free name. Add a user to require a login.

Examples:
  chat                                 Serve on http://localhost:8000
  chat --port 9000 --data chat.db      Another port, history kept on disk
  chat user add alice                  Require a login from now on
  chat client localhost:8000 -u alice  Chat from this terminal
  NGROK_AUTHTOKEN=… chat               Share it through a public ngrok URL

See "chat client --help" and "chat user --help" for those commands.`;

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
  log.info(banner(server, config));
  const stop = () => {
    log.info("Shutting down…");
    server.shutdown().then(() => Deno.exit(0));
    // A second signal, or a shutdown that hangs, still ends the process.
    setTimeout(() => Deno.exit(0), 5000);
  };
  Deno.addSignalListener("SIGINT", stop);
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", stop);
  await server.finished;
  return 0;
}

/** `chat help [COMMAND]`. */
function help(command: string | undefined): number {
  switch (command) {
    case undefined:
    case "serve":
      print(HELP);
      return 0;
    case "client":
      print(CLIENT_HELP);
      return 0;
    case "user":
      print(USER_HELP);
      return 0;
    default:
      throw new ConfigError(
        `Unknown command "${command}": use serve, client or user (see chat --help)`,
      );
  }
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
        return help(rest[0]);
      case "serve":
        return await serve(rest);
      case "client":
        return await clientCommand(rest);
      case "user":
        if (rest[0] === "--help" || rest[0] === "-h") {
          print(USER_HELP);
          return 0;
        }
        return await userCommand(rest);
      default:
        if (first !== undefined && !first.startsWith("-")) {
          const hint = suggest(first, ["serve", "client", "user", "help"]);
          throw new ConfigError(
            `Unknown command "${first}": ${
              hint ? `did you mean "${hint}"?` : "use serve, client or user"
            } (see chat --help)`,
          );
        }
        return await serve(args);
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      // Point at the help of the command that was run.
      const command = first === "client" || first === "user" ? `chat ${first}` : "chat";
      printError(err.message.replace("(see --help)", `(see ${command} --help)`));
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
