import assert from "node:assert/strict";
import {
  cleanName,
  DamagedImage,
  isInlineImage,
  Sanitizer,
  SNIFF_BYTES,
} from "../server/files/media.ts";
import { crc32, readOrientation } from "../server/files/exif.ts";
import { Flow, MAX_READ, read } from "../server/files/flow.ts";
import { orientationSegment } from "../server/files/jpeg.ts";
import { launchBrowser } from "./e2e/browser.ts";
import { Rng } from "./chaos/prng.ts";

const FIXTURES = new URL("./fixtures/images/", import.meta.url);
const HEAD_BYTES = 262144;
const enc = new TextEncoder();

/** Bytes as a string of char codes 0–255 (TextDecoder's "latin1" is windows-1252). */
function binary(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return s;
}
const latin1 = { decode: binary };

function fixture(name: string): Uint8Array {
  return Deno.readFileSync(new URL(name, FIXTURES));
}

function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Deterministic random numbers in [0, 1) from `seed`. */
function random(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.next();
}

/** Cuts `input` into pieces: a fixed size, or random sizes from a seed. */
function pieces(input: Uint8Array, split: number | { seed: number }): Uint8Array[] {
  const out: Uint8Array[] = [];
  const next = typeof split === "number" ? () => split : (() => {
    const r = random(split.seed);
    return () => 1 + Math.floor(r() * 600);
  })();
  for (let at = 0; at < input.length;) {
    const n = Math.min(next(), input.length - at);
    out.push(input.subarray(at, at + n));
    at += n;
  }
  return out;
}

interface Result {
  bytes: Uint8Array;
  type: string;
  width?: number;
  height?: number;
}

/**
 * Runs `input` through a sanitizer as the upload path does: pieces are
 * copied into one reused buffer that is scribbled over after each push
 * (the caller may reuse it), and the head is fixed at the end.
 */
function sanitize(input: Uint8Array, split: number | { seed: number } = input.length): Result {
  const s = new Sanitizer();
  const parts: Uint8Array[] = [];
  const shared = new Uint8Array(Math.max(1, input.length));
  for (const piece of pieces(input, split)) {
    const view = shared.subarray(0, piece.length);
    view.set(piece);
    // The output may be views into the input: copied before the input's
    // buffer is reused (as the upload does), which must not change what the
    // sanitizer keeps between pieces.
    parts.push(...s.push(view).map((out) => out.slice()));
    view.fill(0xaa);
  }
  const { out, type, width, height } = s.end();
  parts.push(...out);
  const bytes = concat(parts);
  s.fixHead(bytes.subarray(0, Math.min(bytes.length, HEAD_BYTES)), bytes.length);
  return { bytes, type, width, height };
}

function typeOf(input: Uint8Array | string): string {
  return sanitize(typeof input === "string" ? enc.encode(input) : input).type;
}

function has(bytes: Uint8Array, text: string): boolean {
  return latin1.decode(bytes).includes(text);
}

const SECRETS = ["Secret", "SN4242", "http://ns.adobe.com/xap", "Photoshop 3.0"];

function assertNoSecrets(bytes: Uint8Array): void {
  for (const s of SECRETS) assert.ok(!has(bytes, s), `"${s}" is still in the output`);
}

/** The raw GPSLatitude and GPSLongitude values (rationals) of an Exif TIFF block. */
function gpsValues(tiff: Uint8Array): string[] {
  const little = tiff[0] === 0x49;
  const v = new DataView(tiff.buffer, tiff.byteOffset, tiff.byteLength);
  const entries = (ifd: number) =>
    Array.from({ length: v.getUint16(ifd, little) }, (_, i) => ifd + 2 + i * 12);
  const pointer = entries(v.getUint32(4, little)).find((e) => v.getUint16(e, little) === 0x8825);
  assert.ok(pointer, "no GPS IFD");
  const values = entries(v.getUint32(pointer + 8, little))
    .filter((e) => [2, 4].includes(v.getUint16(e, little)))
    .map((e) => binary(tiff.subarray(v.getUint32(e + 8, little), v.getUint32(e + 8, little) + 24)));
  assert.equal(values.length, 2);
  return values;
}

function assertNoGps(input: Uint8Array, exif: Uint8Array, output: Uint8Array): void {
  for (const value of gpsValues(exif)) {
    assert.ok(binary(input).includes(value));
    assert.ok(!binary(output).includes(value), "the GPS position is still in the output");
  }
}

// --- JPEG structure ---------------------------------------------------------

interface Segment {
  marker: number;
  start: number;
  end: number;
}

/** Splits a JPEG up to SOS; `scan` is where the entropy-coded data starts. */
function jpegSegments(b: Uint8Array): { segments: Segment[]; scan: number } {
  assert.deepEqual([b[0], b[1]], [0xff, 0xd8]);
  const segments: Segment[] = [];
  let at = 2;
  for (;;) {
    assert.equal(b[at], 0xff, `marker expected at ${at}`);
    const marker = b[at + 1];
    const len = (b[at + 2] << 8) | b[at + 3];
    assert.ok(at + 2 + len <= b.length, "segment runs past the end");
    segments.push({ marker, start: at, end: at + 2 + len });
    at += 2 + len;
    if (marker === 0xda) return { segments, scan: at };
  }
}

function segment(b: Uint8Array, s: Segment): Uint8Array {
  return b.subarray(s.start, s.end);
}

/**
 * Splits a whole JPEG, scans included: each SOS part holds its header and
 * its entropy-coded data (up to the next marker other than FF00 and RSTn).
 */
function jpegParts(b: Uint8Array): { marker: number; bytes: Uint8Array }[] {
  assert.deepEqual([b[0], b[1]], [0xff, 0xd8]);
  const parts = [];
  let at = 2;
  for (;;) {
    assert.equal(b[at], 0xff, `marker expected at ${at}`);
    const marker = b[at + 1];
    if (marker === 0xd9) {
      parts.push({ marker, bytes: b.subarray(at, at + 2) });
      return parts;
    }
    let end = at + 2 + ((b[at + 2] << 8) | b[at + 3]);
    if (marker === 0xda) {
      while (!(b[end] === 0xff && b[end + 1] !== 0 && (b[end + 1] & 0xf8) !== 0xd0)) end++;
    }
    assert.ok(end <= b.length, "segment runs past the end");
    parts.push({ marker, bytes: b.subarray(at, end) });
    at = end;
  }
}

// --- PNG structure ----------------------------------------------------------

interface Chunk {
  type: string;
  data: Uint8Array;
  crc: number;
}

/** A PNG chunk with its length and CRC. */
function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const chunk = new Uint8Array(12 + data.length);
  const view = new DataView(chunk.buffer);
  view.setUint32(0, data.length);
  chunk.set(enc.encode(type), 4);
  chunk.set(data, 8);
  view.setUint32(8 + data.length, crc32(chunk.subarray(4, 8 + data.length)));
  return chunk;
}

