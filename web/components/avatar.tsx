/**
 * A round initial in a colour derived from the name, with an optional
 * presence dot.
 *
 * @module
 */

/** One of eight hues, stable per name. */
export function hue(name: string): number {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
  return h % 8;
}

/** The avatar; `online` adds a presence dot (true: online, false: away). */
export function Avatar(
  { name, online, size }: { name: string; online?: boolean; size?: "sm" | "md" },
) {
  return (
    <span class={`avatar hue-${hue(name)} ${size === "sm" ? "avatar-sm" : ""}`} aria-hidden="true">
      {name.slice(0, 1).toUpperCase()}
      {online !== undefined && <span class={`dot ${online ? "on" : "off"}`} />}
    </span>
  );
}
