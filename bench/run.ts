/**
 * `deno task bench`: runs every scenario against the bare relay
 * (bench/relay.ts) and the chat server, each in a fresh process pinned to
 * its own core (taskset, where there are two cores or more) with the load
 * generator (bench/loadgen.ts) on another, then prints a table, checks the
 * targets and writes JSON.
 *
 * Flags:
 * - `--short`: small sizes and one-second windows (what the test suite runs);
 *   it runs every scenario but `search`, the opt-in ones below included
 * - `--only fanout,fanout+upload,rate50,rate50+upload,rate200,living,rooms,idle5k,idle15k,signin5k,signin50k,c100k,search`:
 *   a subset of scenarios; `search` (chat only), `signin50k` and `c100k` run at
 *   full size only when named here (they need open-file limits above 50,000
 *   and 100,000, which the bench sets where the hard limit allows); an
 *   `+upload` scenario (chat only) brings the scenario it is compared with
 * - `--targets relay,chat`: a subset of servers
 * - `--variants memory,sqlite,redis,metrics`: chat server variants (see {@link VARIANTS});
 *   `memory,metrics` checks that `--metrics` costs fan-out at most 3 % (on a quiet machine;
 *   `bench/metrics_overhead.ts` measures the cost per delivery in one process, load or not)
 * - `--redis URL`: the Redis server the `redis` variant uses (default: one of
 *   its own per run, on a free port)
 * - `--out FILE`: where the JSON goes (default bench/results/latest.json)
 * - `--cpu-prof DIR`: profile the chat server during the fan-out scenario
 * - `--v8-flags FLAGS`: V8 flags for the chat server (default: the ones
 *   `deno task start` and the binary run with, `V8_FLAGS` in scripts/compile.ts;
 *   `--v8-flags=` for V8's own defaults)
 * - `--repeat N`: run every scenario N times (targets interleaved) and report medians
 * - `--soak DURATION`: instead of the scenarios, a soak of one chat server under
 *   mixed traffic for that long (30s, 10m), reporting its memory over time (bench/soak.ts)
 *
 * @module
 */
import { parseArgs } from "node:util";
import { V8_FLAGS } from "../scripts/compile.ts";
import type { Result, Spec } from "./loadgen.ts";

/** A server under test: how to start it and where clients connect. */
interface Target {
  name: string;
  kind: "relay" | "chat";
  /** Extra chat server flags; nodes > 1 start that many servers sharing them. */
  args?: (dir: string, redis?: string) => string[];
  nodes?: number;
  /** Start a redis-server of its own, beside the server, for each run. */
  ownRedis?: boolean;
  /**
   * Whether an uploaded file stays in the RAM counted as the server's RSS
   * (the memory file store; Redis when it is ours, its process being summed
   * with the nodes). With `--data` it goes to the SQLite file.
   */
  filesInMemory?: boolean;
}

/**
 * Chat server variants. `memory` is the default store; `sqlite` keeps history
 * in a file (`--data`), `redis` runs two nodes sharing one chat through Redis
 * (`--redis`), `metrics` is `memory` counting its metrics (`--metrics`, served
 * on an address of its own). A variant runs only when asked for with `--variants`.
 */
const VARIANTS: Record<string, (opts: { redis?: string }) => Target> = {
  memory: () => ({ name: "chat", kind: "chat", filesInMemory: true }),
  sqlite: () => ({
    name: "chat+sqlite",
    kind: "chat",
    args: (dir) => ["--data", `${dir}/bench.db`],
  }),
  // Without --redis, each run gets a fresh redis-server of its own on the
  // server's core: the machine's shared instance is never touched.
  metrics: () => ({
    name: "chat+metrics",
    kind: "chat",
    filesInMemory: true,
    args: () => ["--metrics", "--metrics-listen", "127.0.0.1:0"],
  }),
  redis: ({ redis }) => ({
    name: "chat+redis",
    kind: "chat",
    nodes: 2,
    ownRedis: redis === undefined,
    filesInMemory: redis === undefined,
    args: (_dir, own) => ["--redis", redis ?? own!],
  }),
};

/** A scenario and its sizes, full and short. */
interface Scenario {
  name: string;
  what: string;
  spec: Omit<Spec, "target" | "urls" | "pids">;
  short: Partial<Spec>;
  /** Extra chat server flags. */
  args?: string[];
  /** Only the chat server can run it (the relay has no history). */
  chatOnly?: boolean;
  /**
   * Runs only when named with `--only`; `"full"`: so at full size, while
   * `--short` runs it at its short sizes like any other.
   */
  optIn?: boolean | "full";
  /** For a scenario with an upload: the same scenario without it, run too and compared with. */
  base?: string;
}

/** The upload of the `+upload` scenarios: 25 MB, the server's default `--max-upload`. */
const UPLOAD_BYTES = 25 * 1000 * 1000;

