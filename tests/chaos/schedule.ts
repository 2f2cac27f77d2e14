/**
 * One chaos schedule from its seed: the plan (which client does what, which
 * fault, when), running it against real processes, reading the final state
 * with fresh clients once the faults healed, and the checker's verdict.
 *
 * @module
 */
import type { ChatMessage, ServerFrame, WelcomeFrame } from "../../protocol.ts";
import { type Action, Actor, ROOMS } from "./actor.ts";
import { check, describeViolation, type Verdict, type Violation } from "./checker.ts";
import { ACCOUNTS, Deployment, FAULTS, type Mode, passwordOf, sleep } from "./cluster.ts";
import { type History, type Reading, Recorder } from "./history.ts";
import { Rng } from "./prng.ts";
import { dmKey } from "./view.ts";
import { Wire } from "./wire.ts";

/** The users of the clients. */
export const USERS = ["ann", "ben", "cat", "dan"] as const;

/** One step of a plan. */
export type Step =
  | { delay: number; kind: "act"; client: number; action: Action; seed: number }
  | { delay: number; kind: "fault"; fault: string; ms: number; seed: number };

const ACTIONS: Record<Action, number> = {
  send: 26,
  reply: 6,
  file: 4,
  dm: 12,
  edit: 12,
  delete: 5,
  react: 16,
  read: 6,
  member: 6,
  drop: 3,
  half: 3,
};

/** The steps of `seed`'s schedule in `mode`: the same on every run. */
export function plan(seed: number, mode: Mode, steps: number): Step[] {
  const rng = new Rng(seed);
  const out: Step[] = [];
  for (let i = 0; i < steps; i++) {
    const delay = rng.between(5, 50);
    if (rng.chance(0.03)) {
      out.push({
        delay,
        kind: "fault",
        fault: rng.pick(FAULTS[mode]),
        ms: rng.between(100, 1500),
        seed: rng.int(2 ** 32),
      });
    } else {
      out.push({
        delay,
        kind: "act",
        client: rng.int(USERS.length),
        action: rng.weighted(ACTIONS),
        seed: rng.int(2 ** 32),
      });
    }
  }
  return out;
}

/** The nodes of a schedule: one, or with Redis two (even seeds) or three (odd seeds). */
export function nodesFor(seed: number, mode: Mode): number {
  return mode !== "redis" ? 1 : seed % 2 === 0 ? 2 : 3;
}

/** How to run one schedule. */
export interface ScheduleOptions {
  seed: number;
  mode: Mode;
  /** Steps of the plan. @default {150} */
  steps?: number;
}

/** What one schedule did and what the checker found. */
export interface ScheduleResult {
  seed: number;
  mode: Mode;
  verdict: Verdict;
  /** The violations that fail the schedule. */
  failures: Violation[];
  /** Nodes that served clients. */
  nodes: number;
  /** Each failure with its seed and the events around it. */
  report: string[];
  ms: number;
  history: History;
}

const SETTLE_MS = 20_000;

/** Runs `options.seed`'s schedule against fresh processes and checks its record. */
export async function runSchedule(options: ScheduleOptions): Promise<ScheduleResult> {
  const { seed, mode } = options;
  const started = performance.now();
  const rec = new Recorder();
  const steps = plan(seed, mode, options.steps ?? 150);
  await using dep = await Deployment.start(mode, rec, nodesFor(seed, mode));
  const users = [...USERS];
  const admins = users.filter((u) => typeof ACCOUNTS[u] !== "string");
  const actors = users.map((u, i) =>
    new Actor(u, users.filter((p) => p !== u), i % dep.size, { dep, rec }, {
      admin: admins.includes(u),
    })
  );
  const stuck: string[] = [];
  let history: History;
  try {
    await Promise.all(actors.map((a) => withTimeout(a.connect(), 30_000, `${a.name} signs in`)));
    let fault: Promise<void> | null = null;
    for (const step of steps) {
      await sleep(step.delay);
      if (step.kind === "act") {
        await actors[step.client].act(step.action, new Rng(step.seed));
      } else if (!fault) {
        fault = dep.fault(step.fault, new Rng(step.seed), step.ms)
          .catch((err) => {
            stuck.push(`fault ${step.fault} failed: ${(err as Error).message}`);
          })
          .finally(() => fault = null);
      }
    }
    await fault;
    await dep.healed();
    const settled = await Promise.allSettled(actors.map((a) => a.settle(SETTLE_MS)));
    for (const s of settled) if (s.status === "rejected") stuck.push((s.reason as Error).message);
    const finalReads: Record<string, Record<string, number>> = {};
    for (const a of actors) {
      try {
        finalReads[a.name] = await a.readAll(SETTLE_MS);
      } catch (err) {
        stuck.push((err as Error).message);
      }
    }
    const readings: Reading[] = [];
    const final: Record<string, ChatMessage[]> = {};
    for (const [i, a] of actors.entries()) {
      const r = await read(
        dep,
        (i + 1) % dep.size,
        { type: "auth", token: a.token },
        a.name,
        users,
      );
      readings.push(r);
      for (const [conv, msgs] of Object.entries(r.convs)) {
        if (conv.startsWith("@") && !(conv in final)) final[conv] = msgs;
      }
    }
    const audit = await read(
      dep,
      0,
      { type: "auth", username: "zaudit", password: passwordOf("zaudit") },
      "zaudit",
      [],
      true,
    );
    for (const [conv, msgs] of Object.entries(audit.convs)) final[conv] = msgs;
    const files = await downloads(dep, final);
    history = {
      seed,
      mode,
      users,
      entries: rec.entries,
      final,
      readings,
      admins,
      finalReads,
      files,
    };
  } finally {
    await Promise.all(actors.map((a) => a.stop()));
  }
  const verdict = check(history);
  for (const s of stuck) verdict.violations.push({ rule: "stuck", message: s });
  for (const a of actors) {
    for (const ref of a.unanswered()) {
      const at = history.entries.findLast((e) =>
        e.kind === "out" && e.client === a.name && e.frame.ref === ref
      )?.i;
      verdict.violations.push({
        rule: "stuck",
        message: `${a.name}'s ${ref} was never answered on an open connection`,
        at,
        client: a.name,
      });
    }
  }
  const failures = verdict.violations;
  return {
    seed,
    mode,
    verdict,
    failures,
    nodes: dep.size,
    report: failures.map((v) => describeViolation(history, v)),
    ms: Math.round(performance.now() - started),
    history,
  };
}

