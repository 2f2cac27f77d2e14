/**
 * The keyboard shortcuts of the chat screen (listed in docs/web.md):
 *
 * - Ctrl+K (Cmd+K): the quick switcher;
 * - Ctrl+Shift+F (Cmd+Shift+F): search messages;
 * - Alt+↑ / Alt+↓: previous / next conversation; with Shift, unread ones only;
 * - Shift+Esc: mark everything as read;
 * - Esc: close the drawer, or a panel drawn over the messages.
 *
 * @module
 */
import type { ChatModel } from "./model.ts";
import type { UiState } from "./ui.ts";

/** Handles a key pressed anywhere on the chat screen; true when it was a shortcut. */
export function shortcut(e: KeyboardEvent, model: ChatModel, ui: UiState): boolean {
  if (e.defaultPrevented || e.isComposing) return false;
  const mod = e.ctrlKey || e.metaKey;
  const key = e.key.toLowerCase();
  if (mod && !e.shiftKey && !e.altKey && key === "k") {
    ui.dialog.value = ui.dialog.value === "switcher" ? null : "switcher";
    return true;
  }
  // A dialog has the keyboard: it closes itself on Escape.
  if (ui.dialog.value !== null) return false;
  if (mod && e.shiftKey && !e.altKey && key === "f") {
    ui.panel.value = "search";
    ui.focusSearch.value++;
    return true;
  }
  if (e.altKey && !mod && (e.key === "ArrowUp" || e.key === "ArrowDown")) {
    model.step(e.key === "ArrowUp" ? -1 : 1, e.shiftKey);
    ui.focusComposer.value++;
    return true;
  }
  if (e.key === "Escape" && e.shiftKey && !mod && !e.altKey) {
    model.markAllRead();
    return true;
  }
  if (e.key === "Escape" && !e.shiftKey) {
    // Close whatever covers the messages: the drawer, or a panel drawn over them.
    if (ui.drawer.value) ui.drawer.value = false;
    else if (ui.panel.value && matchMedia("(max-width: 1099px)").matches) ui.panel.value = null;
    else return false;
    return true;
  }
  return false;
}