function pngChunks(b: Uint8Array): Chunk[] {
  assert.deepEqual([...b.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const chunks: Chunk[] = [];
  for (let at = 8; at < b.length;) {
    const len = view.getUint32(at);
    const type = latin1.decode(b.subarray(at + 4, at + 8));
    chunks.push({
      type,
      data: b.subarray(at + 8, at + 8 + len),
      crc: view.getUint32(at + 8 + len),
    });
    at += 12 + len;
  }
  return chunks;
}

// --- WebP structure ---------------------------------------------------------

function riffChunks(b: Uint8Array): { size: number; chunks: { type: string; data: Uint8Array }[] } {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  assert.equal(latin1.decode(b.subarray(0, 4)), "RIFF");
  assert.equal(latin1.decode(b.subarray(8, 12)), "WEBP");
  const chunks = [];
  let at = 12;
  while (at < b.length) {
    const len = view.getUint32(at + 4, true);
    chunks.push({
      type: latin1.decode(b.subarray(at, at + 4)),
      data: b.subarray(at + 8, at + 8 + len),
    });
    at += 8 + len + (len & 1);
  }
  assert.equal(at, b.length, "chunks do not end with the file");
  return { size: view.getUint32(4, true), chunks };
}

function webpFile(chunks: [string, Uint8Array][]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [type, data] of chunks) {
    const head = new Uint8Array(8);
    head.set(enc.encode(type));
    new DataView(head.buffer).setUint32(4, data.length, true);
    parts.push(head, data);
    if (data.length & 1) parts.push(new Uint8Array(1));
  }
  const body = concat(parts);
  const head = new Uint8Array(12);
  head.set(enc.encode("RIFF"));
  new DataView(head.buffer).setUint32(4, body.length + 4, true);
  head.set(enc.encode("WEBP"), 8);
  return concat([head, body]);
}

// --- GIF structure ----------------------------------------------------------

/** The blocks of a GIF after its header: [intro, label?, bytes of the whole block]. */
function gifBlocks(b: Uint8Array): { kind: string; bytes: Uint8Array }[] {
  const table = (packed: number) => (packed & 0x80 ? 3 * (1 << ((packed & 7) + 1)) : 0);
  let at = 13 + table(b[10]);
  const blocks = [];
  const subBlocks = (from: number) => {
    while (b[from] !== 0) from += 1 + b[from];
    return from + 1;
  };
  for (;;) {
    const start = at;
    if (b[at] === 0x3b) {
      assert.equal(at + 1, b.length, "data after the trailer");
      return blocks;
    }
    if (b[at] === 0x2c) {
      at = subBlocks(at + 10 + table(b[at + 9]) + 1);
      blocks.push({ kind: "image", bytes: b.subarray(start, at) });
    } else {
      assert.equal(b[at], 0x21);
      const label = b[at + 1];
      const kind = label === 0xff ? latin1.decode(b.subarray(at + 3, at + 14)) : `ext${label}`;
      at = subBlocks(at + 2);
      blocks.push({ kind, bytes: b.subarray(start, at) });
    }
  }
}

// --- HEIF structure ---------------------------------------------------------

function u16(n: number): number[] {
  return [(n >>> 8) & 255, n & 255];
}

function u32(n: number): number[] {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
}

/** An ISO base media box: 32-bit size, type, contents. */
function isoBox(type: string, ...parts: (Uint8Array | number[] | string)[]): Uint8Array {
  const body = concat(parts.map((p) => (p instanceof Uint8Array ? p : bytesOf(p))));
  return concat([Uint8Array.from(u32(8 + body.length)), enc.encode(type), body]);
}

/** A full box: version, flags 0, contents. */
function fullBox(type: string, version: number, ...parts: (Uint8Array | number[] | string)[]) {
  return isoBox(type, [version, 0, 0, 0], ...parts);
}

interface IsoBox {
  type: string;
  start: number;
  /** Where the contents start. */
  body: number;
  end: number;
}

/** The boxes in `b` from `from` to `to` (sizes 0 and 1 understood). */
function isoBoxes(b: Uint8Array, from = 0, to = b.length): IsoBox[] {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const boxes: IsoBox[] = [];
  for (let at = from; at < to;) {
    let size = view.getUint32(at);
    let body = at + 8;
    if (size === 1) {
      size = Number(view.getBigUint64(at + 8));
      body += 8;
    } else if (size === 0) {
      size = to - at;
    }
    assert.ok(at + size <= to, "box runs past its parent");
    boxes.push({
      type: latin1.decode(b.subarray(at + 4, at + 8)),
      start: at,
      body,
      end: at + size,
    });
    at += size;
  }
  return boxes;
}

/** A HEIF file's items (type and file extents), read from meta's iinf and iloc. */
function heifItems(b: Uint8Array): Map<number, { type: string; extents: [number, number][] }> {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const meta = isoBoxes(b).find((x) => x.type === "meta")!;
  const inside = isoBoxes(b, meta.body + 4, meta.end);
  const find = (type: string) => inside.find((x) => x.type === type);
  const items = new Map<number, { type: string; extents: [number, number][] }>();
  const iinf = find("iinf")!;
  const countSize = b[iinf.body] === 0 ? 2 : 4;
  for (const infe of isoBoxes(b, iinf.body + 4 + countSize, iinf.end)) {
    const wide = b[infe.body] === 3;
    const id = wide ? view.getUint32(infe.body + 4) : view.getUint16(infe.body + 4);
    const at = infe.body + 4 + (wide ? 4 : 2) + 2;
    items.set(id, { type: latin1.decode(b.subarray(at, at + 4)), extents: [] });
  }
  const iloc = find("iloc")!;
  const version = b[iloc.body];
  const [offsetSize, lengthSize] = [b[iloc.body + 4] >> 4, b[iloc.body + 4] & 15];
  const [baseSize, indexSize] = [b[iloc.body + 5] >> 4, version > 0 ? b[iloc.body + 5] & 15 : 0];
  const num = (at: number, size: number) =>
    size === 0
      ? 0
      : size === 2
      ? view.getUint16(at)
      : size === 4
      ? view.getUint32(at)
      : Number(view.getBigUint64(at));
  let at = iloc.body + 6;
  const count = num(at, version < 2 ? 2 : 4);
  at += version < 2 ? 2 : 4;
  for (let i = 0; i < count; i++) {
    const id = num(at, version < 2 ? 2 : 4);
    at += version < 2 ? 2 : 4;
    const method = version > 0 ? num(at, 2) & 15 : 0;
    at += version > 0 ? 2 : 0;
    const base = num(at + 2, baseSize);
    const extents = num(at + 2 + baseSize, 2);
    at += 4 + baseSize;
    for (let e = 0; e < extents; e++) {
      const offset = base + num(at + indexSize, offsetSize);
      const length = num(at + indexSize + offsetSize, lengthSize);
      const start = method === 0 ? offset : find("idat")!.body + offset;
      items.get(id)!.extents.push([start, start + length]);
      at += indexSize + offsetSize + lengthSize;
    }
  }
  return items;
}

/** The file ranges of a HEIF file's Exif and XMP items. */
function heifMetadata(b: Uint8Array): [number, number][] {
  return [...heifItems(b).values()].filter((i) => i.type === "Exif" || i.type === "mime")
    .flatMap((i) => i.extents);
}

function zeroed(b: Uint8Array, ranges: [number, number][]): Uint8Array {
  const out = b.slice();
  for (const [start, end] of ranges) out.fill(0, start, end);
  return out;
}

interface HandHeif {
  /** Where the Exif item is: in mdat, in idat (construction method 1), or in idat by file offset. */
  exif?: "mdat" | "idat" | "idat-offset";
  /** Boxes between ftyp and meta. */
  before?: Uint8Array[];
  /** Boxes after mdat. */
  after?: Uint8Array[];
  /** mdat with size 0: up to the end of the file. */
  open?: boolean;
  /** Changes to the Exif item's iloc entry. */
  exifEntry?: { method?: number; reference?: number; length?: number };
  /** The Exif item's infe version. */
  infe?: number;
  /** Boxes added inside meta. */
  inMeta?: Uint8Array[];
}

const HAND_PICTURE = enc.encode("PICTURE-DATA-".repeat(20));
const HAND_EXIF = bytesOf(u32(6), "Exif\0\0MM\0*", "SecretExifGps");
const HAND_XMP = enc.encode("<x:xmpmeta>SecretXmpText</x:xmpmeta>");

/**
 * A HEIC made by hand: ftyp, meta (an hvc1 picture 40×30 turned by irot,
 * an Exif and an XMP item), mdat. Returns it with the ranges of its metadata.
 */
function handHeif(o: HandHeif = {}): { bytes: Uint8Array; secret: [number, number][] } {
  const where = o.exif ?? "mdat";
  const ftyp = isoBox("ftyp", "heic", u32(0), "mif1heic");
  const metaStart = ftyp.length + (o.before ?? []).reduce((n, x) => n + x.length, 0);
  const infe = (id: number, type: string, extra = "", version = 2) =>
    fullBox("infe", version, u16(id), u16(0), type, "\0", extra);
  // iloc v1: 4-byte offsets and lengths, no base, one extent per item.
  const entry = (id: number, method: number, offset: number, length: number, reference = 0) => [
    ...u16(id),
    ...u16(method),
    ...u16(reference),
    ...u16(1),
    ...u32(offset),
    ...u32(length),
  ];
  const inMdat = where === "mdat";
  const mdatData = concat([HAND_PICTURE, ...(inMdat ? [HAND_EXIF] : []), HAND_XMP]);
  const xmpAt = (mdatBody: number) => mdatBody + mdatData.length - HAND_XMP.length;
  const layout = (mdatBody: number, idatBody: number) => {
    const e = o.exifEntry ?? {};
    const length = e.length ?? HAND_EXIF.length;
    const exif = inMdat
      ? entry(2, e.method ?? 0, mdatBody + HAND_PICTURE.length, length, e.reference)
      : where === "idat"
      ? entry(2, e.method ?? 1, 0, length, e.reference)
      : entry(2, e.method ?? 0, idatBody, length, e.reference);
    return [
      fullBox("hdlr", 0, u32(0), "pict", u32(0), u32(0), u32(0), "\0"),
      fullBox("pitm", 0, u16(1)),
      fullBox("iloc", 1, [0x44, 0x00], u16(3), [
        ...entry(1, 0, mdatBody, HAND_PICTURE.length),
        ...exif,
        ...entry(3, 0, xmpAt(mdatBody), HAND_XMP.length),
      ]),
      fullBox(
        "iinf",
        0,
        u16(3),
        infe(1, "hvc1"),
        infe(2, "Exif", "", o.infe),
        infe(3, "mime", "application/rdf+xml\0"),
      ),
      isoBox(
        "iprp",
        isoBox("ipco", fullBox("ispe", 0, u32(40), u32(30)), isoBox("irot", [1])),
        fullBox("ipma", 0, u32(1), u16(1), [2, 0x81, 0x02]),
      ),
      ...(o.inMeta ?? []),
    ];
  };
  // Sizes do not depend on the offsets: lay out once to measure, then for real.
  const inner = layout(0, 0).reduce((n, x) => n + x.length, 0);
  const idat = inMdat ? [] : [isoBox("idat", HAND_EXIF)];
  const idatBody = metaStart + 12 + inner + 8; // idat comes last in meta
  const mdatBody = metaStart + 12 + inner + (inMdat ? 0 : 8 + HAND_EXIF.length) + 8;
  const meta = fullBox("meta", 0, ...layout(mdatBody, idatBody), ...idat);
  assert.equal(metaStart + meta.length + 8, mdatBody);
  const mdat = o.open
    ? concat([Uint8Array.from(u32(0)), enc.encode("mdat"), mdatData])
    : isoBox("mdat", mdatData);
  const bytes = concat([ftyp, ...(o.before ?? []), meta, mdat, ...(o.after ?? [])]);
  const exifAt = inMdat ? mdatBody + HAND_PICTURE.length : idatBody;
  return {
    bytes,
    secret: [[exifAt, exifAt + HAND_EXIF.length], [
      xmpAt(mdatBody),
      xmpAt(mdatBody) + HAND_XMP.length,
    ]],
  };
}

// --- names ------------------------------------------------------------------

Deno.test("cleanName() keeps only the last path segment", () => {
  assert.equal(cleanName("photo.jpg"), "photo.jpg");
  assert.equal(cleanName("/etc/passwd"), "passwd");
  assert.equal(cleanName("C:\\Users\\me\\Desktop\\report.pdf"), "report.pdf");
  assert.equal(cleanName("../../../etc/shadow"), "shadow");
  assert.equal(cleanName("a/b\\c.txt"), "c.txt");
  assert.equal(cleanName("dir/"), null);
  assert.equal(cleanName("../"), null);
  assert.equal(cleanName("a/.."), null);
});

Deno.test("cleanName() removes controls and bidirectional overrides", () => {
  assert.equal(cleanName("invoice\u202Egpj.exe"), "invoicegpj.exe");
  assert.equal(cleanName("\u2066evil\u2069\u200E\u200F\u061C.txt"), "evil.txt");
  assert.equal(cleanName("a\u0000b\u0007c\u007Fd\u0085e\u009Ff.txt"), "a b c d e f.txt");
  assert.equal(cleanName("two\nlines\r\n.txt"), "two lines .txt");
  assert.equal(cleanName("zero\u200Bwidth\uFEFF.txt"), "zerowidth.txt");
  assert.equal(cleanName("  lots \t of   space  .md "), "lots of space .md");
  assert.equal(cleanName("\u0000\u202E"), null);
});

Deno.test("cleanName() normalizes to NFC and refuses empty names", () => {
  assert.equal(cleanName("Cafe\u0301.txt"), "Caf\u00e9.txt");
  for (const raw of ["", " ", ".", "..", " .. ", "\t", "/", "\\"]) {
    assert.equal(cleanName(raw), null, JSON.stringify(raw));
  }
  assert.equal(cleanName(".bashrc"), ".bashrc");
  assert.equal(cleanName("..."), "...");
  assert.equal(cleanName("\ud800bad.txt"), "\ufffdbad.txt");
});

Deno.test("cleanName() cuts long names to 255 bytes on a character boundary", async (t) => {
  const bytes = (s: string) => enc.encode(s).length;
  await t.step("keeps a short extension", () => {
    const name = cleanName("é".repeat(150) + ".jpeg")!; // 300 bytes + 5
    assert.ok(bytes(name) <= 255, `${bytes(name)} bytes`);
    assert.ok(name.endsWith("é.jpeg"));
    assert.equal(name, "é".repeat(125) + ".jpeg");
  });
  await t.step("never splits a character or an emoji", () => {
    const family = "👨‍👩‍👧"; // 18 bytes, one grapheme
    const name = cleanName("x" + family.repeat(20) + ".png")!;
    assert.ok(bytes(name) <= 255);
    assert.equal(name, "x" + family.repeat(13) + ".png");
    const cjk = cleanName("漢".repeat(100))!;
    assert.equal(cjk, "漢".repeat(85));
  });
  await t.step("cuts a long extension with the rest", () => {
    const name = cleanName("a." + "b".repeat(300))!;
    assert.equal(bytes(name), 255);
    assert.ok(name.startsWith("a.bbb"));
  });
  await t.step("leaves 255 bytes alone", () => {
    const exact = "a".repeat(251) + ".txt";
    assert.equal(cleanName(exact), exact);
  });
});

Deno.test("isInlineImage() accepts only the four images", () => {
  for (const t of ["image/png", "image/jpeg", "image/gif", "image/webp"]) {
    assert.ok(isInlineImage(t));
  }
  for (
    const t of ["image/svg+xml", "text/html", "text/plain", "image/heic", "image/bmp", "IMAGE/PNG"]
  ) {
    assert.ok(!isInlineImage(t), t);
  }
});

// --- types ------------------------------------------------------------------

function bytesOf(...parts: (number[] | string)[]): Uint8Array {
  return concat(parts.map((p) => (typeof p === "string" ? enc.encode(p) : Uint8Array.from(p))));
}

/** The smallest HEIF: ftyp with these brands, an empty meta, padding in a free box. */
function heifWith(major: string, brands: string): Uint8Array {
  const ftyp = isoBox("ftyp", major, u32(0), brands);
  const meta = fullBox("meta", 0, fullBox("hdlr", 0, u32(0), "pict", u32(0), u32(0), u32(0), "\0"));
  return concat([ftyp, meta, isoBox("free", new Uint8Array(5000))]);
}

function padded(head: Uint8Array, size = 5000, fill = 0x00): Uint8Array {
  const out = new Uint8Array(Math.max(size, head.length)).fill(fill);
  out.set(head);
  return out;
}

Deno.test("Sanitizer decides the type from the bytes", async (t) => {
  await t.step("HTML and SVG are plain text, whatever the name", () => {
    assert.equal(typeOf("<!doctype html><script>alert(1)</script>"), "text/plain");
    assert.equal(
      typeOf('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script/></svg>'),
      "text/plain",
    );
    assert.equal(typeOf("<html>" + "ü".repeat(5000) + "</html>"), "text/plain");
  });
  await t.step("documents, archives and media", async () => {
    const gz = new Uint8Array(
      await new Response(
        new Blob([enc.encode("hello ".repeat(100))]).stream().pipeThrough(
          new CompressionStream("gzip"),
        ),
      ).arrayBuffer(),
    );
    const cases: [Uint8Array, string][] = [
      [bytesOf("%PDF-1.7\n%\xe2\xe3\n"), "application/pdf"],
      [padded(bytesOf("PK", [3, 4, 20, 0])), "application/zip"],
      [gz, "application/gzip"],
      [padded(bytesOf([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c, 0, 4])), "application/x-7z-compressed"],
      [padded(bytesOf("ID3", [4, 0, 0, 0, 0, 0, 0])), "audio/mpeg"],
      [padded(bytesOf([0xff, 0xfb, 0x90, 0x64])), "audio/mpeg"],
      [padded(bytesOf([0, 0, 0, 0x20], "ftypisom", [0, 0, 2, 0], "isomiso2avc1mp41")), "video/mp4"],
      [padded(bytesOf([0, 0, 0, 0x14], "ftypqt  ", [0, 0, 2, 0], "qt  ")), "video/quicktime"],
      [padded(bytesOf([0, 0, 0, 0x18], "ftypM4A ", [0, 0, 2, 0], "M4A isom")), "audio/mp4"],
      // HEIF images are read (and stripped), so they must be real: a meta box after ftyp.
      [heifWith("heic", "mif1heic"), "image/heic"],
      [heifWith("avif", "avifmif1miaf"), "image/avif"],
      [heifWith("mif1", "mif1avif"), "image/avif"],
      [heifWith("mif1", "mif1"), "image/heif"],
      [fixture("photo.heic"), "image/heic"],
      [fixture("photo.avif"), "image/avif"],
      [padded(bytesOf([0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x82, 0x84], "webm")), "video/webm"],
      [
        padded(bytesOf([0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x82, 0x88], "matroska")),
        "video/x-matroska",
      ],
      [padded(bytesOf("OggS", [0, 2], "\0".repeat(22), "OpusHead")), "audio/ogg"],
      [padded(bytesOf("RIFF", [0x24, 0, 0, 0], "WAVEfmt ")), "audio/wav"],
      [padded(bytesOf("fLaC", [0, 0, 0, 0x22])), "audio/flac"],
      [padded(bytesOf("II*\0", [8, 0, 0, 0])), "image/tiff"],
    ];
    for (const [input, type] of cases) assert.equal(typeOf(input), type, type);
  });
  await t.step("anything else is application/octet-stream", () => {
    const r = random(7);
    const noise = Uint8Array.from({ length: 10000 }, () => Math.floor(r() * 256));
    assert.equal(typeOf(noise), "application/octet-stream");
    assert.equal(typeOf(bytesOf("text with a NUL\0 byte")), "application/octet-stream");
    assert.equal(typeOf(bytesOf([0x89, 0x50, 0x4e])), "application/octet-stream");
    assert.equal(typeOf(bytesOf("RIFF", [4, 0, 0, 0], "WEBX")), "application/octet-stream");
  });
  await t.step("text must be valid UTF-8 to its end", () => {
    const text = enc.encode("ünïcödé ".repeat(2000));
    assert.equal(sanitize(text, 1).type, "text/plain");
    assert.equal(sanitize(text, 7).type, "text/plain");
    const late = concat([text, Uint8Array.of(0xc3, 0x28)]); // bad sequence after the sniffed head
    assert.ok(late.length > SNIFF_BYTES);
    assert.equal(typeOf(late), "application/octet-stream");
    assert.equal(typeOf(concat([text, Uint8Array.of(0xe2, 0x82)])), "application/octet-stream");
    assert.equal(typeOf(concat([text, Uint8Array.of(0)])), "application/octet-stream");
  });
  await t.step("non-images pass through unchanged", () => {
    const r = random(3);
    const noise = Uint8Array.from({ length: 30000 }, () => Math.floor(r() * 256));
    assert.deepEqual(sanitize(noise, { seed: 5 }).bytes, noise);
    const html = enc.encode("<html>" + "x".repeat(10000));
    assert.deepEqual(sanitize(html, 7).bytes, html);
  });
});

// --- images -----------------------------------------------------------------

Deno.test("Sanitizer strips a JPEG's Exif, keeping its orientation and image data", () => {
  const input = fixture("photo.jpg");
  // The fixture really carries what must go.
  for (const s of SECRETS) assert.ok(has(input, s), `fixture lacks "${s}"`);
  const { bytes, type, width, height } = sanitize(input);
  assert.equal(type, "image/jpeg");
  assertNoSecrets(bytes);
  assertNoGps(input, input.subarray(binary(input).indexOf("Exif\0\0") + 6), bytes);
  // Stored 64×48, shown turned a quarter (orientation 6): 48×64.
  assert.deepEqual([width, height], [48, 64]);

  const before = jpegSegments(input);
  const after = jpegSegments(bytes);
  const markers = after.segments.map((s) => s.marker);
  assert.deepEqual(markers.filter((m) => m >= 0xe0 && m <= 0xef || m === 0xfe), [0xe0, 0xe1, 0xe2]);
  const app1 = segment(bytes, after.segments.find((s) => s.marker === 0xe1)!);
  assert.deepEqual(app1, orientationSegment(6));
  assert.equal(readOrientation(app1.subarray(4)), 6);
  // JFIF kept without a thumbnail.
  const app0 = segment(bytes, after.segments[0]);
  assert.equal(latin1.decode(app0.subarray(4, 9)), "JFIF\0");
  assert.deepEqual([app0[16], app0[17]], [0, 0]);
  // The ICC profile, tables and frame header are byte for byte the same.
  const kept = (b: Uint8Array, segs: Segment[]) =>
    segs.filter((s) =>
      ![0xe0, 0xe1].includes(s.marker) && !(s.marker > 0xe2 && s.marker <= 0xef) &&
      s.marker !== 0xfe
    ).map((s) => latin1.decode(segment(b, s)));
  assert.deepEqual(kept(bytes, after.segments), kept(input, before.segments));
  // The image data, up to EOI, is untouched; nothing follows it.
  assert.deepEqual(bytes.subarray(after.scan), input.subarray(before.scan));
  assert.deepEqual([...bytes.subarray(-2)], [0xff, 0xd9]);
  // The Exif thumbnail (a JPEG of its own) is gone: one SOI only.
  assert.equal(latin1.decode(bytes).split("\xff\xd8").length - 1, 1);
});

Deno.test("Sanitizer drops what follows a JPEG's end (appended pictures)", () => {
  const input = fixture("photo.jpg");
  const clean = sanitize(input).bytes;
  const appended = concat([input, input]);
  assert.deepEqual(sanitize(appended, 7).bytes, clean);
});

Deno.test("Sanitizer drops Exif without an orientation entirely", () => {
  // Same photo with orientation 1: no APP1 at all.
  const input = fixture("photo.jpg").slice();
  const at = latin1.decode(input).indexOf("Exif\0\0");
  const tiff = input.subarray(at + 6);
  const little = tiff[0] === 0x49;
  const view = new DataView(tiff.buffer, tiff.byteOffset);
  const ifd = view.getUint32(4, little);
  for (let i = 0; i < view.getUint16(ifd, little); i++) {
    const e = ifd + 2 + i * 12;
    if (view.getUint16(e, little) === 0x0112) view.setUint16(e + 8, 1, little);
  }
  const { bytes, width, height } = sanitize(input);
  assert.ok(!jpegSegments(bytes).segments.some((s) => s.marker === 0xe1));
  assert.deepEqual([width, height], [64, 48]);
});

Deno.test("Sanitizer strips metadata between the scans of a progressive JPEG", () => {
  const input = fixture("progressive.jpg");
  const before = jpegParts(input);
  const markers = before.map((p) => p.marker);
  assert.equal(markers.filter((m) => m === 0xc2).length, 1, "not progressive");
  assert.ok(markers.filter((m) => m === 0xda).length >= 2, "not multi-scan");
  // The Exif (GPS, serial number) and the comment sit after the first scan.
  const firstScan = markers.indexOf(0xda);
  assert.ok(markers.indexOf(0xe1) > firstScan && markers.indexOf(0xfe) > firstScan);
  for (const s of ["Secret", "SN4242"]) assert.ok(has(input, s), `fixture lacks "${s}"`);
  const { bytes, type, width, height } = sanitize(input);
  assert.equal(type, "image/jpeg");
  assertNoSecrets(bytes);
  assertNoGps(input, input.subarray(binary(input).indexOf("Exif\0\0") + 6), bytes);
  assert.deepEqual([width, height], [64, 48]);
  // Everything else, every scan included, is byte for byte the same.
  const after = jpegParts(bytes);
  const kept = (parts: { marker: number; bytes: Uint8Array }[]) =>
    parts.filter((p) => p.marker !== 0xe1 && p.marker !== 0xfe).map((p) => binary(p.bytes));
  assert.deepEqual(after.map((p) => binary(p.bytes)), kept(before));

  // Fill bytes before a marker between scans, and more metadata there (an
  // APP13, an XMP APP1): same output.
  const first = before.findIndex((p) => p.marker === 0xda);
  const at = before[first].bytes.byteOffset - input.byteOffset + before[first].bytes.length;
  const seg = (marker: number, text: string) => bytesOf([0xff, marker, 0, text.length + 2], text);
  const extra = concat([
    input.subarray(0, at),
    seg(0xe1, "http://ns.adobe.com/xap/1.0/\0Secret"),
    Uint8Array.of(0xff, 0xff), // fill bytes
    seg(0xed, "Photoshop 3.0\0Secret"),
    Uint8Array.of(0xff),
    input.subarray(at),
  ]);
  assert.deepEqual(sanitize(extra).bytes, bytes);
  assert.deepEqual(sanitize(extra, 1).bytes, bytes);

  // Cut between scans, it still shows what it has (no damage).
  const cut = sanitize(input.subarray(0, at + 3));
  assert.deepEqual([cut.width, cut.height], [64, 48]);
  assert.deepEqual(cut.bytes, bytes.subarray(0, cut.bytes.length));
});

Deno.test("Sanitizer keeps JPEG scan data with stuffed bytes and restart markers", () => {
  // A made-up frame whose "entropy-coded data" holds FF00, RSTn and FF at
  // chunk boundaries; a COM and an APP1 after it go, a DHT and SOS stay.
  const sof = [0xff, 0xc2, 0, 11, 8, 0, 1, 0, 1, 1, 1, 0x11, 0];
  const sos = [0xff, 0xda, 0, 8, 1, 1, 0, 0, 0x3f, 0];
  const data1 = [1, 2, 0xff, 0, 3, 0xff, 0xd0, 4, 0xff, 0, 0xff, 0xd7, 5];
  const dht = [0xff, 0xc4, 0, 5, 0x10, 9, 9];
  const data2 = [0xff, 0, 0xff, 0, 6, 0xff, 0xd3];
  const input = bytesOf(
    [0xff, 0xd8],
    sof,
    sos,
    data1,
    [0xff, 0xfe, 0, 8],
    "Secret",
    [0xff, 0xe1, 0, 8],
    "Exif\0\0",
    dht,
    sos,
    data2,
    [0xff, 0xff, 0xd9],
    "after the end",
  );
  const want = bytesOf([0xff, 0xd8], sof, sos, data1, dht, sos, data2, [0xff, 0xd9]);
  for (const split of [input.length, 1, 2, 3, 5, { seed: 4 }, { seed: 5 }]) {
    const { bytes, width, height } = sanitize(input, split);
    assert.deepEqual(bytes, want, JSON.stringify(split));
    assert.deepEqual([width, height], [1, 1]);
  }
});

Deno.test("Sanitizer strips a PNG's text, time and Exif chunks", async () => {
  const input = fixture("photo.png");
  const types = pngChunks(input).map((c) => c.type);
  for (const t of ["tEXt", "iTXt", "eXIf", "tIME"]) {
    assert.ok(types.includes(t), `fixture lacks ${t}`);
  }
  const { bytes, type, width, height } = sanitize(input);
  assert.equal(type, "image/png");
  assertNoSecrets(bytes);
  assertNoGps(input, pngChunks(input).find((c) => c.type === "eXIf")!.data, bytes);
  // Stored 40×30, orientation 8: shown 30×40.
  assert.deepEqual([width, height], [30, 40]);
  const chunks = pngChunks(bytes);
  const names = chunks.map((c) => c.type);
  for (const t of ["tEXt", "zTXt", "iTXt", "tIME"]) assert.ok(!names.includes(t), t);
  assert.equal(names[0], "IHDR");
  assert.equal(names.at(-1), "IEND");
  const exif = chunks.filter((c) => c.type === "eXIf");
  assert.equal(exif.length, 1);
  assert.equal(exif[0].data.length, 26);
  assert.equal(readOrientation(exif[0].data), 8);
  // Every chunk is intact (CRC), kept ones byte for byte.
  for (const c of chunks) {
    assert.equal(crc32(concat([enc.encode(c.type), c.data])), c.crc, c.type);
  }
  const keptBefore = pngChunks(input).filter((c) =>
    !["tEXt", "iTXt", "zTXt", "tIME", "eXIf"].includes(c.type)
  );
  const keptAfter = chunks.filter((c) => c.type !== "eXIf");
  assert.deepEqual(keptAfter, keptBefore);
  // The pixels still inflate to the size IHDR promises.
  const ihdr = new DataView(chunks[0].data.buffer, chunks[0].data.byteOffset);
  const [w, h, depth, color] = [
    ihdr.getUint32(0),
    ihdr.getUint32(4),
    chunks[0].data[8],
    chunks[0].data[9],
  ];
  const channels = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[color]!;
  const idat = concat(chunks.filter((c) => c.type === "IDAT").map((c) => c.data));
  const raw = new Uint8Array(
    await new Response(new Blob([idat]).stream().pipeThrough(new DecompressionStream("deflate")))
      .arrayBuffer(),
  );
  assert.equal(raw.length, h * (1 + Math.ceil((w * channels * depth) / 8)));
});

Deno.test("Sanitizer keeps only the PNG chunks it knows are harmless", async (t) => {
  const input = fixture("photo.png");
  const ihdrEnd = 8 + 12 + 13;
  const insert = (...chunks: Uint8Array[]) =>
    concat([input.subarray(0, ihdrEnd), ...chunks, input.subarray(ihdrEnd)]);
  const clean = sanitize(input).bytes;
  await t.step("unknown, private and metadata ancillary chunks go", () => {
    const secret = enc.encode("SecretPrivate");
    const { bytes } = sanitize(insert(
      pngChunk("prVt", secret),
      pngChunk("vpAg", secret),
      pngChunk("caBX", secret),
      pngChunk("zzZZ", secret),
      pngChunk("dSIG", secret),
    ));
    assert.deepEqual(bytes, clean);
  });
  await t.step("drawing chunks stay byte for byte", () => {
    const known = [
      pngChunk("sRGB", Uint8Array.of(0)),
      pngChunk("gAMA", Uint8Array.of(0, 0, 0xb1, 0x8f)),
      pngChunk("pHYs", Uint8Array.of(0, 0, 0x0b, 0x13, 0, 0, 0x0b, 0x13, 1)),
      pngChunk("cICP", Uint8Array.of(1, 13, 0, 1)),
    ];
    const { bytes } = sanitize(insert(...known, pngChunk("prVt", enc.encode("Secret"))));
    assertNoSecrets(bytes);
    assert.deepEqual(
      bytes,
      concat([clean.subarray(0, ihdrEnd), ...known, clean.subarray(ihdrEnd)]),
    );
  });
  await t.step("an unknown critical chunk is damage", () => {
    for (const type of ["ABCD", "PRVt", "IDOT"]) {
      const s = new Sanitizer();
      s.push(insert(pngChunk(type, enc.encode("data"))));
      assert.throws(() => s.end(), DamagedImage, type);
    }
  });
});

Deno.test("Sanitizer strips a WebP's EXIF and XMP and fixes the RIFF header", () => {
  const input = fixture("photo.webp");
  const before = riffChunks(input);
  assert.deepEqual(before.chunks.map((c) => c.type), ["VP8X", "ICCP", "VP8 ", "EXIF", "XMP "]);
  const { bytes, type, width, height } = sanitize(input);
  assert.equal(type, "image/webp");
  assertNoSecrets(bytes);
  assertNoGps(input, before.chunks[3].data, bytes);
  // Browsers show WebP as stored, whatever its EXIF orientation.
  assert.deepEqual([width, height], [32, 24]);
  const after = riffChunks(bytes);
  assert.equal(after.size, bytes.length - 8);
  assert.deepEqual(after.chunks.map((c) => c.type), ["VP8X", "ICCP", "VP8 ", "EXIF"]);
  const flags = after.chunks[0].data[0];
  assert.equal(flags & 0x04, 0, "XMP flag still set");
  assert.equal(flags & 0x08, 0x08, "EXIF flag cleared");
  assert.equal(flags & 0x20, 0x20, "ICC flag cleared");
  assert.equal(readOrientation(after.chunks[3].data), 6);
  assert.equal(after.chunks[3].data.length, 26);
  for (const i of [1, 2]) assert.deepEqual(after.chunks[i], before.chunks[i]);
});

Deno.test("Sanitizer clears the WebP EXIF flag when no orientation is left", () => {
  const vp8l = riffChunks(fixture("plain.webp")).chunks[0];
  assert.equal(vp8l.type, "VP8L");
  const vp8x = new Uint8Array(10);
  vp8x[0] = 0x08 | 0x04; // EXIF, XMP
  vp8x.set([19, 0, 0, 9, 0, 0], 4); // 20×10
  const exif = bytesOf("MM\0*", [
    0,
    0,
    0,
    8,
    0,
    1,
    0x88,
    0x25,
    0,
    4,
    0,
    0,
    0,
    1,
    0,
    0,
    0,
    26,
    0,
    0,
    0,
    0,
  ]);
  const input = webpFile([["VP8X", vp8x], ["VP8L", vp8l.data], ["EXIF", exif], [
    "XMP ",
    enc.encode("<x:xmpmeta/>"),
  ], [
    "JUNK",
    new Uint8Array(3),
  ]]);
  const { bytes, width, height } = sanitize(concat([input, enc.encode("trailing")]), 7);
  const after = riffChunks(bytes);
  assert.equal(after.size, bytes.length - 8);
  assert.deepEqual(after.chunks.map((c) => c.type), ["VP8X", "VP8L", "JUNK"]);
  assert.equal(after.chunks[0].data[0], 0);
  assert.deepEqual([width, height], [20, 10]);
  // A simple lossless file passes as it is.
  const plain = fixture("plain.webp");
  const r = sanitize(plain);
  assert.deepEqual(r.bytes, plain);
  assert.deepEqual([r.width, r.height], [20, 10]);
});

Deno.test("Sanitizer strips a GIF's comment and XMP, keeping the animation", () => {
  const input = fixture("anim.gif");
  const kinds = gifBlocks(input).map((b) => b.kind);
  assert.ok(kinds.includes("ext254") && kinds.includes("XMP DataXMP"), kinds.join());
  const { bytes, type, width, height } = sanitize(input);
  assert.equal(type, "image/gif");
  assertNoSecrets(bytes);
  assert.deepEqual([width, height], [24, 16]);
  const keep = (b: Uint8Array) =>
    gifBlocks(b).filter((x) => x.kind !== "ext254" && x.kind !== "XMP DataXMP").map((x) =>
      latin1.decode(x.bytes)
    );
  const after = gifBlocks(bytes).map((b) => b.kind);
  assert.deepEqual(after, ["ext249", "NETSCAPE2.0", "image", "ext249", "image"]);
  assert.deepEqual(keep(bytes), keep(input));
  assert.deepEqual(bytes.subarray(0, 13), input.subarray(0, 13));
});

Deno.test("Sanitizer zeroes a HEIC's and an AVIF's Exif and XMP items in place", async (t) => {
  const cases: [string, string, number, number][] = [
    // heif-enc: a grid item described in idat; Exif and XMP in mdat after meta.
    ["photo.heic", "image/heic", 64, 48],
    // avifenc: Exif and XMP in mdat before the picture; irot turns it a quarter.
    ["photo.avif", "image/avif", 48, 64],
  ];
  for (const [name, type, width, height] of cases) {
    await t.step(name, () => {
      const input = fixture(name);
      for (const s of ["Secret", "SN4242", "<x:xmpmeta"]) {
        assert.ok(has(input, s), `fixture lacks "${s}"`);
      }
      const items = [...heifItems(input).values()].map((i) => i.type);
      assert.ok(items.includes("Exif") && items.includes("mime"), items.join());
      const metadata = heifMetadata(input);
      for (const [start, end] of metadata) {
        assert.ok(input.subarray(start, end).some((b) => b !== 0), "empty metadata item");
      }
      const out = sanitize(input);
      assert.equal(out.type, type);
      assertNoSecrets(out.bytes);
      assert.ok(!has(out.bytes, "<x:xmpmeta"), "the XMP is still in the output");
      assertNoGps(input, input.subarray(binary(input).indexOf("MM\0*")), out.bytes);
      // Only the metadata items' bytes change: same length, same boxes, same offsets.
      assert.deepEqual(out.bytes, zeroed(input, metadata));
      assert.deepEqual(isoBoxes(out.bytes), isoBoxes(input));
      // HEIF turns pictures by irot only; the Exif orientation (6) never counted.
      assert.deepEqual([out.width, out.height], [width, height]);
    });
  }
});

Deno.test("Sanitizer strips a HEIF told by any of its brands, typed by them", async (t) => {
  const input = fixture("photo.heic");
  const want = zeroed(input, heifMetadata(input));
  await t.step("an image brand among the compatible ones is enough", () => {
    // photo.heic lists mif1 and heic as compatible brands.
    for (const major of ["mif2", "miaf", "isom", "MiHE", "avci", "jpeg", "mp42", "qt  "]) {
      const bytes = input.slice();
      bytes.set(enc.encode(major), 8);
      const out = sanitize(bytes, 7);
      assert.equal(out.type, "image/heic", major);
      assertNoSecrets(out.bytes);
      assert.deepEqual(out.bytes, concat([bytes.subarray(0, 12), want.subarray(12)]), major);
    }
    assert.equal(typeOf(heifWith("isom", "isommif1")), "image/heif");
    assert.equal(typeOf(heifWith("mp42", "mp42avif")), "image/avif");
    assert.equal(typeOf(heifWith("mif2", "mif2")), "image/heif");
  });
  await t.step("videos without an image brand stay videos", () => {
    const video = (major: string, brands: string) =>
      padded(concat([isoBox("ftyp", major, u32(0x200), brands), isoBox("mdat", "frames")]));
    assert.equal(typeOf(video("isom", "isomiso2avc1mp41")), "video/mp4");
    assert.equal(typeOf(video("mp42", "mp42isomhevc")), "video/mp4");
    assert.equal(typeOf(video("isom", "isomiso6hevx")), "video/mp4");
    assert.equal(typeOf(video("qt  ", "qt  ")), "video/quicktime");
    assert.equal(typeOf(video("3gp4", "3gp4isom")), "video/3gpp");
    assert.equal(typeOf(video("M4A ", "M4A mp42isom")), "audio/mp4");
  });
  await t.step("a tar header's magic in a HEIF does not make it a tar", () => {
    // "ustar" at offset 257, where tar says so, inside a free box before meta.
    const padding = new Uint8Array(300);
    padding.set(enc.encode("ustar\x0000"), 257 - 24 - 8);
    const heic = handHeif({ before: [isoBox("free", padding)] });
    assert.equal(binary(heic.bytes).indexOf("ustar"), 257);
    const out = sanitize(heic.bytes);
    assert.equal(out.type, "image/heic");
    assert.deepEqual(out.bytes, zeroed(heic.bytes, heic.secret));
  });
});

Deno.test("Sanitizer output of a HEIC and an AVIF decodes to the same pixels", async () => {
  const dir = await Deno.makeTempDir({ prefix: "heif_test_" });
  const run = async (cmd: string, args: string[]) => {
    let out;
    try {
      out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new Error(`"${cmd}" is not installed: apt-get install libheif-examples libavif-bin`);
      }
      throw err;
    }
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, `${cmd} ${args.join(" ")}: ${text}`);
    return text;
  };
  try {
    // With a JPEG preview item (zeroed: its own Exif has GPS) and XMP and
    // Apple's location in meta (blanked): the pictures must not change.
    const key = "com.apple.quicktime.location.ISO6709";
    const extra = [
      fullBox("xml ", 0, "<x:xmpmeta>SecretXmlBox</x:xmpmeta>"),
      fullBox("keys", 0, u32(1), u32(8 + key.length), "mdta", key),
      isoBox("ilst", u32(42), u32(1), isoBox("data", u32(1), u32(0), "+48.8584+002.2945/")),
    ];
    const preview = fixture("photo.jpg");
    for (
      const [name, bytes] of [
        ["photo.heic", fixture("photo.heic")],
        ["photo.avif", fixture("photo.avif")],
        ["preview.heic", withPreview(fixture("photo.heic"), preview, extra)],
        ["preview.avif", withPreview(fixture("photo.avif"), preview, extra)],
      ] as const
    ) {
      const input = `${dir}/in_${name}`;
      const output = `${dir}/out_${name}`;
      Deno.writeFileSync(input, bytes);
      const out = sanitize(bytes, 7).bytes;
      assertNoSecrets(out);
      assert.ok(!has(out, "+48.8584") && !has(out, "ISO6709"), name);
      Deno.writeFileSync(output, out);
      const info = await run("heif-info", [output]);
      assert.match(
        info,
        name.endsWith("avif") ? /image: 48x64 .*primary/ : /image: 64x48 .*primary/,
      );
      // Raw frames (Y4M) hold no metadata: the pixels must match exactly.
      await run("heif-convert", [input, `${input}.y4m`]);
      await run("heif-convert", [output, `${output}.y4m`]);
      assert.deepEqual(Deno.readFileSync(`${output}.y4m`), Deno.readFileSync(`${input}.y4m`), name);
      if (name.endsWith("avif")) {
        await run("avifdec", [input, `${input}.avifdec.y4m`]);
        await run("avifdec", [output, `${output}.avifdec.y4m`]);
        assert.deepEqual(
          Deno.readFileSync(`${output}.avifdec.y4m`),
          Deno.readFileSync(`${input}.avifdec.y4m`),
        );
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Sanitizer zeroes HEIF metadata wherever its items lie", async (t) => {
  const check = (input: { bytes: Uint8Array; secret: [number, number][] }) => {
    assert.ok(has(input.bytes, "SecretExifGps") && has(input.bytes, "SecretXmpText"));
    const want = zeroed(input.bytes, input.secret);
    for (const split of [input.bytes.length, 1, 7, { seed: 9 }]) {
      const out = sanitize(input.bytes, split);
      assert.equal(out.type, "image/heic");
      assert.deepEqual(out.bytes, want, JSON.stringify(split));
      // 40×30 turned a quarter by irot.
      assert.deepEqual([out.width, out.height], [30, 40]);
    }
  };
  await t.step("in mdat (file offsets)", () => check(handHeif()));
  await t.step("in idat inside meta (construction method 1)", () => {
    const input = handHeif({ exif: "idat" });
    assert.deepEqual(heifMetadata(input.bytes), input.secret);
    check(input);
  });
  await t.step("in meta itself, by file offset", () => check(handHeif({ exif: "idat-offset" })));
  await t.step("in an mdat that runs to the end of the file (size 0)", () => {
    check(handHeif({ open: true }));
  });
  await t.step("boxes before meta that hold no metadata pass", () => {
    check(handHeif({ before: [isoBox("free", "padding")] }));
  });
  await t.step("user data and vendor boxes become free boxes of zeros", () => {
    const udta = isoBox("udta", isoBox("loci", "+48.8584+002.2945/"));
    const uuid = isoBox("uuid", "0123456789abcdef", "SecretVendorData");
    const trakMeta = fullBox("meta", 0, "SecretTrackMeta");
    const tkhd = fullBox("tkhd", 0, new Uint8Array(80));
    const moov = isoBox(
      "moov",
      fullBox("mvhd", 0, new Uint8Array(96)),
      isoBox("trak", tkhd, trakMeta, udta),
      udta,
    );
    const input = handHeif({ after: [moov, uuid, udta] });
    const blank = (b: Uint8Array) =>
      concat([b.subarray(0, 4), enc.encode("free"), new Uint8Array(b.length - 8)]);
    const want = zeroed(input.bytes, input.secret);
    const tail = concat([
      isoBox(
        "moov",
        fullBox("mvhd", 0, new Uint8Array(96)),
        isoBox("trak", tkhd, blank(trakMeta), blank(udta)),
        blank(udta),
      ),
      blank(uuid),
      blank(udta),
    ]);
    const head = want.subarray(0, want.length - moov.length - uuid.length - udta.length);
    for (const split of [input.bytes.length, 1, 5]) {
      const out = sanitize(input.bytes, split);
      assert.deepEqual(out.bytes, concat([head, tail]), JSON.stringify(split));
    }
    assert.ok(!has(sanitize(input.bytes).bytes, "+48.8584"));
  });
  await t.step("boxes in meta that decoders do not read become free boxes of zeros", () => {
    const xmp = '<x:xmpmeta><rdf:Description exif:GPSLatitude="48,51.5022N"/></x:xmpmeta>';
    const key = "com.apple.quicktime.location.ISO6709";
    const keys = fullBox("keys", 0, u32(1), u32(8 + key.length), "mdta", key);
    const value = isoBox("data", u32(1), u32(0), "+48.8584+002.2945+035.000/");
    const ilst = isoBox("ilst", u32(8 + value.length), u32(1), value);
    const extra = [fullBox("xml ", 0, xmp), keys, ilst, isoBox("zzzz", "SecretUnknownBox")];
    const input = handHeif({ inMeta: extra });
    const meta = isoBoxes(input.bytes).find((b) => b.type === "meta")!;
    const blanked = isoBoxes(input.bytes, meta.body + 4, meta.end)
      .filter((b) => ["xml ", "keys", "ilst", "zzzz"].includes(b.type));
    assert.equal(blanked.length, 4);
    const want = zeroed(input.bytes, input.secret);
    for (const b of blanked) {
      want.set(enc.encode("free"), b.start + 4);
      want.fill(0, b.body, b.end);
    }
    for (const split of [input.bytes.length, 1, 7, { seed: 4 }]) {
      const out = sanitize(input.bytes, split);
      assert.deepEqual(out.bytes, want, JSON.stringify(split));
      assert.deepEqual([out.width, out.height], [30, 40]);
    }
    const out = sanitize(input.bytes).bytes;
    for (const s of ["48,51.5022N", "+48.8584", "ISO6709", "SecretUnknownBox"]) {
      assert.ok(!has(out, s), `"${s}" is still in the output`);
    }
  });
});

/** Parts of a HEIF built item by item: ftyp, meta, then mdat with each item's data. */
interface HeifItem {
  id: number;
  type: string;
  data: Uint8Array;
}

/**
 * A HEIF of the given items (iloc v0, file offsets into mdat), primary item
 * 1 (40×30), with `dimg` and `thmb` references as [type, from, to...].
 */
function itemsHeif(items: HeifItem[], refs: [string, number, ...number[]][]): Uint8Array {
  const ftyp = isoBox("ftyp", "heic", u32(0), "mif1heic");
  const meta = (mdatBody: number) => {
    let at = mdatBody;
    const entries = items.flatMap((item) => {
      const entry = [...u16(item.id), ...u16(0), ...u16(1), ...u32(at), ...u32(item.data.length)];
      at += item.data.length;
      return entry;
    });
    return fullBox(
      "meta",
      0,
      fullBox("hdlr", 0, u32(0), "pict", u32(0), u32(0), u32(0), "\0"),
      fullBox("pitm", 0, u16(1)),
      fullBox("iloc", 0, [0x44, 0x00], u16(items.length), entries),
      fullBox(
        "iinf",
        0,
        u16(items.length),
        ...items.map((i) => fullBox("infe", 2, u16(i.id), u16(0), i.type, "\0")),
      ),
      fullBox(
        "iref",
        0,
        ...refs.map(([type, from, ...to]) =>
          isoBox(type, u16(from), u16(to.length), to.flatMap(u16))
        ),
      ),
      isoBox(
        "iprp",
        isoBox("ipco", fullBox("ispe", 0, u32(40), u32(30))),
        fullBox("ipma", 0, u32(1), u16(1), [1, 0x81]),
      ),
    );
  };
  const mdatBody = ftyp.length + meta(0).length + 8;
  return concat([ftyp, meta(mdatBody), isoBox("mdat", ...items.map((i) => i.data))]);
}

/**
 * A real HEIF (`heic`) with a JPEG preview item of the primary picture
 * (`thmb`, its data in a second mdat at the end) and `extra` boxes at the end
 * of meta: iinf, iref and iloc rewritten, file offsets in iloc moved.
 */
function withPreview(heic: Uint8Array, jpeg: Uint8Array, extra: Uint8Array[]): Uint8Array {
  const view = new DataView(heic.buffer, heic.byteOffset);
  const meta = isoBoxes(heic).find((b) => b.type === "meta")!;
  const inside = isoBoxes(heic, meta.body + 4, meta.end);
  const find = (type: string) => inside.find((b) => b.type === type)!;
  const [iinf, iloc, iref, pitm] = ["iinf", "iloc", "iref", "pitm"].map(find);
  assert.ok(heic[iinf.body] === 0 && heic[iref.body] === 0 && heic[pitm.body] === 0);
  const id = 1000;
  const newIinf = isoBox(
    "iinf",
    heic.subarray(iinf.body, iinf.body + 4),
    u16(view.getUint16(iinf.body + 4) + 1),
    heic.subarray(iinf.body + 6, iinf.end),
    fullBox("infe", 2, u16(id), u16(0), "jpeg", "\0"),
  );
  const newIref = isoBox(
    "iref",
    heic.subarray(iref.body, iref.end),
    isoBox("thmb", u16(id), u16(1), u16(view.getUint16(pitm.body + 4))),
  );
  const newIloc = (delta: number, at: number) => {
    const b = heic.slice(iloc.body, iloc.end);
    const v = new DataView(b.buffer);
    const version = b[0];
    assert.ok(version < 2);
    const [offsetSize, lengthSize, baseSize] = [b[4] >> 4, b[4] & 15, b[5] >> 4];
    const indexSize = version > 0 ? b[5] & 15 : 0;
    const num = (p: number, n: number) =>
      n === 0 ? 0 : n === 2 ? v.getUint16(p) : n === 4 ? v.getUint32(p) : Number(v.getBigUint64(p));
    const move = (p: number, n: number) =>
      n === 4 ? v.setUint32(p, num(p, 4) + delta) : v.setBigUint64(p, BigInt(num(p, 8) + delta));
    const count = num(6, 2);
    let p = 8;
    for (let i = 0; i < count; i++) {
      const method = version > 0 ? num(p + 2, 2) & 15 : 0;
      p += version > 0 ? 6 : 4;
      if (method === 0 && baseSize > 0) move(p, baseSize);
      const extents = num(p + baseSize, 2);
      p += baseSize + 2;
      for (let e = 0; e < extents; e++) {
        if (method === 0 && baseSize === 0) move(p + indexSize, offsetSize);
        p += indexSize + offsetSize + lengthSize;
      }
    }
    v.setUint16(6, count + 1);
    const field = (n: number, x: number) => (n === 4 ? u32(x) : [...u32(0), ...u32(x)]);
    return isoBox("iloc", b, [
      ...u16(id),
      ...(version > 0 ? u16(0) : []),
      ...u16(0),
      ...new Array(baseSize).fill(0),
      ...u16(1),
      ...new Array(indexSize).fill(0),
      ...field(offsetSize, at),
      ...field(lengthSize, jpeg.length),
    ]);
  };
  const build = (delta: number, at: number) =>
    isoBox(
      "meta",
      heic.subarray(meta.body, meta.body + 4),
      ...inside.map((b) =>
        b === iinf
          ? newIinf
          : b === iref
          ? newIref
          : b === iloc
          ? newIloc(delta, at)
          : heic.subarray(b.start, b.end)
      ),
      ...extra,
    );
  const delta = build(0, 0).length - (meta.end - meta.start);
  return concat([
    heic.subarray(0, meta.start),
    build(delta, heic.length + delta + 8),
    heic.subarray(meta.end),
    isoBox("mdat", jpeg),
  ]);
}

Deno.test("Sanitizer zeroes a HEIF's JPEG items that are not the picture", async (t) => {
  // A preview JPEG keeps its own Exif (GPS, serial): photo.jpg carries both.
  const preview = fixture("photo.jpg");
  assert.ok(has(preview, "SN4242"));
  const picture = HAND_PICTURE;
  /** Where each item's data lies in a file from {@link itemsHeif}. */
  const spans = (bytes: Uint8Array) => {
    const out = new Map<number, [number, number]>();
    for (const [id, item] of heifItems(bytes)) out.set(id, item.extents[0]);
    return out;
  };
  await t.step("a preview of a coded picture (thmb)", () => {
    const input = itemsHeif([
      { id: 1, type: "hvc1", data: picture },
      { id: 2, type: "jpeg", data: preview },
    ], [["thmb", 2, 1]]);
    const want = zeroed(input, [spans(input).get(2)!]);
    for (const split of [input.length, 1, 7, { seed: 6 }]) {
      const out = sanitize(input, split);
      assert.equal(out.type, "image/heic");
      assert.deepEqual(out.bytes, want, JSON.stringify(split));
    }
    assertNoSecrets(sanitize(input).bytes);
  });
  await t.step("a JPEG picture and its JPEG grid tiles stay, a JPEG not in it goes", () => {
    const tile = enc.encode("JPEG-TILE-".repeat(8));
    const input = itemsHeif([
      { id: 1, type: "grid", data: Uint8Array.of(0, 0, 0, 0, 0, 40, 0, 30) },
      { id: 2, type: "jpeg", data: tile },
      { id: 3, type: "jpeg", data: tile },
      { id: 4, type: "jpeg", data: preview },
      { id: 5, type: "jpeg", data: preview },
    ], [["dimg", 1, 2, 3], ["thmb", 4, 1]]);
    const at = spans(input);
    assert.deepEqual(sanitize(input, 5).bytes, zeroed(input, [at.get(4)!, at.get(5)!]));
    const alone = itemsHeif([{ id: 1, type: "jpeg", data: preview }], []);
    assert.deepEqual(sanitize(alone, 3).bytes, alone);
  });
  await t.step("an iref too short for its count is damage", () => {
    const input = itemsHeif([
      { id: 1, type: "hvc1", data: picture },
      { id: 2, type: "jpeg", data: preview },
    ], [["dimg", 1, 2]]);
    const iref = binary(input).indexOf("dimg");
    new DataView(input.buffer).setUint16(iref + 6, 500);
    assert.throws(() => sanitize(input), /HEIC.*iref box is cut short/);
  });
});

Deno.test("Sanitizer refuses damaged or hostile HEIF files with DamagedImage", async (t) => {
  const refuses = (input: Uint8Array, message: RegExp) => {
    for (const split of [input.length, 1, 7]) {
      const s = new Sanitizer();
      const out: Uint8Array[] = [];
      for (const p of pieces(input, split)) out.push(...s.push(p));
      assert.throws(() => s.end(), (err: unknown) => {
        assert.ok(err instanceof DamagedImage, String(err));
        assert.match(err.message, message);
        return true;
      }, `cut by ${split}`);
      // Nothing said to be metadata went out before the refusal.
      assertNoSecrets(concat(out));
    }
  };
  const good = handHeif().bytes;
  const meta = isoBoxes(good).find((b) => b.type === "meta")!;
  const mdat = isoBoxes(good).find((b) => b.type === "mdat")!;
  const ftyp = good.subarray(0, meta.start);
  const setU32 = (b: Uint8Array, at: number, v: number) =>
    new DataView(b.buffer, b.byteOffset).setUint32(at, v);

  await t.step("cut inside a box header, meta or mdat", () => {
    for (
      const at of [ftyp.length + 3, ftyp.length + 12, meta.end - 5, mdat.body + 10, mdat.end - 1]
    ) {
      refuses(good.subarray(0, at), /HEIC/);
    }
  });
  await t.step("no meta box, or two", () => {
    refuses(concat([ftyp, isoBox("mdat", "picture")]), /HEIC.*no meta box/);
    refuses(concat([good, good.subarray(meta.start, meta.end)]), /HEIC.*two meta boxes/);
  });
  await t.step("metadata in bytes already sent (meta after mdat)", () => {
    // The Exif item lies in an mdat that comes before meta.
    const early = isoBox("mdat", HAND_EXIF);
    const input = handHeif({ before: [early] });
    const bytes = input.bytes.slice();
    const items = heifItems(bytes);
    assert.ok(items.get(2));
    // Point the Exif item at the early mdat's contents.
    const iloc = isoBoxes(bytes, meta.body + 4 + early.length, meta.end + early.length).find((b) =>
      b.type === "iloc"
    )!;
    setU32(bytes, iloc.body + 8 + 16 + 8, ftyp.length + 8);
    refuses(bytes, /HEIC.*before its meta box/);
  });
  await t.step("metadata said to lie in a box header", () => {
    const bytes = good.slice();
    const iloc = isoBoxes(bytes, meta.body + 4, meta.end).find((b) => b.type === "iloc")!;
    setU32(bytes, iloc.body + 8 + 16 + 8, mdat.start + 2);
    refuses(bytes, /HEIC.*box header/);
  });
  await t.step("a meta box running to the end of the file, or too large to hold", () => {
    const open = good.slice();
    setU32(open, meta.start, 0);
    refuses(open, /HEIC.*meta box is larger/);
    const big = handHeif({ inMeta: [isoBox("free", new Uint8Array(256 * 1024))] }).bytes;
    refuses(big, /HEIC.*meta box is larger than 256 KiB/);
  });
  await t.step("impossible box sizes", () => {
    // A 64-bit size past 2^53, one smaller than the header, one past the file.
    const large = (size: bigint) => {
      const head = new Uint8Array(16);
      const v = new DataView(head.buffer);
      v.setUint32(0, 1);
      head.set(enc.encode("mdat"), 4);
      v.setBigUint64(8, size);
      return concat([good.subarray(0, mdat.start), head, good.subarray(mdat.body)]);
    };
    refuses(large(2n ** 63n), /HEIC.*impossibly large/);
    refuses(large(2n ** 62n + 5n), /HEIC.*impossibly large/);
    refuses(large(4n), /HEIC.*smaller than its header/);
    refuses(large(2n ** 52n), /HEIC.*ends too early/);
    const small = good.slice();
    setU32(small, mdat.start, 3);
    refuses(small, /HEIC.*smaller than its header/);
    const inside = good.slice();
    const iinf = isoBoxes(inside, meta.body + 4, meta.end).find((b) => b.type === "iinf")!;
    setU32(inside, iinf.start, 0x7fffffff);
    refuses(inside, /HEIC.*impossible size/);
  });
  await t.step("iloc with absurd counts", () => {
    const iloc = isoBoxes(good, meta.body + 4, meta.end).find((b) => b.type === "iloc")!;
    const counted = (items: number, extents: number) => {
      const bytes = good.slice();
      new DataView(bytes.buffer).setUint16(iloc.body + 6, items);
      new DataView(bytes.buffer).setUint16(iloc.body + 8 + 16 + 6, extents);
      return bytes;
    };
    refuses(counted(0xffff, 1), /HEIC.*cut short/);
    refuses(counted(3, 0xffff), /HEIC.*cut short/);
    // Extents of no bytes at all (offset and length sizes 0): a count cannot loop for long.
    const none = (items: number[], extents: number) =>
      concat([
        ftyp,
        fullBox(
          "meta",
          0,
          fullBox("iinf", 0, u16(1), fullBox("infe", 2, u16(1), u16(0), "Exif", "\0")),
          fullBox(
            "iloc",
            2,
            [0, 0],
            u32(items.length),
            items.flatMap((id) => [...u32(id), 0, 0, 0, 0, ...u16(extents)]),
          ),
        ),
      ]);
    refuses(none([1], 0xffff), /HEIC.*too many metadata extents/);
    refuses(none([1], 1), /HEIC.*no length/);
    // Many empty entries for other items: read in one pass, accepted (nothing to strip).
    const others = none(Array.from({ length: 5000 }, (_, i) => i + 2), 0xffff);
    assert.deepEqual(sanitize(others).bytes, others);
    const wild = others.slice();
    setU32(wild, wild.length - 5000 * 10 - 4, 0xffffffff); // item count
    refuses(wild, /HEIC.*cut short/);
  });
  await t.step("layouts not handled: old item entries, derived or external metadata", () => {
    refuses(handHeif({ infe: 1 }).bytes, /HEIC.*older than HEIF/);
    refuses(handHeif({ exifEntry: { method: 2 } }).bytes, /HEIC.*built from other items/);
    refuses(handHeif({ exifEntry: { reference: 1 } }).bytes, /HEIC.*another file/);
    refuses(handHeif({ exifEntry: { length: 0 } }).bytes, /HEIC.*no length/);
    refuses(handHeif({ exif: "idat", exifEntry: { length: 1000 } }).bytes, /HEIC.*past its idat/);
    refuses(
      handHeif({ inMeta: [fullBox("iloc", 1, [0x44, 0], u16(0))] }).bytes,
      /HEIC.*two "iloc"/,
    );
  });
  await t.step(
    "random damage in the first boxes: DamagedImage, or a file of the same length",
    () => {
      const r = random(16);
      const files = [
        fixture("photo.heic"),
        fixture("photo.avif"),
        handHeif({ exif: "idat" }).bytes,
      ];
      let refused = 0;
      for (let i = 0; i < 3000; i++) {
        const input = files[i % files.length].slice();
        for (let m = 0; m < 1 + Math.floor(r() * 3); m++) {
          input[Math.floor(r() * Math.min(input.length, 700))] = Math.floor(r() * 256);
        }
        const s = new Sanitizer();
        const out: Uint8Array[] = [];
        for (const p of pieces(input, 1 + Math.floor(r() * 300))) out.push(...s.push(p));
        try {
          out.push(...s.end().out);
          assert.equal(concat(out).length, input.length);
        } catch (err) {
          assert.ok(err instanceof DamagedImage, String(err));
          refused++;
        }
      }
      assert.ok(refused > 100, `${refused} refused`);
    },
  );
  await t.step("trak inside trak, moov inside moov or trak: refused, however deep", () => {
    /** `depth` boxes of `type` each inside the last, in a moov. */
    const nested = (type: string, depth: number) => {
      const out = new Uint8Array(8 * depth);
      const view = new DataView(out.buffer);
      for (let i = 0; i < depth; i++) {
        view.setUint32(i * 8, 8 * (depth - i));
        out.set(enc.encode(type), i * 8 + 4);
      }
      return concat([good, isoBox("moov", out)]);
    };
    refuses(nested("trak", 2), /HEIC.*"trak" boxes nest too deeply/);
    refuses(nested("moov", 1), /HEIC.*"moov" boxes nest too deeply/);
    refuses(concat([good, isoBox("moov", isoBox("trak", isoBox("moov")))]), /HEIC.*nest too/);
    // 4000 deep overflowed the stack (a RangeError, not damage) after seconds of work.
    const deep = nested("trak", 4000);
    assert.throws(() => sanitize(deep), (err: unknown) => {
      assert.ok(err instanceof DamagedImage, String(err));
      return /nest too deeply/.test(err.message);
    });
    // One level each is what HEIF image sequences have.
    const sequence = concat([good, isoBox("moov", isoBox("trak", isoBox("mdia", "x")))]);
    assert.equal(sanitize(sequence, 3).bytes.length, sequence.length);
  });
  await t.step("more than MAX_BOXES boxes, at the top or inside moov and trak", () => {
    const empty = (type: string, n: number) => {
      const out = new Uint8Array(8 * n);
      for (let i = 0; i < n; i++) {
        out[i * 8 + 3] = 8;
        out.set(enc.encode(type), i * 8 + 4);
      }
      return out;
    };
    // good has 3 boxes: ftyp, meta, mdat.
    const top = (n: number) => concat([good, empty("free", n)]);
    assert.equal(sanitize(top(4093), 7).bytes.length, top(4093).length);
    refuses(top(4094), /HEIC.*more than 4096 boxes/);
    refuses(concat([good, empty("udta", 4094)]), /HEIC.*more than 4096 boxes/);
    refuses(concat([good, isoBox("moov", empty("free", 4093))]), /HEIC.*more than 4096 boxes/);
    refuses(
      concat([good, isoBox("moov", isoBox("trak", empty("udta", 4092)))]),
      /HEIC.*more than 4096 boxes/,
    );
    // 3 million 8-byte boxes (24 MB) took 10 s of CPU: now refused within the first piece.
    const s = new Sanitizer();
    const huge = concat([good, empty("udta", 300_000)]);
    s.push(huge.subarray(0, 1 << 20));
    const failed = s.failed;
    assert.ok(failed instanceof DamagedImage, String(failed));
    assert.match(failed.message, /more than 4096 boxes/);
    assert.deepEqual(s.push(huge.subarray(1 << 20, 2 << 20)), []);
  });
  await t.step("an AVIF says AVIF", () => {
    const avif = fixture("photo.avif");
    refuses(avif.subarray(0, avif.length - 10), /^Cannot read the AVIF image: /);
  });
});

Deno.test("Sanitizer zeroes huge HEIF metadata as it streams, holding none of it", () => {
  // An Exif item of 40 MB arrives in 1 MiB pieces from one reused buffer.
  const size = 40 * 1024 * 1024;
  const piece = new Uint8Array(1024 * 1024).fill(0x41);
  const ftyp = isoBox("ftyp", "heic", u32(0), "mif1heic");
  const meta = (at: number) =>
    fullBox(
      "meta",
      0,
      fullBox("iinf", 0, u16(1), fullBox("infe", 2, u16(1), u16(0), "Exif", "\0")),
      fullBox("iloc", 0, [0x44, 0], u16(1), u16(1), u16(0), u16(1), u32(at), u32(size)),
    );
  const at = ftyp.length + meta(0).length + 8;
  const head = concat([ftyp, meta(at), Uint8Array.from(u32(8 + size)), enc.encode("mdat")]);
  const s = new Sanitizer();
  let total = 0;
  const count = (parts: Uint8Array[]) => {
    let n = 0;
    for (const p of parts) {
      // Past the head, every byte out is a zero (the input is all 0x41).
      const from = Math.max(0, head.length - total - n);
      assert.equal(p.indexOf(0x41, from), -1, "metadata went out");
      n += p.length;
    }
    total += n;
    return n;
  };
  // The head waits for the sniffed bytes; the first piece sends it and its share.
  count(s.push(head));
  for (let sent = 0; sent < size; sent += piece.length) {
    const n = count(s.push(piece));
    assert.ok(n <= piece.length + SNIFF_BYTES + 65536, `${n} bytes out for one piece`);
  }
  count(s.end().out);
  assert.equal(total, head.length + size);
});

Deno.test("Sanitizer gives the same output however the input is cut", () => {
  const r = random(42);
  const text = enc.encode("plain ünïcödé text ".repeat(500));
  const noise = Uint8Array.from({ length: 9000 }, () => Math.floor(r() * 256));
  const inputs = [
    ...[
      "photo.jpg",
      "progressive.jpg",
      "photo.png",
      "photo.webp",
      "plain.webp",
      "anim.gif",
      "photo.heic",
      "photo.avif",
    ].map(fixture),
    handHeif().bytes,
    handHeif({ exif: "idat", open: true }).bytes,
    text,
    noise,
  ];
  for (const input of inputs) {
    const whole = sanitize(input);
    for (const split of [1, 2, 7, 13, 4096, 4097, { seed: 1 }, { seed: 2 }, { seed: 3 }]) {
      assert.deepEqual(
        sanitize(input, split),
        whole,
        `${whole.type} cut by ${JSON.stringify(split)}`,
      );
    }
  }
});

Deno.test("Sanitizer refuses damaged images with DamagedImage", async (t) => {
  const fails = (input: Uint8Array, message: RegExp, split: number = input.length) => {
    const s = new Sanitizer();
    for (const p of pieces(input, split)) s.push(p);
    assert.throws(() => s.end(), (err: unknown) => {
      assert.ok(err instanceof DamagedImage, String(err));
      assert.match(err.message, message);
      return true;
    });
  };
  const png = fixture("photo.png");
  const jpeg = fixture("photo.jpg");
  await t.step("PNG magic, then garbage", () => {
    fails(concat([png.subarray(0, 8), enc.encode("this is not a PNG at all ".repeat(300))]), /PNG/);
    fails(png.subarray(0, 8), /PNG/);
  });
  await t.step("PNG cut short, or with a chunk length past the end", () => {
    fails(png.subarray(0, png.length - 20), /PNG/, 7);
    const bad = png.slice();
    new DataView(bad.buffer).setUint32(33, 0x7ffffff0); // the chunk after IHDR
    fails(bad, /PNG/);
  });
  await t.step("PNG with an IEND length no header read may hold", () => {
    const iend = png.length - 12;
    assert.equal(latin1.decode(png.subarray(iend + 4, iend + 8)), "IEND");
    for (const len of [0x7fffffff, 0x10000, 65533]) {
      const bad = png.slice();
      new DataView(bad.buffer).setUint32(iend, len);
      fails(bad, /PNG.*IEND/);
      fails(bad, /PNG.*IEND/, 7);
    }
    // Data in IEND (at most a header's size) is dropped: IEND is written empty.
    const data = enc.encode("SecretInIend");
    const withData = concat([png.subarray(0, iend), pngChunk("IEND", data)]);
    const { bytes } = sanitize(withData);
    assertNoSecrets(bytes);
    assert.deepEqual(bytes, sanitize(png).bytes);
    assert.deepEqual(pngChunks(bytes).at(-1), {
      type: "IEND",
      data: new Uint8Array(0),
      crc: 0xae426082,
    });
  });
  await t.step("a parser asking for more than MAX_READ at once", () => {
    // Whatever the format, a read past MAX_READ is damage, not a RangeError.
    const big = function* () {
      yield read(MAX_READ + 1);
      return {};
    };
    assert.throws(() => new Flow("Test", big()), DamagedImage);
    assert.throws(() => {
      const flow = new Flow(
        "Test",
        (function* () {
          yield read(4);
          yield read(0x7fffffff);
          return {};
        })(),
      );
      flow.push(new Uint8Array(10));
    }, /Test.*too large/);
  });
  await t.step("JPEG with a segment length running past the end", () => {
    const bad = jpeg.slice(0, 200);
    // The first segment after SOI claims 65000 bytes.
    bad[4] = 0xfd;
    bad[5] = 0xe8;
    fails(bad, /JPEG.*end/);
  });
  await t.step("JPEG without a frame before its data, or garbage between segments", () => {
    fails(bytesOf([0xff, 0xd8, 0xff, 0xda, 0, 2], "scan"), /JPEG/);
    fails(bytesOf([0xff, 0xd8, 0xff, 0xe0, 0, 4, 0, 0, 0x12, 0x34]), /JPEG/);
    fails(bytesOf([0xff, 0xd8, 0xff, 0xd9]), /JPEG/);
  });
  await t.step("WebP with a chunk past its end", () => {
    const webp = fixture("photo.webp");
    fails(webp.subarray(0, 3000), /WebP/);
    fails(bytesOf("RIFF", [100, 0, 0, 0], "WEBPVP8 ", [200, 0, 0, 0]), /WebP/);
  });
  await t.step("GIF cut inside its image data", () => {
    const gif = fixture("anim.gif");
    const lastImage = latin1.decode(gif).lastIndexOf("\x2c");
    fails(gif.subarray(0, lastImage + 14), /GIF/, 1);
  });
  await t.step("damage shows in failed before the end", () => {
    const s = new Sanitizer();
    s.push(concat([png.subarray(0, 8), new Uint8Array(SNIFF_BYTES)]));
    assert.ok(s.failed instanceof DamagedImage);
    assert.deepEqual(s.push(new Uint8Array(100)), []);
    assert.throws(() => s.end(), DamagedImage);
  });
});

Deno.test("Sanitizer streams huge metadata without holding it", () => {
  // A PNG whose 40 MB text chunk arrives in 1 MiB pieces from one reused buffer.
  const png = fixture("photo.png");
  const chunks = pngChunks(png);
  const ihdrEnd = 8 + 12 + 13;
  const size = 40 * 1024 * 1024;
  const head = new Uint8Array(8);
  new DataView(head.buffer).setUint32(0, size);
  head.set(enc.encode("zTXt"), 4);
  const s = new Sanitizer();
  const out: Uint8Array[] = [...s.push(png.subarray(0, ihdrEnd)), ...s.push(head)];
  const piece = new Uint8Array(1024 * 1024).fill(0x41);
  for (let sent = 0; sent < size; sent += piece.length) {
    const got = s.push(piece);
    // The first piece completes the sniffed head: out come the signature and IHDR.
    assert.equal(got.reduce((n, p) => n + p.length, 0), sent === 0 ? ihdrEnd : 0);
    out.push(...got);
  }
  out.push(...s.push(new Uint8Array(4)), ...s.push(png.subarray(ihdrEnd)));
  const end = s.end();
  const bytes = concat([...out, ...end.out]);
  assert.ok(bytes.length < png.length);
  assert.deepEqual(
    pngChunks(bytes).map((c) => c.type),
    pngChunks(sanitize(png).bytes).map((c) => c.type),
  );
  assert.equal(chunks[0].type, "IHDR");
});

Deno.test("Sanitizer output decodes in a browser at the size it reports", async () => {
  const files: [string, string][] = [
    ["photo.jpg", "image/jpeg"],
    ["progressive.jpg", "image/jpeg"],
    ["photo.png", "image/png"],
    ["photo.webp", "image/webp"],
    ["plain.webp", "image/webp"],
    ["anim.gif", "image/gif"],
    // Turned a quarter by its irot property: shown 48×64.
    ["photo.avif", "image/avif"],
  ];
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    for (const [name, type] of files) {
      const { bytes, width, height } = sanitize(fixture(name), 7);
      const src = `data:${type};base64,${btoa(latin1.decode(bytes))}`;
      const shown = await page.evaluate(async (src) => {
        const img = new Image();
        img.src = src;
        await img.decode();
        return [img.naturalWidth, img.naturalHeight];
      }, src);
      assert.deepEqual(shown, [width, height], name);
    }
  } finally {
    await browser.close();
  }
});

Deno.test("Sanitizer refuses a picture made of too many parts, and quickly", async (t) => {
  const png = fixture("photo.png");
  const chunks = pngChunks(png);
  const ihdr = png.subarray(0, 8 + 12 + chunks[0].data.length);
  const rest = png.subarray(ihdr.length);
  const phys = pngChunk("pHYs", new Uint8Array(9));
  const many = (n: number, part: Uint8Array) => {
    const out = new Uint8Array(n * part.length);
    for (let i = 0; i < n; i++) out.set(part, i * part.length);
    return out;
  };
  await t.step("a PNG with a million tiny chunks", () => {
    const input = concat([ihdr, many(1_000_000, phys), rest]);
    const started = performance.now();
    assert.throws(() => sanitize(input, 262144), /too many parts/);
    // Refused long before its end, not after seconds of parsing.
    assert.ok(performance.now() - started < 5000);
  });
  await t.step("a JPEG with a million empty comments", () => {
    const jpeg = fixture("photo.jpg");
    const com = Uint8Array.of(0xff, 0xfe, 0x00, 0x02);
    const input = concat([jpeg.subarray(0, 2), many(1_000_000, com), jpeg.subarray(2)]);
    assert.throws(() => sanitize(input, 262144), /too many parts/);
  });
  await t.step("a PNG of a few thousand chunks is a picture", () => {
    const input = concat([ihdr, many(5000, phys), rest]);
    const { type } = sanitize(input, 262144);
    assert.equal(type, "image/png");
  });
});

Deno.test("Sanitizer gives a GIF the size of its largest frame when a frame goes past the screen", () => {
  // A 1×1 screen with one 60000×60000 frame: what a browser may try to draw.
  const gif = Uint8Array.of(
    ...latin1Bytes("GIF89a"),
    1,
    0,
    1,
    0,
    0,
    0,
    0, // screen 1×1, no global colour table
    0x2c,
    10,
    0,
    20,
    0,
    0x60,
    0xea,
    0x60,
    0xea,
    0, // at (10,20), 60000×60000, no local table
    2,
    2,
    0x4c,
    0x01,
    0, // LZW minimum code size, one sub-block, end
    0x3b,
  );
  const { type, width, height } = sanitize(gif);
  assert.equal(type, "image/gif");
  assert.deepEqual([width, height], [60010, 60020]);
  // The screen's size stays when every frame fits in it.
  assert.deepEqual([sanitize(fixture("anim.gif")).width, sanitize(fixture("anim.gif")).height], [
    24,
    16,
  ]);
});

function latin1Bytes(s: string): number[] {
  return [...s].map((c) => c.charCodeAt(0));
}
