/**
 * The one piece of Exif a stripped photo keeps: its orientation, so that a
 * phone picture taken sideways still shows the right way up.
 *
 * @module
 */

const ORIENTATION = 0x0112;
const EXIF_PREFIX = [0x45, 0x78, 0x69, 0x66, 0, 0]; // "Exif\0\0"

/** Whether `bytes` starts with the "Exif\0\0" header of a JPEG APP1 segment. */
export function hasExifPrefix(bytes: Uint8Array): boolean {
  if (bytes.length < 6) return false;
  for (let i = 0; i < 6; i++) if (bytes[i] !== EXIF_PREFIX[i]) return false;
  return true;
}

/**
 * Reads the Orientation tag (1–8) from IFD0 of an Exif block — a TIFF
 * structure, with or without the "Exif\0\0" prefix. Undefined when absent,
 * out of range or unreadable (the block may be cut short: only what is there
 * is read).
 */
export function readOrientation(bytes: Uint8Array): number | undefined {
  const tiff = hasExifPrefix(bytes) ? bytes.subarray(6) : bytes;
  if (tiff.length < 8) return undefined;
  const view = new DataView(tiff.buffer, tiff.byteOffset, tiff.byteLength);
  let little: boolean;
  if (tiff[0] === 0x49 && tiff[1] === 0x49) little = true;
  else if (tiff[0] === 0x4d && tiff[1] === 0x4d) little = false;
  else return undefined;
  if (view.getUint16(2, little) !== 42) return undefined;
  const ifd = view.getUint32(4, little);
  if (ifd < 8 || ifd + 2 > tiff.length) return undefined;
  const count = view.getUint16(ifd, little);
  for (let i = 0; i < count; i++) {
    const at = ifd + 2 + i * 12;
    if (at + 12 > tiff.length) return undefined;
    if (view.getUint16(at, little) !== ORIENTATION) continue;
    const type = view.getUint16(at + 2, little);
    // SHORT as the standard says; a few writers use LONG.
    const value = type === 3
      ? view.getUint16(at + 8, little)
      : type === 4
      ? view.getUint32(at + 8, little)
      : 0;
    return value >= 1 && value <= 8 ? value : undefined;
  }
  return undefined;
}

/** A TIFF block (no "Exif" prefix) holding only IFD0 with the Orientation tag. */
export function orientationTiff(orientation: number): Uint8Array {
  const out = new Uint8Array(26);
  const view = new DataView(out.buffer);
  out.set([0x4d, 0x4d, 0, 42]); // big-endian TIFF
  view.setUint32(4, 8);
  view.setUint16(8, 1); // one entry
  view.setUint16(10, ORIENTATION);
  view.setUint16(12, 3); // SHORT
  view.setUint32(14, 1); // count
  view.setUint16(18, orientation);
  view.setUint32(22, 0); // no next IFD
  return out;
}

/** Whether an orientation turns the picture a quarter (width and height swap on screen). */
export function swapsAxes(orientation: number | undefined): boolean {
  return orientation !== undefined && orientation >= 5 && orientation <= 8;
}

let table: Uint32Array | undefined;

/** CRC-32 (as PNG uses it) of small buffers: only for chunks the stripper writes itself. */
export function crc32(bytes: Uint8Array): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (const b of bytes) c = table[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
