/**
 * HEIF metadata stripping (HEIC, HEIF, AVIF: what phones and cameras save).
 *
 * In these ISO base media files the Exif and XMP are items of the file-level
 * `meta` box: `iinf` names each item's type ("Exif", "mime" for XMP, "uri ")
 * and `iloc` says where its bytes are (file offsets, or inside the `idat` box
 * of `meta`). Moving bytes would break every offset in `iloc`, so the
 * metadata is overwritten with zeros where it lies: the output has the
 * input's length and layout, every offset stays valid, and the picture still
 * decodes. Items of type `jpeg` other than the picture (a preview JPEG
 * carries its own Exif) are zeroed the same way. `meta` is read whole before
 * anything after it goes out; metadata that would lie in bytes already sent,
 * a `meta` box that cannot be read, or a layout not handled here is damage:
 * the upload is refused rather than let the metadata through.
 *
 * Boxes that only describe become `free` boxes of zeros of the same size:
 * in the file-level `meta`, every box a decoder does not need (`xml `,
 * `bxml`, Apple's `keys`/`ilst`, anything unknown); `udta` and `uuid` boxes
 * at the top and in `moov`/`trak`; `meta` boxes inside `moov`/`trak` (image
 * sequences). Only `moov` and the `trak` boxes directly in it are looked
 * into: a file nesting them deeper, or with more than {@link MAX_BOXES}
 * boxes, is refused.
 *
 * Orientation is kept: a HEIF picture is turned by its `irot` and `imir`
 * properties (in `meta`, untouched), never by an Exif orientation, which
 * readers ignore. Zeroing the Exif does not turn the picture.
 *
 * @module
 */
import { DamagedImage, emit, MAX_READ, type Op, type Parser, pass, read, skip } from "./flow.ts";

/** The largest `meta` box held while it is parsed (one stored chunk). */
export const MAX_META = 256 * 1024;

/** The most metadata extents a file may have (real files have one or two per item). */
export const MAX_EXTENTS = 1024;

/** The most boxes a file may have, counting those in `moov` and its `trak`s (real files: < 250). */
export const MAX_BOXES = 4096;

/** Item types that are metadata, not pictures. */
const METADATA_ITEMS = new Set(["Exif", "mime", "uri "]);

/**
 * The boxes of the file-level `meta` that decoders read (libheif, libavif);
 * every other one is blanked.
 */
const META_KEEP = new Set([
  "hdlr",
  "pitm",
  "iloc",
  "iinf",
  "iref",
  "iprp",
  "idat",
  "dinf",
  "grpl",
]);

/** Boxes that only describe (user data, vendor boxes): kept as `free` boxes of zeros. */
const BLANK = new Set(["udta", "uuid"]);

const FREE = [0x66, 0x72, 0x65, 0x65]; // "free"

/** What a box header said. */
interface Box {
  type: string;
  /** The whole box (header included); Infinity: up to the end of the file. */
  size: number;
  /** The header bytes: a view into the input, valid until the next yield. */
  head: Uint8Array;
}

/** A byte range of the file to overwrite: [start, end). */
type Range = [number, number];

type Step<T> = Generator<Op, T, Uint8Array | undefined>;

/** The name of the format in errors, from its media type: HEIC, HEIF or AVIF. */
export function heifName(type: string): string {
  return type === "image/avif" ? "AVIF" : type === "image/heic" ? "HEIC" : "HEIF";
}

function fourcc(b: Uint8Array, at: number): string {
  return String.fromCharCode(b[at], b[at + 1], b[at + 2], b[at + 3]);
}

/** An unsigned big-endian number of 0, 1, 2, 4 or 8 bytes (8: below 2^53 or damage). */
function uint(b: Uint8Array, at: number, size: number, fail: (d: string) => never): number {
  if (at + size > b.length) fail("its meta box is cut short");
  const v = new DataView(b.buffer, b.byteOffset + at, size);
  switch (size) {
    case 0:
      return 0;
    case 1:
      return v.getUint8(0);
    case 2:
      return v.getUint16(0);
    case 4:
      return v.getUint32(0);
    case 8: {
      const high = v.getUint32(0);
      if (high > 0x1fffff) fail("an offset or size is impossibly large");
      return high * 2 ** 32 + v.getUint32(4);
    }
  }
  return fail("a field has an impossible size");
}

