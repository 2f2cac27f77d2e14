/**
 * Puts the parts together: store, broker, auth, hub and the HTTP server, and
 * the one shared timer that drives them. {@link startServer} is what `main.ts`
 * and the tests call.
 *
 * @module
 */
import { Auth, newSessionId } from "./auth/auth.ts";
import { type Broker, LocalBroker } from "./broker/broker.ts";
import {
  type Config,
  ConfigError,
  DEFAULTS,
  MEMORY_FILES_QUOTA,
  parseListen,
  readDotEnv,
} from "./config.ts";
import type { FileStore } from "./files/files.ts";
import { FileJanitor } from "./files/janitor.ts";
import { MemoryFileStore } from "./files/memory.ts";
import type { AdminStore } from "./admin/admin.ts";
import { MemoryAdminStore } from "./admin/memory.ts";
import { SqliteAdminStore } from "./admin/sqlite.ts";
import { adminRoutes } from "./http/admin.ts";
import { SqliteFileStore } from "./files/sqlite.ts";
import { fileRoutes } from "./http/files.ts";
import { VERSION } from "../version.ts";
import {
  createHandler,
  createMetricsHandler,
  createStartingHandler,
  type MetricsRoute,
  SECURITY_HEADERS,
  type StaticHandler,
  TUNNEL_HEADER,
} from "./http/http.ts";
import { signoutsPath } from "./file_access.ts";
import { DEFAULT_LIMITS, Hub } from "./hub/hub.ts";
import type { PresenceOptions } from "./hub/presence.ts";
import { consoleLogger, type Logger } from "./log.ts";
import { MemoryStore } from "./store/memory.ts";
import { PasswordHasher } from "./auth/password.ts";
import { abortSocket, SocketReaper } from "./hub/reaper.ts";
import { SqliteStore } from "./store/sqlite.ts";
import { webAppHandler } from "./http/static.ts";
import type { Store } from "./store/store.ts";
import type { ThrottleOptions } from "./auth/throttle.ts";
import { openTunnel, type Tunnel, type TunnelOpener } from "./http/tunnel.ts";
import { bounded } from "./bounded.ts";
import { ChatMetrics } from "./metrics/chat.ts";
import { dirname } from "node:path";
import type { PushStore } from "./push/push_store.ts";
import { MemoryPushStore } from "./push/memory.ts";
import { SqlitePushStore } from "./push/sqlite.ts";
import { loadVapid } from "./push/vapid.ts";
import { PushQueue, PushSender } from "./push/send.ts";
import { checkEndpoint } from "./push/endpoint.ts";
import { PushDispatcher } from "./push/dispatch.ts";
import type { PushSending } from "./hub/push.ts";

