/**
 * What `--metrics` adds to each delivery, measured in one process so that a
 * busy machine cannot hide it: the outbox fans messages out to 500 sockets
 * that discard what they are sent, with the metrics hooks and without,
 * alternating, and the fastest round of each is compared. The sockets cost
 * nothing here, so the difference is the whole cost of counting; against a
 * real delivery (a `ws.send`, several µs: see the fan-out scenario of
 * `bench/run.ts`) it is smaller still.
 *
 * `deno run bench/metrics_overhead.ts [--short]`
 *
 * @module
 */
import { Outbox, type Sink } from "../server/hub/outbox.ts";
import { ChatMetrics } from "../server/metrics/chat.ts";

/** Nanoseconds per delivery, without and with the metrics hooks, in two batching modes. */
export interface Overhead {
  mode: string;
  plainNs: number;
  meteredNs: number;
  /** Extra time per delivery, in ns and as a share of the plain cost. */
  extraNs: number;
  extraShare: number;
}

const RECEIVERS = 500;

/** A socket that takes every frame and buffers nothing. */
function sink(): Sink {
  return {
    socket: { readyState: 1, bufferedAmount: 0, send() {}, close() {} },
    pending: null,
  };
}

/**
 * One round: `messages` messages to every receiver, either queued and
 * flushed as one batch per receiver (`batched`), or each written at once.
 * Resolves the ns per delivery.
 */
function round(metered: boolean, batched: boolean, messages: number): number {
  const metrics = metered ? new ChatMetrics({ version: "bench" }) : null;
  // The flush is driven here: the scheduled one never runs.
  const outbox = new Outbox({ meter: metrics?.outbox, schedule: () => () => {} });
  const sinks = Array.from({ length: RECEIVERS }, sink);
  const texts = Array.from(
    { length: messages },
    (_, i) => `{"type":"message","room":"general","id":${i},"from":"alice","text":"hello ${i}"}`,
  );
  const hub = metrics?.hub;
  const start = performance.now();
  for (let i = 0; i < messages; i++) {
    hub?.frameIn("send");
    hub?.message(RECEIVERS);
    outbox.fanout(sinks, texts[i]);
    if (!batched) outbox.close();
  }
  outbox.close();
  return ((performance.now() - start) * 1e6) / (messages * RECEIVERS);
}

/** Runs both modes, alternating plain and metered rounds; the fastest of each counts. */
export function measureOverhead(rounds: number, messages: number): Overhead[] {
  const out: Overhead[] = [];
  for (const batched of [false, true]) {
    let plain = Infinity, metered = Infinity;
    for (let r = 0; r < rounds; r++) {
      plain = Math.min(plain, round(false, batched, messages));
      metered = Math.min(metered, round(true, batched, messages));
    }
    out.push({
      mode: batched ? "batched (100 per write)" : "one frame per write",
      plainNs: Math.round(plain * 10) / 10,
      meteredNs: Math.round(metered * 10) / 10,
      extraNs: Math.round((metered - plain) * 10) / 10,
      extraShare: Math.round(((metered - plain) / plain) * 1000) / 1000,
    });
  }
  return out;
}

if (import.meta.main) {
  const short = Deno.args.includes("--short");
  const results = measureOverhead(short ? 5 : 30, 100);
  for (const r of results) {
    // deno-lint-ignore no-console
    console.log(
      `${r.mode.padEnd(24)} plain ${r.plainNs} ns/delivery, with metrics ${r.meteredNs} ns ` +
        `(+${r.extraNs} ns, ${(r.extraShare * 100).toFixed(1)} %)`,
    );
  }
}
