/**
 * GIF metadata stripping: drops comment extensions and application
 * extensions that carry metadata (XMP, Photoshop/IPTC); keeps looping
 * (NETSCAPE2.0, ANIMEXTS1.0), colour profiles and everything drawn.
 *
 * @module
 */
import { DamagedImage, emit, type Parser, pass, read, subBlocks } from "./flow.ts";

const FORMAT = "GIF";

/** Application extensions that change how the picture plays or looks. */
const KEEP_APPS = new Set(["NETSCAPE2.0", "ANIMEXTS1.0", "ICCRGBG1012"]);

function damaged(detail: string): DamagedImage {
  return new DamagedImage(FORMAT, detail);
}

function colorTableBytes(packed: number): number {
  return packed & 0x80 ? 3 * (1 << ((packed & 0x07) + 1)) : 0;
}

/** The GIF parser for {@link Flow}. */
export function* gif(): Parser {
  const head = yield read(13);
  if (head!.length < 13) throw damaged("it ends inside its header");
  const d = head!;
  // The screen's size, grown to any frame that goes past it (browsers grow
  // the picture to fit it): what a viewer may have to draw.
  let width = d[6] | (d[7] << 8);
  let height = d[8] | (d[9] << 8);
  yield emit(d);
  yield pass(colorTableBytes(d[10]));
  for (;;) {
    const intro = yield read(1);
    // Many GIFs in the wild lack the trailer; they still show.
    if (intro!.length === 0 || intro![0] === 0x3b) {
      yield emit(Uint8Array.of(0x3b));
      return { width, height };
    }
    if (intro![0] === 0x2c) {
      const desc = yield read(9);
      if (desc!.length < 9) throw damaged("an image descriptor is cut short");
      const e = desc!;
      width = Math.max(width, (e[0] | (e[1] << 8)) + (e[4] | (e[5] << 8)));
      height = Math.max(height, (e[2] | (e[3] << 8)) + (e[6] | (e[7] << 8)));
      yield emit(Uint8Array.of(0x2c));
      yield emit(desc!);
      // The local colour table, then the LZW minimum code size before the data.
      yield pass(colorTableBytes(desc![8]) + 1);
      yield subBlocks(true);
    } else if (intro![0] === 0x21) {
      const label = yield read(1);
      if (label!.length < 1) throw damaged("an extension is cut short");
      const kind = label![0];
      if (kind === 0xfe) {
        yield subBlocks(false);
      } else if (kind === 0xff) {
        const size = yield read(1);
        if (size!.length < 1) throw damaged("an extension is cut short");
        const n = size![0];
        const id = yield read(n);
        if (id!.length < n) throw damaged("an extension is cut short");
        const name = String.fromCharCode(...id!.subarray(0, 11));
        if (n === 11 && KEEP_APPS.has(name)) {
          yield emit(Uint8Array.of(0x21, 0xff, n));
          yield emit(id!);
          yield subBlocks(true);
        } else {
          yield subBlocks(false);
        }
      } else {
        yield emit(Uint8Array.of(0x21, kind));
        yield subBlocks(true);
      }
    } else {
      throw damaged(`unexpected block 0x${intro![0].toString(16)}`);
    }
  }
}
