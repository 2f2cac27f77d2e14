/**
 * What the hub's command modules get from the node they run on. Each module
 * adds to it only the few hub callbacks it needs, so that none of them sees
 * the hub's private state.
 *
 * @module
 */
import type { Auth } from "../auth/auth.ts";
import type { Broker } from "../broker/broker.ts";
import type { Logger } from "../log.ts";
import type { Store } from "../store/store.ts";
import type { FileStore } from "../files/files.ts";
import type { FileUrls } from "../files/urls.ts";

/** The node's parts, shared by every module of the hub. */
export interface NodeContext {
  store: Store;
  broker: Broker;
  auth: Auth;
  log: Logger;
  /** Clock in milliseconds. */
  now: () => number;
}

/** Attachments, for the parts that send, delete or show messages with files. */
export interface FilesContext {
  /** Where uploads are kept. */
  files: FileStore;
  /** Signs the link each viewer gets to a file. */
  urls: FileUrls;
}
