import { RedisStore } from "../server/redis_store.ts";
import { RedisServer } from "./redis_helpers.ts";
import { storeContract } from "./store_contract.ts";

// One redis-server per test, on a free port; each store gets its own key prefix.
storeContract("RedisStore", async ({ keep }) => {
  const redis = await RedisServer.start();
  try {
    const store = await RedisStore.connect(redis.url, { keep: keep ?? 1000, prefix: "contract:" });
    const close = store.close.bind(store);
    return Object.assign(store, {
      close: async () => {
        await close();
        await redis[Symbol.asyncDispose]();
      },
    });
  } catch (err) {
    await redis[Symbol.asyncDispose]();
    throw err;
  }
});
