/**
 * The admin page's people: every account with its role, whether it is
 * online now or when it was last here (the app's directory, kept live by
 * presence), and whether it is banned (until when, why). Per person: make
 * admin or member, ban (a reason and how long, sent as a `ban` frame over
 * the app's connection) or unban, and remove the account. What takes
 * something away asks once first; the server's refusals (the last admin, an
 * admin as a ban's target) show in its words beside the person.
 *
 * @module
 */
import { useEffect, useState } from "preact/hooks";
import { type DirectoryEntry, MAX_BAN_REASON } from "../../protocol.ts";
import type { Account, AdminApi, ApiError, Ban } from "../admin_api.ts";
import type { ChatModel } from "../model.ts";
import { lastSeen, when } from "../time.ts";
import { Avatar } from "./avatar.tsx";
import { TrashIcon } from "./icons.tsx";

/** How long a ban lasts: the choices offered (0: until lifted). */
const DURATIONS: { seconds: number; label: string }[] = [
  { seconds: 3600, label: "1 hour" },
  { seconds: 24 * 3600, label: "1 day" },
  { seconds: 7 * 24 * 3600, label: "7 days" },
  { seconds: 0, label: "Until unbanned" },
];

/** The people tab. */
export function PeopleTab({ api, model }: { api: AdminApi; model: ChatModel }) {
  const [accounts, setAccounts] = useState<Account[] | null>(null);
  const [bans, setBans] = useState<ReadonlyMap<string, Ban>>(new Map());
  const [error, setError] = useState<string | null>(null);

  const load = async () => {
    setError(null);
    // Online and last seen come from the app's directory (a `users` frame).
    model.listPeople();
    try {
      const [people, banned] = await Promise.all([api.people(), api.bans()]);
      setAccounts(people);
      setBans(new Map(banned.map((b) => [b.user.toLowerCase(), b])));
    } catch (err) {
      setError((err as ApiError).message);
    }
  };
  useEffect(() => void load(), []);

  const me = model.me.value ?? "";
  const directory = new Map<string, DirectoryEntry>();
  for (const u of model.people.value?.users ?? []) directory.set(u.name.toLowerCase(), u);
  const online = model.online.value;
  // Presence names everyone online unless the chat is too large for that.
  const live = model.onlineCount.value === null;
  // Someone came or went: ask the directory again (a second later, once for a
  // burst) for when those who left were last seen.
  useEffect(() => {
    const t = setTimeout(() => model.listPeople(), 1000);
    return () => clearTimeout(t);
  }, [online]);

  return (
    <section class="admin-section" aria-labelledby="people-title">
      <div class="admin-section-head">
        <h2 id="people-title">People</h2>
        <button type="button" class="btn small" onClick={load}>Refresh</button>
      </div>
      <p class="hint">
        Everyone with an account. Admins manage people, invite links and rooms; members chat.
      </p>
      {error && <p class="form-error" role="alert">{error}</p>}
      {accounts === null
        ? !error && <p class="list-status" role="status">Loading…</p>
        : accounts.length === 0
        ? <p class="list-status">Nobody has an account yet: invite someone.</p>
        : (
          <ul class="people-admin">
            {accounts.map((a) => {
              const key = a.name.toLowerCase();
              const self = key === me.toLowerCase();
              const entry = directory.get(key);
              return (
                <PersonItem
                  key={a.name}
                  api={api}
                  model={model}
                  account={a}
                  self={self}
                  online={self || (live ? online.has(a.name) : entry?.online === true)}
                  seen={entry?.seen}
                  listed={self || entry !== undefined}
                  ban={bans.get(key)}
                  onBans={(change) =>
                    setBans((old) => {
                      const next = new Map(old);
                      if (change === null) next.delete(key);
                      else next.set(key, change);
                      return next;
                    })}
                  onChange={load}
                />
              );
            })}
          </ul>
        )}
    </section>
  );
}

/** "Banned until Dec 8, 2026, 10:32 AM by alice: spam". */
function banText(b: Ban): string {
  const until = b.until === undefined ? "until unbanned" : `until ${when(b.until)}`;
  return `Banned ${until}${b.by ? ` by ${b.by}` : ""}${b.reason ? `: ${b.reason}` : ""}`;
}

