import type { Pool } from 'pg';
import { notBeforeOf, revocationKey, type LiftableTarget, type RevocationRecord, type RevocationTarget } from '../../revocation/revocation-store';
import type { RevocationChange } from '../revocation-mirror';

/**
 * The durable half of shared revocation: one row per target in `bulkhead_revocations`. Every change
 * bumps the row's version under the row lock, so versions of one key are ordered the way the changes
 * committed, and a replica can apply changes it hears about in any order (newest version wins).
 * A row with `expires_at` stops denying then: every replica judges it against its own clock, and
 * `list` leaves it out; the row itself stays (inactive rows and expired ones are history, not state).
 */
export interface RevocationTable {
  /** Durable (committed) before it resolves. */
  revoke(record: RevocationRecord): Promise<RevocationChange>;
  /** Lifts a tenant revocation; null when the tenant was not revoked. */
  restoreTenant(tenant: string): Promise<RevocationChange | null>;
  /** Lifts a principal, session or token revocation in force at `now`; null when there was none. */
  lift(target: LiftableTarget, now: number): Promise<{ change: RevocationChange; record: RevocationRecord } | null>;
  /** Every row, for a full resync of a replica's mirror. */
  readAll(): Promise<RevocationChange[]>;
  /** The revocations in force at `now`. */
  list(now: number): Promise<RevocationRecord[]>;
}

interface Row {
  key: string;
  active: boolean;
  version: string;
  revoked_at: string;
  expires_at: string | null;
}

interface RecordRow {
  target: RevocationTarget;
  reason: string | null;
  revoked_at: string;
  expires_at: string | null;
  tenant: string | null;
}

const CHANGE_COLUMNS = 'key, active, version, revoked_at, expires_at';
const RECORD_COLUMNS = 'target, reason, revoked_at, expires_at, tenant';

export function createRevocationTable(pool: Pool): RevocationTable {
  // A tenant row keeps its latest revoke time through a restore: that is the tenant's "not before".
  const change = (row: Row): RevocationChange => ({
    key: row.key,
    active: row.active,
    version: Number(row.version),
    ...(row.key.startsWith('tenant:') ? { notBefore: notBeforeOf(Number(row.revoked_at)) } : {}),
    ...(row.expires_at === null ? {} : { expiresAt: Number(row.expires_at) }),
  });
  const record = (row: RecordRow): RevocationRecord => ({
    target: row.target,
    at: Number(row.revoked_at),
    ...(row.reason === null ? {} : { reason: row.reason }),
    ...(row.expires_at === null ? {} : { expiresAt: Number(row.expires_at) }),
    ...(row.tenant === null ? {} : { tenant: row.tenant }),
  });

  return {
    async revoke(r) {
      const key = revocationKey(r.target);
      // The latest revoke decides the expiry (an operator can extend a TTL or make it permanent).
      const result = await pool.query<Row>(
        `INSERT INTO bulkhead_revocations (key, target, reason, revoked_at, active, version, expires_at, tenant)
         VALUES ($1, $2, $3, $4, true, 1, $5, $6)
         ON CONFLICT (key) DO UPDATE SET active = true, version = bulkhead_revocations.version + 1,
           reason = EXCLUDED.reason, revoked_at = GREATEST(bulkhead_revocations.revoked_at, EXCLUDED.revoked_at),
           expires_at = EXCLUDED.expires_at, tenant = COALESCE(EXCLUDED.tenant, bulkhead_revocations.tenant)
         RETURNING ${CHANGE_COLUMNS}`,
        [key, JSON.stringify(r.target), r.reason ?? null, Math.trunc(r.at), r.expiresAt === undefined ? null : Math.trunc(r.expiresAt), r.tenant ?? null],
      );
      return change(result.rows[0]!);
    },

    async restoreTenant(tenant) {
      const result = await pool.query<Row>(`UPDATE bulkhead_revocations SET active = false, version = version + 1 WHERE key = $1 AND active RETURNING ${CHANGE_COLUMNS}`, [
        revocationKey({ kind: 'tenant', tenant }),
      ]);
      return result.rows[0] ? change(result.rows[0]) : null;
    },

    async lift(target, now) {
      const result = await pool.query<Row & RecordRow>(
        `UPDATE bulkhead_revocations SET active = false, version = version + 1
         WHERE key = $1 AND active AND (expires_at IS NULL OR expires_at > $2)
         RETURNING ${CHANGE_COLUMNS}, ${RECORD_COLUMNS}`,
        [revocationKey(target), Math.trunc(now)],
      );
      const row = result.rows[0];
      return row ? { change: change(row), record: record(row) } : null;
    },

    async readAll() {
      const result = await pool.query<Row>(`SELECT ${CHANGE_COLUMNS} FROM bulkhead_revocations`);
      return result.rows.map(change);
    },

    async list(now) {
      const result = await pool.query<RecordRow>(`SELECT ${RECORD_COLUMNS} FROM bulkhead_revocations WHERE active AND (expires_at IS NULL OR expires_at > $1) ORDER BY revoked_at`, [Math.trunc(now)]);
      return result.rows.map(record);
    },
  };
}
