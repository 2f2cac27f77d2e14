/**
 * The write side of every connection: adaptive batching and slow-consumer
 * detection.
 *
 * When nothing is queued, a frame goes out at once. Right after a send the
 * outbox switches to batching until a flush pass (`setImmediate`: after the
 * current burst of I/O events) finds nothing left:
 * frames produced meanwhile queue per connection and leave as one text frame,
 * one JSON object per line. Queues are nodes of a trie shared by all
 * connections for the current tick, so members of a room that received the
 * same messages point to the same node and get the same string, built once.
 *
 * @module
 */
import { clearImmediate, setImmediate } from "node:timers";
import { DEFAULTS } from "../config.ts";
import type { OutboxMeter } from "../metrics/meter.ts";

/** The part of a WebSocket the outbox needs. */
export interface Socket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A connection as the outbox sees it. */
export interface Sink {
  readonly socket: Socket;
  /** Queued frames; owned by the outbox. */
  pending: Batch | null;
}

/** A sequence of frames; shared by every sink that queued the same ones. */
export class Batch {
  /** The previous frames, or `null` for the first. */
  readonly parent: Batch | null;
  /** The last frame of the sequence. */
  readonly part: string;
  /** Frames in the sequence. */
  readonly count: number;
  /** Characters in the joined text. */
  readonly size: number;
  #child: Batch | null = null;
  #children: Map<string, Batch> | null = null;
  #text: string | null = null;

  /** Use {@link Batch.root} and {@link Batch.then}. */
  private constructor(parent: Batch | null, part: string) {
    this.parent = parent;
    this.part = part;
    this.count = parent ? parent.count + 1 : 0;
    this.size = parent && parent.count > 0 ? parent.size + 1 + part.length : part.length;
  }

  /** An empty sequence, the root of a tick's trie. */
  static root(): Batch {
    return new Batch(null, "");
  }

  /** This sequence followed by `part`; the same node for every caller. */
  then(part: string): Batch {
    const c = this.#child;
    if (c !== null && c.part === part) return c;
    if (c === null && this.#children === null) {
      return (this.#child = new Batch(this, part));
    }
    this.#children ??= new Map(c ? [[c.part, c]] : []);
    let next = this.#children.get(part);
    if (!next) {
      next = new Batch(this, part);
      this.#children.set(part, next);
    }
    return next;
  }

  /** The frames joined by newlines, built once. */
  get text(): string {
    if (this.#text === null) {
      const p = this.parent;
      this.#text = p === null || p.count === 0 ? this.part : p.text + "\n" + this.part;
    }
    return this.#text;
  }
}

/** Options for {@link Outbox}. */
export interface OutboxOptions {
  /** Bytes a socket may buffer before its connection is a slow consumer. @default {1048576} */
  maxBuffered?: number;
  /** Frames per batch. @default {512} */
  maxBatchFrames?: number;
  /** Characters per batch. @default {65536} */
  maxBatchSize?: number;
  /** Runs `fn` after the current burst of events and returns a canceller; `setImmediate` by default. */
  schedule?: (fn: () => void) => () => void;
  /** Called once for a sink whose socket buffers too much. */
  onSlow?: (sink: Sink) => void;
  /** Counts the socket writes (`--metrics`); absent: nothing is counted. */
  meter?: OutboxMeter;
}

const OPEN = 1;

/** Batches frames per connection and sends them. */
export class Outbox {
  #maxBuffered: number;
  #maxFrames: number;
  #maxSize: number;
  #schedule: (fn: () => void) => () => void;
  #cancel: (() => void) | null = null;
  #onSlow: (sink: Sink) => void;
  #meter: OutboxMeter | null;
  #root = Batch.root();
  #dirty: Sink[] = [];
  #batching = false;
  #scheduled = false;
  #flushBound = () => this.#tick();

