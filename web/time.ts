// This module is browser compatible.
/**
 * Dates and times in the viewer's own locale and time zone.
 *
 * @module
 */

const TIME = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const FULL = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });
const DAY = new Intl.DateTimeFormat(undefined, { weekday: "long", month: "long", day: "numeric" });
const DAY_YEAR = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "long",
  day: "numeric",
});
const SHORT = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });

/** `14:05` (or `2:05 PM`), in local time. */
export function clock(ts: string): string {
  return TIME.format(new Date(ts));
}

/** The full local date and time, for tooltips. */
export function fullDate(ts: string): string {
  return FULL.format(new Date(ts));
}

/** Local calendar day of a timestamp, as a sortable key. */
export function dayKey(ts: string | Date): string {
  const d = typeof ts === "string" ? new Date(ts) : ts;
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

/** "Today", "Yesterday", "Monday, March 3" or "March 3, 2024". */
export function dayLabel(ts: string, now: Date = new Date()): string {
  const d = new Date(ts);
  if (dayKey(d) === dayKey(now)) return "Today";
  const y = new Date(now);
  y.setDate(now.getDate() - 1);
  if (dayKey(d) === dayKey(y)) return "Yesterday";
  if (now.getTime() - d.getTime() < 6 * 24 * 3600 * 1000) return DAY.format(d);
  return DAY_YEAR.format(d);
}

/** A short stamp for search results: the time today, else the date. */
export function shortStamp(ts: string, now: Date = new Date()): string {
  return dayKey(ts) === dayKey(now) ? clock(ts) : SHORT.format(new Date(ts));
}

const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

/**
 * When someone was last here, in words: "online", "last seen 5 minutes ago",
 * "last seen yesterday", "last seen on Mar 3"; "not seen yet" when never.
 */
export function lastSeen(online: boolean, seen?: string, now: Date = new Date()): string {
  if (online) return "online";
  if (!seen) return "not seen yet";
  const ms = now.getTime() - Date.parse(seen);
  const min = Math.round(ms / 60_000);
  if (min < 1) return "last seen just now";
  if (min < 60) return `last seen ${RELATIVE.format(-min, "minute")}`;
  const hours = Math.round(min / 60);
  if (hours < 24) return `last seen ${RELATIVE.format(-hours, "hour")}`;
  const days = Math.round(hours / 24);
  if (days < 7) return `last seen ${RELATIVE.format(-days, "day")}`;
  return `last seen on ${SHORT.format(new Date(seen))}`;
}

const WHEN = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/** `Dec 7, 2026, 10:32 AM`, in local time (for lists and logs). */
export function when(ms: number): string {
  return WHEN.format(new Date(ms));
}

/**
 * How far `ms` is from now in words: "in 7 days", "in 3 hours",
 * "5 minutes ago", "just now" (under a minute either way).
 */
export function fromNow(ms: number, now: number = Date.now()): string {
  const diff = ms - now;
  const min = Math.round(Math.abs(diff) / 60_000);
  if (min < 1) return "just now";
  const sign = diff < 0 ? -1 : 1;
  if (min < 60) return RELATIVE.format(sign * min, "minute");
  const hours = Math.round(min / 60);
  if (hours < 24) return RELATIVE.format(sign * hours, "hour");
  return RELATIVE.format(sign * Math.round(hours / 24), "day");
}

const ISO_TIME = /\b\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?Z\b/g;

/**
 * The server's words with the times it wrote as ISO-8601 UTC in the reader's
 * own ("…until 2026-12-08T10:32:00.000Z" → "…until Dec 8, 2026, 10:32 AM").
 */
export function localTimes(text: string): string {
  return text.replace(ISO_TIME, (iso) => {
    const ms = Date.parse(iso);
    return Number.isNaN(ms) ? iso : when(ms);
  });
}