const SCENARIOS: Scenario[] = [
  {
    name: "fanout",
    what: "500 receivers, 1 sender, <=100 in flight",
    spec: { scenario: "fanout", receivers: 500, inflight: 100, warmup: 2, seconds: 8 },
    short: { receivers: 20, inflight: 20, warmup: 0.5, seconds: 1 },
  },
  {
    name: "fanout+upload",
    what: "fanout while the sender uploads a 25 MB file",
    spec: {
      scenario: "fanout",
      receivers: 500,
      inflight: 100,
      warmup: 2,
      seconds: 8,
      upload: UPLOAD_BYTES,
    },
    short: { receivers: 20, inflight: 20, warmup: 0.5, seconds: 1 },
    chatOnly: true,
    base: "fanout",
  },
  {
    name: "rate50",
    what: "50 msg/s into 500 members",
    spec: { scenario: "rate", receivers: 500, rate: 50, warmup: 1, seconds: 10 },
    short: { receivers: 20, warmup: 0.2, seconds: 1 },
  },
  {
    name: "rate50+upload",
    what: "rate50 while the sender uploads a 25 MB file",
    spec: {
      scenario: "rate",
      receivers: 500,
      rate: 50,
      warmup: 1,
      seconds: 10,
      upload: UPLOAD_BYTES,
    },
    short: { receivers: 20, warmup: 0.2, seconds: 1 },
    chatOnly: true,
    base: "rate50",
  },
  {
    name: "rate200",
    what: "200 msg/s into 500 members",
    spec: { scenario: "rate", receivers: 500, rate: 200, warmup: 1, seconds: 10 },
    short: { receivers: 20, warmup: 0.2, seconds: 1 },
  },
  {
    name: "living",
    what: "50 frames/s into 500 members, a quarter of them edits and reactions",
    spec: { scenario: "living", receivers: 500, rate: 50, warmup: 1, seconds: 10 },
    short: { receivers: 20, warmup: 0.2, seconds: 1 },
  },
  {
    name: "rooms",
    what: "1,000 clients in rooms of 10, 1 msg/s each",
    spec: { scenario: "rooms", clients: 1000, roomSize: 10, warmup: 1, seconds: 8 },
    short: { clients: 40, warmup: 1, seconds: 1 },
  },
  {
    name: "idle5k",
    what: "5,000 signed-in idle connections",
    spec: { scenario: "idle", clients: 5000, concurrency: 200 },
    short: { clients: 100, concurrency: 50, quietMs: 250, settleMs: 500 },
  },
  {
    name: "idle15k",
    what: "15,000 signed-in idle connections",
    spec: { scenario: "idle", clients: 15000, concurrency: 200 },
    short: { clients: 200, concurrency: 50, quietMs: 250, settleMs: 500 },
  },
  {
    name: "signin5k",
    what: "5,000 first-time sign-ins, each into general then a room of 10",
    spec: { scenario: "signin", clients: 5000, roomSize: 10, concurrency: 200 },
    short: { clients: 200, concurrency: 50, quietMs: 250, settleMs: 500 },
  },
  {
    name: "signin50k",
    what: "50,000 first-time sign-ins into general, over 3 source addresses",
    // One source address has about 28,000 ports towards the server.
    spec: { scenario: "signin", clients: 50000, concurrency: 200, sources: 3 },
    short: { clients: 300, concurrency: 50, sources: 2, quietMs: 250, settleMs: 500 },
    optIn: "full",
  },
  {
    name: "c100k",
    what: "100,000 first-time users in general over 5 source addresses, then 10 messages to all",
    spec: { scenario: "c100k", clients: 100000, sources: 5, messages: 10, concurrency: 200 },
    short: { clients: 300, sources: 3, messages: 5, concurrency: 50, quietMs: 250, settleMs: 500 },
    optIn: "full",
  },
  {
    name: "search",
    what: "searches through 100,000 kept messages while another client pings",
    spec: { scenario: "search", rooms: 50, perRoom: 2000, warmup: 1, seconds: 5 },
    short: { rooms: 10, perRoom: 200, warmup: 0.2, seconds: 1 },
    // 50 rooms × 2,000 fills the memory store to its cap of 100,000 messages.
    args: ["--history", "2000", "--max-rooms-per-user", "1000"],
    chatOnly: true,
    optIn: true,
  },
];

