/**
 * Changes to messages that exist: `edit`, `delete` and `react`. Each is
 * checked against the conversation (the user must be in it), handed to the
 * broker, which applies it in the store and delivers it to every node in the
 * conversation's `seq` order, and answered with an `error` when the store
 * refused it. The frames every member receives are built by
 * {@link changeFrame}. An admin may delete anyone's message (a moderator
 * delete): its tombstone says `removed`, and the audit log records it.
 *
 * @module
 */
import type { Origin } from "../broker/broker.ts";
import {
  type ChangeFrame,
  type ClientFrame,
  FrameError,
  MAX_REACTIONS,
  MAX_REACTIONS_TOTAL,
  roomMentionRefusal,
  type Target,
} from "../../protocol.ts";
import { type AdminStore, record } from "../admin/admin.ts";
import type { RoomKinds } from "./rooms.ts";
import type { Applied, Change, ChangeRefusal } from "../store/store.ts";
import { type Conn, takeTurn, type Turn, type User } from "./conn.ts";
import type { FilesContext, NodeContext } from "./context.ts";
import { encode, peerOf, withRef } from "./frames.ts";

/** Milliseconds the clocks of nodes and the store may disagree by. */
const CLOCK_SKEW = 2000;

/** What {@link Changes} needs from the node. */
export interface ChangesContext extends NodeContext, FilesContext {
  /** The conversation of a frame's target, checked (see `Commands.conv`). */
  conv: (user: User, frame: Target, ref?: string) => Promise<{ conv: string; target: Target }>;
  /** Milliseconds after sending during which a message may be edited; absent: no limit. */
  editWindow?: number;
  /** Sends frame text to one connection, if it is still there. */
  reply: (conn: Conn, text: string) => void;
  /** Where a moderator delete is recorded. */
  admin: Pick<AdminStore, "audit">;
  /** The kinds of rooms: nothing changes in an archived one (but an admin's delete). */
  kinds: RoomKinds;
}

/** Handlers of `edit`, `delete` and `react`. */
export class Changes {
  #ctx: ChangesContext;

  /** Handles changes with what `ctx` gives. */
  constructor(ctx: ChangesContext) {
    this.#ctx = ctx;
  }

  /** Replaces the text of the user's own message. */
  async edit(conn: Conn, frame: ClientFrame & { type: "edit" }): Promise<void> {
    const turn = takeTurn(conn);
    try {
      await this.#edit(conn, frame, turn);
    } finally {
      turn.done();
    }
  }

