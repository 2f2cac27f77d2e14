/**
 * The `chat` command: flags → config → start. Subcommands run the terminal
 * client, manage users and export history.
 *
 * @module
 */
import { docsCommand } from "./cli/docs.ts";
import { exportCommand } from "./cli/export.ts";
import { healthCommand } from "./cli/health.ts";
import { USER_HELP, userCommand } from "./cli/user.ts";
import { INVITE_HELP, inviteCommand } from "./cli/invite.ts";
import { CLIENT_HELP, clientCommand } from "./client/main.ts";
import { serverOptionsHelp } from "./cli/help.ts";
import { suggest, UsageError } from "./cli/flags.ts";
import { type Config, parseConfig, readDotEnv } from "./server/config.ts";
import { VERSION } from "./version.ts";
import { accessHint, checkFileAccess } from "./server/file_access.ts";
import { consoleLogger } from "./server/log.ts";
import { type ChatServer, startServer } from "./server/server.ts";

/** The subcommands, for "did you mean" hints. */
const COMMANDS = ["serve", "client", "user", "invite", "export", "health", "docs", "help"];

const HELP = `chat ${VERSION}: a private group chat you run with one command.

Usage:
  chat [serve] [options]               Run the server (the default command)
  chat client [URL] [options]          Chat from a terminal or a script
  chat user add|passwd|role|signout|remove|list
                                       Manage who may sign in and their roles
  chat invite [options]                Print an invite link and its QR code
  chat export --data FILE [--room R]   Write kept messages as JSON lines
  chat health [URL]                    Check a running server (exit 0 when ok)
  chat docs [NAME]                     Read the built-in documentation
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
  chat invite                          Print a link a friend can join with
  chat client localhost:8000 -u alice  Chat from this terminal
  NGROK_AUTHTOKEN=… chat               Share it through a public ngrok URL

See "chat client --help", "chat user --help" and "chat invite --help".`;

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
  if (server.publicUrl) {
    lines.push(
      `  Public URL: ${server.publicUrl}`,
      `  Public WS:  ${server.publicUrl.replace(/^http/, "ws")}/ws`,
    );
  }
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
    if (server.publicUrl) {
      lines.push(
        `  WARNING:    the public URL is open: anyone with the link can join. Add a user to require a login`,
      );
    }
  }
  lines.push(
    config.redisUrl
      ? `  History:    in Redis at ${
        new URL(config.redisUrl).host
      }, last ${config.historyLimit} messages per room or DM, shared by every node`
      : config.dataPath
      ? `  History:    kept in ${config.dataPath}${retention(config)}`
      : `  History:    in memory, last ${config.historyLimit} messages per room (add --data FILE to keep it)`,
  );
  if (server.starting) {
    lines.push(
      `  Starting:   waiting for Redis; /healthz answers 503 with "status":"starting" until it answers`,
    );
  }
  return lines.join("\n");
}

/** What `--retain-days` and `--retain-messages` delete, for the banner. */
function retention(config: Config): string {
  const rules = [];
  if (config.retainDays) rules.push(`after ${config.retainDays} days`);
  if (config.retainMessages) rules.push(`beyond ${config.retainMessages} per room or DM`);
  return rules.length ? `; messages deleted ${rules.join(" and ")}` : "";
}

async function serve(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    print(HELP);
    return 0;
  }
  const config = parseConfig(args, environment());
  checkFileAccess(config);
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
  // A node waiting for Redis serves once it answers; one that Redis refuses
  // after all (a wrong password, say) has stopped, and says why below.
  await server.ready;
  await server.finished;
  // The listener stops first; the store is flushed and closed after: wait for that too.
  if (stopping) await stopping;
  log.info("Stopped");
  return 0;
}

/** `chat help [COMMAND]`. */
async function help(command: string | undefined): Promise<number> {
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
    case "invite":
      print(INVITE_HELP);
      return 0;
    case "export":
      return await exportCommand(["--help"], environment());
    case "health":
      return await healthCommand(["--help"]);
    case "docs":
      return await docsCommand(["--help"]);
    default:
      throw new UsageError(
        `Unknown command "${command}": use ${COMMANDS.join(", ")} (see chat --help)`,
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
        return await help(rest[0]);
      case "serve":
        return await serve(rest);
      case "health":
        return await healthCommand(rest);
      case "docs":
        return await docsCommand(rest);
      case "client":
        return await clientCommand(rest);
      case "user":
        if (rest[0] === "--help" || rest[0] === "-h") {
          print(USER_HELP);
          return 0;
        }
        return await userCommand(rest);
      case "invite":
        return await inviteCommand(rest);
      case "export":
        return await exportCommand(rest, environment());
      default:
        if (first !== undefined && !first.startsWith("-")) {
          const hint = suggest(first, COMMANDS);
          throw new UsageError(
            `Unknown command "${first}": ${
              hint ? `did you mean "${hint}"?` : `use ${COMMANDS.join(", ")}`
            } (see chat --help)`,
          );
        }
        return await serve(args);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      // Point at the help of the command that was run.
      const command =
        first !== undefined && COMMANDS.includes(first) && first !== "serve" && first !== "help"
          ? `chat ${first}`
          : "chat";
      printError(err.message.replace("(see --help)", `(see ${command} --help)`));
      return 2;
    }
    const message = (err as Error).message;
    // Deno's own advice ("run again with --allow-read") cannot be followed
    // for a compiled binary, so say what can.
    const denied = /Requires (read|write) access to "([^"]*)"/.exec(message);
    printError(denied ? `Cannot ${denied[1]} "${denied[2]}": ${accessHint()}` : message);
    return 1;
  }
}

if (import.meta.main) {
  const code = await main(Deno.args);
  Deno.exit(code);
}
