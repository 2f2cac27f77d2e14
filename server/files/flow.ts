/**
 * A small streaming engine for the image strippers: each format is written
 * as a generator that asks for bytes ({@link read}), lets them through
 * ({@link pass}), drops them ({@link skip}) or adds its own ({@link emit}),
 * and the engine feeds it from whatever chunks the upload delivers.
 *
 * Only header bytes are ever held (a read is at most {@link MAX_READ}
 * bytes); image data moves as slices of the input chunks, never byte by
 * byte in JavaScript.
 *
 * @module
 */

/** The largest read a format may ask for (a whole JPEG segment fits). */
export const MAX_READ = 65536;

/**
 * The most steps (reads, passes, skips, emits) a file may take. Each costs
 * about a microsecond of JavaScript, so a file made of millions of empty
 * chunks or segments would cost seconds of the server's one thread; real
 * pictures take tens to a few thousand (a long animated GIF, tens of
 * thousands).
 */
export const MAX_STEPS = 200_000;

/** Thrown when a file that starts like an image cannot be parsed up to its image data. */
export class DamagedImage extends Error {
  /** Builds the error; `detail` says what is wrong, for the user. */
  constructor(format: string, detail: string) {
    super(`Cannot read the ${format} image: ${detail}`);
    this.name = "DamagedImage";
  }
}

/** What a format learned about its image. */
export interface ImageInfo {
  /** Displayed width in pixels. */
  width?: number;
  /** Displayed height in pixels. */
  height?: number;
}

const READ = 0;
const PASS = 1;
const SKIP = 2;
const EMIT = 3;
const SCAN = 4;
const BLOCKS = 5;

/** One request of a format generator to the engine. */
export type Op =
  | { op: typeof READ; n: number }
  | { op: typeof PASS | typeof SKIP; n: number }
  | { op: typeof EMIT; bytes: Uint8Array }
  | { op: typeof SCAN }
  | { op: typeof BLOCKS; keep: boolean };

/**
 * A format's parser. `yield read(n)` resumes with exactly `n` bytes, or
 * fewer when the input ended first (the parser decides whether that is
 * damage); every other op resumes with `undefined`. Returning ends the
 * image: whatever input follows is dropped.
 */
export type Parser = Generator<Op, ImageInfo, Uint8Array | undefined>;

/**
 * Asks for the next `n` bytes; the view is valid until the next yield.
 * Parsers bound `n` by {@link MAX_READ} themselves (with their own
 * {@link DamagedImage}); a larger `n` still reaches {@link Flow}, which
 * refuses it as damage rather than holding it.
 */
export function read(n: number): Op {
  return { op: READ, n };
}

/** Lets the next `n` bytes through unchanged. */
export function pass(n: number): Op {
  return { op: PASS, n };
}

/** Drops the next `n` bytes. */
export function skip(n: number): Op {
  return { op: SKIP, n };
}

/** Adds bytes of the parser's own to the output (copied). */
export function emit(bytes: Uint8Array): Op {
  return { op: EMIT, bytes };
}

/**
 * JPEG entropy-coded data: lets everything through up to the next marker
 * that is not part of it (anything but FF 00 and RST0–7, FF D0–D7), then
 * resumes with that marker's two bytes (fill FFs before it dropped), or
 * with `undefined` if the input ends first.
 */
export function scanData(): Op {
  return { op: SCAN };
}

/** GIF data sub-blocks up to and including the 0 terminator: let through or dropped. */
export function subBlocks(keep: boolean): Op {
  return { op: BLOCKS, keep };
}

/** Runs one format parser over pushed chunks. */
export class Flow {
  #gen: Parser;
  #op: Op | undefined;
  /** Bytes still to pass/skip, or the read's size. */
  #left = 0;
  /** A read spanning chunks collects here. */
  #pend: Uint8Array | undefined;
  #pendLen = 0;
  /** SCAN: an FF was seen last and is held back. BLOCKS: bytes left in the current sub-block. */
  #state = 0;
  #out: Uint8Array[] = [];
  #info: ImageInfo | undefined;
  #format: string;
  /** Steps taken so far (see {@link MAX_STEPS}). */
  #steps = 0;

  /** Starts `gen`; `format` names the image in errors. */
  constructor(format: string, gen: Parser) {
    this.#format = format;
    this.#gen = gen;
    this.#resume(undefined);
  }

  /** Whether the parser has finished (the rest of the input is dropped). */
  get done(): boolean {
    return this.#info !== undefined;
  }

  /** The parser's result, once done. */
  get info(): ImageInfo | undefined {
    return this.#info;
  }

