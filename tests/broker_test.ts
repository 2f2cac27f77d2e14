import { LocalBroker } from "../server/broker/broker.ts";
import { MemoryStore } from "../server/store/memory.ts";
import { brokerContract } from "./broker_contract.ts";

brokerContract("LocalBroker", () => {
  const store = new MemoryStore({ limit: 1000 });
  const broker = new LocalBroker(store);
  return Promise.resolve({
    broker,
    [Symbol.asyncDispose]: async () => {
      await broker.close();
      await store.close();
    },
  });
});
