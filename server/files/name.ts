/**
 * File names as people see them: what the uploader gave, made harmless to
 * show and to save (no paths, no invisible or reordering characters).
 *
 * @module
 */

/** Longest name in UTF-8 bytes (what most file systems allow). */
export const MAX_NAME_BYTES = 255;

/** Extensions up to this many bytes survive shortening. */
const MAX_EXT_BYTES = 16;

// C0, DEL and C1 controls become spaces (a tab or newline separated words).
// deno-lint-ignore no-control-regex
const CONTROLS = /[\u0000-\u001f\u007f-\u009f]/g;
// Bidirectional controls (they can make "exe.pdf" read as "fdp.exe") and
// zero-width spaces that hide what a name says. The zero-width joiners stay:
// emoji sequences and several scripts need them.
const INVISIBLE = /[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\u200b\u2060\ufeff]/g;

const encoder = new TextEncoder();

function bytes(s: string): number {
  return encoder.encode(s).length;
}

/** Cuts `s` to at most `max` UTF-8 bytes at a grapheme boundary. */
function cut(s: string, max: number): string {
  if (bytes(s) <= max) return s;
  let out = "";
  let used = 0;
  for (const { segment } of new Intl.Segmenter("en", { granularity: "grapheme" }).segment(s)) {
    const n = bytes(segment);
    if (used + n > max) break;
    out += segment;
    used += n;
  }
  return out;
}

/**
 * A file name as the user gave it, cleaned: last path segment only (both
 * `/` and `\`), no control characters (C0, C1, DEL), no bidirectional
 * controls (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C) or
 * zero-width characters, NFC, whitespace collapsed and trimmed, at most 255
 * UTF-8 bytes (cut on a character boundary, keeping the extension when it is
 * short); null when nothing usable is left ("", ".", "..").
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(cleanName("C:\\Users\\me\\invoice\u202Egpj.exe"), "invoicegpj.exe");
 * ```
 */
export function cleanName(raw: string): string | null {
  let name = raw.toWellFormed().normalize("NFC");
  const segments = name.split(/[/\\]/);
  name = segments[segments.length - 1];
  name = name.replace(CONTROLS, " ").replace(INVISIBLE, "").replace(/\s+/g, " ").trim();
  if (name === "" || name === "." || name === "..") return null;
  if (bytes(name) <= MAX_NAME_BYTES) return name;
  const dot = name.lastIndexOf(".");
  const ext = dot > 0 ? name.slice(dot) : "";
  if (ext && bytes(ext) <= MAX_EXT_BYTES && !/\s/.test(ext)) {
    return cut(name.slice(0, dot), MAX_NAME_BYTES - bytes(ext)).trimEnd() + ext;
  }
  return cut(name, MAX_NAME_BYTES).trimEnd();
}
