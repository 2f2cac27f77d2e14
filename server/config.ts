/**
 * Server configuration: command-line flags, their environment variables and
 * defaults, in one table that also writes `--help` and the README's
 * configuration table.
 *
 * Precedence: flag > real environment variable > `.env` file > default.
 *
 * @module
 */
import { parseArgs, parseEnv } from "node:util";
import { DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_SEND_LIMITS } from "../protocol.ts";
import { flagError, UsageError } from "../cli/flags.ts";

/**
 * The default of every setting that has one. This is the only place they
 * are written: `--help`, the README's table, {@link parseConfig} and the
 * server parts (hub limits, outbox, HTTP edge) all read them from here.
 */
export const DEFAULTS = {
  port: 8000,
  host: "0.0.0.0",
  usersPath: "./users.json",
  historyLimit: 200,
  // Shared with the web app, which cannot import this module.
  maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
  allowSignup: false,
  ngrok: false,
  frameRate: DEFAULT_SEND_LIMITS.rate,
  frameBurst: DEFAULT_SEND_LIMITS.burst,
  maxConnsPerUser: 20,
  maxConnsPerAddr: 100,
  maxPendingPerAddr: 16,
  nameExpiryDays: 30,
  maxRoomsPerUser: 50,
  maxRooms: 1000,
  maxBufferedBytes: 1024 * 1024,
  idleTimeout: 30,
  trustProxy: false,
  quiet: false,
  maxUploadBytes: 25 * 1000 * 1000,
  filesQuotaBytes: 1000 * 1000 * 1000,
  metrics: false,
  pushContentFree: false,
  unsafePushEndpoints: false,
  roomMentionMax: 100,
  announceBelow: 100,
} as const satisfies Partial<Config>;

/** The files quota of a server that keeps files in memory: they take its RAM. */
export const MEMORY_FILES_QUOTA = 256 * 1000 * 1000;

/** Everything the server needs to start; see {@link OPTIONS} for each flag. */
export interface Config {
  /** Port to listen on; 0 picks a free one. @default {8000} */
  port: number;
  /** Address to listen on. @default {"0.0.0.0"} */
  host: string;
  /** Users file; without one the server runs in open mode. @default {"./users.json"} */
  usersPath: string;
  /** Messages kept in memory (or Redis) per room or DM. @default {200} */
  historyLimit: number;
  /** Largest message text in bytes. @default {4096} */
  maxMessageBytes: number;
  /** Seconds after sending during which its author may edit a message; absent: no limit. */
  editWindow?: number;
  /** Whether people may create accounts from the web page. @default {false} */
  allowSignup: boolean;
  /** Token signing secret; generated and kept beside the users file when absent. */
  secret?: string;
  /** SQLite file that keeps the history; absent: memory only. */
  dataPath?: string;
  /** With {@link Config.dataPath}: delete messages older than this many days. */
  retainDays?: number;
  /** With {@link Config.dataPath}: keep at most this many messages per conversation. */
  retainMessages?: number;
  /** Redis URL that nodes share history, presence and fan-out through. */
  redisUrl?: string;
  /** TLS certificate (PEM file). */
  certPath?: string;
  /** TLS private key (PEM file). */
  keyPath?: string;
  /** Other web origins allowed to open WebSockets. @default {[]} */
  allowedOrigins: string[];
  /** Whether to open a public ngrok tunnel. @default {false} */
  ngrok: boolean;
  /** ngrok auth token; setting it opens the tunnel. */
  ngrokToken?: string;
  /** The address people reach the chat at (invite links); absent: the tunnel's, else this machine's. */
  publicUrl?: string;
  /** Reserved ngrok domain. */
  ngrokDomain?: string;
  /** Frames per second one connection may send, sustained. @default {20} */
  frameRate: number;
  /** Frames one connection may send in a burst. @default {60} */
  frameBurst: number;
  /** Connections one user may hold on a node. @default {20} */
  maxConnsPerUser: number;
  /** Signed-in connections one client address may hold. @default {100} */
  maxConnsPerAddr: number;
  /** Connections one client address may hold before they sign in. @default {16} */
  maxPendingPerAddr: number;
  /** Open mode: days after which an unused name is released. @default {30} */
  nameExpiryDays: number;
  /** Rooms one user may create. @default {50} */
  maxRoomsPerUser: number;
  /** Rooms the whole chat may have. @default {1000} */
  maxRooms: number;
  /** Unsent bytes after which a client is a slow consumer. @default {1048576} */
  maxBufferedBytes: number;
  /** Seconds before an idle socket is pinged and dropped; 0: never. @default {30} */
  idleTimeout: number;
  /** Whether client addresses come from `X-Forwarded-For`. @default {false} */
  trustProxy: boolean;
  /** Whether to print only warnings and errors. @default {false} */
  quiet: boolean;
  /** Largest file one upload may bring, in bytes. @default {25000000} */
  maxUploadBytes: number;
  /**
   * Total bytes of files kept (uploads under way included); absent: 1 GB,
   * or 256 MB when files are kept in memory.
   */
  filesQuotaBytes?: number;
  /** Whether to serve Prometheus metrics at `/metrics`. @default {false} */
  metrics: boolean;
  /** With {@link Config.metrics}: the bearer token `/metrics` on the main port asks for. */
  metricsToken?: string;
  /** With {@link Config.metrics}: `HOST:PORT` that serves `/metrics` alone, without a token. */
  metricsListen?: string;
  /** Web pushes carry no message text nor room name ("New message from bob"). @default {false} */
  pushContentFree: boolean;
  /** Tests only: push endpoints may be http and loopback or private addresses. @default {false} */
  unsafePushEndpoints: boolean;
  /** Rooms with more members than this take `@room`/`@here` from admins only; 0: any size. @default {100} */
  roomMentionMax: number;
  /**
   * Joins and leaves are posted one by one only in rooms with fewer members
   * than this; larger rooms get a coalesced member count instead; 0 posts
   * them in every room. @default {100}
   */
  announceBelow: number;
}

