/**
 * Server configuration: command-line flags, their environment variables and
 * defaults, in one table that also writes `--help` and the README's
 * configuration table.
 *
 * Precedence: flag > real environment variable > `.env` file > default.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { parseEnv } from "node:util";

/** The chat's version. */
export const VERSION = "0.1.0";

/** Everything the server needs to start. */
export interface Config {
  port: number;
  host: string;
  usersPath: string;
  historyLimit: number;
  maxMessageBytes: number;
  allowSignup: boolean;
  secret?: string;
  dataPath?: string;
  retainDays?: number;
  retainMessages?: number;
  redisUrl?: string;
  certPath?: string;
  keyPath?: string;
  allowedOrigins: string[];
  ngrok: boolean;
  ngrokToken?: string;
  ngrokDomain?: string;
  frameRate: number;
  frameBurst: number;
  maxConnsPerUser: number;
  maxConnsPerAddr: number;
  maxPendingPerAddr: number;
  nameExpiryDays: number;
  maxRoomsPerUser: number;
  maxRooms: number;
  maxBufferedBytes: number;
  idleTimeout: number;
  trustProxy: boolean;
  quiet: boolean;
}

type Kind = "string" | "int" | "bool" | "list";

/** One flag: its name, environment variable, kind, default and help line. */
export interface OptionSpec {
  flag: string;
  key: keyof Config;
  env?: string[];
  kind: Kind;
  default?: string | number | boolean;
  arg?: string;
  help: string;
  min?: number;
  max?: number;
}

