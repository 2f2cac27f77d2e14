import assert from "node:assert/strict";
import type { Report } from "../bench/run.ts";
import type { SoakReport } from "../bench/soak.ts";

const SCENARIOS = [
  "fanout",
  "fanout+upload",
  "rate50",
  "rate50+upload",
  "rate200",
  "living",
  "rooms",
  "idle5k",
  "idle15k",
  "signin5k",
  // Opt-in at full size, but --short runs them (small) so they cannot rot.
  "signin50k",
  "c100k",
];
const TARGETS = ["relay", "chat"];
/** Scenarios only the chat runs (the relay has no uploads). */
const CHAT_ONLY = ["fanout+upload", "rate50+upload"];
/** Fields of a scenario run with an upload, beside those of the scenario itself. */
const UPLOAD_FIELDS = [
  "rssStartMB",
  "rssPeakMB",
  "uploadStatus",
  "uploadBytes",
  "uploadSeconds",
  "uploadMBps",
  "uploadRssBeforeMB",
  "uploadRssPeakMB",
  "uploadRssAfterMB",
  "uploadDeliveries",
];

/** Fields of every scenario that measures connecting. */
const CONNECTING = [
  "connections",
  "connsPerSec",
  "rssPerConnKB",
  "rssSettledPerConnKB",
  "rssMB",
  "inPerConnKB",
];

/** Fields every row of a scenario must have, as finite non-negative numbers. */
const FIELDS: Record<string, string[]> = {
  fanout: ["deliveries", "deliveriesPerSec", "p50Ms", "p99Ms", "maxMs", "seconds"],
  rate50: ["deliveries", "deliveriesPerSec", "missing", "p50Ms", "p99Ms", "maxMs"],
  rate200: ["deliveries", "deliveriesPerSec", "missing", "p50Ms", "p99Ms", "maxMs"],
  living: [
    "deliveries",
    "deliveriesPerSec",
    "missing",
    "p50Ms",
    "p99Ms",
    "maxMs",
    "edits",
    "reactions",
    "messageP50Ms",
    "messageP99Ms",
    "editP50Ms",
    "editP99Ms",
    "reactionP50Ms",
    "reactionP99Ms",
    "reordered",
  ],
  rooms: ["deliveries", "deliveriesPerSec", "missing", "p50Ms", "p99Ms", "maxMs"],
  idle5k: CONNECTING,
  idle15k: CONNECTING,
  signin5k: [...CONNECTING, "dropped"],
  signin50k: [...CONNECTING, "dropped", "sourceAddresses"],
  c100k: [
    ...CONNECTING,
    "dropped",
    "sourceAddresses",
    "presenceFrames",
    "deliveries",
    "deliveriesPerSec",
    "missing",
  ],
};
/** Connections and source addresses of the short sizes (bench/run.ts), as the kernel saw them. */
const SHORT_SIZES: Record<string, { connections: number; sourceAddresses?: number }> = {
  signin5k: { connections: 200 },
  signin50k: { connections: 300, sourceAddresses: 2 },
  c100k: { connections: 300, sourceAddresses: 3 },
};
FIELDS["fanout+upload"] = [...FIELDS.fanout, ...UPLOAD_FIELDS];
FIELDS["rate50+upload"] = [...FIELDS.rate50, ...UPLOAD_FIELDS];

