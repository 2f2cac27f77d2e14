/**
 * The chat's version, read from the `version` field of deno.json so that the
 * package and the program cannot disagree.
 *
 * @module
 */
import denoConfig from "./deno.json" with { type: "json" };

/** The chat's version, as `chat --version` and `/healthz` report it. */
export const VERSION: string = denoConfig.version;
