import type { Pool } from 'pg';
import type { QuarantineEntry } from '../../sessions/session-store';

/**
 * The durable record of quarantined sessions. Quarantine is a security decision, so (as the embedded
 * store journals it to disk) it must survive a Redis restart; Redis holds the copy the hot path reads,
 * and reloads it from here when that copy is gone. An operator's lift deletes the row.
 */
export interface QuarantineTable {
  add(entry: QuarantineEntry): Promise<void>;
  all(tenant?: string): Promise<QuarantineEntry[]>;
  /** Deletes the row; the deleted entry, or null when there was none. */
  remove(tenant: string, session: string): Promise<QuarantineEntry | null>;
  /** Deletes the tenant's rows (tenant delete). */
  forgetTenant(tenant: string): Promise<void>;
}

interface Row {
  tenant: string;
  session: string;
  reason: string;
  at: string;
}

const entry = (row: Row): QuarantineEntry => ({ tenant: row.tenant, session: row.session, reason: row.reason, at: Number(row.at) });

export function createQuarantineTable(pool: Pool): QuarantineTable {
  return {
    async add(e) {
      await pool.query('INSERT INTO bulkhead_quarantines (tenant, session, reason, at) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant, session) DO NOTHING', [
        e.tenant,
        e.session,
        e.reason.slice(0, 500),
        Math.trunc(e.at),
      ]);
    },
    async all(tenant) {
      const result =
        tenant === undefined
          ? await pool.query<Row>('SELECT tenant, session, reason, at FROM bulkhead_quarantines ORDER BY at')
          : await pool.query<Row>('SELECT tenant, session, reason, at FROM bulkhead_quarantines WHERE tenant = $1 ORDER BY at', [tenant]);
      return result.rows.map(entry);
    },
    async remove(tenant, session) {
      const result = await pool.query<Row>('DELETE FROM bulkhead_quarantines WHERE tenant = $1 AND session = $2 RETURNING tenant, session, reason, at', [tenant, session]);
      return result.rows[0] ? entry(result.rows[0]) : null;
    },
    async forgetTenant(tenant) {
      await pool.query('DELETE FROM bulkhead_quarantines WHERE tenant = $1', [tenant]);
    },
  };
}