/** The boxes inside `b` (a box's payload), as [type, payload start, payload end, box start]. */
function children(
  b: Uint8Array,
  from: number,
  fail: (d: string) => never,
): [string, number, number, number][] {
  const out: [string, number, number, number][] = [];
  let at = from;
  while (at < b.length) {
    if (at + 8 > b.length) fail("a box inside its meta box is cut short");
    let size = uint(b, at, 4, fail);
    const type = fourcc(b, at + 4);
    let head = 8;
    if (size === 1) {
      size = uint(b, at + 8, 8, fail);
      head = 16;
    } else if (size === 0) {
      size = b.length - at;
    }
    if (size < head || at + size > b.length) fail(`its "${type}" box has an impossible size`);
    out.push([type, at + head, at + size, at]);
    at += size;
  }
  return out;
}

/** What the `meta` box says. */
interface Meta {
  /** File ranges of metadata items, sorted and merged. */
  ranges: Range[];
  /** The primary image's displayed size, when the box says it. */
  width?: number;
  height?: number;
}

/**
 * Reads a file-level `meta` box's payload (`at`: its file offset), zeroing
 * metadata kept in its `idat` in place; returns the file ranges of the
 * rest. Throws {@link DamagedImage} for anything it cannot vouch for.
 */
function readMeta(b: Uint8Array, at: number, fail: (d: string) => never): Meta {
  if (b.length < 4 || b[0] !== 0) fail("its meta box has an unknown version");
  const boxes = new Map<string, [number, number]>();
  for (const [type, start, end, box] of children(b, 4, fail)) {
    // A second iinf or iloc a reader might prefer to ours could hide metadata.
    if (boxes.has(type) && ["iinf", "iloc", "idat", "pitm", "iprp", "iref"].includes(type)) {
      fail(`its meta box has two "${type}" boxes`);
    }
    if (META_KEEP.has(type)) {
      boxes.set(type, [start, end]);
    } else {
      // XMP in `xml `/`bxml`, Apple's `keys` and `ilst`, anything unknown.
      b.set(FREE, box + 4);
      b.fill(0, start, end);
    }
  }
  const metadata = metadataItems(b, boxes, fail);
  const ranges: Range[] = [];
  const iloc = boxes.get("iloc");
  if (metadata.size > 0 && !iloc) fail("its meta box has no iloc box");
  if (iloc) {
    const idat = boxes.get("idat");
    for (const [method, start, length] of extents(b, iloc, metadata, fail)) {
      if (method === 0) {
        // A length of 0 means "to the end of the file": the picture would go too.
        if (length === 0) fail("a metadata item has no length");
        ranges.push([start, start + length]);
      } else {
        if (!idat) fail("its meta box has no idat box");
        const [from, to] = idat;
        const end = length === 0 ? to : from + start + length;
        if (from + start > to || end > to) fail("a metadata item runs past its idat box");
        b.fill(0, from + start, end);
      }
    }
  }
  ranges.sort((x, y) => x[0] - y[0]);
  const merged: Range[] = [];
  for (const r of ranges) {
    const last = merged.at(-1);
    if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
    else merged.push([r[0], r[1]]);
  }
  // Ranges inside the meta box itself are zeroed there (it has not gone out yet).
  for (const [start, end] of merged) {
    const from = Math.max(start, at) - at;
    const to = Math.min(end, at + b.length) - at;
    if (from < to) b.fill(0, from, to);
  }
  return { ranges: merged, ...primarySize(b, boxes, fail) };
}

/**
 * The ids of the items to zero: metadata items listed in `iinf`, and `jpeg`
 * items that are not the picture (previews keep their own Exif).
 */
function metadataItems(
  b: Uint8Array,
  boxes: Map<string, [number, number]>,
  fail: (d: string) => never,
): Set<number> {
  const ids = new Set<number>();
  const iinf = boxes.get("iinf");
  if (!iinf) return ids;
  const jpegs: number[] = [];
  const [start, end] = iinf;
  const version = uint(b, start, 1, fail);
  const countSize = version === 0 ? 2 : 4;
  for (const [box, from, to] of children(b.subarray(0, end), start + 4 + countSize, fail)) {
    if (box !== "infe") continue;
    const infe = b.subarray(0, to);
    const v = uint(infe, from, 1, fail);
    // Versions 0 and 1 predate HEIF (no item types): not a layout we vouch for.
    if (v < 2) fail("it has an item info entry older than HEIF");
    const idSize = v === 2 ? 2 : 4;
    const id = uint(infe, from + 4, idSize, fail);
    if (from + 4 + idSize + 2 + 4 > to) fail("an item info entry is cut short");
    const type = fourcc(infe, from + 4 + idSize + 2);
    if (METADATA_ITEMS.has(type)) ids.add(id);
    else if (type === "jpeg") jpegs.push(id);
  }
  if (jpegs.length > 0) {
    const picture = pictureItems(b, boxes, fail);
    for (const id of jpegs) if (!picture.has(id)) ids.add(id);
  }
  return ids;
}