  /**
   * Feeds bytes; returns the output produced, partly as views into `chunk`:
   * use them before `chunk` is reused. Throws {@link DamagedImage}.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    let pos = 0;
    const len = chunk.length;
    while (pos < len && this.#op) {
      const op = this.#op;
      switch (op.op) {
        case READ: {
          const n = this.#left;
          if (!this.#pend && len - pos >= n) {
            const view = chunk.subarray(pos, pos + n);
            pos += n;
            this.#resume(view);
            break;
          }
          this.#pend ??= new Uint8Array(n);
          const take = Math.min(n - this.#pendLen, len - pos);
          this.#pend.set(chunk.subarray(pos, pos + take), this.#pendLen);
          this.#pendLen += take;
          pos += take;
          if (this.#pendLen === n) {
            const got = this.#pend;
            this.#pend = undefined;
            this.#pendLen = 0;
            this.#resume(got);
          }
          break;
        }
        case PASS:
        case SKIP: {
          const take = Math.min(this.#left, len - pos);
          if (op.op === PASS) this.#out.push(chunk.subarray(pos, pos + take));
          pos += take;
          this.#left -= take;
          if (this.#left === 0) this.#resume(undefined);
          break;
        }
        case SCAN:
          pos = this.#scan(chunk, pos);
          break;
        case BLOCKS:
          pos = this.#blocks(chunk, pos, op.keep);
          break;
      }
    }
    return this.#take();
  }

  /** Ends the input; returns the last output and the image's info. Throws {@link DamagedImage}. */
  end(): { out: Uint8Array[]; info: ImageInfo } {
    // A read waiting at the end gets what there is; the parser judges.
    let guard = 0;
    while (this.#op) {
      const op = this.#op;
      if (op.op === READ) {
        if (guard++ > 0) throw this.#damaged("the file ends too early");
        const got = this.#pend ? this.#pend.subarray(0, this.#pendLen) : new Uint8Array(0);
        this.#pend = undefined;
        this.#pendLen = 0;
        this.#resume(got);
      } else if (op.op === SCAN) {
        // A JPEG cut after its image data still shows what it has.
        this.#resume(undefined);
      } else {
        throw this.#damaged("the file ends too early");
      }
    }
    return { out: this.#take(), info: this.#info ?? {} };
  }

  #damaged(detail: string): DamagedImage {
    return new DamagedImage(this.#format, detail);
  }

  #take(): Uint8Array[] {
    const out = this.#out;
    this.#out = [];
    return out;
  }

  #resume(value: Uint8Array | undefined): void {
    for (;;) {
      const r = this.#gen.next(value);
      if (r.done) {
        this.#op = undefined;
        this.#info = r.value;
        return;
      }
      const op = r.value;
      value = undefined;
      if (++this.#steps > MAX_STEPS) {
        this.#op = undefined;
        throw this.#damaged("it has too many parts to be a picture");
      }
      if (op.op === EMIT) {
        this.#out.push(op.bytes.slice());
        continue;
      }
      if ((op.op === PASS || op.op === SKIP || op.op === READ) && op.n === 0) {
        if (op.op === READ) value = new Uint8Array(0);
        continue;
      }
      if (op.op === READ && op.n > MAX_READ) {
        // A length from the file asks for more than a header may be.
        this.#op = undefined;
        throw this.#damaged("a header is too large");
      }
      this.#op = op;
      if (op.op === READ || op.op === PASS || op.op === SKIP) this.#left = op.n;
      this.#state = 0;
      return;
    }
  }

  /**
   * SCAN: finds the next marker with native indexOf (one JS step per FF
   * byte, not per byte). An FF at the end of a chunk is held back until
   * the next byte tells whether it starts a marker.
   */
  #scan(chunk: Uint8Array, pos: number): number {
    const len = chunk.length;
    let from = pos; // the first byte not yet let through
    let i = pos; // where to look for the next FF
    for (;;) {
      if (this.#state === 1) {
        // The byte after a held FF: fill FFs go, FF 00 and RSTn are data.
        while (i < len && chunk[i] === 0xff) i++;
        if (i === len) return len;
        const b = chunk[i];
        this.#state = 0;
        if (b !== 0x00 && (b < 0xd0 || b > 0xd7)) {
          this.#resume(Uint8Array.of(0xff, b));
          return i + 1;
        }
        this.#out.push(Uint8Array.of(0xff));
        from = i;
        i += 1;
      }
      const j = chunk.indexOf(0xff, i);
      if (j < 0) {
        if (from < len) this.#out.push(chunk.subarray(from));
        return len;
      }
      const b = j + 1 < len ? chunk[j + 1] : -1;
      if (b === 0x00 || (b >= 0xd0 && b <= 0xd7)) {
        i = j + 2;
        continue;
      }
      // A marker (or the end of the chunk) after this FF: hold the FF back.
      if (j > from) this.#out.push(chunk.subarray(from, j));
      this.#state = 1;
      i = j + 1;
    }
  }

  /** BLOCKS: walks sub-block length bytes (one JS step per sub-block). */
  #blocks(chunk: Uint8Array, pos: number, keep: boolean): number {
    const len = chunk.length;
    const start = pos;
    let finished = false;
    while (pos < len) {
      if (this.#state > 0) {
        const take = Math.min(this.#state, len - pos);
        pos += take;
        this.#state -= take;
        continue;
      }
      const size = chunk[pos++];
      if (size === 0) {
        finished = true;
        break;
      }
      this.#state = size;
    }
    if (keep && pos > start) this.#out.push(chunk.subarray(start, pos));
    if (finished) this.#resume(undefined);
    return pos;
  }
}
