/**
 * The open conversation's notification level, in its top bar: every
 * message, mentions only, or nothing. It governs pushes and the in-app
 * notifications alike, on every device of the user.
 *
 * @module
 */
import { useLayoutEffect, useRef, useState } from "preact/hooks";
import type { NotifyLevel } from "../../protocol.ts";
import type { Conversation } from "../conversation.ts";
import type { ChatModel } from "../model.ts";
import { BellIcon, BellOffIcon } from "./icons.tsx";

const LEVELS: { level: NotifyLevel; label: string; hint: string }[] = [
  { level: "all", label: "All messages", hint: "Every new message notifies you" },
  {
    level: "mentions",
    label: "Mentions only",
    hint: "Only messages that @mention you (or @room)",
  },
  { level: "none", label: "Nothing", hint: "Never notified about this conversation" },
];

/** Words for a level (the button's label says it). */
export function levelLabel(level: NotifyLevel): string {
  return LEVELS.find((l) => l.level === level)!.label;
}

/** The bell button and its menu. */
export function LevelMenu({ model, conv }: { model: ChatModel; conv: Conversation }) {
  const [open, setOpen] = useState(false);
  const box = useRef<HTMLDivElement>(null);
  const level = model.levelOf(conv.key);
  // In the same commit as the menu (not after the next paint): a key pressed
  // as soon as it shows finds the current choice focused and the arrows heard.
  useLayoutEffect(() => {
    if (!open) return;
    const away = (e: Event) => {
      if (!box.current?.contains(e.target as Node)) setOpen(false);
    };
    const key = (e: KeyboardEvent) => {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        // Arrows move between the choices, round the ends.
        const items = [
          ...(box.current?.querySelectorAll<HTMLButtonElement>("[role=menuitemradio]") ?? []),
        ];
        const at = items.indexOf(document.activeElement as HTMLButtonElement);
        const step = e.key === "ArrowDown" ? 1 : -1;
        items[(at + step + items.length) % items.length]?.focus();
        e.preventDefault();
        return;
      }
      if (e.key !== "Escape" && e.key !== "Tab") return;
      if (e.key === "Escape") {
        e.stopPropagation();
        box.current?.querySelector<HTMLButtonElement>(".level-btn")?.focus();
      }
      setOpen(false);
    };
    document.addEventListener("pointerdown", away);
    document.addEventListener("keydown", key, true);
    box.current?.querySelector<HTMLButtonElement>('[aria-checked="true"]')?.focus();
    return () => {
      document.removeEventListener("pointerdown", away);
      document.removeEventListener("keydown", key, true);
    };
  }, [open]);
  return (
    <div class="level-menu" ref={box}>
      <button
        type="button"
        class={open ? "icon-btn level-btn pressed" : "icon-btn level-btn"}
        aria-label={`Notifications: ${levelLabel(level)}`}
        title={`Notifications: ${levelLabel(level)}`}
        aria-haspopup="menu"
        aria-expanded={open}
        data-level={level}
        onClick={() => setOpen(!open)}
      >
        {level === "none" ? <BellOffIcon /> : <BellIcon />}
      </button>
      {open && (
        <ul class="level-list" role="menu" aria-label="Notify me about">
          {LEVELS.map((l) => (
            <li key={l.level} role="none">
              <button
                type="button"
                role="menuitemradio"
                aria-checked={l.level === level}
                data-level={l.level}
                onClick={() => {
                  model.setLevel(conv.key, l.level);
                  setOpen(false);
                }}
              >
                <span class="check" aria-hidden="true">{l.level === level ? "✓" : ""}</span>
                <span>{l.label}</span>
                <span class="hint">{l.hint}</span>
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