/** The primary item and the items it is derived from (`dimg`: grid tiles, overlays), to any depth. */
function pictureItems(
  b: Uint8Array,
  boxes: Map<string, [number, number]>,
  fail: (d: string) => never,
): Set<number> {
  const pitm = boxes.get("pitm");
  if (!pitm) return new Set();
  const primary = uint(b, pitm[0] + 4, b[pitm[0]] === 0 ? 2 : 4, fail);
  const inputs = new Map<number, number[]>();
  const iref = boxes.get("iref");
  if (iref) {
    const wide = uint(b, iref[0], 1, fail) === 1;
    const idSize = wide ? 4 : 2;
    for (const [type, from, to] of children(b.subarray(0, iref[1]), iref[0] + 4, fail)) {
      if (type !== "dimg") continue;
      const box = b.subarray(0, to);
      const item = uint(box, from, idSize, fail);
      const count = uint(box, from + idSize, 2, fail);
      if (from + idSize + 2 + count * idSize > to) fail("its iref box is cut short");
      const list = inputs.get(item) ?? [];
      for (let i = 0; i < count; i++) {
        list.push(uint(box, from + idSize + 2 + i * idSize, idSize, fail));
      }
      inputs.set(item, list);
    }
  }
  const seen = new Set([primary]);
  const todo = [primary];
  while (todo.length > 0) {
    for (const id of inputs.get(todo.pop()!) ?? []) {
      if (!seen.has(id)) {
        seen.add(id);
        todo.push(id);
      }
    }
  }
  return seen;
}

/**
 * The extents of the metadata items listed in `iloc`, as [construction
 * method, offset, length]: method 0 offsets are in the file, method 1 in
 * `idat`. Other methods, or data in another file, are damage.
 */
function extents(
  b: Uint8Array,
  [start, end]: [number, number],
  metadata: Set<number>,
  fail: (d: string) => never,
): [number, number, number][] {
  const box = b.subarray(0, end);
  const version = uint(box, start, 1, fail);
  if (version > 2) fail("its iloc box has an unknown version");
  const sizes = uint(box, start + 4, 2, fail);
  const offsetSize = sizes >> 12;
  const lengthSize = (sizes >> 8) & 15;
  const baseSize = (sizes >> 4) & 15;
  const indexSize = version > 0 ? sizes & 15 : 0;
  for (const n of [offsetSize, lengthSize, baseSize, indexSize]) {
    if (n !== 0 && n !== 4 && n !== 8) fail("its iloc box has an impossible field size");
  }
  let at = start + 6;
  const count = uint(box, at, version < 2 ? 2 : 4, fail);
  at += version < 2 ? 2 : 4;
  const idSize = version < 2 ? 2 : 4;
  const extentSize = indexSize + offsetSize + lengthSize;
  const out: [number, number, number][] = [];
  // Every item takes at least 6 bytes: a hostile count runs out of box first.
  for (let i = 0; i < count; i++) {
    const id = uint(box, at, idSize, fail);
    at += idSize;
    const method = version > 0 ? uint(box, at, 2, fail) & 15 : 0;
    if (version > 0) at += 2;
    const reference = uint(box, at, 2, fail);
    const base = uint(box, at + 2, baseSize, fail);
    const extentCount = uint(box, at + 2 + baseSize, 2, fail);
    at += 2 + baseSize + 2;
    if (at + extentCount * extentSize > end) fail("its iloc box is cut short");
    if (!metadata.has(id)) {
      at += extentCount * extentSize;
      continue;
    }
    if (method > 1) fail("a metadata item is built from other items");
    if (reference !== 0) fail("a metadata item lies in another file");
    if (out.length + extentCount > MAX_EXTENTS) fail("it has too many metadata extents");
    for (let e = 0; e < extentCount; e++) {
      const offset = uint(box, at + indexSize, offsetSize, fail);
      const length = uint(box, at + indexSize + offsetSize, lengthSize, fail);
      out.push([method, base + offset, length]);
      at += extentSize;
    }
  }
  return out;
}

