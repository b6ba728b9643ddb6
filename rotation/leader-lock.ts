/**
 * Exactly one replica performs time-driven rotation at a time; the others follow (reload). The embedded
 * default is a single process, so it always holds the lock. Scale-out implements this over Redis or
 * PostgreSQL with a lease that expires if the holder dies.
 */
export interface LeaderLock {
  /** Tries to take or renew the lock for ttlMs; true while this replica holds it. */
  acquire(ttlMs: number): Promise<boolean>;
  release(): Promise<void>;
}

export function createSoleLeaderLock(): LeaderLock {
  return { acquire: async () => true, release: async () => undefined };
}
