/**
 * The admin page (`#/admin/people`, `#/admin/invites`, `#/admin/rooms`,
 * `#/admin/audit`),
 * shown instead of the chat while the connection stays up behind it: a
 * header back to the chat and a tab per thing admins manage. Only an admin's
 * welcome shows the tabs; anyone else gets a plain note and a way back, and
 * the server refuses its endpoints to them anyway. An admin made a member
 * while here (a `role` frame) is told so in place of the tabs.
 *
 * @module
 */
import { useMemo, useRef } from "preact/hooks";
import { AdminApi } from "../admin_api.ts";
import type { ChatModel } from "../model.ts";
import { type AdminTab, pageHash } from "../route.ts";
import type { UiState } from "../ui.ts";
import { AuditTab } from "./admin_audit.tsx";
import { InvitesTab } from "./admin_invites.tsx";
import { PeopleTab } from "./admin_people.tsx";
import { RoomsTab } from "./admin_rooms.tsx";
import { BackIcon } from "./icons.tsx";

const TABS: { tab: AdminTab; label: string }[] = [
  { tab: "people", label: "People" },
  { tab: "invites", label: "Invites" },
  { tab: "rooms", label: "Rooms" },
  { tab: "audit", label: "Audit log" },
];

/** Back to the open conversation (the hash follows it again: see app.tsx). */
function backToChat(ui: UiState): void {
  ui.page.value = null;
}

/** The admin page. */
export function AdminPage({ model, ui, tab }: { model: ChatModel; ui: UiState; tab: AdminTab }) {
  const role = model.role.value;
  const api = useMemo(() => new AdminApi(location.origin, () => model.sessionToken()), []);
  // Whether this page was an admin's: a member now was demoted while here.
  const wasAdmin = useRef(false);
  if (role === "admin") wasAdmin.current = true;
  return (
    <div class="admin-page">
      <header class="admin-head">
        <button type="button" class="btn small" onClick={() => backToChat(ui)}>
          <BackIcon /> Back to the chat
        </button>
        <h1>Admin</h1>
      </header>
      {role === "admin"
        ? (
          <>
            <nav class="tabs admin-tabs" aria-label="Admin sections">
              {TABS.map((t) => (
                <a
                  key={t.tab}
                  class={t.tab === tab ? "tab active" : "tab"}
                  href={pageHash({ kind: "admin", tab: t.tab })}
                  aria-current={t.tab === tab ? "page" : undefined}
                >
                  {t.label}
                </a>
              ))}
            </nav>
            <main class="admin-body">
              {tab === "people"
                ? <PeopleTab api={api} model={model} />
                : tab === "invites"
                ? <InvitesTab api={api} />
                : tab === "rooms"
                ? <RoomsTab api={api} model={model} />
                : <AuditTab api={api} />}
            </main>
          </>
        )
        : (
          <main class="admin-body">
            <p class="admin-note" role="status">
              {role === null && !model.ready.value
                ? "Connecting…"
                : wasAdmin.current
                ? "You are a member now, no longer an admin: this page is for the chat's admins."
                : "This page is for the chat's admins. Ask one of them if you need something changed."}
            </p>
          </main>
        )}
    </div>
  );
}
