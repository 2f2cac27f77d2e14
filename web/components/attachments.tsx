/**
 * Files in the web app: the paperclip and its file picker, the uploads of
 * the composer as chips (progress, cancel, the reason a file was refused),
 * the zone that takes files dropped on the conversation, and the files of a
 * message — pictures as previews whose box is reserved before they load,
 * opening in a lightbox, other files as cards with a download link.
 *
 * @module
 */
import { signal } from "@preact/signals";
import type { ComponentChildren } from "preact";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import type { FileInfo } from "../../protocol.ts";
import type { Conversation } from "../conversation.ts";
import type { ChatModel, Upload } from "../model.ts";
import type { UiState } from "../ui.ts";
import { fileKind, fitBox, humanSize, isImage, pastedName, PREVIEW_BOX } from "../uploads.ts";
import {
  ChevronIcon,
  CloseIcon,
  DownloadIcon,
  FileIcon,
  PaperclipIcon,
  RetryIcon,
} from "./icons.tsx";

// ---------------------------------------------------------------------------
// Picking, pasting, dropping

/**
 * The paperclip: opens the system's file picker (several files at once; no
 * `accept`, so a phone offers its camera and its photos as well as files).
 */
export function AttachButton(
  { model, ui, conv }: { model: ChatModel; ui: UiState; conv: Conversation },
) {
  const input = useRef<HTMLInputElement>(null);
  return (
    <>
      <button
        type="button"
        class="attach"
        aria-label="Attach files"
        title="Attach files (or paste or drop them here)"
        aria-controls="composer-files"
        onClick={() => input.current?.click()}
      >
        <PaperclipIcon />
      </button>
      <input
        ref={input}
        id="composer-files"
        type="file"
        multiple
        hidden
        tabIndex={-1}
        onChange={(e) => {
          const el = e.currentTarget as HTMLInputElement;
          if (el.files && el.files.length > 0) model.attach(conv, [...el.files]);
          // Picking the same file again is a change too.
          el.value = "";
          ui.focusComposer.value++;
        }}
      />
    </>
  );
}

/** The files on the clipboard of a paste (a screenshot, copied files); empty for text. */
export function pastedFiles(e: ClipboardEvent): File[] {
  const data = e.clipboardData;
  if (!data) return [];
  const out: File[] = [];
  if (data.files.length > 0) out.push(...data.files);
  else {
    for (const item of data.items) {
      if (item.kind !== "file") continue;
      const f = item.getAsFile();
      if (f) out.push(f);
    }
  }
  // A screenshot comes as "image.png": named by when it was pasted instead.
  const now = new Date();
  return out.map((f) => {
    const name = pastedName(f.name, f.type, now);
    return name === f.name
      ? f
      : new File([f], name, { type: f.type, lastModified: f.lastModified });
  });
}

/** Whether a drag carries files (not text or a link from the page). */
function carriesFiles(e: DragEvent): boolean {
  return e.dataTransfer?.types.includes("Files") === true;
}

/**
 * Takes files dropped anywhere on the conversation it sits in (its parent
 * element), showing where to drop them while they are dragged over it.
 * Files dropped elsewhere on the page are ignored instead of replacing the
 * page with them.
 */
