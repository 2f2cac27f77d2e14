/**
 * `deno task chaos [--seed N] [--schedules N] [--mode memory|sqlite|redis] [--steps N]`:
 * runs seeded chaos schedules against real servers and checks every client's record
 * (tests/chaos/, docs/reliability.md). Schedules use seeds N, N+1, …; without
 * `--mode`, each seed runs in every mode. Exits 1 when any schedule broke a
 * guarantee, after printing its seed and the events around each violation.
 *
 * @module
 */
import type { Mode } from "../tests/chaos/cluster.ts";
import { runSchedule } from "../tests/chaos/schedule.ts";

const USAGE = "usage: deno task chaos [--seed N] [--schedules N] " +
  "[--mode memory|sqlite|redis] [--steps N]";

const args = flags(Deno.args);
const seed = Number(args.seed ?? 1);
const schedules = Number(args.schedules ?? 1);
const steps = Number(args.steps ?? 150);
const modes = (args.mode ? [args.mode] : ["memory", "sqlite", "redis"]) as Mode[];
if (
  !modes.every((m) => ["memory", "sqlite", "redis"].includes(m)) ||
  ![seed, schedules, steps].every(Number.isSafeInteger) || schedules < 1 || steps < 1
) stop(USAGE);

interface Total {
  runs: number;
  failed: number;
  ms: number;
  acked: number;
  faults: number;
}

const totals = new Map<Mode, Total>();
let errors = 0;
for (let k = 0; k < schedules; k++) {
  for (const mode of modes) {
    const s = seed + k;
    let r;
    try {
      r = await runSchedule({ seed: s, mode, steps });
    } catch (err) {
      // Not a verdict: the processes could not be run (say, a server that does not start).
      print(`seed ${s} ${mode}: could not run: ${(err as Error).message.split("\n")[0]}`);
      if (++errors >= 5) stop("error: 5 schedules could not be run: stopping");
      continue;
    }
    const st = r.verdict.stats;
    const acked = st.acked.send + st.acked.edit + st.acked.delete + st.acked.react;
    const t = totals.get(mode) ?? { runs: 0, failed: 0, ms: 0, acked: 0, faults: 0 };
    totals.set(mode, t);
    t.runs++;
    t.ms += r.ms;
    t.acked += acked;
    t.faults += st.faults;
    if (r.failures.length > 0) t.failed++;
    print(
      `seed ${s} ${mode}: ${r.failures.length === 0 ? "ok" : `${r.failures.length} violation(s)`}` +
        ` — ${r.nodes} node${
          r.nodes > 1 ? "s" : ""
        }; acked ${st.acked.send} sends, ${st.acked.edit} edits, ${st.acked.delete} ` +
        `deletes, ${st.acked.react} reactions (${st.ackedParts.replies} replies, ` +
        `${st.ackedParts.files} with files, ${st.ackedParts.removals} removed by an admin); ${st.refused} refused, ${st.unanswered} ` +
        `unanswered; ${st.faults} fault events, ${st.connections} connections, ${st.pages} ` +
        `pages, ${st.gaps} gaps; ${(r.ms / 1000).toFixed(1)} s`,
    );
    for (const line of r.report) print(line);
    if (r.failures.length > 0) {
      // The whole record, for a closer look than the events around each violation.
      const file = await Deno.makeTempFile({ prefix: `chaos-${mode}-${s}-`, suffix: ".json" });
      await Deno.writeTextFile(file, JSON.stringify(r.history));
      print(`  record: ${file}`);
    }
  }
}
let failed = errors;
for (const [mode, t] of totals) {
  failed += t.failed;
  print(
    `${mode}: ${t.runs - t.failed}/${t.runs} schedules passed, ${t.acked} acknowledged ` +
      `writes, ${t.faults} fault events, ${(t.ms / 1000).toFixed(0)} s`,
  );
}
Deno.exit(failed > 0 ? 1 : 0);

/** `--name value`, `--name=value` and the switches; anything else stops with the usage. */
function flags(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const m = /^--(seed|schedules|mode|steps)(?:=(.*))?$/.exec(argv[i]);
    const value = m?.[2] ?? argv[i + 1];
    if (!m || value === undefined) stop(USAGE);
    if (m[2] === undefined) i++;
    out[m[1]] = value;
  }
  return out;
}

function print(line: string): void {
  // deno-lint-ignore no-console
  console.log(line);
}

function stop(message: string): never {
  // deno-lint-ignore no-console
  console.error(message);
  Deno.exit(2);
}
