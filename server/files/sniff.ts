/**
 * What a file is, from its first bytes only (never its name or the
 * client's claim). A small table of magic numbers: the four images we
 * show inline exactly, the common documents, archives and media roughly.
 *
 * @module
 */

/** Bytes looked at before deciding. */
export const SNIFF_BYTES = 4096;

/** The images the server serves inline. */
export type InlineFormat = "png" | "jpeg" | "gif" | "webp";

/**
 * The images the server understands and strips: the inline ones, and HEIF
 * (HEIC, HEIF and AVIF, served as attachments; {@link knownType} names them).
 */
export type ImageFormat = InlineFormat | "heif";

/** Media type of each inline image format. */
export const IMAGE_TYPES: Record<InlineFormat, string> = {
  png: "image/png",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
};

function at(b: Uint8Array, offset: number, sig: readonly number[] | string): boolean {
  const n = sig.length;
  if (b.length < offset + n) return false;
  for (let i = 0; i < n; i++) {
    const want = typeof sig === "string" ? sig.charCodeAt(i) : sig[i];
    if (b[offset + i] !== want) return false;
  }
  return true;
}

/** The image format `head` starts with, if any. */
export function imageFormat(head: Uint8Array): ImageFormat | undefined {
  if (at(head, 0, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return "png";
  if (at(head, 0, [0xff, 0xd8, 0xff])) return "jpeg";
  if (at(head, 0, "GIF87a") || at(head, 0, "GIF89a")) return "gif";
  if (at(head, 0, "RIFF") && at(head, 8, "WEBP")) return "webp";
  if (heifType(head)) return "heif";
  return undefined;
}

/** Whether `s` occurs in `b` (ASCII; small buffers only). */
function contains(b: Uint8Array, s: string): boolean {
  const first = s.charCodeAt(0);
  for (let i = b.indexOf(first); i >= 0; i = b.indexOf(first, i + 1)) {
    if (at(b, i, s)) return true;
  }
  return false;
}

/** Brands that name a HEIF image (or image sequence) format: major or compatible. */
const AVIF_BRANDS = new Set(["avif", "avis"]);
const HEIC_BRANDS = new Set(["heic", "heix", "heim", "heis", "hevc", "hevx"]);
const HEIF_BRANDS = new Set(["mif1", "msf1", "mif2", "miaf", "avci", "avcs", "jpeg"]);

/** The ftyp box's brands: the major first, then the compatible ones. */
function brands(head: Uint8Array): string[] {
  const boxSize = ((head[0] << 24) | (head[1] << 16) | (head[2] << 8) | head[3]) >>> 0;
  const out: string[] = [];
  for (let i = 8; i + 4 <= Math.min(boxSize, head.length, 256); i += 4) {
    if (i === 12) continue; // minor version
    out.push(String.fromCharCode(head[i], head[i + 1], head[i + 2], head[i + 3]));
  }
  return out;
}

/**
 * The image type of an ISO base media file whose major or any compatible
 * brand is a HEIF brand (as libheif and libavif decide), else undefined: a
 * reader that would show it as a picture must get it stripped. The major
 * brand decides between AVIF and HEIC when it is one of theirs.
 */
export function heifType(head: Uint8Array): string | undefined {
  if (!at(head, 4, "ftyp")) return undefined;
  const all = brands(head);
  const major = all[0] ?? "";
  if (AVIF_BRANDS.has(major)) return "image/avif";
  if (HEIC_BRANDS.has(major)) return "image/heic";
  // Compatible brands only (hevc/hevx alone also name HEVC videos, so not them).
  const rest = all.slice(1);
  const image = HEIF_BRANDS.has(major) ||
    rest.some((b) =>
      AVIF_BRANDS.has(b) || HEIF_BRANDS.has(b) || (HEIC_BRANDS.has(b) && !b.startsWith("hev"))
    );
  if (!image) return undefined;
  if (rest.some((b) => AVIF_BRANDS.has(b))) return "image/avif";
  if (rest.some((b) => HEIC_BRANDS.has(b))) return "image/heic";
  return "image/heif";
}

/** ISO base media (ftyp box): MP4, QuickTime, M4A, 3GP, HEIC, AVIF. */
function isoType(head: Uint8Array): string {
  const image = heifType(head);
  if (image) return image;
  const major = brands(head)[0] ?? "";
  if (major === "qt  ") return "video/quicktime";
  if (major === "M4A " || major === "M4B ") return "audio/mp4";
  if (major.startsWith("3g2")) return "video/3gpp2";
  if (major.startsWith("3gp")) return "video/3gpp";
  return "video/mp4";
}

/** MPEG audio frame header (FF Ex/Fx): MP3 or AAC (ADTS). */
function mpegAudio(head: Uint8Array): string | undefined {
  if (head.length < 4 || head[0] !== 0xff || (head[1] & 0xe0) !== 0xe0) return undefined;
  const layer = (head[1] >> 1) & 3;
  if (layer === 0) return (head[1] & 0xf6) === 0xf0 ? "audio/aac" : undefined;
  const bitrate = head[2] >> 4;
  const rate = (head[2] >> 2) & 3;
  return bitrate !== 0x0f && rate !== 3 && ((head[1] >> 3) & 3) !== 1 ? "audio/mpeg" : undefined;
}

/**
 * The media type of a non-image file from its first bytes, if it is one we
 * know. For a HEIF image ({@link imageFormat} says "heif") use
 * {@link heifType}: a tar header check here would come first.
 */
export function knownType(head: Uint8Array): string | undefined {
  if (at(head, 0, "%PDF-")) return "application/pdf";
  if (at(head, 0, "PK\x03\x04") || at(head, 0, "PK\x05\x06") || at(head, 0, "PK\x07\x08")) {
    return "application/zip";
  }
  if (at(head, 0, [0x1f, 0x8b, 0x08])) return "application/gzip";
  if (at(head, 0, [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c])) return "application/x-7z-compressed";
  if (at(head, 0, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) return "application/x-xz";
  if (at(head, 0, [0x28, 0xb5, 0x2f, 0xfd])) return "application/zstd";
  if (at(head, 0, "BZh") && head[3] >= 0x31 && head[3] <= 0x39) return "application/x-bzip2";
  if (at(head, 0, "Rar!\x1a\x07")) return "application/vnd.rar";
  if (at(head, 257, "ustar")) return "application/x-tar";
  if (at(head, 0, "SQLite format 3\0")) return "application/vnd.sqlite3";
  if (at(head, 4, "ftyp")) return isoType(head);
  if (at(head, 0, [0x1a, 0x45, 0xdf, 0xa3])) {
    return contains(head, "webm") ? "video/webm" : "video/x-matroska";
  }
  if (at(head, 0, "OggS")) {
    if (contains(head, "OpusHead") || contains(head, "\x01vorbis") || contains(head, "\x7fFLAC")) {
      return "audio/ogg";
    }
    return contains(head, "\x80theora") ? "video/ogg" : "application/ogg";
  }
  if (at(head, 0, "RIFF")) {
    if (at(head, 8, "WAVE")) return "audio/wav";
    if (at(head, 8, "AVI ")) return "video/x-msvideo";
  }
  if (at(head, 0, "fLaC")) return "audio/flac";
  if (at(head, 0, "ID3")) return "audio/mpeg";
  if (at(head, 0, "MThd")) return "audio/midi";
  if (at(head, 0, "II*\0") || at(head, 0, "MM\0*")) return "image/tiff";
  if (at(head, 0, "8BPS")) return "image/vnd.adobe.photoshop";
  if (at(head, 0, [0xff, 0x0a]) || at(head, 4, "JXL ")) return "image/jxl";
  if (at(head, 0, "BM") && head.length >= 18 && at(head, 6, [0, 0, 0, 0])) {
    const dib = head[14] | (head[15] << 8) | (head[16] << 16) | (head[17] << 24);
    if ([12, 40, 52, 56, 64, 108, 124].includes(dib)) return "image/bmp";
  }
  return mpegAudio(head);
}

/** Whether bytes are (the start of) UTF-8 text without NUL: decided in full by {@link TextCheck}. */
export class TextCheck {
  #decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  #ok = true;

  /** Whether every byte so far could be text. */
  get ok(): boolean {
    return this.#ok;
  }

  /** Checks more bytes (native decoding: cheap even for big files). */
  push(bytes: Uint8Array): void {
    if (!this.#ok) return;
    if (bytes.indexOf(0) >= 0) {
      this.#ok = false;
      return;
    }
    try {
      this.#decoder.decode(bytes, { stream: true });
    } catch {
      this.#ok = false;
    }
  }

  /** Ends the check: false when the text stopped inside a character. */
  end(): boolean {
    if (!this.#ok) return false;
    try {
      this.#decoder.decode();
    } catch {
      this.#ok = false;
    }
    return this.#ok;
  }
}
