/**
 * Message text as text nodes, links and mention chips. Every piece of user
 * input becomes a text node, so markup in a message shows as typed.
 *
 * @module
 */
import { segments } from "../text.ts";

/** Renders message text. */
export function MessageText({ text, me }: { text: string; me: string | null }) {
  return (
    <>
      {segments(text, me).map((s, i) =>
        s.kind === "text"
          ? s.text
          : s.kind === "link"
          ? (
            <a key={i} href={s.href} target="_blank" rel="noopener noreferrer">
              {s.text}
            </a>
          )
          : <span key={i} class={s.me ? "mention self" : "mention"}>{s.text}</span>
      )}
    </>
  );
}
