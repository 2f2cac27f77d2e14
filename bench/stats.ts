/**
 * Measuring helpers shared by the load generator and the runner: a
 * fixed-memory latency histogram and process CPU/RSS readings from /proc.
 *
 * @module
 */

/** Sub-buckets per power of two: values are kept to within about 3 %. */
const SUB = 32;
/** Powers of two covered: 1 µs up to about 70 minutes. */
const OCTAVES = 32;

/**
 * A log-linear histogram of durations in microseconds. Recording is a few
 * arithmetic operations and one array increment, so a load generator can
 * record every delivery.
 */
export class Histogram {
  #counts = new Float64Array(SUB * OCTAVES);
  #count = 0;
  #max = 0;

  /** Number of values recorded. */
  get count(): number {
    return this.#count;
  }

  /** Largest value recorded, in microseconds. */
  get max(): number {
    return this.#max;
  }

  /** Records one duration in microseconds (negative counts as 0). */
  record(us: number): void {
    const v = us < 1 ? 1 : us;
    if (v > this.#max) this.#max = v;
    this.#count++;
    const octave = Math.floor(Math.log2(v));
    const base = 2 ** octave;
    const sub = Math.floor(((v - base) / base) * SUB);
    const i = Math.min(octave * SUB + sub, this.#counts.length - 1);
    this.#counts[i]++;
  }

  /** The value below which `q` (0..1) of the recorded values lie, in microseconds. */
  quantile(q: number): number {
    if (this.#count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.#count));
    let seen = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      seen += this.#counts[i];
      if (seen >= rank) {
        const octave = Math.floor(i / SUB), sub = i % SUB;
        const base = 2 ** octave;
        // Upper edge of the bucket, but never above the real maximum.
        return Math.min(base + (base * (sub + 1)) / SUB, this.#max);
      }
    }
    return this.#max;
  }
}

/** CPU seconds (user + system) a process has used, or null where /proc is missing. */
export function cpuSeconds(pid: number | "self"): number | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of the whole line (11 and 12 here, 0-based).
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/** Linux reports CPU time in clock ticks, 100 per second on every common build. */
const CLOCK_TICKS = 100;

/** Resident memory of a process in bytes, or null where /proc is missing. */
export function rssBytes(pid: number | "self"): number | null {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Share of one core used between two CPU readings taken `seconds` apart (1 = a full core). */
export function cpuShare(
  before: number | null,
  after: number | null,
  seconds: number,
): number | null {
  if (before === null || after === null || seconds <= 0) return null;
  return Math.round(((after - before) / seconds) * 100) / 100;
}
