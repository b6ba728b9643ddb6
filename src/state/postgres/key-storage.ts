import type { Pool } from 'pg';
import { parseStoredKeyRing, type SealedKeyStorage } from '../../tokens/key-store';

/**
 * The signing key ring shared by every replica: one row in `bulkhead_signing_keys`, private keys sealed
 * by createSealedKeyStore before they get here (this backend never sees one in the clear), so any replica
 * started with the same master key verifies any replica's tokens.
 *
 * Writes are compare-and-swap on the row's version, as last read by this storage:
 * - the first write is insert-if-absent, so two replicas starting on an empty database cannot both
 *   create a ring — the loser gets an error instead of silently signing with keys nobody else knows;
 * - a later write succeeds only if nobody wrote since this replica read, so a replica with a stale view
 *   cannot overwrite another replica's rotation (the key ring reads the stored ring before each step,
 *   so a retry starts from the newest).
 */
/** The sealed key rings kept in PostgreSQL: token signing keys, and the audit checkpoint keys. */
export type KeyRingTable = 'bulkhead_signing_keys' | 'bulkhead_audit_keys';

export function createPostgresKeyStorage(pool: Pool, options: { onWritten?: () => void; table?: KeyRingTable } = {}): SealedKeyStorage {
  /** Version of the ring this storage last read or wrote; 0 = none existed. */
  let seen: number | undefined;
  // A fixed identifier from the union below, never input: safe to splice into the statements.
  const table = options.table ?? 'bulkhead_signing_keys';
  const SOURCE = `PostgreSQL ${table}`;

  return {
    async read() {
      const result = await pool.query<{ version: string; ring: unknown }>(`SELECT version, ring FROM ${table} WHERE id = 1`);
      const row = result.rows[0];
      if (!row) {
        seen = 0;
        return null;
      }
      const ring = parseStoredKeyRing(row.ring, SOURCE);
      seen = Number(row.version);
      return ring;
    },

    async write(ring) {
      if (seen === undefined) throw new Error(`${SOURCE}: read the key ring before writing it`);
      const json = JSON.stringify(ring);
      const result =
        seen === 0
          ? await pool.query<{ version: string }>(`INSERT INTO ${table} (id, version, ring) VALUES (1, 1, $1) ON CONFLICT (id) DO NOTHING RETURNING version`, [json])
          : await pool.query<{ version: string }>(`UPDATE ${table} SET ring = $1, version = version + 1, updated_at = now() WHERE id = 1 AND version = $2 RETURNING version`, [json, seen]);
      const row = result.rows[0];
      if (!row) {
        seen = undefined;
        throw new Error(`${SOURCE}: the key ring was changed by another replica since it was read; reload and retry`);
      }
      seen = Number(row.version);
      options.onWritten?.();
    },
  };
}
