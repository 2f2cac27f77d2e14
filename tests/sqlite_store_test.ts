import { SqliteStore } from "../server/sqlite_store.ts";
import { storeContract } from "./store_contract.ts";

storeContract("SqliteStore", async ({ keep }) => {
  const dir = await Deno.makeTempDir({ prefix: "chat-sqlite-" });
  const store = SqliteStore.open(`${dir}/chat.db`, { retainMessages: keep });
  const close = store.close.bind(store);
  store.close = async () => {
    await close();
    await Deno.remove(dir, { recursive: true });
  };
  return store;
});
