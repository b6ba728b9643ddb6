import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Pool } from 'pg';
import type { LeaderLock } from '../../../rotation/leader-lock';

/**
 * A leader lock as a lease row in `bulkhead_leases`, timed by the PostgreSQL server's clock so replicas'
 * clocks need not agree. Taking it is one statement: insert, or take over a row whose lease has expired,
 * or renew a row this replica already holds; anything else leaves the row alone and returns nothing.
 * If the holder dies, its lease runs out after ttlMs and the next replica to ask takes it.
 *
 * A failed query answers "not the leader": a replica that cannot reach the database must not act as
 * one (and the one that can will take over when the lease expires).
 */
export interface PostgresLeaderLock extends LeaderLock {
  /** Who this replica is in `bulkhead_leases.holder` (host, pid and a random suffix). */
  readonly holder: string;
}

export function createPostgresLeaderLock(options: { pool: Pool; name: string; holder?: string; onError?: (err: unknown) => void }): PostgresLeaderLock {
  const { pool, name } = options;
  const holder = options.holder ?? `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;

  return {
    holder,

    async acquire(ttlMs) {
      try {
        const result = await pool.query(
          `INSERT INTO bulkhead_leases (name, holder, expires_at) VALUES ($1, $2, now() + $3 * interval '1 millisecond')
           ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
             WHERE bulkhead_leases.holder = EXCLUDED.holder OR bulkhead_leases.expires_at <= now()
           RETURNING holder`,
          [name, holder, Math.max(1, Math.trunc(ttlMs))],
        );
        return result.rowCount === 1;
      } catch (err) {
        options.onError?.(err);
        return false;
      }
    },

    async release() {
      await pool.query('DELETE FROM bulkhead_leases WHERE name = $1 AND holder = $2', [name, holder]);
    },
  };
}
