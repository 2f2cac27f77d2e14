/**
 * A set of names kept in JS string order (`<`, UTF-16 code units, as
 * `Array.prototype.sort()` orders them), for the memory store's room members:
 * a page after a name costs a binary search plus the page, however many
 * names there are.
 *
 * @module
 */

/** Most names a chunk holds: a full one is split in two. */
const CHUNK = 512;

/**
 * Sorted, unique names as a list of sorted chunks (a chunked sorted list):
 * one array slot per name, so memory stays near a plain array's, while an
 * insert or delete moves at most a chunk's names (plus the short list of
 * chunks, when one splits, empties or merges with a small neighbour).
 *
 * @example
 * ```ts
 * import { SortedNames } from "./sorted_names.ts";
 * const names = new SortedNames();
 * for (const n of ["carol", "alice", "Bob", "dave"]) names.add(n);
 * names.after(undefined, 2); // ["Bob", "alice"]: upper case sorts first
 * names.after("alice", 10); // ["carol", "dave"]
 * ```
 */
export class SortedNames implements Iterable<string> {
  /** Non-empty chunks, each sorted, every name of one below every name of the next. */
  #chunks: string[][] = [];
  #size = 0;

  /** How many names there are. */
  get size(): number {
    return this.#size;
  }

  /** Whether `name` is in the set. */
  has(name: string): boolean {
    const c = this.#chunkFor(name);
    if (c === this.#chunks.length) return false;
    const chunk = this.#chunks[c];
    const i = lowerBound(chunk, name);
    return i < chunk.length && chunk[i] === name;
  }

  /** Adds `name`; returns false when it was there already. */
  add(name: string): boolean {
    const chunks = this.#chunks;
    // Past the last name: it goes at the end of the last chunk.
    const c = Math.min(this.#chunkFor(name), chunks.length - 1);
    if (c < 0) {
      chunks.push([name]);
      this.#size = 1;
      return true;
    }
    const chunk = chunks[c];
    const i = lowerBound(chunk, name);
    if (chunk[i] === name) return false;
    chunk.splice(i, 0, name);
    this.#size++;
    if (chunk.length > CHUNK) chunks.splice(c + 1, 0, chunk.splice(chunk.length >>> 1));
    return true;
  }

  /** Removes `name`; returns false when it was not there. */
  delete(name: string): boolean {
    const c = this.#chunkFor(name);
    if (c === this.#chunks.length) return false;
    const chunk = this.#chunks[c];
    const i = lowerBound(chunk, name);
    if (chunk[i] !== name) return false;
    chunk.splice(i, 1);
    this.#size--;
    if (chunk.length === 0) this.#chunks.splice(c, 1);
    else this.#mergeSmall(c);
    return true;
  }

  /**
   * At most `limit` names after `after` (strictly; from the first when
   * `undefined`), in order. `after` need not be in the set.
   */
  after(after: string | undefined, limit: number): string[] {
    const out: string[] = [];
    const chunks = this.#chunks;
    let c = after === undefined ? 0 : this.#chunkFor(after);
    let i = after === undefined || c === chunks.length ? 0 : upperBound(chunks[c], after);
    for (; c < chunks.length && out.length < limit; c++, i = 0) {
      const chunk = chunks[c];
      const end = Math.min(chunk.length, i + limit - out.length);
      for (; i < end; i++) out.push(chunk[i]);
    }
    return out;
  }

  /** Every name, in order. */
  *[Symbol.iterator](): Iterator<string> {
    for (const chunk of this.#chunks) yield* chunk;
  }

  /** Index of the first chunk whose last name is at least `name` (`chunks.length` when none). */
  #chunkFor(name: string): number {
    const chunks = this.#chunks;
    let lo = 0, hi = chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const chunk = chunks[mid];
      if (chunk[chunk.length - 1] < name) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * Merges chunk `c` into a neighbour when both fit in half a chunk: without
   * it, deletes could leave many near-empty chunks and a long chunk list.
   */
  #mergeSmall(c: number): void {
    const chunks = this.#chunks;
    if (chunks[c].length > CHUNK / 4) return;
    for (const n of [c - 1, c + 1]) {
      if (n < 0 || n >= chunks.length || chunks[c].length + chunks[n].length > CHUNK / 2) continue;
      const [first, second] = n < c ? [n, c] : [c, n];
      chunks[first].push(...chunks[second]);
      chunks.splice(second, 1);
      return;
    }
  }
}

/** Index of the first name in `sorted` at least `name`. */
function lowerBound(sorted: readonly string[], name: string): number {
  let lo = 0, hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < name) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index of the first name in `sorted` greater than `name`. */
function upperBound(sorted: readonly string[], name: string): number {
  let lo = 0, hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] <= name) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