  async #edit(conn: Conn, frame: ClientFrame & { type: "edit" }, turn: Turn): Promise<void> {
    const user = conn.user!;
    const { conv, target } = await this.#open(user, frame, frame.ref, false, true);
    if (target.room !== undefined) {
      // The new text alone decides: an edit must not put a member's @room
      // into a room where only admins may use it (an old one may be edited out).
      const refusal = roomMentionRefusal(target.room, await this.#ctx.kinds.of(target.room), {
        admin: this.#ctx.auth.role(user.name) === "admin",
        text: frame.text,
      });
      if (refusal !== null) throw new FrameError("forbidden", refusal, frame.ref);
    }
    if (frame.text === "") await this.#mayBeEmpty(conv, frame.id, frame.ref);
    const window = this.#ctx.editWindow;
    const bound = await this.#heldSince(user.name);
    const change: Change = { kind: "edit", conv, id: frame.id, user: user.name, text: frame.text };
    const late = window === undefined ? 0 : this.#ctx.now() - window;
    if (Math.max(late, bound) > 0) change.sentAfter = Math.max(late, bound);
    await this.#apply(conn, turn, change, frame.ref, bound >= late ? "holder" : "window");
  }

  /**
   * An edit may leave no text only on a message with files (they stay, as in
   * Slack). A missing or deleted message is left to the store to refuse.
   */
  async #mayBeEmpty(conv: string, id: number, ref: string | undefined): Promise<void> {
    const msg = await this.#ctx.store.message(conv, id);
    if (msg && !msg.deleted && !msg.files?.length) {
      throw new FrameError(
        "bad_request",
        `Message #${id} has no files, so it cannot be left empty: delete it instead`,
        ref,
      );
    }
  }

  /**
   * Deletes the user's own message, or an admin's choice of anyone's: a
   * tombstone keeps its place.
   */
  async delete(conn: Conn, frame: ClientFrame & { type: "delete" }): Promise<void> {
    const turn = takeTurn(conn);
    try {
      await this.#delete(conn, frame, turn);
    } finally {
      turn.done();
    }
  }

  async #delete(conn: Conn, frame: ClientFrame & { type: "delete" }, turn: Turn): Promise<void> {
    const user = conn.user!;
    const { conv } = await this.#open(user, frame, frame.ref, true);
    const change: Change = { kind: "delete", conv, id: frame.id, user: user.name };
    // A message's files and author never change: read before, files removed once it is deleted.
    const msg = await this.#ctx.store.message(conv, frame.id);
    if (msg && msg.from !== user.name && this.#ctx.auth.role(user.name) === "admin") {
      change.moderator = true;
    } else {
      const bound = await this.#heldSince(user.name);
      if (bound > 0) change.sentAfter = bound;
    }
    const applied = await this.#apply(conn, turn, change, frame.ref, "holder");
    if (applied?.removed) await this.#audit(applied, msg!.from);
    if (applied && msg?.files) await this.#removeFiles(msg.files.map((f) => f.id));
  }

  /**
   * The conversation of a change, checked like any frame's, and refused in
   * an archived room (kept as it is), but for an admin's delete when
   * `admins`; an `edit` by a member is refused in a read-only room too.
   */
  async #open(
    user: User,
    frame: Target,
    ref: string | undefined,
    admins = false,
    edit = false,
  ): Promise<{ conv: string; target: Target }> {
    const found = await this.#ctx.conv(user, frame, ref);
    const room = found.target.room;
    if (room === undefined) return found;
    const kind = await this.#ctx.kinds.of(room);
    const admin = this.#ctx.auth.role(user.name) === "admin";
    if (kind?.archived && !(admins && admin)) {
      throw new FrameError("forbidden", `#${room} is archived: it is kept, read-only`, ref);
    }
    // Announcements stay as the admins left them (members may still react, and delete their own).
    if (kind?.readOnly && edit && !admin) {
      throw new FrameError("forbidden", `Only admins post in #${room}: it is read-only`, ref);
    }
    return found;
  }

  /**
   * Records an admin's delete of someone else's message. The delete is done
   * and everyone told already: a failure is logged, not answered.
   */
  async #audit(applied: Applied, author: string): Promise<void> {
    const where = applied.conv.startsWith("@") ? "DM" : applied.conv;
    await record(this.#ctx.admin, this.#ctx.log, {
      at: this.#ctx.now(),
      by: applied.user,
      action: "delete",
      target: `${where} #${applied.id}`,
      detail: `a message by ${author}`,
    });
  }

  /** Removes a deleted message's files; a failure is left to the file sweep. */
  async #removeFiles(ids: string[]): Promise<void> {
    try {
      await this.#ctx.files.remove(ids);
    } catch (err) {
      this.#ctx.log.warn(`Files of a deleted message not removed yet: ${(err as Error).message}`);
    }
  }

  /** Adds or removes the user's reaction. */
  async react(conn: Conn, frame: ClientFrame & { type: "react" }): Promise<void> {
    const turn = takeTurn(conn);
    try {
      await this.#react(conn, frame, turn);
    } finally {
      turn.done();
    }
  }

  async #react(conn: Conn, frame: ClientFrame & { type: "react" }, turn: Turn): Promise<void> {
    const user = conn.user!;
    const { conv } = await this.#open(user, frame, frame.ref);
    await this.#apply(
      conn,
      turn,
      {
        kind: "react",
        conv,
        id: frame.id,
        user: user.name,
        emoji: frame.emoji,
        on: frame.on,
      },
      frame.ref,
      "window",
    );
  }

  /**
   * Open mode: since when the user's session holds its name (0 when unknown,
   * and in login mode, where a name is always the same person). A name
   * released and claimed again is someone else: what the earlier holder sent
   * is not theirs to change.
   */
  async #heldSince(name: string): Promise<number> {
    if (this.#ctx.auth.mode !== "open") return 0;
    const since = (await this.#ctx.store.nameClaim(name))?.since ?? 0;
    // Message times come from the store's clock (Redis's, with several
    // nodes), the claim's from the node's: allow for a little skew.
    return since > 0 ? since - CLOCK_SKEW : 0;
  }

  /** `late` says which bound a `too_late` refusal means: the edit window or the name's holder. */
  async #apply(
    conn: Conn,
    turn: Turn,
    change: Change,
    ref: string | undefined,
    late: "window" | "holder",
  ): Promise<Applied | null> {
    const origin: Origin = { node: this.#ctx.broker.node, conn: conn.id };
    if (ref !== undefined) origin.ref = ref;
    let result;
    try {
      if (turn.ready) await turn.ready;
      const applied = this.#ctx.broker.publishChange(change, origin);
      turn.done();
      result = await applied;
    } catch (err) {
      this.#ctx.log.warn(
        `Change by "${change.user}" to ${change.conv}#${change.id} not stored: ${
          (err as Error).message
        }`,
      );
      throw new FrameError(
        "unavailable",
        "The change was not saved: the server cannot store it right now, try again shortly",
        ref,
      );
    }
    if (!result.ok) throw this.#refused(result.refusal, change, ref, late);
    if (result.applied === null && ref !== undefined) this.#unchanged(conn, change, ref);
    return result.applied;
  }

  /**
   * Nothing to do (a reaction already so, a tombstone deleted again): nobody
   * is told, but a request with a `ref` still gets its answer: the frame it
   * would have caused, at position 0 — it took none, and a client that
   * merges it by `seq` changes nothing (a real position could run ahead of a
   * live change still on its way to this connection).
   */
  #unchanged(conn: Conn, change: Change, ref: string): void {
    if (change.kind === "edit") return;
    const applied: Applied = change.kind === "react"
      ? {
        kind: "reaction",
        conv: change.conv,
        id: change.id,
        seq: 0,
        user: change.user,
        emoji: change.emoji,
        on: change.on,
      }
      : { kind: "deleted", conv: change.conv, id: change.id, seq: 0, user: change.user };
    this.#ctx.reply(conn, withRef(encode(changeFrame(applied, change.user)), ref));
  }

  /** The error a refused change answers with. */
  #refused(
    refusal: ChangeRefusal,
    change: Change,
    ref: string | undefined,
    late: "window" | "holder",
  ): FrameError {
    const id = change.id;
    switch (refusal) {
      case "unknown_message":
        return new FrameError(
          "unknown_message",
          change.kind === "delete"
            ? `There is no message #${id} here`
            : `There is no message #${id} here (or it was deleted)`,
          ref,
        );
      case "forbidden":
        return new FrameError(
          "forbidden",
          change.kind === "edit"
            ? `Message #${id} is someone else's: only its author may edit it`
            : `Message #${id} is someone else's: only its author${
              this.#ctx.auth.mode === "login" ? " or an admin" : ""
            } may delete it`,
          ref,
        );
      case "too_late":
        if (late === "holder") {
          return new FrameError(
            "forbidden",
            `Message #${id} was sent by an earlier holder of the name "${change.user}": it is not yours to change`,
            ref,
          );
        }
        return new FrameError(
          "forbidden",
          `Message #${id} can no longer be edited: messages may be edited for ${
            Math.round((this.#ctx.editWindow ?? 0) / 1000)
          } seconds after sending`,
          ref,
        );
      case "too_many_reactions":
        return new FrameError(
          "too_many_reactions",
          `Message #${id} has all the reactions it may hold (${MAX_REACTIONS} different emoji, ${MAX_REACTIONS_TOTAL} in all)`,
          ref,
        );
    }
  }
}

/**
 * The frame every member is told of a change. In a DM, `to` is the other
 * party as `viewer` sees it (as in the requests they send); in a room,
 * `viewer` does not matter. Key order is fixed, so every node builds the
 * same text.
 */
export function changeFrame(applied: Applied, viewer: string): ChangeFrame {
  const target: Target = applied.conv.startsWith("@")
    ? { to: peerOf(applied.conv, viewer) }
    : { room: applied.conv };
  switch (applied.kind) {
    case "edited":
      return {
        type: "edited",
        ...target,
        id: applied.id,
        text: applied.text!,
        editedAt: applied.editedAt!,
        seq: applied.seq,
      };
    case "deleted": {
      const frame: ChangeFrame = { type: "deleted", ...target, id: applied.id, seq: applied.seq };
      // The author and time let a client that never had the message place its tombstone.
      if (applied.from !== undefined) frame.from = applied.from;
      if (applied.ts !== undefined) frame.ts = applied.ts;
      if (applied.removed) frame.removed = true;
      return frame;
    }
    case "reaction":
      return {
        type: "reaction",
        ...target,
        id: applied.id,
        emoji: applied.emoji!,
        user: applied.user,
        on: applied.on!,
        seq: applied.seq,
      };
  }
}
