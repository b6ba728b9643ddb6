import type { Clock } from '../clock';

/**
 * Short-lived, single-use records: the pending logins between /authorize and the IdP's callback, and
 * the authorization codes between the callback and the token endpoint. `take` is atomic: of two
 * concurrent takes of one key, exactly one gets the value, which is what makes a code or a state
 * single use (across replicas too, with the Redis store). Keys are digests of the random values the
 * browser carries, never the values themselves.
 */
export interface OneTimeStore {
  /** Stores `value` under `key` for `ttlMs`; false when the key is taken or the store is full (the caller answers 503). */
  put(key: string, value: string, ttlMs: number): Promise<boolean>;
  /** The value, removed in the same step; null when it never existed, expired or was taken. */
  take(key: string): Promise<string | null>;
}

/**
 * The embedded store: one process, in memory (a restart forgets logins in progress, which only means
 * the person logs in again). Bounded, so a flood of /authorize requests cannot exhaust memory: when
 * full, expired entries are swept, and if it is still full `put` refuses.
 */
export function createMemoryOneTimeStore(options: { clock: Clock; maxEntries?: number }): OneTimeStore {
  const maxEntries = options.maxEntries ?? 100_000;
  const entries = new Map<string, { value: string; expiresAt: number }>();

  function sweep(): void {
    const now = options.clock.now();
    for (const [key, entry] of entries) if (entry.expiresAt <= now) entries.delete(key);
  }

  return {
    async put(key, value, ttlMs) {
      // Never overwritten, as in Redis (SET NX): a live key is a collision of 256-bit values, or a bug.
      const existing = entries.get(key);
      if (existing && existing.expiresAt > options.clock.now()) return false;
      if (entries.size >= maxEntries) sweep();
      if (entries.size >= maxEntries) return false;
      entries.set(key, { value, expiresAt: options.clock.now() + ttlMs });
      return true;
    },
    async take(key) {
      const entry = entries.get(key);
      if (!entry) return null;
      entries.delete(key);
      return entry.expiresAt > options.clock.now() ? entry.value : null;
    },
  };
}