export function DropZone({ model, conv }: { model: ChatModel; conv: Conversation }) {
  const ref = useRef<HTMLDivElement>(null);
  const [over, setOver] = useState(false);
  useEffect(() => {
    const area = ref.current?.parentElement;
    if (!area) return;
    // dragenter and dragleave come for every child crossed: count them.
    let depth = 0;
    const enter = (e: DragEvent) => {
      if (!carriesFiles(e)) return;
      e.preventDefault();
      depth++;
      setOver(true);
    };
    const leave = (e: DragEvent) => {
      if (!carriesFiles(e)) return;
      depth = Math.max(0, depth - 1);
      if (depth === 0) setOver(false);
    };
    const dragOver = (e: DragEvent) => {
      if (!carriesFiles(e)) return;
      e.preventDefault();
      if (e.dataTransfer) e.dataTransfer.dropEffect = "copy";
    };
    const drop = (e: DragEvent) => {
      depth = 0;
      setOver(false);
      const files = e.dataTransfer?.files;
      if (!files || files.length === 0) return;
      e.preventDefault();
      model.attach(conv, [...files]);
    };
    // Outside the conversation a dropped file would replace the page.
    const elsewhere = (e: DragEvent) => {
      if (carriesFiles(e) && !area.contains(e.target as Node)) e.preventDefault();
    };
    area.addEventListener("dragenter", enter);
    area.addEventListener("dragleave", leave);
    area.addEventListener("dragover", dragOver);
    area.addEventListener("drop", drop);
    globalThis.addEventListener("dragover", elsewhere);
    globalThis.addEventListener("drop", elsewhere);
    return () => {
      area.removeEventListener("dragenter", enter);
      area.removeEventListener("dragleave", leave);
      area.removeEventListener("dragover", dragOver);
      area.removeEventListener("drop", drop);
      globalThis.removeEventListener("dragover", elsewhere);
      globalThis.removeEventListener("drop", elsewhere);
    };
  }, [conv]);
  const where = conv.kind === "room" ? `#${conv.name}` : conv.name;
  return (
    <div ref={ref} class={`drop-zone${over ? " over" : ""}`} aria-hidden={!over}>
      <div class="drop-card">
        <PaperclipIcon />
        <strong>Drop files to send to {where}</strong>
        <span>Up to 10 at a time</span>
      </div>
    </div>
  );
}

// ---------------------------------------------------------------------------
// The composer's uploads

/** A local address for a picked picture, while the chip shows (null for other files). */
function usePreview(blob: Blob, mime: string): string | null {
  const [url, setUrl] = useState<string | null>(null);
  useEffect(() => {
    // Only what every browser shows, and not a huge one to decode for a thumbnail.
    if (!/^image\/(png|jpeg|gif|webp)$/.test(mime) || blob.size > 30_000_000) return;
    const u = URL.createObjectURL(blob);
    setUrl(u);
    return () => URL.revokeObjectURL(u);
  }, [blob]);
  return url;
}

function UploadChip(
  { model, ui, conv, u }: { model: ChatModel; ui: UiState; conv: Conversation; u: Upload },
) {
  const preview = usePreview(u.blob, u.mime);
  const pct = u.size > 0 ? Math.min(100, Math.floor((u.loaded / u.size) * 100)) : 0;
  const removeLabel = u.state === "uploading"
    ? `Cancel the upload of ${u.name}`
    : `Remove ${u.name}`;
  return (
    <li class={`upload ${u.state}`} data-name={u.name}>
      <span class="upload-thumb">
        {preview
          ? <img src={preview} alt="" />
          : <FileIcon kind={fileKind(u.file?.type ?? u.mime, u.name)} size={22} />}
      </span>
      <span class="upload-text">
        <span class="upload-name" title={u.name}>{u.name}</span>
        {u.state === "uploading"
          ? (
            <span class="upload-progress">
              <progress
                max={100}
                value={pct}
                aria-label={`Uploading ${u.name}`}
                aria-valuetext={`${pct} % of ${humanSize(u.size)}`}
              />
              <span class="upload-pct" aria-hidden="true">{pct} %</span>
            </span>
          )
          : u.state === "done"
          ? <span class="upload-size">{humanSize(u.file?.size ?? u.size)}</span>
          : <span class="upload-error" role="alert">{u.error}</span>}
      </span>
      {u.state === "failed" && u.retry && (
        <button
          type="button"
          class="icon-btn small"
          aria-label={`Retry uploading ${u.name}`}
          title="Retry"
          onClick={() => model.retryUpload(conv, u.key)}
        >
          <RetryIcon />
        </button>
      )}
      <button
        type="button"
        class="icon-btn small upload-remove"
        aria-label={removeLabel}
        title={u.state === "uploading" ? "Cancel the upload" : "Remove"}
        onClick={() => {
          model.removeUpload(conv, u.key);
          ui.focusComposer.value++;
        }}
      >
        <CloseIcon />
      </button>
    </li>
  );
}

