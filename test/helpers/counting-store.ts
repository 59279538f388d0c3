/**
 * A state store that records every call it delegates, to assert what a read path costs (which
 * queries, how many) against a real engine rather than a mock.
 */
import type { StateStore } from "../../core/ports.js";

export interface CountingStore {
  store: StateStore;
  /** Every call since the last reset, in order: the method's name and its arguments. */
  calls: Array<{ method: keyof StateStore; args: unknown[] }>;
  /** How many times `method` was called since the last reset. */
  count(method: keyof StateStore): number;
  reset(): void;
}

export function countingStore(base: StateStore): CountingStore {
  const calls: CountingStore["calls"] = [];
  const store = new Proxy(base, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        calls.push({ method: prop as keyof StateStore, args });
        return value.apply(target, args);
      };
    },
  });
  return {
    store,
    calls,
    count: (method) => calls.filter((c) => c.method === method).length,
    reset: () => {
      calls.length = 0;
    },
  };
}