/** A running chat server. */
export interface ChatServer {
  /** The port it listens on. */
  port: number;
  /** The address it listens on. */
  hostname: string;
  /** `http://…` (or `https://…`) for local use. */
  url: string;
  /** The public `https://…` URL of the ngrok tunnel, or null without one. */
  publicUrl: string | null;
  /** `http://HOST:PORT/metrics` of `--metrics-listen`, or null without it. */
  metricsUrl: string | null;
  /** The hub (for tests and health); throws while the node still waits for Redis. */
  readonly hub: Hub;
  /** The auth state (for tests). */
  auth: Auth;
  /** Whether the node still waits for Redis: `/healthz` says `"starting"`, `/ws` answers 503. */
  readonly starting: boolean;
  /**
   * Resolves once the node serves chat (at once unless it waits for Redis),
   * or when it was shut down before; rejects when Redis turned out unusable
   * while the node waited (a refused password, say): the node has stopped then.
   */
  ready: Promise<void>;
  /** Stops accepting, tells clients, flushes the store and closes everything. */
  shutdown(): Promise<void>;
  /** Resolves when the server has stopped. */
  finished: Promise<void>;
  /** `await using` support. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Things tests and later features plug in. */
export interface StartOptions {
  log?: Logger;
  /** Use this store instead of the configured one. */
  store?: Store;
  /** Use this broker instead of the configured one. */
  broker?: Broker;
  /** Static files. @default {the embedded web app} */
  static?: StaticHandler;
  /** Extra `/healthz` fields. */
  health?: () => Record<string, unknown>;
  /** Clock for the hub. */
  now?: () => number;
  /** Milliseconds between timer ticks. @default {100} */
  tickInterval?: number;
  /** Milliseconds between users.json checks. @default {1000} */
  reloadInterval?: number;
  /** Milliseconds a new connection has to sign in. @default {10000} */
  authTimeout?: number;
  /** Milliseconds after which a typing flag clears. @default {5000} */
  typingTimeout?: number;
  /** Opens the public tunnel when the configuration asks for one. @default {ngrokOpener} */
  tunnel?: TunnelOpener;
  /** Presence thresholds (tests use small ones). */
  presence?: PresenceOptions;
  /** Milliseconds a socket may spend closing before its connection is dropped. @default {5000} */
  closeGrace?: number;
  /** Milliseconds an upload may go without a byte before it is dropped (408). @default {30000} */
  uploadIdle?: number;
  /** The slowest an upload may go before it is dropped (408). @default {16 KB/s over 60 s} */
  uploadMinRate?: { bytesPerSecond: number; windowMs: number };
  /** Sign-in throttling settings (tests shorten the delays). */
  throttle?: Partial<ThrottleOptions>;
  /** Use this file store instead of the one beside the store. */
  files?: FileStore;
  /** Milliseconds between the metrics' samples (tests shorten them). @default {lag 500, Redis PING 5000} */
  metricsSampling?: { lagMs?: number; pingMs?: number };
  /** Extra root certificates the push sender trusts (tests' https push endpoints). */
  pushCaCerts?: string[];
}

/** What serves chat once the store can be used. */
interface Serving {
  hub: Hub;
  store: Store;
  broker: Broker;
  files: FileStore;
  admin: AdminStore;
  janitor: FileJanitor;
  handler: (req: Request, info: Deno.ServeHandlerInfo) => Promise<Response>;
  /** Push subscriptions, levels and visibility. */
  pushStore: PushStore;
  /** Stops the push queue and sender (after the hub stopped dispatching). */
  stopPush: () => Promise<void>;
}

/**
 * Starts a chat server from a configuration. With `--redis`, a Redis that is
 * not there yet (refusing connections, loading its data) is waited for: the
 * server listens meanwhile, answers `/healthz` with 503 and
 * `"status":"starting"`, and starts serving as soon as Redis answers (see
 * {@link ChatServer.ready}). A Redis that can never work (a refused password,
 * an incompatible server) rejects at once with one sentence.
 */
export async function startServer(
  config: Config,
  options: StartOptions = {},
): Promise<ChatServer> {
  const log = options.log ?? consoleLogger(config.quiet);
  const started = Date.now();
  const tls = await readTls(config);
  const metrics = config.metrics
    ? new ChatMetrics({
      version: VERSION,
      lagInterval: options.metricsSampling?.lagMs,
      pingInterval: options.metricsSampling?.pingMs,
    })
    : null;
  // Redis first: a refused password or an unusable server is the likeliest
  // startup failure, and says so in one line. A Redis that is not up yet is
  // waited for behind a listener that says so.
  const redis = config.redisUrl && !options.store && !options.broker
    ? connectShared(config, log, metrics)
    : null;
  const shared = redis ? await Promise.race([redis.ready, redis.waiting.then(() => null)]) : null;
  const hasher = new PasswordHasher();
  let serving: Serving | null = null;
  // Store and broker opened for serving, until the hub is built on them.
  let opening: Pick<Serving, "store" | "broker"> | null = null;
  let server: Deno.HttpServer<Deno.NetAddr> | null = null;
  let metricsServer: Deno.HttpServer<Deno.NetAddr> | null = null;
  let tunnel: Tunnel | null = null;
  // Whatever step fails, what the steps before it opened is closed again.
  const abandon = async () => {
    metrics?.stop();
    await tunnel?.close();
    await metricsServer?.shutdown();
    await server?.shutdown();
    await redis?.stop();
    const parts = serving ?? opening ?? shared;
    await parts?.broker.close();
    await parts?.store.close();
    hasher.close();
  };
  try {
    return await start();
  } catch (err) {
    await abandon().catch((cause) => log.error(`Cannot clean up after a failed start: ${cause}`));
    throw err;
  }

  async function start(): Promise<ChatServer> {
    const auth = await Auth.create({
      usersPath: config.usersPath,
      secret: config.secret,
      hasher,
      log,
      allowSignup: config.allowSignup,
      openTokenTtl: config.nameExpiryDays * 24 * 3600,
    });
    // Web Push's keys live where the token secret does, or come from CHAT_VAPID_*
    // (several nodes must share one pair: the env, or one shared directory).
    // No `shared` warning: nodes sharing a directory (as the cluster tests do) are
    // fine, and a node waiting for Redis says only that it waits.
    const vapid = await loadVapid({ dir: dirname(config.usersPath), log, env: environment() });

    // Added by the tunnel to what it forwards: only those requests may name their client address.
    const tunnelSecret = config.ngrok ? newSessionId() : undefined;
    const reaper = new SocketReaper({ log, grace: options.closeGrace });
    const staticFiles = options.static ?? await webAppHandler();
    const uptime = () => Math.round((Date.now() - started) / 1000);

    /**
     * Where invite links point: --public-url, else the tunnel, else the
     * address the request came to — but not a loopback one when the server
     * listens on every interface (the shell's `chat invite`, a browser on
     * this machine): a friend needs this machine's network address.
     */
    const linkBase = (req: Request): string => {
      if (config.publicUrl) return config.publicUrl;
      if (tunnel?.url) return tunnel.url;
      const url = new URL(req.url);
      const everywhere = config.host === "0.0.0.0" || config.host === "::";
      const lan = everywhere && isLoopback(url.hostname) ? networkAddress() : null;
      if (lan === null) return url.origin;
      return `${url.protocol}//${lan.includes(":") ? `[${lan}]` : lan}${
        url.port ? `:${url.port}` : ""
      }`;
    };

    const metricsRoute: MetricsRoute | undefined = metrics
      ? { render: () => metrics.render(), token: config.metricsToken }
      : undefined;
    metrics?.watchHub(() => serving?.hub ?? null);

    /** Builds the hub and the handler on a usable store. */
    const serve = (
      store: Store,
      broker: Broker,
      sharedFiles?: FileStore,
      sharedAdmin?: AdminStore,
      sharedPush?: PushStore,
    ): Serving => {
      const files = options.files ?? sharedFiles ?? openFiles(config, store);
      const admin = sharedAdmin ?? openAdmin(store);
      const pushStore = sharedPush ?? openPush(store);
      const janitor = new FileJanitor(files, store, log);
      const unsafe = config.unsafePushEndpoints;
      const sender = new PushSender({ vapid, unsafe, caCerts: options.pushCaCerts });
      const queue = new PushQueue(sender, {
        log,
        // A push waiting in the queue (a retry) goes only while its subscription
        // is still kept with the same keys: not after a sign-out, a ban, a removal.
        stillSubscribed: async (sub) => {
          const held = await pushStore.get(sub.endpoint);
          if (held === null || held.p256dh !== sub.keys.p256dh || held.auth !== sub.keys.auth) {
            return false;
          }
          return (await admin.banned(held.user, Date.now())) === null;
        },
        onGone: (endpoint) =>
          pushStore.drop(endpoint).catch((err) =>
            log.warn(`Could not forget a gone push subscription: ${(err as Error).message}`)
          ),
      });
      const push: PushSending = {
        info: { key: vapid.publicKey, contentFree: config.pushContentFree },
        checkEndpoint: (url) => checkEndpoint(url, { unsafe }),
        dispatcher: new PushDispatcher({
          store: pushStore,
          members: (room) => store.members(room),
          out: queue,
          contentFree: config.pushContentFree,
          log,
          // Credentials changed since it was made (a password change, every session
          // signed out, the account gone): the subscription goes.
          current: (sub) => auth.fingerprint(sub.user) === sub.fp,
          roomMentionMax: config.roomMentionMax,
          isAdmin: (user) => auth.role(user) === "admin",
          banned: async (user) => (await admin.banned(user, Date.now())) !== null,
        }),
      };
      const stopPush = async () => {
        await queue.close();
        await sender.close();
      };
      // Signed out everywhere (here, by the shell, or on another node): the
      // admins' count of their sessions starts again from none, and their
      // devices get no more pushes.
      auth.onSignedOut((names) => {
        for (const name of names) {
          store.forgetSessions(name).catch((err) =>
            log.warn(`Could not forget "${name}"'s sessions: ${(err as Error).message}`)
          );
          pushStore.forgetSubscriptions(name).catch((err) =>
            log.warn(`Could not forget "${name}"'s push subscriptions: ${(err as Error).message}`)
          );
        }
      });
      metrics?.timeStore(store);
      const hub = new Hub({
        store,
        broker,
        auth,
        admin,
        log,
        files,
        maxMessageBytes: config.maxMessageBytes,
        editWindow: config.editWindow,
        now: options.now,
        authTimeout: options.authTimeout,
        typingTimeout: options.typingTimeout,
        limits: {
          frameRate: config.frameRate,
          frameBurst: config.frameBurst,
          maxConnsPerUser: config.maxConnsPerUser,
          maxConnsPerAddr: config.maxConnsPerAddr,
          maxPendingPerAddr: config.maxPendingPerAddr,
          // The node's own bound never sits below what one address may hold.
          maxPending: Math.max(DEFAULT_LIMITS.maxPending, config.maxPendingPerAddr * 4),
          maxRoomsPerUser: config.maxRoomsPerUser,
          maxRooms: config.maxRooms,
        },
        throttle: options.throttle,
        outbox: { maxBuffered: config.maxBufferedBytes, meter: metrics?.outbox },
        presence: options.presence,
        nameExpiry: config.nameExpiryDays * 24 * 3600_000,
        meter: metrics?.hub,
        pushStore,
        push,
        roomMentionMax: config.roomMentionMax,
        announceBelow: config.announceBelow,
      });
      const handler = createHandler({
        hub,
        log,
        reaper,
        allowedOrigins: config.allowedOrigins,
        idleTimeout: config.idleTimeout,
        trustProxy: config.trustProxy,
        tls: Boolean(config.certPath),
        tunnelSecret,
        static: staticFiles,
        // On the main port only behind its token; with --metrics-listen, only there.
        metrics: config.metricsListen === undefined ? metricsRoute : undefined,
        files: fileRoutes({
          files,
          urls: hub.fileUrls,
          maxUpload: config.maxUploadBytes ?? DEFAULTS.maxUploadBytes,
          tokenUser: (token) => hub.tokenUser(token),
          canSee: (user, conv) => hub.canSeeFiles(user, conv),
          idleMs: options.uploadIdle,
          minRate: options.uploadMinRate,
          stopping: () => stopping !== null,
        }),
        admin: adminRoutes({
          admin,
          auth,
          log,
          tokenUser: (token) => hub.tokenUser(token),
          usersChanged: () => hub.revalidate(),
          evict: (user, by) => hub.evict([user], by),
          rooms: () => store.rooms(),
          forgetSessions: (user) => store.forgetSessions(auth.canonical(user) ?? user),
          sessions: (users) => {
            const now = Date.now();
            return store.sessions(users, now - auth.tokenTtl * 1000, now);
          },
          linkBase: (req) => linkBase(req),
        }),
        info: () => ({
          mode: auth.mode,
          signup: auth.signup && auth.mode === "login",
          version: VERSION,
          maxUpload: config.maxUploadBytes ?? DEFAULTS.maxUploadBytes,
        }),
        health: async () => ({
          status: broker.status,
          connections: hub.connections,
          users: hub.usersOnline,
          // null while the shared store is unreachable: health must still answer.
          rooms: await store.rooms().then((r) => r.length, () => null),
          uptime: uptime(),
          version: VERSION,
          publicUrl: tunnel?.url ?? null,
          ...options.health?.(),
        }),
      });
      return { hub, store, broker, files, admin, janitor, handler, pushStore, stopPush };
    };

    if (!redis || shared) {
      const store = options.store ?? shared?.store ?? openStore(config, log);
      opening = { store, broker: options.broker ?? shared?.broker ?? new LocalBroker(store) };
      serving = serve(opening.store, opening.broker, shared?.files, shared?.admin, shared?.push);
    }
    const starting = createStartingHandler({
      log,
      waitingFor: "Redis",
      static: staticFiles,
      metrics: config.metricsListen === undefined ? metricsRoute : undefined,
      health: () =>
        Promise.resolve({
          status: "starting",
          connections: 0,
          users: 0,
          rooms: null,
          uptime: uptime(),
          version: VERSION,
          publicUrl: tunnel?.url ?? null,
          ...options.health?.(),
        }),
    });

    const listening = Promise.withResolvers<Deno.NetAddr>();
    let listener: Deno.HttpServer<Deno.NetAddr>;
    try {
      listener = server = Deno.serve({
        port: config.port,
        hostname: config.host,
        ...tls,
        onListen: (addr) => listening.resolve(addr as Deno.NetAddr),
        onError: (err) => {
          log.error(`Request failed: ${(err as Error).stack ?? err}`);
          return new Response("Internal server error\n", {
            status: 500,
            headers: SECURITY_HEADERS,
          });
        },
      }, (req, info) => serving ? serving.handler(req, info) : starting(req));
    } catch (err) {
      throw listenError(err as Error, config);
    }
    const addr = await listening.promise;
    const metricsUrl = metricsRoute && config.metricsListen !== undefined
      // A token given too guards that address as well: one who set it expects it asked for.
      ? await listenMetrics(config.metricsListen, metricsRoute)
      : null;
    metrics?.start();
    tunnel = await openTunnel(config, addr.port, {
      log,
      opener: options.tunnel,
      tls: Boolean(config.certPath),
      headers: tunnelSecret ? { [TUNNEL_HEADER]: tunnelSecret } : undefined,
    });

    /** Serves `/metrics` alone on `--metrics-listen`; resolves its URL. */
    async function listenMetrics(listen: string, route: MetricsRoute): Promise<string> {
      const { hostname, port } = parseListen(listen);
      const bound = Promise.withResolvers<Deno.NetAddr>();
      try {
        metricsServer = Deno.serve({
          hostname,
          port,
          onListen: (a) => bound.resolve(a as Deno.NetAddr),
        }, createMetricsHandler(route, log));
      } catch (err) {
        throw new ConfigError(
          `Cannot serve metrics on ${listen} (--metrics-listen): ${
            err instanceof Deno.errors.AddrInUse ? "the port is in use" : (err as Error).message
          }`,
        );
      }
      const a = await bound.promise;
      const host = a.hostname.includes(":") ? `[${a.hostname}]` : a.hostname;
      const url = `http://${host}:${a.port}/metrics`;
      log.info(`Metrics on ${url}`);
      return url;
    }

    let ticker: ReturnType<typeof setInterval> | undefined;
    let reloader: ReturnType<typeof setInterval> | undefined;
    /** A users.json check under way (awaited by shutdown: it reads the file). */
    let reloading: Promise<void> | null = null;
    const run = (parts: Serving) => {
      serving = parts;
      const hub = parts.hub;
      ticker = setInterval(() => {
        hub.tick();
        reaper.sweep(Date.now());
        parts.janitor.tick(Date.now());
      }, options.tickInterval ?? 100);
      reloader = setInterval(() => {
        if (reloading) return;
        reloading = (async () => {
          try {
            const before = auth.mode === "login" ? new Set(auth.names()) : null;
            if (await auth.reload()) {
              hub.revalidate();
              // Removed on the server's shell: out of their rooms too.
              // (Not when the file now lists nobody: that locks everyone out already,
              // and is more likely a mistake than a decision to empty every room.)
              const gone = before && auth.userCount > 0
                ? [...before].filter((u) => !auth.has(u))
                : [];
              if (gone.length > 0) {
                await hub.evict(gone).catch((err) =>
                  log.warn(
                    `Removed users not taken out of their rooms yet: ${(err as Error).message}`,
                  )
                );
              }
            }
          } finally {
            reloading = null;
          }
        })();
      }, options.reloadInterval ?? 1000);
    };

    let stopping: Promise<void> | null = null;
    // Settles once the node serves, was stopped while waiting, or found Redis unusable.
    let waited = Promise.resolve();
    if (serving) run(serving);
    else {
      waited = redis!.ready.then(async (parts) => {
        if (parts === null) return;
        let failed: unknown = null;
        if (!stopping) {
          try {
            run(serve(parts.store, parts.broker, parts.files, parts.admin, parts.push));
            return;
          } catch (err) {
            failed = err;
          }
        }
        // Stopped just as Redis answered, or no hub could be built: let Redis go.
        await parts.broker.close();
        await parts.store.close();
        if (failed !== null) throw failed;
      });
    }
    const shutdown = () => {
      stopping ??= (async () => {
        await redis?.stop();
        await waited.catch(() => {});
        metrics?.stop();
        clearInterval(ticker);
        clearInterval(reloader);
        await reloading?.catch(() => {});
        await serving?.hub.stopRereads();
        await tunnel?.close();
        const sockets = serving?.hub.shutdown() ?? [];
        // Deno's own shutdown would close the sockets again with its own reason: let ours finish.
        await closed(sockets, 1000);
        // A client that stopped reading never completes the handshake: drop it.
        for (const s of sockets) {
          if (s instanceof WebSocket && s.readyState !== WebSocket.CLOSED) abortSocket(s);
        }
        // Bounded: a client that stalled mid-upload keeps its connection even
        // after its 408 (Deno's HTTP/1.1 server waits for the rest of the body);
        // the store must still be closed cleanly.
        await bounded(listener.shutdown(), options.closeGrace ?? 5000);
        await metricsServer?.shutdown();
        await serving?.janitor.idle();
        await serving?.hub.stopPushes();
        await serving?.stopPush();
        await serving?.pushStore.close();
        await serving?.broker.close();
        await serving?.files.close();
        await serving?.store.close();
        hasher.close();
      })();
      return stopping;
    };
    // A node that cannot use Redis after all stops, and says why through `ready`.
    const ready = waited.catch(async (err) => {
      await shutdown();
      throw err;
    });
    // Whoever does not wait for `ready` is not told twice.
    ready.catch(() => {});

    const scheme = config.certPath ? "https" : "http";
    const shownHost = addr.hostname === "0.0.0.0" || addr.hostname === "::"
      ? "localhost"
      : addr.hostname;
    return {
      port: addr.port,
      hostname: addr.hostname,
      url: `${scheme}://${shownHost.includes(":") ? `[${shownHost}]` : shownHost}:${addr.port}`,
      publicUrl: tunnel?.url ?? null,
      metricsUrl,
      get hub(): Hub {
        if (!serving) throw new Error("The server is still starting: waiting for Redis");
        return serving.hub;
      },
      auth,
      get starting() {
        return serving === null;
      },
      ready,
      shutdown,
      finished: listener.finished,
      [Symbol.asyncDispose]: shutdown,
    };
  }
}

/** The configured store: the SQLite file with `--data`, memory otherwise. */
function openStore(config: Config, log: Logger): Store {
  if (config.dataPath) {
    return SqliteStore.open(config.dataPath, {
      retainDays: config.retainDays,
      retainMessages: config.retainMessages,
      log,
    });
  }
  if (!config.redisUrl && (config.retainDays || config.retainMessages)) {
    log.warn("--retain-days and --retain-messages need --data: history stays in memory only");
  }
  return new MemoryStore({ limit: config.historyLimit, signoutsPath: signoutsPath(config) });
}

/** The file store beside `store`: in the same data file, the same Redis, or memory. */
function openFiles(config: Config, store: Store): FileStore {
  const quota = config.filesQuotaBytes;
  if (store instanceof SqliteStore) {
    return SqliteFileStore.open(store, { quota: quota ?? DEFAULTS.filesQuotaBytes });
  }
  return new MemoryFileStore({ quota: quota ?? MEMORY_FILES_QUOTA });
}

/** Whether a host name is this machine's loopback. */
function isLoopback(host: string): boolean {
  return host === "localhost" || host === "[::1]" || host === "::1" || /^127\./.test(host);
}

/** This machine's first non-loopback IPv4 address, or null (none, or not allowed to look). */
function networkAddress(): string | null {
  try {
    const found = Deno.networkInterfaces().find((i) =>
      i.family === "IPv4" && !i.address.startsWith("127.") && !i.address.startsWith("169.254.")
    );
    return found?.address ?? null;
  } catch {
    return null;
  }
}

/** The process environment with `.env` underneath (as main.ts reads the flags). */
function environment(): Record<string, string | undefined> {
  let real: Record<string, string> = {};
  try {
    real = Deno.env.toObject();
  } catch {
    // No permission to read the environment: `.env` and files only.
  }
  return { ...readDotEnv(), ...real };
}

/** The push store beside `store`: in the same data file, or memory (Redis: see {@link connectShared}). */
function openPush(store: Store): PushStore {
  return store instanceof SqliteStore ? SqlitePushStore.open(store) : new MemoryPushStore();
}

/** The admin store beside `store`: in the same data file, or memory (Redis: see {@link connectShared}). */
function openAdmin(store: Store): AdminStore {
  return store instanceof SqliteStore ? SqliteAdminStore.open(store) : new MemoryAdminStore();
}

/** Milliseconds a first attempt to reach Redis may take before the node listens as `starting`. */
const FIRST_ATTEMPT_PATIENCE = 2000;

/** The Redis store, broker, file store and admin store (`--redis`). */
interface Shared {
  store: Store;
  broker: Broker;
  files: FileStore;
  admin: AdminStore;
  push: PushStore;
}

/** Connecting to Redis, in the background. */
interface SharedStart {
  /** The store and broker once Redis answers; null when stopped first. Rejects when Redis is unusable. */
  ready: Promise<Shared | null>;
  /** Resolves when a first attempt failed for a reason that may pass: the node waits. */
  waiting: Promise<void>;
  /** Stops waiting; resolves once no attempt is under way. */
  stop(): Promise<void>;
}

/**
 * Connects the Redis store and broker (`--redis`), retrying while Redis is
 * not there yet (see `waitForRedis`); the modules load only when used.
 */
function connectShared(config: Config, log: Logger, metrics: ChatMetrics | null): SharedStart {
  const url = config.redisUrl!;
  const abort = new AbortController();
  const waiting = Promise.withResolvers<void>();
  let patience: ReturnType<typeof setTimeout> | undefined;
  const ready = (async (): Promise<Shared | null> => {
    const { command, redisReconnects, waitForRedis } = await import("./broker/redis_client.ts");
    const { RedisStore } = await import("./store/redis.ts");
    const { RedisBroker } = await import("./broker/redis.ts");
    const { RedisFileStore } = await import("./files/redis.ts");
    const { RedisAdminStore } = await import("./admin/redis.ts");
    const { RedisPushStore } = await import("./push/redis.ts");
    // A first attempt that hangs (a host that drops packets: 10 s until it
    // times out) must not keep the listener down either.
    patience = setTimeout(() => waiting.resolve(), FIRST_ATTEMPT_PATIENCE);
    const shared = await waitForRedis(url, async (signal) => {
      const store = await RedisStore.connect(url, { keep: config.historyLimit, signal });
      try {
        const broker = await RedisBroker.start({ url, store, log, signal });
        const files = new RedisFileStore(store.client, {
          quota: config.filesQuotaBytes ?? DEFAULTS.filesQuotaBytes,
          prefix: store.prefix,
          timeout: store.timeout,
        });
        const admin = new RedisAdminStore(store.client, {
          prefix: store.prefix,
          timeout: store.timeout,
        });
        const push = new RedisPushStore(store.client, {
          prefix: store.prefix,
          timeout: store.timeout,
        });
        return { store, broker, files, admin, push };
      } catch (err) {
        await store.close();
        throw err;
      }
    }, { log, signal: abort.signal, onWaiting: () => waiting.resolve() });
    if (shared && abort.signal.aborted) {
      // Redis answered just as the node was stopped.
      await shared.broker.close();
      await shared.store.close();
      return null;
    }
    if (shared) log.info(`Sharing the chat through Redis as node "${shared.broker.node}"`);
    if (shared && metrics) {
      const store = shared.store as InstanceType<typeof RedisStore>;
      metrics.watchRedis({
        ping: () => command(store.client, ["PING"], store.timeout),
        reconnects: redisReconnects,
      });
    }
    return shared;
  })().finally(() => clearTimeout(patience));
  return {
    ready,
    waiting: waiting.promise,
    stop: async () => {
      abort.abort();
      await ready.catch(() => {});
    },
  };
}

/** Resolves once every socket is closed, or after `timeout` ms. */
async function closed(sockets: { readyState: number }[], timeout: number): Promise<void> {
  const deadline = Date.now() + timeout;
  while (sockets.some((s) => s.readyState !== WebSocket.CLOSED) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Reads the TLS certificate and key named by `--cert` and `--key`, if any. */
async function readTls(config: Config): Promise<{ cert?: string; key?: string }> {
  if (!config.certPath || !config.keyPath) return {};
  const read = async (path: string, what: string) => {
    try {
      return await Deno.readTextFile(path);
    } catch (err) {
      throw new ConfigError(`Cannot read TLS ${what} "${path}": ${(err as Error).message}`);
    }
  };
  return {
    cert: await read(config.certPath, "certificate"),
    key: await read(config.keyPath, "key"),
  };
}

/** Turns a failure to listen into a sentence saying what to change. */
function listenError(err: Error, config: Config): Error {
  if (err instanceof Deno.errors.AddrInUse) {
    return new ConfigError(
      `Cannot listen on ${config.host}:${config.port}: the port is in use (is another server running?): choose another with --port`,
    );
  }
  if (config.certPath) {
    return new ConfigError(
      `Cannot serve TLS with "${config.certPath}" and "${config.keyPath}": ${err.message} (both must be PEM files)`,
    );
  }
  return err;
}
