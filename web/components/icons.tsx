/**
 * Line icons drawn as inline SVG (no image requests, styled by `currentColor`).
 *
 * @module
 */
import type { ComponentChildren } from "preact";

function Icon(props: { children: ComponentChildren; size?: number }) {
  const size = props.size ?? 20;
  return (
    <svg
      class="icon"
      width={size}
      height={size}
      viewBox="0 0 24 24"
      fill="none"
      stroke="currentColor"
      stroke-width="2"
      stroke-linecap="round"
      stroke-linejoin="round"
      aria-hidden="true"
      focusable="false"
    >
      {props.children}
    </svg>
  );
}

/** Three lines: opens the conversation drawer. */
export function MenuIcon() {
  return (
    <Icon>
      <path d="M4 6h16M4 12h16M4 18h16" />
    </Icon>
  );
}

/** Paper plane: send. */
export function SendIcon() {
  return (
    <Icon>
      <path d="M22 2 11 13" />
      <path d="M22 2 15 22l-4-9-9-4 20-7z" />
    </Icon>
  );
}

/** Magnifier: search. */
export function SearchIcon({ size }: { size?: number }) {
  return (
    <Icon size={size}>
      <circle cx="11" cy="11" r="7" />
      <path d="m20 20-3.5-3.5" />
    </Icon>
  );
}

/** Two people: members. */
export function PeopleIcon() {
  return (
    <Icon>
      <path d="M17 21v-2a4 4 0 0 0-4-4H5a4 4 0 0 0-4 4v2" />
      <circle cx="9" cy="7" r="4" />
      <path d="M23 21v-2a4 4 0 0 0-3-3.87M16 3.13a4 4 0 0 1 0 7.75" />
    </Icon>
  );
}

/** Plus: add a room or conversation. */
export function PlusIcon() {
  return (
    <Icon size={18}>
      <path d="M12 5v14M5 12h14" />
    </Icon>
  );
}

/** Cross: close. */
export function CloseIcon() {
  return (
    <Icon>
      <path d="M18 6 6 18M6 6l12 12" />
    </Icon>
  );
}

/** Door with arrow: sign out / leave. */
export function LogoutIcon() {
  return (
    <Icon size={18}>
      <path d="M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4" />
      <path d="m16 17 5-5-5-5M21 12H9" />
    </Icon>
  );
}

/** Bell: notifications. */
export function BellIcon() {
  return (
    <Icon size={18}>
      <path d="M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9" />
      <path d="M13.73 21a2 2 0 0 1-3.46 0" />
    </Icon>
  );
}

/** A bell struck through: a conversation that notifies nothing. */
export function BellOffIcon() {
  return (
    <Icon size={18}>
      <path d="M13.73 21a2 2 0 0 1-3.46 0" />
      <path d="M18.63 13A17.9 17.9 0 0 1 18 8" />
      <path d="M6.26 6.26A5.9 5.9 0 0 0 6 8c0 7-3 9-3 9h14" />
      <path d="M18 8a6 6 0 0 0-9.33-5" />
      <path d="M2 2l20 20" />
    </Icon>
  );
}

/** Arrow down: jump to the latest messages. */
export function ArrowDownIcon() {
  return (
    <Icon size={18}>
      <path d="M12 5v14M19 12l-7 7-7-7" />
    </Icon>
  );
}

/** Hash: a room. */
export function HashIcon() {
  return (
    <Icon size={16}>
      <path d="M4 9h16M4 15h16M10 3 8 21M16 3l-2 18" />
    </Icon>
  );
}

/** A padlock: a private room. */
export function LockIcon({ size }: { size?: number }) {
  return (
    <Icon size={size ?? 16}>
      <rect x="5" y="11" width="14" height="10" rx="2" />
      <path d="M8 11V8a4 4 0 0 1 8 0v3" />
    </Icon>
  );
}

/** A room's icon: a padlock when it is private, else a hash. */
export function RoomIcon({ private: locked }: { private?: boolean }) {
  return locked ? <LockIcon /> : <HashIcon />;
}

