/**
 * WebP metadata stripping: drops the EXIF and XMP chunks of the RIFF
 * container (keeping a minimal EXIF with the orientation), and leaves the
 * size and flag fixes to {@link fixWebpHead} once the output size is known.
 *
 * @module
 */
import { orientationTiff, readOrientation } from "./exif.ts";
import { DamagedImage, emit, MAX_READ, type Parser, pass, read, skip } from "./flow.ts";

const FORMAT = "WebP";
const FLAG_EXIF = 0x08;
const FLAG_XMP = 0x04;

function damaged(detail: string): DamagedImage {
  return new DamagedImage(FORMAT, detail);
}

/** What {@link fixWebpHead} needs to know after the parse. */
export interface WebpState {
  /** The file has a VP8X chunk right after the RIFF header. */
  vp8x: boolean;
  /** A minimal EXIF chunk (the orientation) was written. */
  exif: boolean;
}

function fourcc(b: Uint8Array): string {
  return String.fromCharCode(b[0], b[1], b[2], b[3]);
}

function le24(b: Uint8Array, at: number): number {
  return b[at] | (b[at + 1] << 8) | (b[at + 2] << 16);
}

/** An EXIF chunk holding only the orientation. */
export function orientationChunk(orientation: number): Uint8Array {
  const tiff = orientationTiff(orientation);
  const chunk = new Uint8Array(8 + tiff.length);
  chunk.set([0x45, 0x58, 0x49, 0x46]); // "EXIF"
  new DataView(chunk.buffer).setUint32(4, tiff.length, true);
  chunk.set(tiff, 8);
  return chunk;
}

/** The WebP parser for {@link Flow}; fills `state`. */
export function* webp(state: WebpState): Parser {
  const riff = yield read(12);
  if (riff!.length < 12) throw damaged("it ends inside its header");
  let left = new DataView(riff!.buffer, riff!.byteOffset, 12).getUint32(4, true) - 4;
  yield emit(riff!);
  let size: { width: number; height: number } | undefined;
  let canvas: { width: number; height: number } | undefined;
  let orientation: number | undefined;
  let first = true;
  let image = false;
  while (left >= 8) {
    const view = yield read(8);
    if (view!.length < 8) throw damaged("it ends before its last chunk");
    const head = view!.slice();
    const len = new DataView(head.buffer).getUint32(4, true);
    if (8 + len > left) throw damaged("a chunk runs past the end of the file");
    const pad = Math.min(len & 1, left - 8 - len);
    left -= 8 + len + pad;
    const type = fourcc(head);
    if (type === "VP8X" && first) {
      if (len < 10) throw damaged("its VP8X chunk is too short");
      const data = yield read(10);
      if (data!.length < 10) throw damaged("its VP8X chunk is cut short");
      canvas = { width: le24(data!, 4) + 1, height: le24(data!, 7) + 1 };
      state.vp8x = true;
      yield emit(head);
      yield emit(data!);
      yield pass(len - 10 + pad);
    } else if (type === "EXIF") {
      const n = Math.min(len, MAX_READ);
      const data = yield read(n);
      if (data!.length < n) throw damaged("a chunk runs past the end of the file");
      if (orientation === undefined) {
        orientation = readOrientation(data!) ?? 1;
        // Without VP8X the format has no place for EXIF: the orientation goes too.
        if (orientation !== 1 && state.vp8x) {
          yield emit(orientationChunk(orientation));
          state.exif = true;
        }
      }
      yield skip(len - n + pad);
    } else if (type === "XMP ") {
      yield skip(len + pad);
    } else if ((type === "VP8 " || type === "VP8L") && !image) {
      image = true;
      const n = type === "VP8 " ? 10 : 5;
      if (len < n) throw damaged(`its ${type.trim()} chunk is too short`);
      const data = yield read(n);
      if (data!.length < n) throw damaged("a chunk runs past the end of the file");
      const d = data!;
      if (type === "VP8 ") {
        if (d[3] !== 0x9d || d[4] !== 0x01 || d[5] !== 0x2a) throw damaged("bad VP8 start code");
        size = { width: (d[6] | (d[7] << 8)) & 0x3fff, height: (d[8] | (d[9] << 8)) & 0x3fff };
      } else {
        if (d[0] !== 0x2f) throw damaged("bad VP8L signature");
        const v = (d[1] | (d[2] << 8) | (d[3] << 16) | (d[4] << 24)) >>> 0;
        size = { width: (v & 0x3fff) + 1, height: ((v >>> 14) & 0x3fff) + 1 };
      }
      yield emit(head);
      yield emit(d);
      yield pass(len - n + pad);
    } else {
      yield emit(head);
      yield pass(len + pad);
    }
    first = false;
  }
  // A few stray bytes inside the RIFF size are dropped; anything after it too.
  const shown = canvas ?? size;
  if (!shown) throw damaged("it has no image data");
  // Browsers do not turn WebP pictures by their EXIF orientation (Chromium
  // shows them as stored), so the displayed size is the stored one.
  return shown;
}

/**
 * Fixes the output's RIFF size and VP8X flags in place: `head` holds at
 * least the first 21 output bytes; `total` is the output size.
 */
export function fixWebpHead(head: Uint8Array, total: number, state: WebpState): void {
  if (head.length < 12) return;
  new DataView(head.buffer, head.byteOffset, head.byteLength).setUint32(4, total - 8, true);
  if (state.vp8x && head.length > 20) {
    let flags = head[20] & ~FLAG_XMP;
    flags = state.exif ? flags | FLAG_EXIF : flags & ~FLAG_EXIF;
    head[20] = flags;
  }
}
