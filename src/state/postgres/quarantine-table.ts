import type { Pool } from 'pg';

/**
 * The durable record of quarantined sessions. Quarantine is a security decision, so (as the embedded
 * store journals it to disk) it must survive a Redis restart; Redis holds the copy the hot path reads,
 * and reloads it from here when that copy is gone.
 */
export interface QuarantineTable {
  add(entry: { tenant: string; session: string; reason: string; at: number }): Promise<void>;
  all(): Promise<Array<{ tenant: string; session: string }>>;
}

export function createQuarantineTable(pool: Pool): QuarantineTable {
  return {
    async add(entry) {
      await pool.query('INSERT INTO bulkhead_quarantines (tenant, session, reason, at) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant, session) DO NOTHING', [
        entry.tenant,
        entry.session,
        entry.reason.slice(0, 500),
        Math.trunc(entry.at),
      ]);
    },
    async all() {
      const result = await pool.query<{ tenant: string; session: string }>('SELECT tenant, session FROM bulkhead_quarantines');
      return result.rows;
    },
  };
}
