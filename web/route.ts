// This module is browser compatible.
/**
 * Links to conversations and messages, kept in the page's hash so that they
 * work on any server without its help and Back and Forward move between
 * conversations:
 *
 * - `#/general` a room, `#/general/42` a message in it;
 * - `#/@bob` the direct conversation with bob; a message in a direct
 *   conversation names both people, `#/@alice+bob/42`, so that the link
 *   means the same to either of them.
 *
 * Pages that are not conversations have addresses of their own (see
 * {@link parsePage}): `#/invite/<code>` an invite link, `#/admin` (its
 * first tab, People), `#/admin/people`, `#/admin/invites` and
 * `#/admin/audit` the admin page. These come first:
 * `#/admin` would otherwise be the link of a room named `admin`.
 *
 * @module
 */
import { NAME_PATTERN } from "../protocol.ts";

/** Where a link points: a conversation key (`#room` or `@peer`) and maybe a message. */
export interface Route {
  key: string;
  id?: number;
}

/** The hash of a conversation, or of a message in it. */
export function routeHash(key: string, id?: number, me?: string | null): string {
  const tail = id === undefined ? "" : `/${id}`;
  if (key.startsWith("#")) return `#/${key.slice(1)}${tail}`;
  const peer = key.slice(1);
  if (id === undefined || !me) return `#/@${peer}`;
  const pair = [me, peer].sort((a, b) => a.localeCompare(b));
  return `#/@${pair[0]}+${pair[1]}${tail}`;
}

const LINK = /^#\/(@?)([^/]+)(?:\/(\d{1,15}))?\/?$/;

/** Whether `hash` has the shape of a link to a conversation or a message. */
export function isRoute(hash: string): boolean {
  return LINK.test(hash);
}

/**
 * What a hash points to for user `me`, or null when it is not a link of
 * ours (the skip link's `#composer`, say) or names a direct conversation
 * between two other people.
 */
export function parseRoute(hash: string, me: string | null): Route | null {
  const m = LINK.exec(hash);
  if (!m) return null;
  const id = m[3] === undefined ? undefined : Number(m[3]);
  let name: string;
  try {
    name = decodeURIComponent(m[2]);
  } catch {
    return null;
  }
  if (m[1] === "") {
    if (!NAME_PATTERN.test(name)) return null;
    return id === undefined ? { key: `#${name}` } : { key: `#${name}`, id };
  }
  const people = name.split("+");
  if (people.length > 2 || !people.every((p) => NAME_PATTERN.test(p))) return null;
  let peer = people[0];
  if (people.length === 2) {
    if (!me) return null;
    const mine = me.toLowerCase();
    const [a, b] = people;
    if (a.toLowerCase() === mine) peer = b;
    else if (b.toLowerCase() === mine) peer = a;
    else return null;
  }
  return id === undefined ? { key: `@${peer}` } : { key: `@${peer}`, id };
}

/** A tab of the admin page. */
export type AdminTab = "people" | "invites" | "rooms" | "audit";

/** A page that is not a conversation: an invite link or the admin page. */
export type Page =
  | { kind: "invite"; code: string }
  | { kind: "admin"; tab: AdminTab };

/** Invite codes are 22 base64url characters; a little slack for other servers' lengths. */
const INVITE = /^#\/invite\/([A-Za-z0-9_-]{8,64})\/?$/;
const ADMIN = /^#\/admin(?:\/(people|invites|rooms|audit))?\/?$/;

/** The page a hash names, or null when it is a conversation's (or nothing of ours). */
export function parsePage(hash: string): Page | null {
  const invite = INVITE.exec(hash);
  if (invite) return { kind: "invite", code: invite[1] };
  const admin = ADMIN.exec(hash);
  if (admin) return { kind: "admin", tab: (admin[1] as AdminTab | undefined) ?? "people" };
  return null;
}

/** The hash of a page. */
export function pageHash(page: Page): string {
  return page.kind === "invite" ? `#/invite/${page.code}` : `#/admin/${page.tab}`;
}

/**
 * A room name made from what someone typed: lower case, spaces and other
 * characters a name cannot hold become `-`, at most 32 characters
 * ("Design team!" → `design-team`). Empty when nothing usable is left.
 */
export function slugify(typed: string): string {
  return typed
    .trim()
    .replace(/^#/, "")
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, "-")
    .replace(/-{2,}/g, "-")
    .replace(/^-+/, "")
    .slice(0, 32)
    .replace(/-+$/, "");
}