/**
 * The files attached in the composer, as chips above the text; and, once
 * Enter was pressed while some were still uploading, that the message
 * goes when they are done.
 */
export function UploadTray(
  { model, ui, conv }: { model: ChatModel; ui: UiState; conv: Conversation },
) {
  const list = model.uploads.value.get(conv.key) ?? [];
  if (list.length === 0) return null;
  const waiting = model.sendWaiting.value.has(conv.key);
  const running = list.filter((u) => u.state === "uploading").length;
  return (
    <div class="upload-tray">
      <ul class="uploads" aria-label="Files to send">
        {list.map((u) => <UploadChip key={u.key} model={model} ui={ui} conv={conv} u={u} />)}
      </ul>
      {waiting && running > 0 && (
        <p class="upload-wait" role="status">
          Sending when {running === 1 ? "the upload finishes" : `the ${running} uploads finish`}…
        </p>
      )}
    </div>
  );
}

// ---------------------------------------------------------------------------
// The files of a message

/** The box of each preview when a message carries several pictures. */
const SMALL_BOX = { width: 220, height: 180 };

/** The picture shown in the lightbox: the pictures of one message and which one. */
const lightbox = signal<{ files: FileInfo[]; index: number; from: string } | null>(null);

/**
 * The files a message carries: pictures first, as previews at the size
 * their `width` and `height` give (fitted to a box, aspect ratio kept,
 * reserved before they load), then the other files as cards.
 */
export function MessageFiles(
  { files, from, after }: {
    files: readonly FileInfo[];
    from: string;
    /** Shown small after the files (the edited mark of a message without text). */
    after?: ComponentChildren;
  },
) {
  const images = files.filter((f) => isImage(f) && f.url);
  const others = files.filter((f) => !images.includes(f));
  return (
    <div class="msg-files">
      {images.length > 0 && (
        <div class={`msg-images${images.length > 1 ? " several" : ""}`}>
          {images.map((f, i) => {
            const box = fitBox(f.width!, f.height!, images.length > 1 ? SMALL_BOX : PREVIEW_BOX);
            return (
              <button
                key={f.id}
                type="button"
                class="msg-image"
                aria-label={`Open the picture ${f.name}`}
                title={f.name}
                onClick={() => (lightbox.value = { files: images, index: i, from })}
              >
                <img
                  src={f.url}
                  alt={f.name}
                  width={box.width}
                  height={box.height}
                  loading="lazy"
                  decoding="async"
                  draggable={false}
                />
              </button>
            );
          })}
        </div>
      )}
      {others.map((f) => <FileCard key={f.id} f={f} />)}
      {after}
    </div>
  );
}

/** A file other than a picture: its icon, name and size, and a download link. */
function FileCard({ f }: { f: FileInfo }) {
  const kind = fileKind(f.type, f.name);
  return (
    <div class="file-card" data-kind={kind}>
      <span class="file-icon">
        <FileIcon kind={kind} />
      </span>
      <span class="file-text">
        <span class="file-name" title={f.name}>{f.name}</span>
        <span class="file-size">{humanSize(f.size)}</span>
      </span>
      {f.url && (
        <a
          class="icon-btn file-download"
          href={f.url}
          download={f.name}
          aria-label={`Download ${f.name} (${humanSize(f.size)})`}
          title="Download"
        >
          <DownloadIcon />
        </a>
      )}
    </div>
  );
}

/**
 * A picture of a message at the size of the screen: Escape (or ×, or a
 * click beside it) closes it, ← and → go to the message's other pictures.
 * A modal `<dialog>`: the focus stays inside and goes back where it was.
 */