/** One flag: its name, environment variable, kind, default and help line. */
export interface OptionSpec {
  /** Long flag name without the dashes. */
  flag: string;
  /** The {@link Config} field it sets. */
  key: keyof Config;
  /** Environment variables that set it, the first one set wins. */
  env?: string[];
  /**
   * How the text is read: as is, a whole number, a size in bytes (`25MB`,
   * `1.5GB`, `512KiB` or a plain number), true/false or a comma-separated list.
   */
  kind: "string" | "int" | "bytes" | "bool" | "list";
  /** Value when neither flag nor environment sets it, from {@link DEFAULTS}. */
  default?: string | number | boolean;
  /** Placeholder for the value in `--help`. */
  arg?: string;
  /** One line for `--help` and the README. */
  help: string;
  /** Smallest whole number allowed. */
  min?: number;
  /** Largest whole number allowed. */
  max?: number;
}

/** Every server flag. */
export const OPTIONS: OptionSpec[] = [
  {
    flag: "port",
    key: "port",
    env: ["PORT"],
    kind: "int",
    default: DEFAULTS.port,
    arg: "N",
    help: "Port to listen on (0 picks a free one)",
    min: 0,
  },
  {
    flag: "host",
    key: "host",
    env: ["HOST"],
    kind: "string",
    default: DEFAULTS.host,
    arg: "ADDR",
    help: "Address to listen on",
  },
  {
    flag: "users",
    key: "usersPath",
    env: ["USERS_FILE"],
    kind: "string",
    default: DEFAULTS.usersPath,
    arg: "FILE",
    help: "Users file; a server started without one runs in open mode",
  },
  {
    flag: "history",
    key: "historyLimit",
    env: ["HISTORY_LIMIT"],
    kind: "int",
    default: DEFAULTS.historyLimit,
    arg: "N",
    help: "Messages kept in memory per room or DM",
    min: 0,
  },
  {
    flag: "max-message",
    key: "maxMessageBytes",
    env: ["MAX_MESSAGE"],
    kind: "int",
    default: DEFAULTS.maxMessageBytes,
    arg: "BYTES",
    help: "Largest message text",
    min: 1,
    // A send frame (at most 64 KiB) must still hold the text and its envelope.
    max: 65_000,
  },
  {
    flag: "edit-window",
    key: "editWindow",
    env: ["EDIT_WINDOW"],
    kind: "int",
    arg: "SECONDS",
    help: "How long after sending its author may edit a message (default: no limit)",
    min: 1,
  },
  {
    flag: "allow-signup",
    key: "allowSignup",
    env: ["ALLOW_SIGNUP"],
    kind: "bool",
    default: DEFAULTS.allowSignup,
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
    flag: "public-url",
    key: "publicUrl",
    env: ["CHAT_PUBLIC_URL"],
    kind: "string",
    arg: "URL",
    help:
      "Where people reach the chat, for invite links (default: the tunnel's address, else this machine's)",
  },
  {
    flag: "ngrok",
    key: "ngrok",
    kind: "bool",
    default: DEFAULTS.ngrok,
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
    default: DEFAULTS.frameRate,
    arg: "N",
    help: "Frames per second one connection may send",
    min: 1,
  },
  {
    flag: "burst",
    key: "frameBurst",
    env: ["RATE_BURST"],
    kind: "int",
    default: DEFAULTS.frameBurst,
    arg: "N",
    help: "Frames one connection may send in a burst",
    min: 1,
  },
  {
    flag: "max-conns-per-user",
    key: "maxConnsPerUser",
    env: ["MAX_CONNS_PER_USER"],
    kind: "int",
    default: DEFAULTS.maxConnsPerUser,
    arg: "N",
    help: "Connections one user may hold",
    min: 1,
  },
  {
    flag: "max-conns-per-addr",
    key: "maxConnsPerAddr",
    env: ["MAX_CONNS_PER_ADDR"],
    kind: "int",
    default: DEFAULTS.maxConnsPerAddr,
    arg: "N",
    help: "Signed-in connections one client address may hold",
    min: 1,
  },
  {
    flag: "max-pending",
    key: "maxPendingPerAddr",
    env: ["MAX_PENDING"],
    kind: "int",
    default: DEFAULTS.maxPendingPerAddr,
    arg: "N",
    help: "Connections one client address may hold before they send a sign-in",
    min: 1,
  },
  {
    flag: "name-expiry",
    key: "nameExpiryDays",
    env: ["NAME_EXPIRY_DAYS"],
    kind: "int",
    default: DEFAULTS.nameExpiryDays,
    arg: "DAYS",
    help: "Open mode: a name unused this long is released, with its direct messages",
    min: 1,
  },
  {
    flag: "max-rooms-per-user",
    key: "maxRoomsPerUser",
    env: ["MAX_ROOMS_PER_USER"],
    kind: "int",
    default: DEFAULTS.maxRoomsPerUser,
    arg: "N",
    help: "Rooms one user may create",
    min: 1,
  },
  {
    flag: "max-rooms",
    key: "maxRooms",
    env: ["MAX_ROOMS"],
    kind: "int",
    default: DEFAULTS.maxRooms,
    arg: "N",
    help: "Rooms the whole chat may have",
    min: 1,
  },
  {
    flag: "max-buffered",
    key: "maxBufferedBytes",
    env: ["MAX_BUFFERED"],
    kind: "int",
    default: DEFAULTS.maxBufferedBytes,
    arg: "BYTES",
    help: "Unsent bytes after which a client is a slow consumer",
    min: 1024,
  },
  {
    flag: "idle-timeout",
    key: "idleTimeout",
    env: ["IDLE_TIMEOUT"],
    kind: "int",
    default: DEFAULTS.idleTimeout,
    arg: "SECONDS",
    help: "Ping idle sockets and drop those that stop answering (0: never)",
    min: 0,
  },
  {
    flag: "max-upload",
    key: "maxUploadBytes",
    env: ["MAX_UPLOAD"],
    kind: "bytes",
    default: DEFAULTS.maxUploadBytes,
    arg: "SIZE",
    help: "Largest file one upload may bring (25MB, 100MB, 1GB…)",
    min: 1,
  },
  {
    flag: "files-quota",
    key: "filesQuotaBytes",
    env: ["FILES_QUOTA"],
    kind: "bytes",
    arg: "SIZE",
    help: "Total size of the files kept (default: 1GB; 256MB without --data or --redis)",
    min: 1,
  },
  {
    flag: "trust-proxy",
    key: "trustProxy",
    env: ["TRUST_PROXY"],
    kind: "bool",
    default: DEFAULTS.trustProxy,
    help: "Take client addresses from X-Forwarded-For (behind nginx)",
  },
  {
    flag: "quiet",
    key: "quiet",
    env: ["QUIET"],
    kind: "bool",
    default: DEFAULTS.quiet,
    help: "Print only warnings and errors",
  },
  {
    flag: "push-content-free",
    key: "pushContentFree",
    env: ["CHAT_PUSH_CONTENT_FREE"],
    kind: "bool",
    default: DEFAULTS.pushContentFree,
    help:
      'Web pushes carry no message text nor room name, only "New message from NAME" (VAPID keys: vapid.json beside users.json, or CHAT_VAPID_* for several nodes)',
  },
  {
    flag: "announce-below",
    key: "announceBelow",
    env: ["ANNOUNCE_BELOW"],
    kind: "int",
    default: DEFAULTS.announceBelow,
    arg: "N",
    help:
      "Post joins and leaves only in rooms with fewer than N members; larger rooms get their member count at most once a second instead (0: post in every room)",
    min: 0,
  },
  {
    flag: "room-mention-max",
    key: "roomMentionMax",
    env: ["ROOM_MENTION_MAX"],
    kind: "int",
    default: DEFAULTS.roomMentionMax,
    arg: "N",
    help:
      "In rooms with more than N members only admins' @room/@here notify everyone (0: any room)",
    min: 0,
  },
  {
    flag: "unsafe-push-endpoints",
    key: "unsafePushEndpoints",
    kind: "bool",
    default: DEFAULTS.unsafePushEndpoints,
    help:
      "FOR TESTS ONLY: allow http push endpoints and loopback, private and link-local addresses (lets users make the server send requests into its own network)",
  },
  {
    flag: "metrics",
    key: "metrics",
    env: ["CHAT_METRICS"],
    kind: "bool",
    default: DEFAULTS.metrics,
    help:
      "Serve Prometheus metrics at /metrics, behind --metrics-token or on --metrics-listen (off: 404)",
  },
  {
    flag: "metrics-token",
    key: "metricsToken",
    env: ["CHAT_METRICS_TOKEN"],
    kind: "string",
    arg: "TOKEN",
    help: "With --metrics: scrapers of /metrics on the main port send Authorization: Bearer TOKEN",
  },
  {
    flag: "metrics-listen",
    key: "metricsListen",
    env: ["CHAT_METRICS_LISTEN"],
    kind: "string",
    arg: "HOST:PORT",
    help:
      "With --metrics: serve /metrics on this address instead (e.g. 127.0.0.1:9090), behind --metrics-token when one is given",
  },
];

