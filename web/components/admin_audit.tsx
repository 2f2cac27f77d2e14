/**
 * The admin page's audit log: every admin action, newest first, who did
 * what to whom and when, a page at a time ("Load older" asks for entries
 * before the oldest shown).
 *
 * @module
 */
import { useEffect, useState } from "preact/hooks";
import type { AdminApi, ApiError, AuditEntry } from "../admin_api.ts";
import { when } from "../time.ts";

/** Entries asked for at a time. */
const PAGE = 50;

/** What an entry's action was, in words. */
function what(e: AuditEntry): string {
  switch (e.action) {
    case "invite.create":
      return "created an invite link";
    case "invite.revoke":
      return "revoked an invite link";
    case "invite.use":
      return /admin/.test(e.detail ?? "")
        ? "joined as an admin with an invite link"
        : "joined with an invite link";
    case "user.add":
      // The shell's `chat user add`: the detail is the new account's role.
      return e.detail === "admin" ? "added the account as an admin" : "added the account";
    case "passwd":
      return "changed the password";
    case "role":
      return e.detail === "admin" || e.detail === "member"
        ? `changed the role to ${e.detail}`
        : "changed the role";
    case "ban":
      return "banned";
    case "unban":
      return "lifted the ban";
    case "kick":
      return e.detail ? `removed from #${e.detail}` : "removed from a room";
    case "remove":
      return "removed the account";
    case "signout":
      return "signed them out everywhere";
    case "delete":
      return /^a message by /.test(e.detail ?? "") ? `removed ${e.detail}` : "removed a message";
    case "room":
      return "changed the room";
    case "rename":
      return "renamed the room";
    default:
      return e.action;
  }
}

/** What an entry's detail adds, in words, or "" when {@link what} said it all. */
function detail(e: AuditEntry): string {
  switch (e.action) {
    case "user.add":
    case "role":
    case "invite.use":
    case "kick":
    case "delete":
      return "";
    case "ban":
      // "for 86400 s: spam" → "for 1 day: spam".
      return (e.detail ?? "").replace(/^for (\d+) s\b/, (_, n) => `for ${span(Number(n))}`);
    default:
      return e.detail ?? "";
  }
}

/** Seconds in words: "1 day", "7 days", "1 hour", "90 minutes". */
function span(seconds: number): string {
  const days = seconds / 86400;
  if (Number.isInteger(days)) return `${days} ${days === 1 ? "day" : "days"}`;
  const hours = seconds / 3600;
  if (Number.isInteger(hours)) return `${hours} ${hours === 1 ? "hour" : "hours"}`;
  const minutes = Math.round(seconds / 60);
  return `${minutes} ${minutes === 1 ? "minute" : "minutes"}`;
}

/** The audit log tab. */
export function AuditTab({ api }: { api: AdminApi }) {
  const [entries, setEntries] = useState<AuditEntry[] | null>(null);
  const [more, setMore] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const load = async (before?: number) => {
    setBusy(true);
    setError(null);
    try {
      const page = await api.audit(before, PAGE);
      setEntries((old) => before === undefined ? page : [...(old ?? []), ...page]);
      setMore(page.length === PAGE);
    } catch (err) {
      setError((err as ApiError).message);
    } finally {
      setBusy(false);
    }
  };
  useEffect(() => void load(), []);

  return (
    <section class="admin-section" aria-labelledby="audit-title">
      <div class="admin-section-head">
        <h2 id="audit-title">Audit log</h2>
        <button type="button" class="btn small" onClick={() => load()} disabled={busy}>
          Refresh
        </button>
      </div>
      <p class="hint">Every admin action: who did what, to whom, and when. Newest first.</p>
      {error && <p class="form-error" role="alert">{error}</p>}
      {entries === null
        ? !error && <p class="list-status" role="status">Loading…</p>
        : entries.length === 0
        ? <p class="list-status">Nothing yet: admin actions show here as they happen.</p>
        : (
          <table class="audit">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Who</th>
                <th scope="col">What</th>
                <th scope="col">Target</th>
              </tr>
            </thead>
            <tbody>
              {entries.map((e) => (
                <tr key={e.id} data-id={e.id} data-action={e.action}>
                  <td class="audit-when" data-label="When">
                    <time dateTime={new Date(e.at).toISOString()}>{when(e.at)}</time>
                  </td>
                  <td class="audit-who" data-label="Who">
                    {e.by === "" ? <em>the server's shell</em> : e.by}
                  </td>
                  <td class="audit-what" data-label="What">
                    {what(e)}
                    {detail(e) && (
                      <>
                        {" "}
                        <span class="audit-detail">({detail(e)})</span>
                      </>
                    )}
                  </td>
                  <td class="audit-target" data-label="Target">{e.target || "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      {more && (
        <div class="form-actions start">
          <button
            type="button"
            class="btn"
            disabled={busy}
            onClick={() => load(entries?.[entries.length - 1]?.id)}
          >
            {busy ? "Loading…" : "Load older"}
          </button>
        </div>
      )}
    </section>
  );
}