/** The app's mark: a speech bubble. */
export function Logo({ size }: { size?: number }) {
  return (
    <svg
      class="logo"
      width={size ?? 28}
      height={size ?? 28}
      viewBox="0 0 32 32"
      aria-hidden="true"
      focusable="false"
    >
      <rect width="32" height="32" rx="8" class="logo-bg" />
      <path
        d="M8 11a3 3 0 0 1 3-3h10a3 3 0 0 1 3 3v6a3 3 0 0 1-3 3h-6l-4 3.5V20a3 3 0 0 1-3-3z"
        class="logo-fg"
      />
    </svg>
  );
}

/** Gear: settings. */
export function GearIcon() {
  return (
    <Icon>
      <circle cx="12" cy="12" r="3" />
      <path d="M19.4 15a1.7 1.7 0 0 0 .3 1.8l.1.1a2 2 0 1 1-2.8 2.8l-.1-.1a1.7 1.7 0 0 0-1.8-.3 1.7 1.7 0 0 0-1 1.5V21a2 2 0 1 1-4 0v-.1a1.7 1.7 0 0 0-1.1-1.5 1.7 1.7 0 0 0-1.8.3l-.1.1a2 2 0 1 1-2.8-2.8l.1-.1a1.7 1.7 0 0 0 .3-1.8 1.7 1.7 0 0 0-1.5-1H3a2 2 0 1 1 0-4h.1a1.7 1.7 0 0 0 1.5-1.1 1.7 1.7 0 0 0-.3-1.8l-.1-.1a2 2 0 1 1 2.8-2.8l.1.1a1.7 1.7 0 0 0 1.8.3H9a1.7 1.7 0 0 0 1-1.5V3a2 2 0 1 1 4 0v.1a1.7 1.7 0 0 0 1 1.5 1.7 1.7 0 0 0 1.8-.3l.1-.1a2 2 0 1 1 2.8 2.8l-.1.1a1.7 1.7 0 0 0-.3 1.8V9a1.7 1.7 0 0 0 1.5 1H21a2 2 0 1 1 0 4h-.1a1.7 1.7 0 0 0-1.5 1z" />
    </Icon>
  );
}

/** Chain link: copy a link. */
export function LinkIcon() {
  return (
    <Icon size={16}>
      <path d="M10 13a5 5 0 0 0 7.5.5l3-3a5 5 0 0 0-7-7l-1.7 1.7" />
      <path d="M14 11a5 5 0 0 0-7.5-.5l-3 3a5 5 0 0 0 7 7l1.7-1.7" />
    </Icon>
  );
}

/** Pencil: edit. */
export function PencilIcon() {
  return (
    <Icon size={16}>
      <path d="M17 3a2.8 2.8 0 1 1 4 4L7.5 20.5 2 22l1.5-5.5z" />
    </Icon>
  );
}

/** Double tick: mark as read. */
export function CheckAllIcon() {
  return (
    <Icon size={16}>
      <path d="M2 12.5 6.5 17 16 7.5" />
      <path d="m11 16 1 1 9.5-9.5" />
    </Icon>
  );
}

/** A smiling face: add a reaction. */
export function SmileIcon({ size }: { size?: number }) {
  return (
    <Icon size={size ?? 16}>
      <circle cx="12" cy="12" r="9" />
      <path d="M8 14s1.5 2 4 2 4-2 4-2" />
      <path d="M9 9h.01M15 9h.01" />
    </Icon>
  );
}

/** A curved arrow back: reply. */
export function ReplyIcon({ size }: { size?: number }) {
  return (
    <Icon size={size ?? 16}>
      <path d="M9 17 4 12l5-5" />
      <path d="M20 18v-2a4 4 0 0 0-4-4H4" />
    </Icon>
  );
}

/** A bin: delete. */
export function TrashIcon() {
  return (
    <Icon size={16}>
      <path d="M3 6h18M8 6V4a2 2 0 0 1 2-2h4a2 2 0 0 1 2 2v2M19 6l-1 14a2 2 0 0 1-2 2H8a2 2 0 0 1-2-2L5 6" />
    </Icon>
  );
}

