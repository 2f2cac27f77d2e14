/**
 * The list of people a dialog shows for what was typed: everyone the server
 * listed, filtered here, or — when that list was too long to send whole —
 * the server's own answer for the text.
 *
 * @module
 */
import { useEffect } from "preact/hooks";
import type { DirectoryEntry } from "../../protocol.ts";
import type { ChatModel } from "../model.ts";

/**
 * People to list for what was typed: the full list filtered here, or the
 * server's answer for the text when the full list was too long to send.
 */
export function usePeople(model: ChatModel, typed: string): DirectoryEntry[] | null {
  const all = model.people.value;
  const found = model.peopleFound.value;
  const q = typed.trim().replace(/^@/, "").toLowerCase();
  useEffect(() => model.listPeople(), []);
  useEffect(() => {
    // Longer than a name: nobody matches, nothing to ask.
    if (!all?.more || q === "" || q.length > 32) return;
    const t = setTimeout(() => model.listPeople(q), 200);
    return () => clearTimeout(t);
  }, [q, all?.more]);
  if (all === null) return null;
  const source = all.more && q !== "" && found?.q === q ? found.users : all.users;
  return q === "" ? source : source.filter((u) => u.name.toLowerCase().includes(q));
}
