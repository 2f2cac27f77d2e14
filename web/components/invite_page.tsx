/**
 * The page an invite link opens (`#/invite/<code>`): it asks the server
 * whether the link works, says in words when it does not (used, expired,
 * revoked, not valid), and otherwise takes a name and a password for a new
 * account. The account is made with the link, then the page signs in with
 * the token it was given as a saved session is resumed, and the chat opens.
 * Someone already signed in is told so first, and may sign out to go on.
 *
 * @module
 */
import { useEffect, useRef, useState } from "preact/hooks";
import {
  type ApiError,
  checkInvite,
  type InviteCheck,
  type InviteProblem,
  redeemInvite,
} from "../admin_api.ts";
import { type ChatModel, nameProblem } from "../model.ts";
import { fromNow } from "../time.ts";
import type { UiState } from "../ui.ts";
import { Logo } from "./icons.tsx";

/** What a link that does not work says. */
const PROBLEMS: Record<InviteProblem, { title: string; text: string }> = {
  used: {
    title: "This invite link has been used",
    text: "It let in as many people as it was made for. Ask whoever sent it for a new one.",
  },
  expired: {
    title: "This invite link has expired",
    text: "Invite links work for a limited time. Ask whoever sent it for a new one.",
  },
  revoked: {
    title: "This invite link was revoked by an admin",
    text: "It no longer lets anyone in. Ask an admin of this chat for a new one.",
  },
  unknown: {
    title: "This invite link is not valid",
    text: "Check that the whole link was copied, or ask whoever sent it for a new one.",
  },
};

type Check =
  | { state: "checking" }
  | { state: "ok"; invite: InviteCheck }
  | { state: "bad"; problem: InviteProblem }
  | { state: "error"; message: string };

/** Errors of the form, each shown beside its field (`form` below them all). */
interface FormErrors {
  name?: string;
  password?: string;
  form?: string;
}

/** Leaves the invite page for the chat (or the sign-in form) at the bare address. */
export function leavePage(ui: UiState): void {
  // The address first: once the page goes, the open conversation's is put in its place.
  history.replaceState(null, "", location.pathname + location.search);
  ui.page.value = null;
}

