/**
 * What the upload path does to a file's bytes and name before anyone else
 * sees them: decide the type from the bytes, strip photo metadata (GPS,
 * serial numbers, thumbnails, comments) while streaming, measure images,
 * and clean the name.
 *
 * The {@link Sanitizer} holds at most the first {@link SNIFF_BYTES} bytes
 * plus one header (≤ 64 KiB) at any time, whatever the upload's size; a
 * HEIF image's file-level `meta` box is held whole while it is read (up to
 * 256 KiB, plus one piece of input).
 *
 * @module
 */
import { DamagedImage, Flow } from "./flow.ts";
import { gif } from "./gif.ts";
import { heif, heifName } from "./heif.ts";
import { jpeg } from "./jpeg.ts";
import { png } from "./png.ts";
import { heifType, IMAGE_TYPES, imageFormat, knownType, SNIFF_BYTES, TextCheck } from "./sniff.ts";
import { fixWebpHead, webp, type WebpState } from "./webp.ts";

export { cleanName, MAX_NAME_BYTES } from "./name.ts";
export { DamagedImage } from "./flow.ts";
export { SNIFF_BYTES } from "./sniff.ts";

const FORMAT_NAMES = { png: "PNG", jpeg: "JPEG", gif: "GIF", webp: "WebP" } as const;

const INLINE = new Set(Object.values(IMAGE_TYPES));

/** Whether a type is served inline (image/png, image/jpeg, image/gif, image/webp only). */
export function isInlineImage(type: string): boolean {
  return INLINE.has(type);
}

/** What {@link Sanitizer.end} found the file to be. */
export interface SanitizedFile {
  /** The rest of the output. */
  out: Uint8Array[];
  /** Media type decided from the bytes. */
  type: string;
  /** Images: displayed width in pixels (orientation applied). */
  width?: number;
  /** Images: displayed height in pixels (orientation applied). */
  height?: number;
}

/**
 * Streams an upload through type sniffing and metadata stripping.
 *
 * @example
 * ```ts
 * const s = new Sanitizer();
 * const stored: Uint8Array[] = [];
 * stored.push(...s.push(new TextEncoder().encode("hello")));
 * const { out, type } = s.end();
 * stored.push(...out);
 * if (type !== "text/plain") throw new Error(`Unexpected type "${type}"`);
 * ```
 */
export class Sanitizer {
  #head: Uint8Array | undefined = new Uint8Array(SNIFF_BYTES);
  #headLen = 0;
  #type = "application/octet-stream";
  #flow: Flow | undefined;
  #text: TextCheck | undefined;
  #webp: WebpState | undefined;
  #failed: DamagedImage | undefined;
  #ended = false;

  /** The damage found so far, if any: the caller may stop reading at once ({@link end} throws it). */
  get failed(): DamagedImage | undefined {
    return this.#failed;
  }

  /**
   * Feeds input bytes; returns output bytes ready to store (possibly none).
   * The output may be views into `chunk` (no copy per byte passed through):
   * use it before reusing `chunk`'s buffer; what the sanitizer keeps between
   * calls it copies. Never throws for bad input: damage is reported by
   * {@link end} (and {@link failed}).
   */
  push(chunk: Uint8Array): Uint8Array[] {
    if (this.#ended) throw new TypeError("Cannot push to a sanitizer: it has ended");
    if (this.#failed || chunk.length === 0) return [];
    if (this.#head) {
      const take = Math.min(SNIFF_BYTES - this.#headLen, chunk.length);
      this.#head.set(chunk.subarray(0, take), this.#headLen);
      this.#headLen += take;
      if (this.#headLen < SNIFF_BYTES) return [];
      const out = this.#decide();
      if (take < chunk.length) out.push(...this.#feed(chunk.subarray(take)));
      return out;
    }
    return this.#feed(chunk);
  }

  /**
   * Ends the input; returns the remaining output and what the file is.
   * Throws {@link DamagedImage} when a file that starts like an image
   * cannot be parsed up to its image data.
   */
  end(): SanitizedFile {
    if (this.#ended) throw new TypeError("Cannot end a sanitizer twice");
    this.#ended = true;
    const out = this.#head ? this.#decide() : [];
    if (this.#failed) throw this.#failed;
    if (this.#flow) {
      try {
        const last = this.#flow.end();
        out.push(...last.out);
        return { out, type: this.#type, ...last.info };
      } catch (err) {
        if (err instanceof DamagedImage) this.#failed = err;
        throw err;
      }
    }
    if (this.#text) this.#type = this.#text.end() ? "text/plain" : "application/octet-stream";
    return { out, type: this.#type };
  }

  /**
   * Fixes header fields that depend on the final size (the WebP RIFF size
   * and VP8X flags) in place in `head`, the first min(total, 262144) output
   * bytes; `total` = all output bytes.
   */
  fixHead(head: Uint8Array, total: number): void {
    if (this.#webp) fixWebpHead(head, total, this.#webp);
  }

  /** Decides the type from the buffered head; returns the head's output. */
  #decide(): Uint8Array[] {
    const head = this.#head!.subarray(0, this.#headLen);
    this.#head = undefined;
    const format = imageFormat(head);
    if (format) {
      // HEIF is one format under three types (HEIC, HEIF, AVIF), told by its brands.
      this.#type = format === "heif" ? heifType(head)! : IMAGE_TYPES[format];
      const name = format === "heif" ? heifName(this.#type) : FORMAT_NAMES[format];
      let parser;
      if (format === "webp") {
        this.#webp = { vp8x: false, exif: false };
        parser = webp(this.#webp);
      } else if (format === "heif") {
        parser = heif(name);
      } else {
        parser = format === "png" ? png() : format === "jpeg" ? jpeg() : gif();
      }
      try {
        this.#flow = new Flow(name, parser);
      } catch (err) {
        return this.#fail(err);
      }
      return this.#feed(head);
    }
    const known = knownType(head);
    if (known) {
      this.#type = known;
    } else {
      this.#text = new TextCheck();
    }
    return this.#feed(head);
  }

  #feed(bytes: Uint8Array): Uint8Array[] {
    if (this.#flow) {
      if (this.#flow.done) return [];
      try {
        return this.#flow.push(bytes);
      } catch (err) {
        return this.#fail(err);
      }
    }
    this.#text?.push(bytes);
    return [bytes];
  }

  #fail(err: unknown): Uint8Array[] {
    if (!(err instanceof DamagedImage)) throw err;
    this.#failed = err;
    return [];
  }
}