/** Targets that the chat must meet against the relay in the same run. */
const GOALS = [
  {
    scenario: "fanout",
    field: "deliveriesPerSec",
    what: "fan-out deliveries/s",
    op: ">=",
    ratio: 4,
  },
  { scenario: "rate50", field: "p99Ms", what: "p99 at 50 msg/s", op: "<=", ratio: 1.2 },
  {
    scenario: "living",
    field: "p99Ms",
    what: "p99 at 50 frames/s, a quarter edits and reactions",
    op: "<=",
    ratio: 1.2,
  },
  {
    scenario: "idle15k",
    field: "rssPerConnKB",
    what: "RSS per idle connection",
    op: "<=",
    ratio: 1.15,
  },
  {
    scenario: "signin5k",
    field: "rssPerConnKB",
    what: "RSS per connection, 5,000 first-time sign-ins",
    op: "<=",
    ratio: 1.15,
  },
  {
    scenario: "signin5k",
    field: "connsPerSec",
    what: "connections/s, 5,000 first-time sign-ins",
    op: ">=",
    ratio: 0.7,
  },
  {
    scenario: "signin50k",
    field: "rssPerConnKB",
    what: "RSS per connection, 50,000 first-time sign-ins",
    op: "<=",
    ratio: 1.15,
  },
  {
    scenario: "signin50k",
    field: "connsPerSec",
    what: "connections/s, 50,000 first-time sign-ins",
    op: ">=",
    ratio: 0.7,
  },
] as const;

/**
 * Targets of a chat variant against the plain chat server in the same run,
 * checked when both ran (`--variants memory,metrics`).
 */
const VARIANT_GOALS = [
  {
    scenario: "fanout",
    field: "deliveriesPerSec",
    target: "chat+metrics",
    what: "fan-out deliveries/s with --metrics",
    op: ">=",
    ratio: 0.97,
  },
] as const;

/** Targets of an upload during a scenario, against the same scenario without it. */
const UPLOAD_GOALS = {
  /** Chat p99 while the upload is under way, at most this many times the p99 without it. */
  p99Ratio: 2,
  /** Server memory growth beyond the file itself (and the scenario's own), in 256 KiB chunks. */
  chunks: 8,
};

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const SERVER_CORE = 0;
const LOADGEN_CORE = 1;
/**
 * Server flood limits raised so the bench never measures the limiter. Every
 * other limit stays at its default, `--max-buffered` (slow consumers) among
 * them: a scenario that needs more says so in its own `args`.
 */
const UNLIMITED = [
  "--rate",
  "1000000",
  "--burst",
  "1000000",
  "--max-conns-per-user",
  "1000",
  "--max-conns-per-addr",
  "1000000",
  "--max-pending",
  "1000000",
]; // deno-fmt-ignore

function print(line = ""): void {
  // deno-lint-ignore no-console
  console.log(line);
}

