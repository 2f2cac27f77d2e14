/**
 * The sign-in screen: a name (open mode), a name and password (login mode),
 * or a new account where the server allows sign-up. The server's answer is
 * shown inline; a ban (the server shut the user out) stands above the form,
 * in the server's words, and the app does not try again on its own.
 *
 * @module
 */
import { useEffect, useRef, useState } from "preact/hooks";
import type { ChatModel } from "../model.ts";
import { localTimes } from "../time.ts";
import { Logo } from "./icons.tsx";

/** The sign-in card. */
export function SignIn({ model }: { model: ChatModel }) {
  const info = model.info.value;
  const [tab, setTab] = useState<"signin" | "signup">("signin");
  const nameRef = useRef<HTMLInputElement>(null);
  const error = model.authError.value;
  const banned = model.banned.value;
  const busy = model.busy.value;
  const open = info?.mode === "open";
  const signup = !open && tab === "signup" && info?.signup === true;

  useEffect(() => nameRef.current?.focus(), [tab, info?.mode]);

  const submit = (e: Event) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    const username = String(form.get("username") ?? "").trim();
    const password = String(form.get("password") ?? "");
    if (open) model.signIn(username);
    else if (signup) model.register(username, password);
    else model.signIn(username, password);
  };

  const switchTab = (t: "signin" | "signup") => {
    model.authError.value = null;
    setTab(t);
  };

  return (
    <main class="signin">
      <div class="signin-card">
        <div class="signin-brand">
          <Logo size={40} />
          <h1>Chat</h1>
        </div>
        {banned && (
          <div class="signin-notice" role="alert" aria-labelledby="banned-title">
            <h2 id="banned-title">An admin banned you</h2>
            <p class="banned-message">{localTimes(banned)}</p>
            <p class="hint">Once the ban ends or is lifted, sign in again here.</p>
          </div>
        )}
        {info === null
          ? (
            <div class="signin-body">
              <p class="form-error" role="alert">
                Could not reach the chat server. Check your connection and try again.
              </p>
              <button type="button" class="btn primary wide" onClick={() => model.loadInfo()}>
                Try again
              </button>
            </div>
          )
          : (
            <form class="signin-body" onSubmit={submit} noValidate aria-describedby="signin-error">
              <p class="signin-lead">
                {open
                  ? "Pick a name to join the conversation."
                  : signup
                  ? "Create an account to join the conversation."
                  : "Sign in to join the conversation."}
              </p>
              {!open && info.signup && (
                <div class="tabs" role="tablist" aria-label="Sign in or create an account">
                  <button
                    type="button"
                    role="tab"
                    aria-selected={!signup}
                    class={!signup ? "tab active" : "tab"}
                    onClick={() =>
                      switchTab("signin")}
                  >
                    Sign in
                  </button>
                  <button
                    type="button"
                    role="tab"
                    aria-selected={signup}
                    class={signup ? "tab active" : "tab"}
                    onClick={() =>
                      switchTab("signup")}
                  >
                    Create account
                  </button>
                </div>
              )}
              <label class="field">
                <span>{open ? "Your name" : "Username"}</span>
                <input
                  ref={nameRef}
                  name="username"
                  autocomplete="username"
                  autocapitalize="off"
                  spellcheck={false}
                  maxLength={32}
                  required
                  aria-invalid={error ? true : undefined}
                />
              </label>
              {!open && (
                <label class="field">
                  <span>Password</span>
                  <input
                    name="password"
                    type="password"
                    autocomplete={signup ? "new-password" : "current-password"}
                    required
                    aria-invalid={error ? true : undefined}
                  />
                  {signup && <small class="hint">At least 8 characters.</small>}
                </label>
              )}
              <p id="signin-error" class="form-error" role="alert" hidden={!error}>
                {error}
              </p>
              <button type="submit" class="btn primary wide" disabled={busy}>
                {busy
                  ? (signup ? "Creating account…" : "Signing in…")
                  : open
                  ? "Join"
                  : signup
                  ? "Create account"
                  : "Sign in"}
              </button>
            </form>
          )}
      </div>
      {info?.version && <p class="signin-foot">chat {info.version}</p>}
    </main>
  );
}
