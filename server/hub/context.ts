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

/** The node's parts, shared by every module of the hub. */
export interface NodeContext {
  store: Store;
  broker: Broker;
  auth: Auth;
  log: Logger;
  /** Clock in milliseconds. */
  now: () => number;
}