// The bench's short mode, exactly as `deno task bench --short` runs it, so the
// tooling cannot rot. Numbers are not asserted: this machine is shared.
Deno.test("deno task bench --short completes and reports every scenario for both servers", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-bench-test-" });
  try {
    const out = `${dir}/latest.json`;
    const task = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)))
      .tasks.bench as string;
    const args = task.replace(/^deno /, "").split(" ");
    const res = await new Deno.Command(Deno.execPath(), {
      args: [...args, "--short", "--out", out],
      cwd: new URL("..", import.meta.url).pathname,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(res.stdout);
    const stderr = new TextDecoder().decode(res.stderr);
    assert.equal(res.code, 0, `bench failed:\n${stdout}\n${stderr}`);
    assert.match(stdout, /^scenario +target +deliv\/s/m, "prints the table");
    assert.match(stdout, /fan-out deliveries\/s: chat\/relay = /);
    assert.match(stdout, /^by kind +target +sent +edits +reacts/m, "prints latency by kind");
    assert.match(stdout, /^upload +target +status +s +MB\/s +RSS before/m, "prints the uploads");
    assert.match(stdout, /p99 with a 25 MB upload \(fanout, chat\): with\/without = /);

    const report = JSON.parse(await Deno.readTextFile(out)) as Report;
    assert.equal(report.short, true);
    assert.ok(!Number.isNaN(Date.parse(report.date)));
    assert.equal(report.machine.cores, navigator.hardwareConcurrency);
    assert.equal(report.machine.deno, Deno.version.deno);
    assert.deepEqual(
      report.rows.map((r) => `${r.scenario}/${r.target}`),
      SCENARIOS.flatMap((s) =>
        TARGETS.filter((t) => t === "chat" || !CHAT_ONLY.includes(s)).map((t) => `${s}/${t}`)
      ),
    );
    for (const row of report.rows) {
      const where = `${row.scenario}/${row.target}`;
      assert.equal(row.error, undefined, `${where}: ${row.error}`);
      const result = row.result as unknown as Record<string, unknown>;
      for (const field of FIELDS[row.scenario]) {
        const v = result[field];
        // RSS can shrink between readings of a short run: only per-connection RSS may be negative.
        const min = field.startsWith("rss") && field.endsWith("PerConnKB") ? -Infinity : 0;
        assert.ok(
          typeof v === "number" && Number.isFinite(v) && v >= min,
          `${where}.${field} = ${v}`,
        );
      }
      if ("missing" in result) assert.equal(result.missing, 0, `${where}: deliveries lost`);
      // The server's default --max-buffered dropped no slow consumer.
      if ("dropped" in result) assert.equal(result.dropped, 0, `${where}: connections dropped`);
      const size = SHORT_SIZES[row.scenario];
      if (size) {
        assert.equal(result.connections, size.connections, where);
        // The connections really came from that many loopback addresses.
        assert.equal(result.sourceAddresses, size.sourceAddresses, where);
      }
      if (row.scenario === "c100k" && row.target === "chat") {
        assert.ok((result.presenceFrames as number) > 0, `${where}: no presence frame`);
      }
      if ("deliveries" in result) assert.ok((result.deliveries as number) > 0, where);
      if (CHAT_ONLY.includes(row.scenario)) {
        // The 25 MB upload (the server's default --max-upload) was stored while the traffic ran.
        assert.equal(result.uploadStatus, 201, `${where}: upload refused`);
        assert.equal(result.uploadBytes, 25_000_000, where);
      }
      if (row.scenario === "living") {
        // Both kinds of change really went out, and every receiver saw them in the order sent.
        assert.ok((result.edits as number) > 0 && (result.reactions as number) > 0, where);
        assert.equal(result.reordered, 0, `${where}: frames seen out of the order sent`);
      }
      assert.ok(
        result.serverCpu === null ||
          (typeof result.serverCpu === "number" && result.serverCpu >= 0),
      );
    }
    assert.deepEqual(report.goals.map((g) => g.what), [
      "fan-out deliveries/s",
      "p99 at 50 msg/s",
      "p99 at 50 frames/s, a quarter edits and reactions",
      "RSS per idle connection",
      "RSS per connection, 5,000 first-time sign-ins",
      "connections/s, 5,000 first-time sign-ins",
      "RSS per connection, 50,000 first-time sign-ins",
      "connections/s, 50,000 first-time sign-ins",
    ]);
    // Each upload run beside the same scenario without it, for the chat.
    assert.deepEqual(
      report.uploads.map((u) => `${u.scenario}/${u.base}/${u.target}`),
      ["fanout+upload/fanout/chat", "rate50+upload/rate50/chat"],
    );
    for (const u of report.uploads) {
      const where = u.scenario;
      assert.equal(u.status, 201, where);
      assert.equal(u.fileInMemory, true, `${where}: the default store keeps files in memory`);
      for (
        const key of [
          "seconds",
          "mbPerSec",
          "rssBeforeMB",
          "rssPeakMB",
          "rssAfterMB",
          "baseP99Ms",
          "p99Ms",
          "p99Ratio",
        ] as const
      ) {
        const v = u[key];
        assert.ok(typeof v === "number" && Number.isFinite(v) && v >= 0, `${where}.${key} = ${v}`);
      }
      // A p99 during the upload needs messages sent while it ran (nearly always, even short).
      if (u.uploadP99Ms !== null) assert.ok(u.uploadP99Ratio !== null, where);
      // Growths are differences of RSS readings: any sign, but numbers.
      for (const key of ["growthMB", "baseGrowthMB", "extraMB", "extraChunks"] as const) {
        assert.ok(Number.isFinite(u[key]), `${where}.${key} = ${u[key]}`);
      }
      assert.equal(typeof u.latencyMet, "boolean", where);
      assert.equal(typeof u.memoryMet, "boolean", where);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// The soak's tooling, exactly as `deno task bench --soak` runs it but for a few
// seconds with few clients: the run ends by itself and the report has its shape.
// Memory numbers are not asserted (a few seconds are all warm-up and GC).
Deno.test("deno task bench --soak ends by itself and reports samples, slopes and a verdict", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-soak-test-" });
  try {
    const out = `${dir}/soak.json`;
    const task = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)))
      .tasks.bench as string;
    const args = task.replace(/^deno /, "").split(" ");
    const started = performance.now();
    const res = await new Deno.Command(Deno.execPath(), {
      args: [...args, "--soak", "6s", "--clients", "10", "--out", out],
      cwd: new URL("..", import.meta.url).pathname,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const seconds = (performance.now() - started) / 1000;
    const stdout = new TextDecoder().decode(res.stdout);
    const stderr = new TextDecoder().decode(res.stderr);
    assert.equal(res.code, 0, `soak failed:\n${stdout}\n${stderr}`);
    assert.ok(seconds < 30, `the soak ran ${seconds}s for 6s of traffic`);
    assert.match(stdout, /^ +t s +RSS MiB +heap MiB/m, "prints the table");
    assert.match(stdout, /^RSS : .* MiB\/min .*: (flat|growing|shrinking)$/m);

    const report = JSON.parse(await Deno.readTextFile(out)) as SoakReport;
    assert.equal(report.seconds, 6);
    assert.equal(report.warmupSeconds, 1.2);
    assert.equal(report.clients, 10);
    assert.equal(report.heapSource, "metrics");
    // A reading at the start and one a second after (samples every second on a short run).
    assert.ok(report.samples.length >= 5, `${report.samples.length} samples`);
    assert.equal(report.samples[0].t, 0);
    assert.ok(report.samples.at(-1)!.t >= 6);
    for (const s of report.samples) {
      assert.ok(typeof s.rssMB === "number" && s.rssMB > 0, `rssMB = ${s.rssMB}`);
      assert.ok(typeof s.heapUsedMB === "number" && s.heapUsedMB > 0);
    }
    for (const fit of [report.rss!, report.heap!]) {
      for (
        const key of [
          "slopeMBPerMin",
          "floorSlopeMBPerMin",
          "startMB",
          "endMB",
          "thresholdMBPerMin",
        ] as const
      ) {
        assert.ok(Number.isFinite(fit[key]), `${key} = ${fit[key]}`);
      }
      assert.ok(["flat", "growing", "shrinking"].includes(fit.verdict));
    }
    assert.equal(report.verdict, report.rss!.verdict);
    assert.ok(report.traffic.messages > 0 && report.traffic.edits + report.traffic.reactions > 0);
    assert.ok(report.traffic.stalledConnects >= 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