/** Every server flag. */
export const OPTIONS: OptionSpec[] = [
  {
    flag: "port",
    key: "port",
    env: ["PORT"],
    kind: "int",
    default: 8000,
    arg: "N",
    help: "Port to listen on (0 picks a free one)",
    min: 0,
  },
  {
    flag: "host",
    key: "host",
    env: ["HOST"],
    kind: "string",
    default: "0.0.0.0",
    arg: "ADDR",
    help: "Address to listen on",
  },
  {
    flag: "users",
    key: "usersPath",
    env: ["USERS_FILE"],
    kind: "string",
    default: "./users.json",
    arg: "FILE",
    help: "Users file; a server started without one runs in open mode",
  },
  {
    flag: "history",
    key: "historyLimit",
    env: ["HISTORY_LIMIT"],
    kind: "int",
    default: 200,
    arg: "N",
    help: "Messages kept in memory per room or DM",
    min: 0,
  },
  {
    flag: "max-message",
    key: "maxMessageBytes",
    env: ["MAX_MESSAGE"],
    kind: "int",
    default: 4096,
    arg: "BYTES",
    help: "Largest message text",
    min: 1,
    // A send frame (at most 64 KiB) must still hold the text and its envelope.
    max: 65_000,
  },
  {
    flag: "allow-signup",
    key: "allowSignup",
    env: ["ALLOW_SIGNUP"],
    kind: "bool",
    default: false,
    help: "Let people create accounts from the web page",
  },
  {
    flag: "secret",
    key: "secret",
    env: ["CHAT_SECRET"],
    kind: "string",
    arg: "TEXT",
    help: "Token signing secret (default: generated, kept beside users.json)",
  },
  {
    flag: "data",
    key: "dataPath",
    env: ["DATA"],
    kind: "string",
    arg: "FILE",
    help: "Keep history in this SQLite file (default: memory only)",
  },
  {
    flag: "retain-days",
    key: "retainDays",
    env: ["RETAIN_DAYS"],
    kind: "int",
    arg: "N",
    help: "With --data: delete messages older than N days",
    min: 1,
  },
  {
    flag: "retain-messages",
    key: "retainMessages",
    env: ["RETAIN_MESSAGES"],
    kind: "int",
    arg: "N",
    help: "With --data: keep at most N messages per room or DM",
    min: 1,
  },
  {
    flag: "redis",
    key: "redisUrl",
    env: ["REDIS_URL"],
    kind: "string",
    arg: "URL",
    help: "Share the chat between nodes through Redis (needs --secret)",
  },
  {
    flag: "cert",
    key: "certPath",
    env: ["TLS_CERT"],
    kind: "string",
    arg: "FILE",
    help: "TLS certificate (PEM): serve https and wss",
  },
  {
    flag: "key",
    key: "keyPath",
    env: ["TLS_KEY"],
    kind: "string",
    arg: "FILE",
    help: "TLS private key (PEM)",
  },
  {
    flag: "allowed-origins",
    key: "allowedOrigins",
    env: ["ALLOWED_ORIGINS"],
    kind: "list",
    default: "",
    arg: "LIST",
    help: "Other web origins allowed to open WebSockets (comma-separated)",
  },
  {
    flag: "ngrok",
    key: "ngrok",
    kind: "bool",
    default: false,
    help: "Open a public ngrok tunnel (needs NGROK_AUTHTOKEN)",
  },
  {
    flag: "ngrok-token",
    key: "ngrokToken",
    env: ["NGROK_AUTHTOKEN", "NGROK_TOKEN"],
    kind: "string",
    arg: "TOKEN",
    help: "ngrok auth token; setting it opens the tunnel",
  },
  {
    flag: "ngrok-domain",
    key: "ngrokDomain",
    env: ["NGROK_DOMAIN"],
    kind: "string",
    arg: "HOST",
    help: "Reserved ngrok domain to use",
  },
  {
    flag: "rate",
    key: "frameRate",
    env: ["RATE_LIMIT"],
    kind: "int",
    default: 20,
    arg: "N",
    help: "Frames per second one connection may send",
    min: 1,
  },
  {
    flag: "burst",
    key: "frameBurst",
    env: ["RATE_BURST"],
    kind: "int",
    default: 60,
    arg: "N",
    help: "Frames one connection may send in a burst",
    min: 1,
  },
  {
    flag: "max-conns-per-user",
    key: "maxConnsPerUser",
    env: ["MAX_CONNS_PER_USER"],
    kind: "int",
    default: 20,
    arg: "N",
    help: "Connections one user may hold",
    min: 1,
  },
  {
    flag: "max-conns-per-addr",
    key: "maxConnsPerAddr",
    env: ["MAX_CONNS_PER_ADDR"],
    kind: "int",
    default: 100,
    arg: "N",
    help: "Signed-in connections one client address may hold",
    min: 1,
  },
  {
    flag: "max-pending",
    key: "maxPendingPerAddr",
    env: ["MAX_PENDING"],
    kind: "int",
    default: 16,
    arg: "N",
    help: "Connections one client address may hold before they send a sign-in",
    min: 1,
  },
  {
    flag: "name-expiry",
    key: "nameExpiryDays",
    env: ["NAME_EXPIRY_DAYS"],
    kind: "int",
    default: 30,
    arg: "DAYS",
    help: "Open mode: a name unused this long is released, with its direct messages",
    min: 1,
  },
  {
    flag: "max-rooms-per-user",
    key: "maxRoomsPerUser",
    env: ["MAX_ROOMS_PER_USER"],
    kind: "int",
    default: 50,
    arg: "N",
    help: "Rooms one user may create",
    min: 1,
  },
  {
    flag: "max-rooms",
    key: "maxRooms",
    env: ["MAX_ROOMS"],
    kind: "int",
    default: 1000,
    arg: "N",
    help: "Rooms the whole chat may have",
    min: 1,
  },
  {
    flag: "max-buffered",
    key: "maxBufferedBytes",
    env: ["MAX_BUFFERED"],
    kind: "int",
    default: 1048576,
    arg: "BYTES",
    help: "Unsent bytes after which a client is a slow consumer",
    min: 1024,
  },
  {
    flag: "idle-timeout",
    key: "idleTimeout",
    env: ["IDLE_TIMEOUT"],
    kind: "int",
    default: 30,
    arg: "SECONDS",
    help: "Ping idle sockets and drop those that stop answering (0: never)",
    min: 0,
  },
  {
    flag: "trust-proxy",
    key: "trustProxy",
    env: ["TRUST_PROXY"],
    kind: "bool",
    default: false,
    help: "Take client addresses from X-Forwarded-For (behind nginx)",
  },
  {
    flag: "quiet",
    key: "quiet",
    env: ["QUIET"],
    kind: "bool",
    default: false,
    help: "Print only warnings and errors",
  },
];

/** A configuration mistake the user can fix; the message says how. */
export class ConfigError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/**
 * Reads a `.env` file into a plain object; a missing file is empty.
 * Real environment variables are applied on top by the caller.
 */
export function readDotEnv(path = ".env"): Record<string, string> {
  try {
    return { ...parseEnv(Deno.readTextFileSync(path)) } as Record<string, string>;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return {};
    if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) {
      return {};
    }
    throw new ConfigError(`Cannot read "${path}": ${(err as Error).message}`);
  }
}