/** Two sheets: copy the text. */
export function CopyIcon() {
  return (
    <Icon size={16}>
      <rect x="9" y="9" width="12" height="12" rx="2" />
      <path d="M5 15H4a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2h9a2 2 0 0 1 2 2v1" />
    </Icon>
  );
}

/** A paperclip: attach files. */
export function PaperclipIcon() {
  return (
    <Icon>
      <path d="m21.4 11.1-9.2 9.2a6 6 0 0 1-8.5-8.5l9.2-9.2a4 4 0 0 1 5.7 5.7l-9.2 9.2a2 2 0 0 1-2.8-2.8l8.5-8.5" />
    </Icon>
  );
}

/** An arrow into a tray: download. */
export function DownloadIcon({ size }: { size?: number }) {
  return (
    <Icon size={size ?? 18}>
      <path d="M21 15v4a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2v-4" />
      <path d="m7 10 5 5 5-5M12 15V3" />
    </Icon>
  );
}

/** A chevron pointing left (`dir` -1) or right (1): the previous or next picture. */
export function ChevronIcon({ dir }: { dir: -1 | 1 }) {
  return (
    <Icon size={24}>
      <path d={dir === -1 ? "m15 18-6-6 6-6" : "m9 18 6-6-6-6"} />
    </Icon>
  );
}

/** Arrows in a circle: try again. */
export function RetryIcon() {
  return (
    <Icon size={16}>
      <path d="M3 12a9 9 0 0 1 15.5-6.2L21 8" />
      <path d="M21 3v5h-5" />
      <path d="M21 12a9 9 0 0 1-15.5 6.2L3 16" />
      <path d="M3 21v-5h5" />
    </Icon>
  );
}

/** What a file icon shows inside the page (see `fileKind` in uploads.ts). */
const FILE_MARKS: Record<string, string> = {
  image: "m7 18 3.5-4 2.5 3 1.5-2 2.5 3z M9.5 11.5h.01",
  video: "m10 11.5 4.5 3-4.5 3z",
  audio: "M10 18.5v-6l5-1.5v6 M10 18.5a1.5 1.5 0 1 1-3 0 1.5 1.5 0 0 1 3 0z",
  pdf: "M8 13h8M8 16h8M8 19h5",
  archive: "M11 3v2h2v2h-2v2h2v2h-2 M10.5 14h3v4h-3z",
  sheet: "M7.5 12.5h9v6.5h-9z M7.5 15.75h9 M12 12.5v6.5",
  doc: "M8 13h8M8 16h8M8 19h5",
  code: "m10 12.5-2.5 3 2.5 3 M14 12.5l2.5 3-2.5 3",
  text: "M8 13h8M8 16h8M8 19h5",
  file: "",
};

/** A page with a folded corner, marked by what the file is (`kind`). */
export function FileIcon({ kind, size }: { kind: string; size?: number }) {
  const mark = FILE_MARKS[kind] ?? "";
  return (
    <Icon size={size ?? 28}>
      <path d="M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8z" />
      <path d="M14 2v6h6" />
      {mark && <path d={mark} stroke-width="1.6" />}
    </Icon>
  );
}

/** A shield: the admin page. */
export function ShieldIcon() {
  return (
    <Icon>
      <path d="M12 3 4 6v6c0 4.5 3.4 8.3 8 9 4.6-.7 8-4.5 8-9V6l-8-3z" />
      <path d="m9 12 2 2 4-4" />
    </Icon>
  );
}

/** Four squares: a QR code. */
export function QrIcon() {
  return (
    <Icon size={16}>
      <rect x="3" y="3" width="7" height="7" rx="1" />
      <rect x="14" y="3" width="7" height="7" rx="1" />
      <rect x="3" y="14" width="7" height="7" rx="1" />
      <path d="M14 14h3v3h-3zM20 14v.01M14 20h.01M17 20h4v-3" />
    </Icon>
  );
}

/** An arrow to the left: back. */
export function BackIcon() {
  return (
    <Icon size={16}>
      <path d="M19 12H5M12 19l-7-7 7-7" />
    </Icon>
  );
}
