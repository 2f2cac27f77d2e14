/**
 * Download links of attached files: `/files/<id>/<name>?v=<viewer>&s=<sig>`.
 * A link is a capability signed for one viewer: the hub puts in every frame
 * a link signed for the user it goes to, and the download route checks the
 * signature, then that the viewer may still see the file (see
 * `server/http/files.ts`). It works in an `<img>` tag: no header needed.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { timingSafeEqual } from "node:crypto";
import { HmacKey } from "../auth/hmac.ts";
import type { ChatMessage, FileInfo } from "../../protocol.ts";
import type { FileMeta } from "./files.ts";

/** Signs and checks file links with a key derived from the server's secret. */
export class FileUrls {
  #key: HmacKey;

  /** Links signed with `key` (every node of a chat must use the same). */
  constructor(key: Uint8Array) {
    this.#key = new HmacKey(key);
  }

  /** The link to `file` for `viewer`. */
  url(file: FileMeta, viewer: string): string {
    return `/files/${file.id}/${encodeURIComponent(file.name)}?v=${encodeURIComponent(viewer)}&s=${
      this.#sign(file.id, viewer)
    }`;
  }

  /** Whether `sig` is this server's signature of file `id` for `viewer`. */
  verify(id: string, viewer: string, sig: string): boolean {
    const want = Buffer.from(this.#sign(id, viewer));
    const got = Buffer.from(sig);
    return got.length === want.length && timingSafeEqual(got, want);
  }

  /** `msg` as `viewer` receives it: each file with its link; `msg` itself when it has none. */
  viewed(msg: ChatMessage, viewer: string): ChatMessage {
    if (msg.files === undefined) return msg;
    return { ...msg, files: msg.files.map((f) => this.info(f, viewer)) };
  }

  /** `file` with its link for `viewer`. */
  info(file: FileMeta, viewer: string): FileInfo {
    const { id, name, size, type, width, height } = file;
    const out: FileInfo = { id, name, size, type, url: this.url(file, viewer) };
    if (width !== undefined) out.width = width;
    if (height !== undefined) out.height = height;
    return out;
  }

  /** 128 bits of HMAC-SHA256 over the id and the viewer (names compare ignoring case). */
  #sign(id: string, viewer: string): string {
    return this.#key.sign(`${id}\n${viewer.toLowerCase()}`).subarray(0, 16).toString("base64url");
  }
}