function convert(spec: OptionSpec, raw: string | boolean, source: string): unknown {
  switch (spec.kind) {
    case "bool":
      if (typeof raw === "boolean") return raw;
      if (/^(1|true|yes|on)$/i.test(raw)) return true;
      if (/^(0|false|no|off|)$/i.test(raw)) return false;
      throw new ConfigError(`Invalid ${source} "${raw}": use true or false`);
    case "int": {
      const n = Number(raw);
      if (typeof raw !== "string" || raw.trim() === "" || !Number.isInteger(n)) {
        throw new ConfigError(`Invalid ${source} "${raw}": expected a whole number`);
      }
      if (spec.min !== undefined && n < spec.min) {
        throw new ConfigError(`Invalid ${source} "${raw}": must be at least ${spec.min}`);
      }
      if (spec.max !== undefined && n > spec.max) {
        throw new ConfigError(`Invalid ${source} "${raw}": must be at most ${spec.max}`);
      }
      if (spec.key === "port" && n > 65535) {
        throw new ConfigError(`Invalid ${source} "${raw}": ports go up to 65535`);
      }
      return n;
    }
    case "list":
      return String(raw).split(",").map((s) => s.trim()).filter((s) => s !== "");
    default:
      return String(raw);
  }
}

/** Closest known flag to `name`, for "did you mean" hints. */
export function suggest(name: string, known: string[]): string | undefined {
  let best: string | undefined, bestD = 3;
  for (const k of known) {
    const d = distance(name, k);
    if (d < bestD) (best = k, bestD = d);
  }
  return best;
}

function distance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0];
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j];
      dp[j] = Math.min(dp[j] + 1, dp[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length];
}

/**
 * Builds the configuration from flags and environment.
 *
 * @throws {ConfigError} for an unknown flag or a bad value, with a hint.
 */
export function parseConfig(
  args: string[],
  env: Record<string, string | undefined>,
): Config {
  const options: Record<string, { type: "string" | "boolean" }> = {};
  for (const o of OPTIONS) options[o.flag] = { type: o.kind === "bool" ? "boolean" : "string" };
  let parsed;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: false });
  } catch (err) {
    throw flagError(err as Error, OPTIONS.map((o) => o.flag));
  }
  const config: Record<string, unknown> = {};
  for (const spec of OPTIONS) {
    const flagValue = parsed.values[spec.flag];
    let value: unknown = spec.default === undefined ? undefined : convert(
      spec,
      spec.kind === "bool" ? Boolean(spec.default) : String(spec.default),
      `default for --${spec.flag}`,
    );
    const envName = spec.env?.find((e) => env[e] !== undefined && env[e] !== "");
    if (envName) value = convert(spec, env[envName]!, `${envName}`);
    if (flagValue !== undefined) {
      value = convert(spec, flagValue as string | boolean, `--${spec.flag}`);
    }
    config[spec.key] = value;
  }
  const c = config as unknown as Config;
  if ((c.certPath === undefined) !== (c.keyPath === undefined)) {
    throw new ConfigError("TLS needs both --cert and --key");
  }
  if (c.ngrokToken) c.ngrok = true;
  if (c.redisUrl && !c.secret) {
    throw new ConfigError(
      "--redis needs --secret (or CHAT_SECRET): every node must sign tokens with the same secret",
    );
  }
  if (c.redisUrl && c.dataPath) {
    throw new ConfigError(
      "--redis and --data cannot be used together: with --redis the history is kept in Redis",
    );
  }
  if (c.secret !== undefined && c.secret.length < 32) {
    throw new ConfigError(
      "The secret must be at least 32 characters: generate one with `openssl rand -base64 32`",
    );
  }
  return c;
}

/** Turns a `parseArgs` error into a sentence with a hint. */
export function flagError(err: Error, known: string[]): ConfigError {
  const m = /Unknown option '(--?)([^']+)'/.exec(err.message);
  if (m) {
    const hint = m[1] === "--" ? suggest(m[2], known) : undefined;
    return new ConfigError(
      `Unknown flag "${m[1]}${m[2]}"${hint ? `: did you mean "--${hint}"?` : ""} (see --help)`,
    );
  }
  // "Option '-r, --room <value>' argument missing": name the long form. "Argument
  // is ambiguous": the value starts with a dash ("--port -5") and reads as a flag.
  const v = /Option '(?:-\w, )?--?([^ ']+)[^']*' argument (missing|is ambiguous)/.exec(
    err.message,
  );
  if (v) {
    const dash = v[2] === "missing"
      ? ""
      : `; for one that starts with a dash, write --${v[1]}=VALUE`;
    return new ConfigError(`Flag "--${v[1]}" needs a value${dash} (see --help)`);
  }
  const p = /Unexpected argument '([^']+)'/.exec(err.message);
  if (p) return new ConfigError(`Unexpected argument "${p[1]}" (see --help)`);
  return new ConfigError(`${err.message} (see --help)`);
}
