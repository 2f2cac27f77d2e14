/**
 * Message text as text nodes, links and mention chips. Every piece of user
 * input becomes a text node, so markup in a message shows as typed.
 *
 * @module
 */
import { segments } from "../text.ts";

/**
 * Renders message text; `@name` shows as a mention only where `known(name)`
 * (someone who exists), else as the text typed.
 */
export function MessageText(
  { text, me, known }: { text: string; me: string | null; known?: (name: string) => boolean },
) {
  return (
    <>
      {segments(text, me).map((s, i) =>
        s.kind === "text" || (s.kind === "mention" && known && !known(s.name))
          ? s.text
          : s.kind === "link"
          ? (
            isOwnLink(s.href)
              ? <a key={i} href={s.href}>{s.text}</a>
              : (
                <a key={i} href={s.href} target="_blank" rel="noopener noreferrer">
                  {s.text}
                </a>
              )
          )
          : <span key={i} class={s.me ? "mention self" : "mention"}>{s.text}</span>
      )}
    </>
  );
}

/** A link to a conversation of this chat: it opens here, not in a new tab. */
function isOwnLink(href: string): boolean {
  const origin = globalThis.location?.origin;
  return origin !== undefined && href.startsWith(`${origin}/#/`);
}