/** The primary item's size from its `ispe` property, turned by its `irot`. */
function primarySize(
  b: Uint8Array,
  boxes: Map<string, [number, number]>,
  fail: (d: string) => never,
): { width?: number; height?: number } {
  const pitm = boxes.get("pitm");
  const iprp = boxes.get("iprp");
  if (!pitm || !iprp) return {};
  const primary = uint(b, pitm[0] + 4, b[pitm[0]] === 0 ? 2 : 4, fail);
  const props = children(b.subarray(0, iprp[1]), iprp[0], fail);
  const ipco = props.find(([type]) => type === "ipco");
  const ipma = props.find(([type]) => type === "ipma");
  if (!ipco || !ipma) return {};
  const list = children(b.subarray(0, ipco[2]), ipco[1], fail);
  const box = b.subarray(0, ipma[2]);
  const version = uint(box, ipma[1], 1, fail);
  const wide = (uint(box, ipma[1] + 3, 1, fail) & 1) === 1;
  let at = ipma[1] + 4;
  const count = uint(box, at, 4, fail);
  at += 4;
  let size: [number, number] | undefined;
  let turned = false;
  for (let i = 0; i < count && at < ipma[2]; i++) {
    const id = uint(box, at, version < 1 ? 2 : 4, fail);
    at += version < 1 ? 2 : 4;
    const n = uint(box, at, 1, fail);
    at += 1;
    for (let j = 0; j < n; j++) {
      const index = (wide ? uint(box, at, 2, fail) : uint(box, at, 1, fail)) &
        (wide ? 0x7fff : 0x7f);
      at += wide ? 2 : 1;
      const prop = list[index - 1];
      if (id !== primary || !prop) continue;
      const [type, from, to] = prop;
      if (type === "ispe" && from + 12 <= to) {
        size = [uint(b, from + 4, 4, fail), uint(b, from + 8, 4, fail)];
      } else if (type === "irot" && from < to) {
        turned = (b[from] & 1) === 1;
      }
    }
  }
  if (!size) return {};
  return turned ? { width: size[1], height: size[0] } : { width: size[0], height: size[1] };
}

/**
 * The HEIF parser for {@link Flow} (`format` names the image in errors).
 * The output has the input's length: metadata is overwritten, never cut.
 * Throws only {@link DamagedImage}: whatever else goes wrong reading a
 * hostile file is damage too, never a server error.
 */
export function* heif(format = "HEIF"): Parser {
  try {
    return yield* strip(format);
  } catch (err) {
    if (err instanceof DamagedImage) throw err;
    throw new DamagedImage(format, `it could not be read (${(err as Error)?.name ?? "error"})`);
  }
}