/** Whether taskset can pin processes here (Linux, two cores or more). */
async function canPin(): Promise<boolean> {
  if (navigator.hardwareConcurrency < 2) return false;
  try {
    const { success } = await new Deno.Command("taskset", {
      args: ["-c", String(LOADGEN_CORE), "true"],
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
}

/**
 * Builds the command for a child: raises the open-file limit (c100k holds
 * 100,000 sockets on each side; as root with CAP_SYS_RESOURCE, `ulimit -n`
 * raises the hard limit too, else it goes as high as the hard limit lets it)
 * and pins it to `core`.
 */
function command(core: number | null, argv: string[]): Deno.Command {
  const pinned = core === null ? argv : ["taskset", "-c", String(core), ...argv];
  return new Deno.Command("sh", {
    args: [
      "-c",
      'ulimit -n 262144 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"',
      "sh",
      ...pinned,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    cwd: ROOT,
  });
}

/** Keeps the last lines of a child's output (and keeps its pipe drained). */
function drain(stream: ReadableStream<Uint8Array>, lines: string[]): Promise<void> {
  const decoder = new TextDecoder();
  return stream.pipeTo(
    new WritableStream({
      write(bytes) {
        const chunk = decoder.decode(bytes, { stream: true });
        for (const l of chunk.split("\n")) if (l) lines.push(l);
        if (lines.length > 200) lines.splice(0, lines.length - 200);
      },
    }),
  ).catch(() => {});
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

interface Running {
  pids: number[];
  urls: string[];
  stop(): Promise<void>;
  output: string[];
}

/** Starts the target's server process(es) and waits until they answer HTTP. */
async function startTarget(
  target: Target,
  dir: string,
  pin: boolean,
  profileDir?: string,
  extraArgs: string[] = [],
  v8Flags: string = V8_FLAGS,
): Promise<Running> {
  const procs: Deno.ChildProcess[] = [];
  const output: string[] = [];
  const drains: Promise<void>[] = [];
  const urls: string[] = [];
  const stop = async () => {
    for (const p of procs) {
      try {
        p.kill("SIGTERM");
      } catch { /* gone */ }
    }
    const killer = setTimeout(() => {
      for (const p of procs) {
        try {
          p.kill("SIGKILL");
        } catch { /* gone */ }
      }
    }, 10_000);
    await Promise.all(procs.map((p) => p.status));
    clearTimeout(killer);
    await Promise.all(drains);
  };
  // A child that fails to start must not leave the others (Redis, a first node) running.
  try {
    const nodes = target.nodes ?? 1;
    let redisUrl: string | undefined;
    if (target.ownRedis) {
      const port = freePort();
      // Persistence as docs/scaling.md recommends: acknowledged means on disk.
      const proc = command(pin ? SERVER_CORE : null, [
        "redis-server",
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        dir,
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
      ]).spawn();
      procs.push(proc);
      drains.push(drain(proc.stdout, output), drain(proc.stderr, output));
      await waitReady(
        `redis-server on port ${port}`,
        async () => {
          (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        },
        proc,
        output,
      );
      redisUrl = `redis://127.0.0.1:${port}`;
    }
    for (let i = 0; i < nodes; i++) {
      const port = freePort();
      const deno = [Deno.execPath(), "run"];
      let argv: string[];
      if (target.kind === "relay") {
        argv = [...deno, "--allow-net=127.0.0.1", "bench/relay.ts", String(port)];
        urls.push(`ws://127.0.0.1:${port}/`);
      } else {
        argv = [
          ...deno,
          "--allow-net=127.0.0.1",
          "--allow-read",
          `--allow-write=${dir}`,
          "--allow-env",
          // As `deno task start` and the binary run it (an empty --v8-flags: V8's defaults).
          ...(v8Flags ? [`--v8-flags=${v8Flags}`] : []),
          ...(profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : []),
          "main.ts",
          "--port",
          String(port),
          "--host",
          "127.0.0.1",
          "--users",
          `${dir}/users.json`,
          "--secret",
          "bench-secret-bench-secret-bench-secret",
          "--quiet",
          ...UNLIMITED,
          ...(target.args?.(dir, redisUrl) ?? []),
          ...extraArgs,
        ]; // deno-fmt-ignore
        urls.push(`ws://127.0.0.1:${port}/ws`);
      }
      const proc = command(pin ? SERVER_CORE : null, argv).spawn();
      procs.push(proc);
      drains.push(drain(proc.stdout, output), drain(proc.stderr, output));
      await waitReady(
        `Server on port ${port}`,
        async () => {
          await (await fetch(`http://127.0.0.1:${port}/healthz`)).body?.cancel();
        },
        proc,
        output,
      );
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    pids: procs.map((p) => p.pid),
    urls,
    output,
    stop,
  };
}

/**
 * Waits until `probe` succeeds (it throws while the child is not ready yet),
 * for at most 30 s or until the child exits.
 */
async function waitReady(
  what: string,
  probe: () => Promise<void>,
  proc: Deno.ChildProcess,
  output: string[],
): Promise<void> {
  let exited = false;
  proc.status.then(() => (exited = true));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && !exited) {
    try {
      await probe();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`${what} did not start: ${output.slice(-5).join(" | ")}`);
}

/** Runs the load generator for one scenario and returns its result. */
async function runLoadgen(spec: Spec, pin: boolean): Promise<Result> {
  const argv = [
    Deno.execPath(),
    "run",
    // Deno grants reads of /proc/<pid> (CPU time, RSS) only with --allow-all;
    // the load generator connects only to the 127.0.0.1 URLs in its spec.
    "--allow-all",
    "bench/loadgen.ts",
    JSON.stringify(spec),
  ];
  const out = await command(pin ? LOADGEN_CORE : null, argv).output();
  const text = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "";
  let parsed: { ok: boolean; result?: Result; error?: string };
  try {
    parsed = JSON.parse(text);
  } catch {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-5).join(" | ");
    throw new Error(`The load generator failed (exit ${out.code}): ${err || text}`);
  }
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.result!;
}

/** Starts the target, runs the load generator against it and stops the target. */
async function measure(
  spec: Scenario["spec"],
  target: Target,
  dir: string,
  opts: { pin: boolean; profile?: string; args?: string[]; v8Flags?: string },
): Promise<Result> {
  let server: Running | null = null;
  try {
    server = await startTarget(target, dir, opts.pin, opts.profile, opts.args, opts.v8Flags);
    return await runLoadgen(
      { ...spec, target: target.kind, urls: server.urls, pids: server.pids },
      opts.pin,
    );
  } catch (err) {
    const output = server?.output.slice(-3).join(" | ");
    throw new Error(`${(err as Error).message}${output ? ` (server: ${output})` : ""}`);
  } finally {
    await server?.stop();
  }
}

/** One row of the report. */
export interface Row {
  scenario: string;
  target: string;
  /** The median of the runs (each field on its own). */
  result?: Result;
  /** Every run, with --repeat. */
  runs?: Result[];
  error?: string;
}

/** The whole report, as written to JSON. */
export interface Report {
  date: string;
  machine: { cpu: string; cores: number; os: string; deno: string; v8: string; pinned: boolean };
  short: boolean;
  rows: Row[];
  /** Each `+upload` row beside its scenario without the upload, same target. */
  uploads: UploadComparison[];
  goals: {
    what: string;
    chat: number | null;
    relay: number | null;
    ratio: number | null;
    target: string;
    met: boolean | null;
  }[];
  /** Chat variants against the plain chat server (see {@link VARIANT_GOALS}), when both ran. */
  variantGoals: {
    what: string;
    variant: string;
    value: number | null;
    chat: number | null;
    ratio: number | null;
    target: string;
    met: boolean | null;
  }[];
}

/** A scenario with an upload against the same scenario without it. */
export interface UploadComparison {
  scenario: string;
  base: string;
  target: string;
  /** Whether the file itself stays in the RSS measured (see {@link Target.filesInMemory}). */
  fileInMemory: boolean;
  /** The upload's HTTP status (201: stored), size, seconds and rate in 10⁶ bytes/s. */
  status: number | null;
  bytes: number | null;
  seconds: number | null;
  mbPerSec: number | null;
  /** Server RSS in MiB: when the upload started, its highest reading until it ended, at the end. */
  rssBeforeMB: number | null;
  rssPeakMB: number | null;
  rssAfterMB: number | null;
  /** Peak growth over the window in MiB, with the upload and without (the base scenario). */
  growthMB: number | null;
  baseGrowthMB: number | null;
  /** Growth due to the upload beyond the file's own bytes when it stays in RAM, in MiB and in 256 KiB chunks. */
  extraMB: number | null;
  extraChunks: number | null;
  /**
   * Chat p99 over the window: without the upload (base), with it, and their
   * ratio; and of the messages sent while the upload was under way only,
   * with its ratio to the base (stricter: a short upload is a small part of
   * the window).
   */
  baseP99Ms: number | null;
  p99Ms: number | null;
  p99Ratio: number | null;
  uploadP99Ms: number | null;
  uploadP99Ratio: number | null;
  /** Whether the window's p99 ratio and the memory growth are within {@link UPLOAD_GOALS}. */
  latencyMet: boolean | null;
  memoryMet: boolean | null;
}

/** Counts of what must never happen: the worst run is reported, not the median. */
const WORST: readonly string[] = ["missing", "reordered"];

/** Field by field median of several results (for {@link WORST} fields, the largest). */
function median(results: Result[]): Result {
  const out: Record<string, number | null> = {};
  for (const key of Object.keys(results[0])) {
    const values = results.map((r) => (r as unknown as Record<string, number | null>)[key])
      .filter((v): v is number => typeof v === "number").sort((a, b) => a - b);
    const at = WORST.includes(key) ? values.length - 1 : Math.floor((values.length - 1) / 2);
    out[key] = values.length ? values[at] : null;
  }
  return out as unknown as Result;
}

/** The CPU model; read through `sh` because Deno grants /proc reads only with --allow-all. */
async function cpuModel(): Promise<string> {
  try {
    const out = await new Deno.Command("sh", {
      args: ["-c", "cat /proc/cpuinfo"],
      stdout: "piped",
      stderr: "null",
    }).output();
    const m = /^model name\s*:\s*(.+)$/m.exec(new TextDecoder().decode(out.stdout));
    return m ? m[1].trim() : "unknown";
  } catch {
    return "unknown";
  }
}

const COLUMNS: [string, keyof Result, number][] = [
  ["deliv/s", "deliveriesPerSec", 10],
  ["p50 ms", "p50Ms", 8],
  ["p99 ms", "p99Ms", 8],
  ["max ms", "maxMs", 8],
  ["miss", "missing", 6],
  ["drop", "dropped", 5],
  ["conn/s", "connsPerSec", 7],
  ["KB/conn", "rssPerConnKB", 8],
  ["settled", "rssSettledPerConnKB", 8],
  ["RSS MB", "rssMB", 7],
  ["KB in", "inPerConnKB", 7],
  ["srv cpu", "serverCpu", 7],
  ["gen cpu", "loadgenCpu", 7],
  ["srch p50", "searchP50Ms", 8],
  ["srch p99", "searchP99Ms", 8],
];

/** The report as a fixed-width table. */
export function table(report: Report): string {
  const width = Math.max(9, ...report.rows.map((r) => r.scenario.length + 1));
  const head = "scenario".padEnd(width) + "target".padEnd(13) +
    COLUMNS.map(([h, , w]) => " " + h.padStart(w)).join("");
  const lines = [head, "-".repeat(head.length)];
  for (const row of report.rows) {
    let line = row.scenario.padEnd(width) + row.target.padEnd(13);
    if (row.error) line += `error: ${row.error}`;
    else {
      line += COLUMNS.map(([, key, w]) => {
        const v = row.result?.[key];
        return " " + (v === undefined || v === null ? "-" : String(v)).padStart(w);
      }).join("");
    }
    lines.push(line);
  }
  const living = report.rows.filter((r) => r.result?.editP50Ms !== undefined);
  if (living.length > 0) lines.push("", kindTable(living));
  if (report.uploads.length > 0) lines.push("", uploadTable(report.uploads));
  lines.push("");
  for (const g of report.goals) {
    const status = g.met === null ? "n/a " : g.met ? "MET " : "MISS";
    lines.push(
      `${status} ${g.what}: chat/relay = ${g.ratio ?? "-"} (target ${g.target}; chat ${
        g.chat ?? "-"
      }, relay ${g.relay ?? "-"})`,
    );
  }
  for (const g of report.variantGoals) {
    const status = g.met === null ? "n/a " : g.met ? "MET " : "MISS";
    lines.push(
      `${status} ${g.what}: ${g.variant}/chat = ${
        g.ratio ?? "-"
      } (target ${g.target}; ${g.variant} ${g.value ?? "-"}, chat ${g.chat ?? "-"})`,
    );
  }
  for (const u of report.uploads) {
    const status = (met: boolean | null) => met === null ? "n/a " : met ? "MET " : "MISS";
    const mb = u.bytes === null ? "-" : `${u.bytes / 1e6} MB`;
    lines.push(
      `${status(u.latencyMet)} p99 with a ${mb} upload (${u.base}, ${u.target}): ` +
        `with/without = ${u.p99Ratio ?? "-"} (target <= ${UPLOAD_GOALS.p99Ratio}x; ` +
        `with ${u.p99Ms ?? "-"} ms, without ${u.baseP99Ms ?? "-"} ms; ` +
        `sent during the upload ${u.uploadP99Ms ?? "-"} ms, ${u.uploadP99Ratio ?? "-"}x)`,
      `${status(u.memoryMet)} server memory during a ${mb} upload (${u.base}, ${u.target}): ` +
        `${u.extraChunks ?? "-"} chunks of 256 KiB beyond ${
          u.fileInMemory ? "the stored file and " : ""
        }the scenario's own growth (target <= ${UPLOAD_GOALS.chunks})`,
    );
  }
  return lines.join("\n");
}

/** The `+upload` rows beside their scenario without the upload. */
function uploadTable(uploads: UploadComparison[]): string {
  const cols: [string, keyof UploadComparison, number][] = [
    ["status", "status", 6],
    ["s", "seconds", 6],
    ["MB/s", "mbPerSec", 6],
    ["RSS before", "rssBeforeMB", 10],
    ["peak", "rssPeakMB", 7],
    ["after", "rssAfterMB", 7],
    ["grow MiB", "growthMB", 8],
    ["w/o", "baseGrowthMB", 6],
    ["extra", "extraMB", 6],
    ["chunks", "extraChunks", 6],
    ["p99 w/o", "baseP99Ms", 8],
    ["p99 with", "p99Ms", 8],
    ["ratio", "p99Ratio", 6],
    ["p99 up", "uploadP99Ms", 8],
    ["ratio", "uploadP99Ratio", 6],
  ];
  const head = "upload".padEnd(15) + "target".padEnd(13) +
    cols.map(([h, , w]) => " " + h.padStart(w)).join("");
  const lines = [head, "-".repeat(head.length)];
  for (const u of uploads) {
    lines.push(
      u.scenario.padEnd(15) + u.target.padEnd(13) +
        cols.map(([, key, w]) => " " + String(u[key] ?? "-").padStart(w)).join(""),
    );
  }
  lines.push(
    "(RSS in MiB; `extra` = growth with the upload - growth without" +
      (uploads.some((u) => u.fileInMemory) ? " - the file itself where it stays in RAM" : "") +
      "; p99 up = of the messages sent while the upload was under way)",
  );
  return lines.join("\n");
}

/** Compares each `+upload` row with its base scenario's row for the same target. */
function uploadComparisons(rows: Row[], filesInMemory: Map<string, boolean>): UploadComparison[] {
  const out: UploadComparison[] = [];
  const round = (v: number) => Math.round(v * 100) / 100;
  for (const row of rows) {
    const base = SCENARIOS.find((s) => s.name === row.scenario)?.base;
    if (!base) continue;
    const r = row.result,
      b = rows.find((x) => x.scenario === base && x.target === row.target)
        ?.result;
    const num = (v: number | undefined) => (typeof v === "number" ? v : null);
    const fileInMemory = filesInMemory.get(row.target) ?? false;
    const bytes = num(r?.uploadBytes);
    const growth = r?.rssPeakMB !== undefined && r.rssStartMB !== undefined
      ? round(r.rssPeakMB - r.rssStartMB)
      : null;
    const baseGrowth = b?.rssPeakMB !== undefined && b.rssStartMB !== undefined
      ? round(b.rssPeakMB - b.rssStartMB)
      : null;
    const extra = growth === null || baseGrowth === null || bytes === null
      ? null
      : round(growth - baseGrowth - (fileInMemory ? bytes / 1048576 : 0));
    const baseP99 = num(b?.p99Ms), p99 = num(r?.p99Ms), uploadP99 = num(r?.uploadP99Ms);
    const ratioTo = (v: number | null) => (v !== null && baseP99 ? round(v / baseP99) : null);
    const ratio = ratioTo(p99);
    const extraChunks = extra === null ? null : Math.round(extra * 4 * 10) / 10;
    out.push({
      scenario: row.scenario,
      base,
      target: row.target,
      fileInMemory,
      status: num(r?.uploadStatus),
      bytes,
      seconds: num(r?.uploadSeconds),
      mbPerSec: num(r?.uploadMBps),
      rssBeforeMB: num(r?.uploadRssBeforeMB),
      rssPeakMB: num(r?.uploadRssPeakMB),
      rssAfterMB: num(r?.uploadRssAfterMB),
      growthMB: growth,
      baseGrowthMB: baseGrowth,
      extraMB: extra,
      extraChunks,
      baseP99Ms: baseP99,
      p99Ms: p99,
      p99Ratio: ratio,
      uploadP99Ms: uploadP99,
      uploadP99Ratio: ratioTo(uploadP99),
      latencyMet: ratio === null ? null : ratio <= UPLOAD_GOALS.p99Ratio,
      memoryMet: extraChunks === null ? null : extraChunks <= UPLOAD_GOALS.chunks,
    });
  }
  return out;
}

/** Columns of the by-kind table (`living`): header, field, width. */
const KINDS: [string, keyof Result, number][] = [
  ["sent", "sent", 6],
  ["edits", "edits", 6],
  ["reacts", "reactions", 6],
  ["msg p50", "messageP50Ms", 8],
  ["msg p99", "messageP99Ms", 8],
  ["edit p50", "editP50Ms", 8],
  ["edit p99", "editP99Ms", 8],
  ["rct p50", "reactionP50Ms", 8],
  ["rct p99", "reactionP99Ms", 8],
  ["reorder", "reordered", 7],
];

/** Latency by kind of frame (new message, edit, reaction) for the `living` rows. */
function kindTable(rows: Row[]): string {
  const head = "by kind".padEnd(9) + "target".padEnd(13) +
    KINDS.map(([h, , w]) => " " + h.padStart(w)).join("");
  const lines = [head, "-".repeat(head.length)];
  for (const row of rows) {
    lines.push(
      row.scenario.padEnd(9) + row.target.padEnd(13) +
        KINDS.map(([, key, w]) => " " + String(row.result?.[key] ?? "-").padStart(w)).join(""),
    );
  }
  return lines.join("\n");
}

function goals(rows: Row[]): Report["goals"] {
  return GOALS.map((g) => {
    const get = (target: string) => {
      const v = rows.find((r) => r.scenario === g.scenario && r.target === target)?.result?.[
        g.field
      ];
      return typeof v === "number" ? v : null;
    };
    const chat = get("chat"), relay = get("relay");
    const ratio = chat !== null && relay ? Math.round((chat / relay) * 100) / 100 : null;
    return {
      what: g.what,
      chat,
      relay,
      ratio,
      target: `${g.op} ${g.ratio}x`,
      met: ratio === null ? null : g.op === ">=" ? ratio >= g.ratio : ratio <= g.ratio,
    };
  });
}

/** Each variant goal whose rows are there. */
function variantGoals(rows: Row[]): Report["variantGoals"] {
  const get = (scenario: string, target: string, field: keyof Result) => {
    const v = rows.find((r) => r.scenario === scenario && r.target === target)?.result?.[field];
    return typeof v === "number" ? v : null;
  };
  return VARIANT_GOALS.filter((g) => rows.some((r) => r.target === g.target)).map((g) => {
    const value = get(g.scenario, g.target, g.field), chat = get(g.scenario, "chat", g.field);
    const ratio = value !== null && chat ? Math.round((value / chat) * 1000) / 1000 : null;
    return {
      what: g.what,
      variant: g.target,
      value,
      chat,
      ratio,
      target: `${g.op} ${g.ratio}x`,
      met: ratio === null ? null : g.op === ">=" ? ratio >= g.ratio : ratio <= g.ratio,
    };
  });
}

/** Runs the bench; resolves the report. */
export async function runBench(args: string[]): Promise<Report> {
  const { values } = parseArgs({
    args,
    options: {
      short: { type: "boolean", default: false },
      only: { type: "string" },
      targets: { type: "string", default: "relay,chat" },
      variants: { type: "string", default: "memory" },
      redis: { type: "string" },
      out: { type: "string", default: `${ROOT}/bench/results/latest.json` },
      "cpu-prof": { type: "string" },
      "v8-flags": { type: "string", default: V8_FLAGS },
      repeat: { type: "string", default: "1" },
    },
    strict: true,
    allowPositionals: false,
  });
  const only = values.only?.split(",").map((s) => s.trim());
  for (const o of only ?? []) {
    const scenario = SCENARIOS.find((s) => s.name === o);
    if (!scenario) {
      throw new Error(`Unknown scenario "${o}": use ${SCENARIOS.map((s) => s.name).join(", ")}`);
    }
    // An upload is measured against the same scenario without it.
    if (scenario.base && !only!.includes(scenario.base)) only!.push(scenario.base);
  }
  const wanted = values.targets.split(",").map((s) => s.trim());
  const targets: Target[] = [];
  if (wanted.includes("relay")) targets.push({ name: "relay", kind: "relay" });
  if (wanted.includes("chat")) {
    for (const v of values.variants.split(",").map((s) => s.trim())) {
      const make = VARIANTS[v];
      if (!make) {
        throw new Error(`Unknown variant "${v}": use ${Object.keys(VARIANTS).join(", ")}`);
      }
      targets.push(make({ redis: values.redis }));
    }
  }
  const repeat = Number(values.repeat);
  if (!Number.isInteger(repeat) || repeat < 1 || repeat > 9) {
    throw new Error(`Invalid --repeat "${values.repeat}": use 1 to 9`);
  }
  const pin = await canPin();
  const rows: Row[] = [];
  const dir = await Deno.makeTempDir({ prefix: "chat-bench-" });
  try {
    for (const scenario of SCENARIOS) {
      const optedOut = scenario.optIn === true || (scenario.optIn === "full" && !values.short);
      if (only ? !only.includes(scenario.name) : optedOut) continue;
      const runs = new Map<Target, Row>();
      for (let round = 0; round < repeat; round++) {
        for (const target of targets) {
          if (scenario.chatOnly && target.kind !== "chat") continue;
          const profile = values["cpu-prof"] && target.kind === "chat" && scenario.name === "fanout"
            ? values["cpu-prof"]
            : undefined;
          let row = runs.get(target);
          if (!row) {
            runs.set(target, row = { scenario: scenario.name, target: target.name, runs: [] });
          }
          if (row.error) continue;
          const spec = { ...scenario.spec, ...(values.short ? scenario.short : {}) };
          const runDir = await Deno.makeTempDir({ dir, prefix: `${scenario.name}-` });
          try {
            row.runs!.push(
              await measure(spec, target, runDir, {
                pin,
                profile: round === 0 ? profile : undefined,
                args: scenario.args,
                v8Flags: values["v8-flags"],
              }),
            );
          } catch (err) {
            row.error = (err as Error).message;
          }
          print(`  ${scenario.name} ${target.name}: ${row.error ?? "done"}`);
        }
      }
      for (const row of runs.values()) {
        if (row.runs!.length > 0) row.result = median(row.runs!);
        if (repeat === 1) delete row.runs;
        rows.push(row);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  return {
    date: new Date().toISOString(),
    machine: {
      cpu: await cpuModel(),
      cores: navigator.hardwareConcurrency,
      os: `${Deno.build.os} ${Deno.osRelease()}`,
      deno: Deno.version.deno,
      v8: Deno.version.v8,
      pinned: pin,
    },
    short: values.short,
    rows,
    uploads: uploadComparisons(
      rows,
      new Map(targets.map((t) => [t.name, t.filesInMemory ?? false])),
    ),
    goals: goals(rows),
    variantGoals: variantGoals(rows),
  };
}

if (import.meta.main && Deno.args.includes("--soak")) {
  // The soak has flags and a report of its own (bench/soak.ts); it starts one plain chat server.
  const { soakMain } = await import("./soak.ts");
  try {
    await soakMain(
      Deno.args,
      (dir, args) => startTarget({ name: "chat", kind: "chat" }, dir, false, undefined, args),
    );
  } catch (err) {
    // deno-lint-ignore no-console
    console.error(`error: ${(err as Error).message}`);
    Deno.exit(2);
  }
} else if (import.meta.main) {
  const outIndex = Deno.args.indexOf("--out");
  const out = outIndex === -1 ? `${ROOT}/bench/results/latest.json` : Deno.args[outIndex + 1];
  let report: Report;
  try {
    report = await runBench(Deno.args);
  } catch (err) {
    // deno-lint-ignore no-console
    console.error(`error: ${(err as Error).message}`);
    Deno.exit(2);
  }
  print();
  print(
    `${report.machine.cpu}, ${report.machine.cores} cores, deno ${report.machine.deno}` +
      (report.machine.pinned ? ", server and load generator pinned to separate cores" : ""),
  );
  print(table(report));
  await Deno.mkdir(out.replace(/\/[^/]*$/, ""), { recursive: true });
  await Deno.writeTextFile(out, JSON.stringify(report, null, 2) + "\n");
  print(`\nWrote ${out}`);
}
