import { MemoryStore } from "../server/memory_store.ts";
import { storeContract } from "./store_contract.ts";

storeContract(
  "MemoryStore",
  ({ keep }) => Promise.resolve(new MemoryStore({ limit: keep ?? 1000 })),
);