export function Lightbox() {
  const state = lightbox.value;
  if (!state) return null;
  return <LightboxDialog key={state.files[0].id} state={state} />;
}

/**
 * Keeps Tab inside `box`: from its last control to its first and back (a
 * modal dialog alone lets the focus leave for the browser's own controls).
 */
function trapTab(e: KeyboardEvent, box: HTMLElement | null): void {
  if (!box) return;
  const all = [...box.querySelectorAll<HTMLElement>("a[href], button:not(:disabled)")];
  if (all.length === 0) return;
  const first = all[0];
  const last = all[all.length - 1];
  const at = document.activeElement;
  if (e.shiftKey && (at === first || !box.contains(at))) {
    e.preventDefault();
    last.focus();
  } else if (!e.shiftKey && (at === last || !box.contains(at))) {
    e.preventDefault();
    first.focus();
  }
}

function LightboxDialog(
  { state }: { state: { files: FileInfo[]; index: number; from: string } },
) {
  const ref = useRef<HTMLDialogElement>(null);
  const opener = useRef<Element | null>(null);
  const { files, index, from } = state;
  const f = files[index];
  const n = files.length;
  const go = (step: number) => (lightbox.value = { ...state, index: (index + step + n) % n });
  const close = () => (lightbox.value = null);
  useLayoutEffect(() => {
    opener.current = document.activeElement;
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => {
      d?.close();
      // Gone with its conversation (another one opened): not to come back with it.
      if (lightbox.peek()?.files === state.files) lightbox.value = null;
      // Back to the picture that opened it (the browser may not do it for a removed dialog).
      if (opener.current instanceof HTMLElement && opener.current.isConnected) {
        opener.current.focus();
      }
    };
  }, []);
  const box = fitBox(f.width ?? 1, f.height ?? 1, { width: 4096, height: 4096 });
  return (
    <dialog
      ref={ref}
      class="lightbox"
      aria-label={`${f.name}, from ${from}${n > 1 ? ` (${index + 1} of ${n})` : ""}`}
      onClose={close}
      onClick={(e) => {
        // A click beside the picture (on the backdrop or the empty stage) closes it.
        const t = e.target as HTMLElement;
        if (t === ref.current || t.classList.contains("lightbox-stage")) close();
      }}
      onKeyDown={(e) => {
        if (e.key === "Tab") trapTab(e, ref.current);
        else if (e.key === "ArrowRight" && n > 1) {
          e.preventDefault();
          go(1);
        } else if (e.key === "ArrowLeft" && n > 1) {
          e.preventDefault();
          go(-1);
        }
      }}
    >
      <div class="lightbox-bar">
        <span class="lightbox-title">
          <span class="lightbox-name" title={f.name}>{f.name}</span>
          <span class="lightbox-meta">
            {humanSize(f.size)}
            {n > 1 ? ` · ${index + 1} of ${n}` : ""}
          </span>
        </span>
        <a
          class="icon-btn"
          href={f.url}
          download={f.name}
          aria-label={`Download ${f.name}`}
          title="Download"
        >
          <DownloadIcon />
        </a>
        <button
          type="button"
          class="icon-btn lightbox-close"
          aria-label="Close"
          title="Close (Escape)"
          autofocus
          onClick={close}
        >
          <CloseIcon />
        </button>
      </div>
      <div class="lightbox-stage">
        {n > 1 && (
          <button
            type="button"
            class="lightbox-nav prev"
            aria-label="Previous picture"
            title="Previous (←)"
            onClick={() => go(-1)}
          >
            <ChevronIcon dir={-1} />
          </button>
        )}
        <img key={f.id} src={f.url} alt={f.name} width={box.width} height={box.height} />
        {n > 1 && (
          <button
            type="button"
            class="lightbox-nav next"
            aria-label="Next picture"
            title="Next (→)"
            onClick={() => go(1)}
          >
            <ChevronIcon dir={1} />
          </button>
        )}
      </div>
    </dialog>
  );
}