function* strip(format: string): Parser {
  const fail = (detail: string): never => {
    throw new DamagedImage(format, detail);
  };
  /** The file offset of the next byte in (and out: lengths never change). */
  let pos = 0;
  /** The metadata ranges, once `meta` is read; the first not yet behind `pos`. */
  let ranges: Range[] | undefined;
  let next = 0;
  let info: { width?: number; height?: number } = {};
  let moov = false;
  let count = 0;

  /**
   * The next box header, or undefined at the end of the file. Its `head` is
   * a view into the input (valid until the next yield) unless it had to be
   * read in two parts.
   */
  function* header(): Step<Box | undefined> {
    const first = yield read(8);
    if (first!.length === 0) return undefined;
    if (first!.length < 8) fail("it ends inside a box header");
    // Each box costs a few generator steps: a file of millions of tiny boxes is not a picture.
    if (++count > MAX_BOXES) fail(`it has more than ${MAX_BOXES} boxes`);
    let head = first!;
    const type = fourcc(head, 4);
    let size = uint(head, 0, 4, fail);
    if (size === 1 || type === "uuid") head = head.slice(); // kept across the next read
    if (size === 1) {
      const large = yield read(8);
      if (large!.length < 8) fail("it ends inside a box header");
      size = uint(large!, 0, 8, fail);
      const h = head;
      head = new Uint8Array(16);
      head.set(h);
      head.set(large!, 8);
    } else if (size === 0) {
      size = Infinity;
    }
    if (type === "uuid") {
      const ext = yield read(16);
      if (ext!.length < 16) fail("it ends inside a box header");
      const both = new Uint8Array(head.length + 16);
      both.set(head);
      both.set(ext!, head.length);
      head = both;
    }
    if (size < head.length) fail(`its "${type}" box is smaller than its header`);
    if (ranges) {
      // Metadata said to lie in a box header: no real file does that.
      while (next < ranges.length && ranges[next][1] <= pos) next++;
      const r = ranges[next];
      if (r && r[0] < pos + head.length) fail("a metadata item overlaps a box header");
    }
    return { type, size, head };
  }

  /** Overwrites the next `n` bytes with zeros. */
  function* zero(n: number): Step<void> {
    while (n > 0) {
      const k = Math.min(n, MAX_READ);
      yield emit(new Uint8Array(k));
      yield skip(k);
      n -= k;
      pos += k;
    }
  }

  /** Lets the next `n` bytes through, zeroing the metadata ranges among them. */
  function* stream(n: number): Step<void> {
    const end = pos + n;
    while (pos < end) {
      while (ranges && next < ranges.length && ranges[next][1] <= pos) next++;
      const r = ranges?.[next];
      if (!r || r[0] >= end) {
        yield pass(end - pos);
        pos = end;
        return;
      }
      if (r[0] > pos) {
        yield pass(r[0] - pos);
        pos = r[0];
      }
      yield* zero(Math.min(r[1], end) - pos);
    }
  }

  /** A box that runs to the end of the file: read in pieces, the length unknown. */
  function* toEnd(): Step<void> {
    for (;;) {
      const got = yield read(MAX_READ);
      const n = got!.length;
      let piece = got!;
      for (const [start, end] of ranges ?? []) {
        const from = Math.max(start, pos) - pos;
        const to = Math.min(end, pos + n) - pos;
        if (from >= to) continue;
        if (piece === got) piece = got.slice(); // the input is not ours to write
        piece.fill(0, from, to);
      }
      yield emit(piece);
      pos += n;
      if (n < MAX_READ) return;
    }
  }

  /**
   * The boxes inside a `moov` (`depth` 1) or one of its `trak`s (2), `n`
   * bytes: descriptive ones blanked. Nothing else is looked into, so the
   * nesting (and the work per box) stays bounded whatever the file says.
   */
  function* inside(n: number, depth: number): Step<void> {
    const end = pos + n;
    while (pos < end) {
      const box = yield* header();
      if (!box) return fail("it ends inside a box");
      if (pos + box.size > end) fail(`its "${box.type}" box runs past its parent`);
      if (box.type === "moov" || (box.type === "trak" && depth > 1)) {
        fail(`its "${box.type}" boxes nest too deeply`);
      }
      if (box.type === "trak") {
        yield emit(box.head);
        pos += box.head.length;
        yield* inside(box.size - box.head.length, depth + 1);
      } else {
        yield* body(box, true);
      }
    }
  }

  /** Writes a box's header and body (`nested`: inside `moov`), the body not looked into. */
  function* body(box: Box, nested: boolean): Step<void> {
    const rest = box.size - box.head.length;
    if (BLANK.has(box.type) || (nested && box.type === "meta")) {
      // Same size, type "free", contents (a uuid's id too) zeroed.
      const head = box.head.slice();
      head.set(FREE, 4);
      head.fill(0, box.head.length - (box.type === "uuid" ? 16 : 0));
      yield emit(head);
      pos += head.length;
      if (rest === Infinity) return yield* blankToEnd();
      return yield* zero(rest);
    }
    yield emit(box.head);
    pos += box.head.length;
    if (rest === Infinity) return yield* toEnd();
    yield* stream(rest);
  }

  /** A blanked box running to the end of the file. */
  function* blankToEnd(): Step<void> {
    for (;;) {
      const got = yield read(MAX_READ);
      const n = got!.length;
      yield emit(new Uint8Array(n));
      pos += n;
      if (n < MAX_READ) return;
    }
  }

  for (let first = true;; first = false) {
    const box = yield* header();
    if (!box) break;
    if (first && box.type !== "ftyp") fail("it does not start with its ftyp box");
    if (box.type === "meta") {
      if (ranges) fail("it has two meta boxes");
      const size = box.size - box.head.length;
      if (box.size === Infinity || size > MAX_META) {
        fail(`its meta box is larger than ${MAX_META / 1024} KiB`);
      }
      yield emit(box.head);
      pos += box.head.length;
      const buf = new Uint8Array(size);
      for (let got = 0; got < size;) {
        const n = Math.min(MAX_READ, size - got);
        const piece = yield read(n);
        if (piece!.length < n) fail("it ends inside its meta box");
        buf.set(piece!, got);
        got += n;
      }
      const meta = readMeta(buf, pos, fail);
      // Whatever lies before this box's contents has gone out already.
      if (meta.ranges.length > 0 && meta.ranges[0][0] < pos) {
        fail("its metadata lies before its meta box");
      }
      ranges = meta.ranges;
      info = { width: meta.width, height: meta.height };
      yield emit(buf);
      pos += size;
      continue;
    }
    if (box.type === "moov") {
      moov = true;
      yield emit(box.head);
      pos += box.head.length;
      if (box.size === Infinity) fail("its moov box has no size");
      yield* inside(box.size - box.head.length, 1);
      continue;
    }
    yield* body(box, false);
    if (box.size === Infinity) break;
  }
  // Image sequences may keep everything in moov; a still image has a meta box.
  if (!ranges && !moov) fail("it has no meta box");
  return info.width && info.height ? info : {};
}