type Asking = "member" | "ban" | "signout" | "remove" | null;

/** One person in the list, with what can be done to them. */
function PersonItem(
  { api, model, account, self, online, seen, listed, ban, onBans, onChange }: {
    api: AdminApi;
    model: ChatModel;
    account: Account;
    self: boolean;
    online: boolean;
    seen?: string;
    /** The directory knows them (it lists at most 500): their presence is known. */
    listed: boolean;
    ban?: Ban;
    onBans: (ban: Ban | null) => void;
    onChange: () => void;
  },
) {
  const [asking, setAsking] = useState<Asking>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const name = account.name;
  const admin = account.role === "admin";
  const id = `person-${name}`;

  /** Runs an action: one at a time, its refusal in the server's words. */
  const act = async (fn: () => Promise<string | null>) => {
    if (busy) return;
    setBusy(true);
    setError(null);
    setNote(null);
    try {
      const done = await fn();
      setAsking(null);
      if (done) setNote(done);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };

  const setRole = (role: Account["role"]) =>
    act(async () => {
      await api.setRole(name, role);
      onChange();
      return role === "admin" ? `${name} is an admin now` : `${name} is a member now`;
    });

  const banSubmit = (e: Event) => {
    e.preventDefault();
    const data = new FormData(e.currentTarget as HTMLFormElement);
    const reason = String(data.get("reason") ?? "").trim();
    const duration = Number(data.get("duration"));
    act(async () => {
      const f = await model.moderate({
        type: "ban",
        user: name,
        ...(reason ? { reason } : {}),
        ...(duration > 0 ? { duration } : {}),
      });
      const b: Ban = { user: f.user, by: f.by, at: Date.now() };
      if (f.until !== undefined) b.until = f.until;
      if (f.reason !== undefined) b.reason = f.reason;
      onBans(b);
      onChange();
      return `${name} is banned`;
    });
  };

  const unban = () =>
    act(async () => {
      const f = await model.moderate({ type: "unban", user: name });
      onBans(null);
      onChange();
      return f.ok ? `${name} can sign in again` : `${name} was not banned`;
    });

  const remove = () =>
    act(async () => {
      await api.remove(name);
      onChange();
      return null;
    });

  const signOut = () =>
    act(async () => {
      await api.signOut(name);
      onChange();
      return `${name} is signed out everywhere`;
    });

  return (
    <li
      class={`person-admin${ban ? " banned" : ""}`}
      data-name={name}
      data-role={account.role}
      aria-labelledby={`${id}-name`}
    >
      <div class="person-main">
        <Avatar name={name} online={listed ? online : undefined} />
        <div class="person-text">
          <div class="person-top">
            <strong id={`${id}-name`} class="person-admin-name">{name}</strong>
            {self && <span class="state-badge">You</span>}
            <span class={`state-badge ${admin ? "admin" : "member"}`}>
              {admin ? "Admin" : "Member"}
            </span>
            {ban && <span class="state-badge revoked">Banned</span>}
          </div>
          <p class="person-meta">
            {listed
              ? <span class="seen" title={seen}>{lastSeen(online, seen)}</span>
              : <span class="seen">not in the directory's first 500</span>}
            {account.sessions !== undefined && (
              <span
                class="sessions"
                title={account.signedIn === undefined
                  ? "No device can sign in without a password"
                  : `Latest sign-in ${when(account.signedIn)}`}
              >
                {" · "}
                {sessionsText(account.sessions)}
              </span>
            )}
          </p>
          {ban && <p class="person-meta ban-text" title={`Since ${when(ban.at)}`}>{banText(ban)}
          </p>}
        </div>
      </div>
      <div class="person-actions" role="group" aria-label={`Actions on ${name}`}>
        {admin
          ? (
            <button
              type="button"
              class="btn small"
              aria-expanded={asking === "member"}
              onClick={() => setAsking(asking === "member" ? null : "member")}
            >
              Make member
            </button>
          )
          : (
            <button
              type="button"
              class="btn small"
              aria-disabled={busy ? "true" : undefined}
              onClick={() => setRole("admin")}
            >
              Make admin
            </button>
          )}
        {!self && !admin && (ban
          ? (
            <button
              type="button"
              class="btn small"
              aria-disabled={busy ? "true" : undefined}
              onClick={unban}
            >
              Unban
            </button>
          )
          : (
            <button
              type="button"
              class="btn small danger-ghost"
              aria-expanded={asking === "ban"}
              onClick={() => setAsking(asking === "ban" ? null : "ban")}
            >
              Ban…
            </button>
          ))}
        {!self && (
          <button
            type="button"
            class="btn small"
            aria-expanded={asking === "signout"}
            onClick={() => setAsking(asking === "signout" ? null : "signout")}
          >
            Sign out everywhere…
          </button>
        )}
        {!self && (
          <button
            type="button"
            class="btn small danger-ghost"
            aria-expanded={asking === "remove"}
            onClick={() => setAsking(asking === "remove" ? null : "remove")}
          >
            <TrashIcon /> Remove…
          </button>
        )}
      </div>
      {asking === "member" && (
        <Confirm
          label={`Make ${name} a member?`}
          text={self
            ? "Make yourself a member? You lose this page and the admin actions at once."
            : `Make ${name} a member? They lose the admin page and the admin actions at once.`}
          action="Make member"
          busy={busy}
          onYes={() => setRole("member")}
          onNo={() => setAsking(null)}
        />
      )}
      {asking === "signout" && (
        <Confirm
          label={`Sign ${name} out everywhere?`}
          text={`Sign ${name} out on every device? Every session of theirs ends now; they can sign in again with their password.`}
          action="Sign out everywhere"
          busy={busy}
          onYes={signOut}
          onNo={() => setAsking(null)}
        />
      )}
      {asking === "remove" && (
        <Confirm
          label={`Remove ${name}'s account?`}
          text={`Remove ${name}'s account? They are signed out everywhere at once and cannot sign in again. This cannot be undone.`}
          action="Remove account"
          busy={busy}
          onYes={remove}
          onNo={() => setAsking(null)}
        />
      )}
      {asking === "ban" && (
        <form class="ban-form" onSubmit={banSubmit} aria-label={`Ban ${name}`} noValidate>
          <p class="ban-lead">
            Ban {name}{" "}
            from the whole chat: they are signed out everywhere at once and cannot sign in until the
            ban ends.
          </p>
          <label class="field">
            <span>Reason (shown to {name})</span>
            <input name="reason" maxLength={MAX_BAN_REASON} placeholder="Optional" autofocus />
          </label>
          <label class="field">
            <span>How long</span>
            <select name="duration">
              {DURATIONS.map((d, i) => (
                <option key={d.seconds} value={d.seconds} selected={i === 1}>{d.label}</option>
              ))}
            </select>
          </label>
          <div class="invite-actions">
            <button
              type="submit"
              class="btn small danger"
              aria-disabled={busy ? "true" : undefined}
            >
              {busy ? "Banning…" : `Ban ${name}`}
            </button>
            <button
              type="button"
              class="btn small"
              onClick={() =>
                setAsking(null)}
            >
              Cancel
            </button>
          </div>
        </form>
      )}
      {error && <p class="form-error" role="alert">{error}</p>}
      {note && <p class="person-note" role="status">{note}</p>}
    </li>
  );
}

/** One question before something is taken away, answered in place. */
function Confirm(
  { label, text, action, busy, onYes, onNo }: {
    label: string;
    text: string;
    action: string;
    busy: boolean;
    onYes: () => void;
    onNo: () => void;
  },
) {
  return (
    <div class="invite-confirm person-confirm" role="group" aria-label={label}>
      <span>{text}</span>
      <div class="invite-actions">
        <button
          type="button"
          class="btn small danger"
          aria-disabled={busy ? "true" : undefined}
          onClick={() => !busy && onYes()}
        >
          {action}
        </button>
        <button type="button" class="btn small" onClick={onNo}>Cancel</button>
      </div>
    </div>
  );
}

/** How many sessions, in words ("signed in on 2 devices"). */
export function sessionsText(n: number): string {
  if (n === 0) return "no device signed in";
  return `signed in on ${n} device${n === 1 ? "" : "s"}`;
}
