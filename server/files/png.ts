/**
 * PNG metadata stripping: keeps only the chunks drawing needs (critical,
 * colour, animation) and drops every other one (text, timestamps, Exif,
 * content credentials, private and unknown chunks), writing back a minimal
 * eXIf with the orientation. Kept chunks pass with their CRC unchanged; an
 * unknown critical chunk is damage (a decoder must not skip it either).
 *
 * @module
 */
import { crc32, orientationTiff, readOrientation, swapsAxes } from "./exif.ts";
import { DamagedImage, emit, MAX_READ, type Parser, pass, read, skip } from "./flow.ts";

const FORMAT = "PNG";

/** Critical chunks: the image itself. */
const CRITICAL = new Set(["IHDR", "PLTE", "IDAT", "IEND"]);

/**
 * Ancillary chunks that only say how to draw the picture (transparency,
 * colour, physical size, background, palette use, HDR, animation). Every
 * other ancillary chunk (text, time, Exif, private ones…) is dropped.
 */
const KEEP = new Set([
  "tRNS",
  "gAMA",
  "cHRM",
  "sRGB",
  "iCCP",
  "sBIT",
  "pHYs",
  "bKGD",
  "hIST",
  "sPLT",
  "cICP",
  "mDCv",
  "cLLi",
  "acTL",
  "fcTL",
  "fdAT",
]);

/** The IEND chunk as it should be: no data, its CRC. */
const IEND = Uint8Array.of(0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82);

function damaged(detail: string): DamagedImage {
  return new DamagedImage(FORMAT, detail);
}

function isLetter(b: number): boolean {
  return (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
}

/** An eXIf chunk (with CRC) holding only the orientation. */
export function orientationChunk(orientation: number): Uint8Array {
  const tiff = orientationTiff(orientation);
  const chunk = new Uint8Array(12 + tiff.length);
  const view = new DataView(chunk.buffer);
  view.setUint32(0, tiff.length);
  chunk.set([0x65, 0x58, 0x49, 0x66], 4); // "eXIf"
  chunk.set(tiff, 8);
  view.setUint32(8 + tiff.length, crc32(chunk.subarray(4, 8 + tiff.length)));
  return chunk;
}

/** The PNG parser for {@link Flow}. */
export function* png(): Parser {
  const sig = yield read(8);
  if (sig!.length < 8) throw damaged("it ends inside its signature");
  yield emit(sig!);
  let width = 0;
  let height = 0;
  let orientation: number | undefined;
  let first = true;
  for (;;) {
    const head = yield read(8);
    if (head!.length < 8) throw damaged("it ends before its IEND chunk");
    const view = new DataView(head!.buffer, head!.byteOffset, 8);
    const len = view.getUint32(0);
    if (len > 0x7fffffff) throw damaged("a chunk has an impossible length");
    for (let i = 4; i < 8; i++) {
      if (!isLetter(head![i])) throw damaged("a chunk has an invalid type");
    }
    const type = String.fromCharCode(head![4], head![5], head![6], head![7]);
    if (first) {
      if (type !== "IHDR" || len !== 13) throw damaged("it does not start with its IHDR chunk");
      first = false;
      yield emit(head!); // before the next read: the view is only valid until then
      const ihdr = yield read(13 + 4);
      if (ihdr!.length < 17) throw damaged("its IHDR chunk is cut short");
      const iv = new DataView(ihdr!.buffer, ihdr!.byteOffset, 17);
      width = iv.getUint32(0);
      height = iv.getUint32(4);
      if (width === 0 || height === 0) throw damaged("its size is zero");
      yield emit(ihdr!);
      continue;
    }
    if (type === "IEND") {
      // IEND holds no data: it is written as it should be, whatever a file
      // puts there is dropped (and a length no real IEND has is damage,
      // not a huge read).
      if (len > MAX_READ - 4) throw damaged("its IEND chunk has an impossible length");
      const rest = yield read(len + 4);
      if (rest!.length < len + 4) throw damaged("its IEND chunk is cut short");
      yield emit(IEND);
      // Anything after IEND is dropped: it is not part of the picture.
      const swap = swapsAxes(orientation);
      return { width: swap ? height : width, height: swap ? width : height };
    }
    const critical = (head![4] & 0x20) === 0; // an uppercase first letter
    if (critical && !CRITICAL.has(type)) {
      throw damaged(`it has an unknown critical chunk "${type}"`);
    }
    if (critical || KEEP.has(type)) {
      yield emit(head!);
      yield pass(len + 4);
    } else if (type === "eXIf" && orientation === undefined) {
      const n = Math.min(len, MAX_READ);
      const data = yield read(n);
      if (data!.length < n) throw damaged("a chunk runs past the end of the file");
      orientation = readOrientation(data!) ?? 1;
      if (orientation !== 1) yield emit(orientationChunk(orientation));
      yield skip(len - n + 4);
    } else {
      yield skip(len + 4);
    }
  }
}