  /** Creates an outbox. */
  constructor(options: OutboxOptions = {}) {
    this.#maxBuffered = options.maxBuffered ?? DEFAULTS.maxBufferedBytes;
    this.#maxFrames = options.maxBatchFrames ?? 512;
    // A batch must leave room under the slow-consumer bound, or one batch alone trips it.
    this.#maxSize = Math.min(
      options.maxBatchSize ?? 64 * 1024,
      Math.max(1024, Math.floor(this.#maxBuffered / 4)),
    );
    this.#schedule = options.schedule ?? defaultSchedule;
    this.#onSlow = options.onSlow ?? ((s) => s.socket.close(4008, "slow consumer"));
    this.#meter = options.meter ?? null;
  }

  /**
   * Bytes a reply built from stored data (a page of history, search results,
   * a member list) may take: a quarter of the slow-consumer bound, so that a
   * reply leaves room for live traffic behind it.
   */
  get replyBytes(): number {
    return Math.floor(this.#maxBuffered / 4);
  }

  /** Bytes a socket may buffer before its connection is a slow consumer. */
  get maxBuffered(): number {
    return this.#maxBuffered;
  }

  /** Sends `text` to one sink: now when idle, else with the next batch. */
  push(sink: Sink, text: string): void {
    if (!this.#batching) {
      // Batching starts before the write: anything a write triggers (a slow
      // consumer's close, say) queues behind it instead of overtaking it.
      this.#startBatching();
      this.#write(sink, text);
    } else this.#enqueue(sink, text);
  }

  /** Sends the same `text` to every sink (except `skip`). */
  fanout(sinks: Iterable<Sink>, text: string, skip?: Sink): void {
    if (!this.#batching) {
      this.#startBatching();
      for (const s of sinks) if (s !== skip) this.#write(s, text);
    } else {
      for (const s of sinks) if (s !== skip) this.#enqueue(s, text);
    }
  }

  /** Sends everything queued now. */
  flush(): void {
    const dirty = this.#dirty;
    if (dirty.length === 0) return;
    this.#dirty = [];
    this.#root = Batch.root();
    for (const s of dirty) {
      const b = s.pending;
      if (b === null) continue;
      s.pending = null;
      this.#write(s, b.text, b.count);
    }
  }

  /** Sends what is queued for one sink now. */
  flushSink(sink: Sink): void {
    const b = sink.pending;
    if (b === null) return;
    sink.pending = null;
    this.#write(sink, b.text, b.count);
  }

  /** Drops what is queued for a sink (its connection is gone). */
  discard(sink: Sink): void {
    sink.pending = null;
  }

  #enqueue(s: Sink, text: string): void {
    const b = s.pending;
    if (b === null) {
      s.pending = this.#root.then(text);
      this.#dirty.push(s);
    } else if (
      b.count >= this.#maxFrames || b.size + 1 + text.length > this.#maxSize
    ) {
      // The batch is full: send it now and start another one.
      s.pending = null;
      if (this.#write(s, b.text, b.count)) s.pending = this.#root.then(text);
    } else s.pending = b.then(text);
  }

  /**
   * Sends `text` (`frames` frames); false when the socket is gone or was just cut off as slow.
   * A socket with nothing buffered always takes the frame, however large: the
   * slow-consumer rule is about a backlog that keeps growing, and one large
   * reply must never cut off the client that asked for it.
   */
  #write(s: Sink, text: string, frames = 1): boolean {
    const ws = s.socket;
    if (ws.readyState !== OPEN) return false;
    const buffered = ws.bufferedAmount;
    if (buffered > 0 && buffered + text.length > this.#maxBuffered) {
      s.pending = null;
      this.#onSlow(s);
      return false;
    }
    ws.send(text);
    if (this.#meter !== null) this.#meter.written(frames, text);
    return true;
  }

  #startBatching(): void {
    this.#batching = true;
    if (!this.#scheduled) {
      this.#scheduled = true;
      this.#cancel = this.#schedule(this.#flushBound);
    }
  }

  #tick(): void {
    this.#scheduled = false;
    this.#cancel = null;
    if (this.#dirty.length === 0) {
      this.#batching = false;
      return;
    }
    this.flush();
    // Stay in batching mode while the backlog lasts: the next tick decides.
    this.#scheduled = true;
    this.#cancel = this.#schedule(this.#flushBound);
  }

  /** Sends what is queued and stops the timer. */
  close(): void {
    this.flush();
    this.#cancel?.();
    this.#cancel = null;
    this.#scheduled = false;
    this.#batching = false;
  }
}

function defaultSchedule(fn: () => void): () => void {
  // setImmediate runs right after the event loop has dispatched the I/O it
  // polled: the end of the current burst of incoming frames. setTimeout(0)
  // would do too, but nested timers are clamped to 4 ms, which adds latency
  // and caps the flush rate under a backlog (docs/performance.md).
  const t = setImmediate(fn);
  return () => clearImmediate(t);
}
