import type { Pool } from 'pg';
import { notBeforeOf, revocationKey, type RevocationRecord } from '../../revocation/revocation-store';
import type { RevocationChange } from '../revocation-mirror';

/**
 * The durable half of shared revocation: one row per target in `bulkhead_revocations`. Every change
 * bumps the row's version under the row lock, so versions of one key are ordered the way the changes
 * committed, and a replica can apply changes it hears about in any order (newest version wins).
 */
export interface RevocationTable {
  /** Durable (committed) before it resolves. */
  revoke(record: RevocationRecord): Promise<RevocationChange>;
  /** Lifts a tenant revocation; null when the tenant was not revoked. */
  restoreTenant(tenant: string): Promise<RevocationChange | null>;
  /** Every row, for a full resync of a replica's mirror. */
  readAll(): Promise<RevocationChange[]>;
}

interface Row {
  key: string;
  active: boolean;
  version: string;
  revoked_at: string;
}

export function createRevocationTable(pool: Pool): RevocationTable {
  // A tenant row keeps its latest revoke time through a restore: that is the tenant's "not before".
  const change = (row: Row): RevocationChange => ({
    key: row.key,
    active: row.active,
    version: Number(row.version),
    ...(row.key.startsWith('tenant:') ? { notBefore: notBeforeOf(Number(row.revoked_at)) } : {}),
  });

  return {
    async revoke(record) {
      const key = revocationKey(record.target);
      const result = await pool.query<Row>(
        `INSERT INTO bulkhead_revocations (key, target, reason, revoked_at, active, version)
         VALUES ($1, $2, $3, $4, true, 1)
         ON CONFLICT (key) DO UPDATE SET active = true, version = bulkhead_revocations.version + 1,
           reason = EXCLUDED.reason, revoked_at = GREATEST(bulkhead_revocations.revoked_at, EXCLUDED.revoked_at)
         RETURNING key, active, version, revoked_at`,
        [key, JSON.stringify(record.target), record.reason ?? null, Math.trunc(record.at)],
      );
      return change(result.rows[0]!);
    },

    async restoreTenant(tenant) {
      const result = await pool.query<Row>(
        `UPDATE bulkhead_revocations SET active = false, version = version + 1
         WHERE key = $1 AND active RETURNING key, active, version, revoked_at`,
        [revocationKey({ kind: 'tenant', tenant })],
      );
      return result.rows[0] ? change(result.rows[0]) : null;
    },

    async readAll() {
      const result = await pool.query<Row>('SELECT key, active, version, revoked_at FROM bulkhead_revocations');
      return result.rows.map(change);
    },
  };
}