/** The invite page. */
export function InvitePage({ model, ui, code }: { model: ChatModel; ui: UiState; code: string }) {
  const [check, setCheck] = useState<Check>({ state: "checking" });
  const [errors, setErrors] = useState<FormErrors>({});
  const [busy, setBusy] = useState(false);
  const nameRef = useRef<HTMLInputElement>(null);
  const passwordRef = useRef<HTMLInputElement>(null);
  const me = model.phase.value === "chat" ? model.me.value : null;

  const load = () => {
    setCheck({ state: "checking" });
    checkInvite(location.origin, code).then(
      (invite) => setCheck({ state: "ok", invite }),
      (err: ApiError) =>
        setCheck(
          err.invite
            ? { state: "bad", problem: err.invite }
            : { state: "error", message: err.message },
        ),
    );
  };
  useEffect(load, [code]);
  useEffect(() => {
    if (check.state === "ok" && me === null) nameRef.current?.focus();
  }, [check.state, me]);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (busy) return;
    const form = new FormData(e.currentTarget as HTMLFormElement);
    const name = String(form.get("username") ?? "").trim();
    const password = String(form.get("password") ?? "");
    const found: FormErrors = {};
    const bad = nameProblem(name, "username");
    if (bad) found.name = bad;
    if (password.length < 8) {
      found.password = password === ""
        ? "Choose a password"
        : "The password is too short: use at least 8 characters";
    }
    setErrors(found);
    if (found.name) return nameRef.current?.focus();
    if (found.password) return passwordRef.current?.focus();
    setBusy(true);
    try {
      const session = await redeemInvite(location.origin, code, name, password);
      leavePage(ui);
      model.useSession(session.user, session.token);
    } catch (err) {
      const e = err as ApiError;
      setBusy(false);
      if (e.invite) return setCheck({ state: "bad", problem: e.invite });
      if (e.code === "name_taken") {
        setErrors({ name: `The name "${name}" is taken: choose another` });
        return nameRef.current?.focus();
      }
      if (e.code === "bad_request") {
        // The server checks the same rules as the form: its words go beside the field they name.
        if (/password/i.test(e.message)) {
          setErrors({ password: e.message });
          return passwordRef.current?.focus();
        }
        setErrors({ name: e.message });
        return nameRef.current?.focus();
      }
      setErrors({ form: e.message });
    }
  };

  return (
    <main
      class="signin invite-page"
      data-invite={check.state === "bad" ? check.problem : check.state}
    >
      <div class="signin-card">
        <div class="signin-brand">
          <Logo size={40} />
          <h1>Chat</h1>
        </div>
        {check.state === "checking" && (
          <p class="signin-lead" role="status">Checking your invite link…</p>
        )}
        {check.state === "error" && (
          <div class="signin-body">
            <p class="form-error" role="alert">{check.message}</p>
            <button type="button" class="btn primary wide" onClick={load}>Try again</button>
          </div>
        )}
        {check.state === "bad" && (
          <div class="signin-body invite-problem">
            <div role="alert">
              <h2 class="invite-title">{PROBLEMS[check.problem].title}</h2>
              <p class="signin-lead">{PROBLEMS[check.problem].text}</p>
            </div>
            <button type="button" class="btn wide" onClick={() => leavePage(ui)}>
              {me === null ? "Go to sign-in" : "Go to the chat"}
            </button>
          </div>
        )}
        {check.state === "ok" && me !== null && (
          <div class="signin-body">
            <h2 class="invite-title">You're invited to this chat</h2>
            <p class="signin-lead">
              You're signed in as <strong>{me}</strong>{" "}
              on this device. This link creates a new account: sign out first to use it, or go on as
              {" "}
              {me}.
            </p>
            <div class="invite-actions">
              <button type="button" class="btn primary wide" onClick={() => model.signOut()}>
                Sign out and create an account
              </button>
              <button type="button" class="btn wide" onClick={() => leavePage(ui)}>
                Go to the chat as {me}
              </button>
            </div>
          </div>
        )}
        {check.state === "ok" && me === null && (
          <form class="signin-body" onSubmit={submit} noValidate>
            <h2 class="invite-title">You're invited to this chat</h2>
            <p class="signin-lead">
              Pick a name and a password for your account.{" "}
              {check.invite.admin && "You will be an admin of this chat. "}
              {check.invite.expires > 0 && `This link expires ${fromNow(check.invite.expires)}.`}
            </p>
            <label class="field">
              <span>Username</span>
              <input
                ref={nameRef}
                name="username"
                autocomplete="username"
                autocapitalize="off"
                spellcheck={false}
                maxLength={32}
                required
                aria-invalid={errors.name ? true : undefined}
                aria-describedby={errors.name ? "invite-name-error" : "invite-name-hint"}
                onInput={() =>
                  errors.name && setErrors({ ...errors, name: undefined })}
              />
              {errors.name
                ? (
                  <small id="invite-name-error" class="field-error" role="alert">
                    {errors.name}
                  </small>
                )
                : (
                  <small id="invite-name-hint" class="hint">
                    Letters, digits, - or _ (up to 32). Others see this name.
                  </small>
                )}
            </label>
            <label class="field">
              <span>Password</span>
              <input
                ref={passwordRef}
                name="password"
                type="password"
                autocomplete="new-password"
                required
                aria-invalid={errors.password ? true : undefined}
                aria-describedby={errors.password
                  ? "invite-password-error"
                  : "invite-password-hint"}
                onInput={() => errors.password && setErrors({ ...errors, password: undefined })}
              />
              {errors.password
                ? (
                  <small id="invite-password-error" class="field-error" role="alert">
                    {errors.password}
                  </small>
                )
                : <small id="invite-password-hint" class="hint">At least 8 characters.</small>}
            </label>
            <p id="invite-error" class="form-error" role="alert" hidden={!errors.form}>
              {errors.form}
            </p>
            <button
              type="submit"
              class="btn primary wide"
              aria-disabled={busy ? "true" : undefined}
            >
              {busy ? "Creating your account…" : "Create account and join"}
            </button>
            <p class="invite-foot">
              Have an account already?{" "}
              <button
                type="button"
                class="link"
                onClick={() => leavePage(ui)}
              >
                Sign in
              </button>
            </p>
          </form>
        )}
      </div>
    </main>
  );
}