/**
 * A configuration mistake the user can fix (a flag, an environment
 * variable, a file named in them); the message says how.
 */
export class ConfigError extends UsageError {
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

/** Shortest `--metrics-token`: long enough that nobody guesses it. */
const MIN_METRICS_TOKEN = 16;

/**
 * Checks the metrics flags: metrics on the main port need a token, since
 * they tell anyone who can reach the port how many people use the chat.
 */
function checkMetrics(c: Config): void {
  if (c.metricsListen !== undefined) {
    if (!c.metrics) {
      throw new ConfigError(
        "--metrics-listen needs --metrics: pass --metrics to serve metrics on that address",
      );
    }
    parseListen(c.metricsListen);
  }
  if (c.metrics && c.metricsListen === undefined && !c.metricsToken) {
    throw new ConfigError(
      "--metrics on the main port needs --metrics-token (or CHAT_METRICS_TOKEN): metrics tell " +
        "anyone who can reach the port how many people use the chat; or serve them on a private " +
        "address with --metrics-listen 127.0.0.1:9090",
    );
  }
  if (c.metricsToken !== undefined && c.metricsToken.length < MIN_METRICS_TOKEN) {
    throw new ConfigError(
      `The metrics token must be at least ${MIN_METRICS_TOKEN} characters: generate one with \`openssl rand -hex 16\``,
    );
  }
}

/**
 * `HOST:PORT` (`[::1]:9090` for IPv6) as a listen address.
 *
 * @throws {ConfigError} when it is not one.
 */
export function parseListen(text: string): { hostname: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:\[\]]+)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new ConfigError(
      `Invalid --metrics-listen "${text}": use HOST:PORT, such as 127.0.0.1:9090`,
    );
  }
  return { hostname: m[1] ?? m[2], port };
}

