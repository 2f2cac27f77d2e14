/**
 * Summarises a V8 `.cpuprofile` (from `deno run --cpu-prof`, which
 * `deno task bench --cpu-prof DIR` passes to the chat server): self time by
 * function, and total time of the server's own functions, as shares of the
 * time the main thread was busy (idle samples left out).
 *
 * Usage: `deno run --allow-read bench/profile.ts FILE.cpuprofile [TOP]`
 *
 * @module
 */

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface Profile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** One function's share of the samples. */
export interface Entry {
  name: string;
  self: number;
  total: number;
}

function label(n: Node): string {
  const { functionName, url, lineNumber } = n.callFrame;
  const file = url.replace(/^.*\/(server|bench|ext|node)\//, "$1/").replace(/^file:\/\//, "");
  return `${functionName || "(anonymous)"}${file ? ` ${file}:${lineNumber + 1}` : ""}`;
}

/** Self and total time per function, as fractions of the busy samples (all but idle). */
export function summarise(profile: Profile): Entry[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const hits = new Map<number, number>();
  if (profile.samples) { for (const s of profile.samples) hits.set(s, (hits.get(s) ?? 0) + 1); }
  else for (const n of profile.nodes) hits.set(n.id, n.hitCount ?? 0);
  let all = 0;
  const self = new Map<string, number>(), total = new Map<string, number>();
  for (const [id, count] of hits) {
    const node = byId.get(id)!;
    const name = label(node);
    if (name === "(idle)") continue;
    all += count;
    self.set(name, (self.get(name) ?? 0) + count);
    // Count each function once per stack, however deep it recurses.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const l = label(byId.get(cur)!);
      if (seen.has(l)) continue;
      seen.add(l);
      total.set(l, (total.get(l) ?? 0) + count);
    }
  }
  return [...total.keys()].map((name) => ({
    name,
    self: (self.get(name) ?? 0) / all,
    total: (total.get(name) ?? 0) / all,
  }));
}

if (import.meta.main) {
  const [file, top = "25"] = Deno.args;
  if (!file) {
    // deno-lint-ignore no-console
    console.error("Usage: bench/profile.ts FILE.cpuprofile [TOP]");
    Deno.exit(2);
  }
  const entries = summarise(JSON.parse(await Deno.readTextFile(file)));
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`.padStart(6);
  const show = (title: string, list: Entry[]) => {
    // deno-lint-ignore no-console
    console.log(`\n${title}\n  self  total  function`);
    for (const e of list.slice(0, Number(top))) {
      // deno-lint-ignore no-console
      console.log(`${pct(e.self)} ${pct(e.total)}  ${e.name}`);
    }
  };
  show("By self time:", [...entries].sort((a, b) => b.self - a.self));
  show(
    "Server functions by total time:",
    entries.filter((e) => /server\//.test(e.name)).sort((a, b) => b.total - a.total),
  );
}
