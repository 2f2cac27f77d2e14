/**
 * The admin page's invite links: a form that makes one (how many people it
 * lets in, for how long, as admins or not) and the list of links the server
 * keeps, each with its state, uses, who joined with it and when it expires,
 * and — while it works — Copy, a QR code to scan, and Revoke after one
 * question.
 *
 * @module
 */
import { useEffect, useRef, useState } from "preact/hooks";
import type { AdminApi, ApiError, Invite } from "../admin_api.ts";
import { fromNow, when } from "../time.ts";
import { CopyIcon, QrIcon, TrashIcon } from "./icons.tsx";
import { QrCode } from "./qr.tsx";

/** How long a new link works: the choices offered. */
const EXPIRY: { seconds: number; label: string }[] = [
  { seconds: 24 * 3600, label: "1 day" },
  { seconds: 7 * 24 * 3600, label: "7 days" },
  { seconds: 30 * 24 * 3600, label: "30 days" },
];

const STATE: Record<Invite["state"], string> = {
  ok: "Active",
  used: "Used up",
  expired: "Expired",
  revoked: "Revoked",
};

/** The invites tab. */
export function InvitesTab({ api }: { api: AdminApi }) {
  const [invites, setInvites] = useState<Invite[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [fresh, setFresh] = useState<string | null>(null);

  const load = async () => {
    setError(null);
    try {
      setInvites(await api.invites());
    } catch (err) {
      setError((err as ApiError).message);
    }
  };
  useEffect(() => void load(), []);

  return (
    <>
      <CreateInvite
        api={api}
        onCreated={(invite) => {
          setInvites((list) => [invite, ...(list ?? []).filter((i) => i.code !== invite.code)]);
          setFresh(invite.code);
        }}
      />
      <section class="admin-section" aria-labelledby="invites-title">
        <div class="admin-section-head">
          <h2 id="invites-title">Invite links</h2>
          <button type="button" class="btn small" onClick={load}>Refresh</button>
        </div>
        {error && <p class="form-error" role="alert">{error}</p>}
        {invites === null
          ? !error && <p class="list-status" role="status">Loading…</p>
          : invites.length === 0
          ? <p class="list-status">No invite links yet: create one above to let someone in.</p>
          : (
            <ul class="invite-list">
              {invites.map((invite) => (
                <InviteItem
                  key={invite.code}
                  api={api}
                  invite={invite}
                  fresh={invite.code === fresh}
                  onChange={load}
                />
              ))}
            </ul>
          )}
      </section>
    </>
  );
}

/** The form that makes a new invite link. */
function CreateInvite({ api, onCreated }: { api: AdminApi; onCreated: (i: Invite) => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (busy) return;
    const form = e.currentTarget as HTMLFormElement;
    const data = new FormData(form);
    const uses = Number(data.get("uses"));
    if (!Number.isInteger(uses) || uses < 1 || uses > 1000) {
      setError("A link lets in 1 to 1000 people");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      onCreated(
        await api.create({
          uses,
          expires: Number(data.get("expires")),
          admin: data.get("admin") === "on",
        }),
      );
    } catch (err) {
      setError((err as ApiError).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="admin-section" aria-labelledby="new-invite-title">
      <h2 id="new-invite-title">New invite link</h2>
      <p class="hint">
        Anyone with the link can pick a name and a password and join, as many times as it allows.
      </p>
      <form class="invite-form" onSubmit={submit} noValidate>
        <label class="field">
          <span>People it lets in</span>
          <input
            name="uses"
            type="number"
            min={1}
            max={1000}
            defaultValue="1"
            inputMode="numeric"
            aria-invalid={error ? true : undefined}
          />
        </label>
        <label class="field">
          <span>Expires after</span>
          <select name="expires">
            {EXPIRY.map((x, i) => (
              <option key={x.seconds} value={x.seconds} selected={i === 1}>{x.label}</option>
            ))}
          </select>
        </label>
        <label class="check">
          <input name="admin" type="checkbox" />
          <span>They join as admins</span>
        </label>
        <button type="submit" class="btn primary" aria-disabled={busy ? "true" : undefined}>
          {busy ? "Creating…" : "Create invite link"}
        </button>
      </form>
      {error && <p class="form-error" role="alert">{error}</p>}
    </section>
  );
}

/** Uses in words: "1 of 3 used". */
function usesText(i: Invite): string {
  return `${i.used} of ${i.uses} ${i.uses === 1 ? "use" : "uses"} taken`;
}

/** When the link stops (or stopped) working, in words. */
function expiryText(i: Invite): string {
  if (i.state === "revoked") {
    return i.revoked ? `Revoked ${fromNow(i.revoked)}` : "Revoked";
  }
  return i.expires > Date.now() ? `Expires ${fromNow(i.expires)}` : `Expired ${fromNow(i.expires)}`;
}

/** One invite link in the list. */
function InviteItem(
  { api, invite, fresh, onChange }: {
    api: AdminApi;
    invite: Invite;
    fresh: boolean;
    onChange: () => void;
  },
) {
  const [copied, setCopied] = useState<"yes" | "failed" | null>(null);
  const [qr, setQr] = useState(false);
  const [confirm, setConfirm] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const urlRef = useRef<HTMLInputElement>(null);
  const copyRef = useRef<HTMLButtonElement>(null);
  const live = invite.state === "ok";
  const id = `invite-${invite.code}`;

  // A link just made: the keyboard is on its Copy button, ready to share it.
  useEffect(() => {
    if (fresh) copyRef.current?.focus();
  }, [fresh]);
  useEffect(() => {
    if (copied !== "yes") return;
    const t = setTimeout(() => setCopied(null), 2500);
    return () => clearTimeout(t);
  }, [copied]);

  const copy = async () => {
    try {
      await navigator.clipboard.writeText(invite.url);
      setCopied("yes");
      return;
    } catch {
      // No Clipboard API on a page served over plain http at a network
      // address (the usual way on a LAN), or a denied permission: the old
      // way copies what is selected.
    }
    const input = urlRef.current;
    input?.focus();
    input?.select();
    let done = false;
    try {
      done = document.execCommand("copy");
    } catch {
      // Not even that: the link stays selected for the user to copy.
    }
    setCopied(done ? "yes" : "failed");
  };

  const revoke = async () => {
    setBusy(true);
    setError(null);
    try {
      await api.revoke(invite.code);
      setConfirm(false);
      onChange();
    } catch (err) {
      setError((err as ApiError).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <li
      class={`invite${live ? "" : " spent"}${fresh ? " fresh" : ""}`}
      data-code={invite.code}
      data-state={invite.state}
      aria-labelledby={`${id}-state`}
    >
      <div class="invite-top">
        <span id={`${id}-state`} class={`state-badge ${invite.state}`}>{STATE[invite.state]}</span>
        {invite.admin && <span class="state-badge admin">Makes admins</span>}
        <span class="invite-uses">{usesText(invite)}</span>
      </div>
      {live && (
        <input
          ref={urlRef}
          class="invite-url"
          readOnly
          value={invite.url}
          aria-label="Invite link"
          onFocus={(e) => e.currentTarget.select()}
        />
      )}
      <p class="invite-meta">
        <span title={when(invite.expires)}>{expiryText(invite)}</span>
        <span>
          Created {invite.by === "" ? "on the server's shell" : `by ${invite.by}`}{" "}
          <span title={when(invite.created)}>{fromNow(invite.created)}</span>
        </span>
      </p>
      {invite.usedBy.length > 0 && (
        <p class="invite-meta used-by">Joined with it: {invite.usedBy.join(", ")}</p>
      )}
      {live && (
        <div class="invite-actions">
          <button ref={copyRef} type="button" class="btn small" onClick={copy}>
            <CopyIcon /> {copied === "yes" ? "Copied" : "Copy link"}
          </button>
          <button
            type="button"
            class={qr ? "btn small pressed" : "btn small"}
            aria-expanded={qr}
            aria-controls={`${id}-qr`}
            onClick={() => setQr(!qr)}
          >
            <QrIcon /> QR code
          </button>
          {!confirm && (
            <button
              type="button"
              class="btn small danger-ghost"
              onClick={() => setConfirm(true)}
            >
              <TrashIcon /> Revoke
            </button>
          )}
        </div>
      )}
      {copied === "failed" && (
        <p class="hint" role="status">
          Copying is not allowed here: the link is selected, copy it yourself.
        </p>
      )}
      {copied === "yes" && <span class="sr-only" role="status">Link copied</span>}
      {live && confirm && (
        <div class="invite-confirm" role="group" aria-label="Revoke this link?">
          <span>Revoke this link? Nobody can join with it any more.</span>
          <div class="invite-actions">
            <button
              type="button"
              class="btn small danger"
              aria-disabled={busy ? "true" : undefined}
              onClick={() => !busy && revoke()}
            >
              Revoke link
            </button>
            <button type="button" class="btn small" onClick={() => setConfirm(false)}>
              Cancel
            </button>
          </div>
        </div>
      )}
      {error && <p class="form-error" role="alert">{error}</p>}
      {live && qr && (
        <div id={`${id}-qr`} class="invite-qr">
          <QrCode text={invite.url} label="QR code of the invite link" />
          <p class="hint">Scan it with a phone's camera to open the link.</p>
        </div>
      )}
    </li>
  );
}
