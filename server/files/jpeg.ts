/**
 * JPEG metadata stripping: keeps what decoding and colours need, drops
 * Exif (GPS, serial numbers, thumbnails), XMP, IPTC, comments and the
 * extra pictures some cameras append after the image. Segments between
 * the scans of a progressive (or multi-scan) image go through the same
 * rules as those before the first scan.
 *
 * @module
 */
import { DamagedImage, emit, type ImageInfo, type Parser, read, scanData } from "./flow.ts";
import { hasExifPrefix, orientationTiff, readOrientation, swapsAxes } from "./exif.ts";

const FORMAT = "JPEG";

function damaged(detail: string): DamagedImage {
  return new DamagedImage(FORMAT, detail);
}

function startsWith(bytes: Uint8Array, ascii: string): boolean {
  if (bytes.length < ascii.length) return false;
  for (let i = 0; i < ascii.length; i++) if (bytes[i] !== ascii.charCodeAt(i)) return false;
  return true;
}

/** Start-of-frame markers (they carry the size); C4, C8 and CC are not frames. */
function isSof(marker: number): boolean {
  return marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 &&
    marker !== 0xcc;
}

/** An APP1 segment holding only the orientation. */
export function orientationSegment(orientation: number): Uint8Array {
  const tiff = orientationTiff(orientation);
  const seg = new Uint8Array(4 + 6 + tiff.length);
  const len = seg.length - 2;
  seg.set([0xff, 0xe1, len >> 8, len & 0xff, 0x45, 0x78, 0x69, 0x66, 0, 0]);
  seg.set(tiff, 10);
  return seg;
}

/** The JPEG parser for {@link Flow}. */
export function* jpeg(): Parser {
  const soi = yield read(2);
  if (soi!.length < 2 || soi![0] !== 0xff || soi![1] !== 0xd8) throw damaged("no start marker");
  yield emit(soi!);
  let orientation: number | undefined;
  let seenExif = false;
  let size: { width: number; height: number } | undefined;
  /** The marker that ended the last scan's data; undefined before the first scan. */
  let after: Uint8Array | undefined;
  let scanned = false;
  const result = (): ImageInfo => {
    const info: ImageInfo = {};
    // Height 0 means "defined later" (DNL): unknown here.
    if (size && size.height > 0) {
      const swap = swapsAxes(orientation);
      info.width = swap ? size.height : size.width;
      info.height = swap ? size.width : size.height;
    }
    return info;
  };
  for (;;) {
    let m = after ?? (yield read(2));
    after = undefined;
    if (m!.length < 2) {
      // A file cut between scans still shows what it has.
      if (scanned) return result();
      throw damaged("it ends before its image data");
    }
    if (m![0] !== 0xff) throw damaged("a segment does not start with a marker");
    // Fill bytes: any number of FF before a marker.
    while (m![1] === 0xff) {
      const next = yield read(1);
      if (next!.length < 1) throw damaged("it ends before its image data");
      m = Uint8Array.of(0xff, next![0]);
    }
    const marker = m![1];
    if (marker === 0xd9 && scanned) {
      // Anything after EOI is dropped: it is not part of the picture.
      yield emit(Uint8Array.of(0xff, 0xd9));
      return result();
    }
    if (
      marker === 0xd8 || marker === 0xd9 || marker === 0x00 || marker === 0x01 ||
      (marker >= 0xd0 && marker <= 0xd7)
    ) {
      throw damaged(
        `unexpected marker FF${marker.toString(16).toUpperCase()} before the image data`,
      );
    }
    const lenBytes = yield read(2);
    if (lenBytes!.length < 2) {
      if (scanned) return result();
      throw damaged("a segment is cut short");
    }
    const len = (lenBytes![0] << 8) | lenBytes![1];
    if (len < 2) throw damaged("a segment has an impossible length");
    const body = len - 2; // at most 65533: within MAX_READ
    const header = Uint8Array.of(0xff, marker, lenBytes![0], lenBytes![1]);
    const data = yield read(body);
    if (data!.length < body) {
      // Cut inside a segment between scans: the picture so far still shows.
      if (scanned) return result();
      throw damaged("a segment runs past the end of the file");
    }
    const d = data!;

    if (marker === 0xe0) {
      // APP0: keep JFIF without its thumbnail; drop JFXX (thumbnails) and the rest.
      if (startsWith(d, "JFIF\0") && body >= 14) {
        const jfif = new Uint8Array(18);
        jfif.set([0xff, 0xe0, 0, 16]);
        jfif.set(d.subarray(0, 12), 4);
        // Thumbnail width and height 0: the thumbnail may show what was cropped.
        yield emit(jfif);
      }
    } else if (marker === 0xe1) {
      // Exif (only its orientation is kept), XMP and the rest. Decoders read
      // the orientation only before the first scan.
      if (!seenExif && !scanned && hasExifPrefix(d)) {
        seenExif = true;
        orientation = readOrientation(d);
        if (orientation !== undefined && orientation !== 1) {
          yield emit(orientationSegment(orientation));
        }
      }
    } else if (marker === 0xe2) {
      // APP2: only the ICC profile (colours); MPF and FlashPix go.
      if (startsWith(d, "ICC_PROFILE\0")) {
        yield emit(header);
        yield emit(d);
      }
    } else if ((marker >= 0xe3 && marker <= 0xef && marker !== 0xee) || marker === 0xfe) {
      // Other APPn (IPTC/Photoshop, C2PA, maker data) and comments.
    } else if (isSof(marker)) {
      if (body < 6) throw damaged("a frame header is cut short");
      const height = (d[1] << 8) | d[2];
      const width = (d[3] << 8) | d[4];
      if (width === 0) throw damaged("the frame has no width");
      size ??= { width, height };
      yield emit(header);
      yield emit(d);
    } else if (marker === 0xda) {
      if (!size) throw damaged("the image data comes before the frame header");
      yield emit(header);
      yield emit(d);
      scanned = true;
      // The data ends at the next marker: more segments (tables, metadata,
      // the next scan) or EOI.
      const next = yield scanData();
      if (!next) return result(); // cut inside its image data: it still shows
      after = next.slice();
    } else {
      // Tables (DQT, DHT, DRI, DNL…), APP14 Adobe (colour transform) and the rest.
      yield emit(header);
      yield emit(d);
    }
  }
}
