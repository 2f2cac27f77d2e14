/**
 * Message text as Preact elements: the Markdown tree of ../markdown.ts mapped
 * one to one, mentions as chips and links. Every piece of user input becomes
 * a text node (never an HTML string), so markup in a message shows as typed.
 *
 * @module
 */
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { type Block, type Inline, isInline, markdown } from "../markdown.ts";

/** Who is reading: marks their own mentions and which names exist. */
interface Reader {
  /** The viewer's name, lower-cased. */
  me: string | undefined;
  known?: (name: string) => boolean;
}

/**
 * Renders message text as Markdown; `@name` shows as a mention only where
 * `known(name)` (someone who exists), else as the text typed. A message of
 * one paragraph renders inline, exactly like plain text.
 */
export function MessageText(
  { text, me, known }: { text: string; me: string | null; known?: (name: string) => boolean },
) {
  const reader: Reader = { me: me?.toLowerCase(), known };
  const tree = markdown(text);
  return <>{isInline(tree) ? inlines(tree[0].children, reader) : blocks(tree, reader)}</>;
}

/** The class of a block: its own and the blank lines typed before it. */
function cls(name: string, gap: number | undefined): string {
  // markdown.css has gap classes up to 6 blank lines; more look like 6.
  return gap ? `${name} md-gap${Math.min(gap, 6)}` : name;
}

/** Blocks inside a quote or list item: a lone paragraph stays inline there too. */
function inner(tree: Block[], reader: Reader): ComponentChildren {
  return isInline(tree) ? inlines(tree[0].children, reader) : blocks(tree, reader);
}

function blocks(tree: Block[], reader: Reader): ComponentChildren[] {
  return tree.map((b, i) => {
    switch (b.t) {
      case "p":
        return <p key={i} class={cls("md-p", b.gap)}>{inlines(b.children, reader)}</p>;
      case "pre":
        return <CodeBlock key={i} text={b.text} lang={b.lang} class={cls("md-pre", b.gap)} />;
      case "quote":
        return (
          <blockquote key={i} class={cls("md-quote", b.gap)}>
            {inner(b.children, reader)}
          </blockquote>
        );
      case "list": {
        const items = b.items.map((item, j) => (
          <li key={j} class={item.gap ? `md-gap${Math.min(item.gap, 6)}` : undefined}>
            {inner(item.children, reader)}
          </li>
        ));
        return b.ordered
          ? <ol key={i} class={cls("md-list", b.gap)} start={b.start}>{items}</ol>
          : <ul key={i} class={cls("md-list", b.gap)}>{items}</ul>;
      }
      case "hr":
        return <hr key={i} class={cls("md-hr", b.gap)} />;
    }
  });
}

function inlines(nodes: Inline[], reader: Reader): ComponentChildren[] {
  return nodes.map((n, i) => {
    switch (n.t) {
      case "text":
        return n.text;
      case "br":
        return <br key={i} />;
      case "strong":
        return <strong key={i}>{inlines(n.children, reader)}</strong>;
      case "em":
        return <em key={i}>{inlines(n.children, reader)}</em>;
      case "del":
        return <del key={i}>{inlines(n.children, reader)}</del>;
      case "code":
        return <code key={i} class="md-code">{n.text}</code>;
      case "link":
        return isOwnLink(n.href)
          ? <a key={i} href={n.href}>{inlines(n.children, reader)}</a>
          : (
            <a key={i} href={n.href} target="_blank" rel="noopener noreferrer">
              {inlines(n.children, reader)}
            </a>
          );
      case "mention":
        if (reader.known && !reader.known(n.name)) return n.text;
        return (
          <span key={i} class={n.name.toLowerCase() === reader.me ? "mention self" : "mention"}>
            {n.text}
          </span>
        );
    }
  });
}

/** A link to a conversation of this chat: it opens here, not in a new tab. */
function isOwnLink(href: string): boolean {
  const origin = globalThis.location?.origin;
  return origin !== undefined && href.startsWith(`${origin}/#/`);
}

/** How long the copy button says "Copied". */
const COPIED_MS = 2000;

/**
 * A fenced code block: monospace, scrolling sideways rather than wrapping,
 * with a button that copies its text.
 */
export function CodeBlock(
  { text, lang, class: cls }: { text: string; lang: string; class: string },
) {
  const [state, setState] = useState<"idle" | "copied" | "selected">("idle");
  const code = useRef<HTMLElement>(null);
  useEffect(() => {
    if (state === "idle") return;
    const timer = setTimeout(() => setState("idle"), COPIED_MS);
    return () => clearTimeout(timer);
  }, [state]);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setState("copied");
    } catch {
      // No clipboard (plain http on another host): select the code to copy by hand.
      const range = document.createRange();
      if (code.current) range.selectNodeContents(code.current);
      getSelection()?.removeAllRanges();
      getSelection()?.addRange(range);
      setState("selected");
    }
  };
  return (
    <div class={cls}>
      <pre
        tabIndex={0}
      ><code ref={code} class={lang ? `language-${lang}` : undefined}>{text}</code></pre>
      <button type="button" class="md-copy" title="Copy the code" onClick={copy}>
        {state === "copied" ? "Copied" : state === "selected" ? "Selected" : "Copy"}
      </button>
    </div>
  );
}