/** `--public-url` checked and without a trailing slash. */
function publicUrl(raw: string): string {
  let url: URL | null = null;
  try {
    url = new URL(raw);
  } catch {
    // Said below.
  }
  if (
    url === null || (url.protocol !== "http:" && url.protocol !== "https:") || url.search ||
    url.hash
  ) {
    throw new ConfigError(
      `--public-url "${raw}" is not an http or https address like https://chat.example.com`,
    );
  }
  return url.href.replace(/\/+$/, "");
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
    case "bytes": {
      const n = typeof raw === "string" ? parseBytes(raw) : null;
      if (n === null) {
        throw new ConfigError(
          `Invalid ${source} "${raw}": expected a size such as 25MB, 512KB, 1GB or a number of bytes`,
        );
      }
      if (spec.min !== undefined && n < spec.min) {
        throw new ConfigError(`Invalid ${source} "${raw}": must be at least ${spec.min} bytes`);
      }
      return n;
    }
    case "list":
      return String(raw).split(",").map((s) => s.trim()).filter((s) => s !== "");
    default:
      return String(raw);
  }
}

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  t: 1e12,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

/** A size such as `25MB`, `1.5 GB`, `512KiB` or `1000` in bytes, or null. */
export function parseBytes(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m && UNITS[m[2].toLowerCase()];
  if (!m || unit === undefined || unit === null) return null;
  const n = Math.floor(Number(m[1]) * unit);
  return Number.isSafeInteger(n) ? n : null;
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
    throw new ConfigError(flagError(err as Error, OPTIONS.map((o) => o.flag)).message);
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
  if (c.publicUrl !== undefined) c.publicUrl = publicUrl(c.publicUrl);
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
  checkMetrics(c);
  if (c.secret !== undefined && c.secret.length < 32) {
    throw new ConfigError(
      "The secret must be at least 32 characters: generate one with `openssl rand -base64 32`",
    );
  }
  return c;
}