/**
 * A fresh connection's view: its welcome and every message of its rooms and
 * DMs (the auditor joins every room first and has no DMs).
 */
async function read(
  dep: Deployment,
  node: number,
  auth: Record<string, unknown>,
  user: string,
  users: string[],
  audit = false,
): Promise<Reading> {
  const port = dep.port(node);
  if (port === null) throw new Error(`Node ${node} is down at the end`);
  const wire = await Wire.connect(port, 5_000);
  const inbox: ServerFrame[] = [];
  let wake = () => {};
  wire.onText = (text) => {
    for (const line of text.split("\n")) if (line) inbox.push(JSON.parse(line));
    wake();
  };
  wire.onClose = () => wake();
  const next = async <T extends ServerFrame>(test: (f: ServerFrame) => boolean): Promise<T> => {
    const deadline = Date.now() + 15_000;
    while (true) {
      const i = inbox.findIndex(test);
      if (i !== -1) return inbox.splice(i, 1)[0] as T;
      if (wire.closed || Date.now() > deadline) {
        throw new Error(
          `The final reader of ${user} got no answer: ${JSON.stringify(inbox).slice(0, 300)}`,
        );
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, 100);
        wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  };
  try {
    wire.send(JSON.stringify(auth));
    const welcome = await next<WelcomeFrame>((f) => f.type === "welcome" || f.type === "error");
    if (welcome.type !== "welcome") throw new Error(`The final reader of ${user} was refused`);
    const convs: Record<string, ChatMessage[]> = {};
    const rooms = audit ? [...ROOMS] : welcome.rooms;
    for (const room of rooms) {
      if (audit) {
        wire.send(JSON.stringify({ type: "join", room }));
        await next((f) => f.type === "joined" && f.room === room);
      }
      convs[`#${room}`] = await everything(wire, next, { room });
    }
    for (const peer of users.filter((u) => u !== user)) {
      convs[dmKey(user, peer)] = await everything(wire, next, { to: peer });
    }
    return { user, welcome, convs };
  } finally {
    wire.drop("reader done");
    await wire.done;
  }
}

/**
 * Downloads every file of the final state through the link its reader was
 * given, from the last node (another than most uploads went to, with Redis).
 */
async function downloads(
  dep: Deployment,
  final: Record<string, ChatMessage[]>,
): Promise<Record<string, string | number>> {
  const out: Record<string, string | number> = {};
  const port = dep.port(dep.size - 1);
  for (const msgs of Object.values(final)) {
    for (const m of msgs) {
      for (const f of m.files ?? []) {
        const res = await fetch(`http://127.0.0.1:${port}${f.url}`, {
          signal: AbortSignal.timeout(10_000),
        });
        out[f.id] = res.status === 200 ? await res.text() : res.status;
        if (res.status !== 200) await res.body?.cancel();
      }
    }
  }
  return out;
}

/** Every message of a conversation, in its current state, paging `since` from 0. */
async function everything(
  wire: Wire,
  next: (test: (f: ServerFrame) => boolean) => Promise<ServerFrame>,
  target: { room?: string; to?: string },
): Promise<ChatMessage[]> {
  const byId = new Map<number, ChatMessage>();
  let since = 0;
  for (let page = 0; page < 1000; page++) {
    wire.send(JSON.stringify({ type: "history", ...target, since, limit: 200 }));
    const f = await next((f) =>
      (f.type === "history" && f.room === target.room && f.to === target.to) || f.type === "error"
    );
    if (f.type !== "history") {
      throw new Error(`History of ${JSON.stringify(target)} refused: ${JSON.stringify(f)}`);
    }
    for (const m of f.messages) {
      const cur = byId.get(m.id);
      if (!cur || cur.seq < m.seq) byId.set(m.id, m);
    }
    if (!f.more) break;
    since = f.seq;
  }
  return [...byId.values()].sort((a, b) => a.id - b.id);
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        t = setTimeout(() => reject(new Error(`Timed out: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(t);
  }
}
