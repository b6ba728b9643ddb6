import type { Pool } from 'pg';
import { parseStoredArgumentKey, type ArgumentKeyStorage, type StoredArgumentKey } from '../../argument-keys/argument-key-storage';

/**
 * The argument keys every replica shares: one row per tenant in `bulkhead_argument_keys`, the key
 * wrapped by the tenant's root before it gets here (this table never holds one in the clear). The
 * first key is insert-if-absent, so replicas racing on a tenant's first call agree on one key; a shred
 * clears `kek`/`wrapped` and sets `shredded_at` (a tombstone no later insert can replace).
 */
export function createArgumentKeyTable(pool: Pool): ArgumentKeyStorage {
  async function read(tenant: string): Promise<StoredArgumentKey | undefined> {
    const result = await pool.query<{ kek: string | null; wrapped: string | null; shredded_at: Date | null }>('SELECT kek, wrapped, shredded_at FROM bulkhead_argument_keys WHERE tenant = $1', [tenant]);
    const row = result.rows[0];
    if (!row) return undefined;
    return parseStoredArgumentKey(row.shredded_at ? { shredded_at: row.shredded_at.toISOString() } : row, `PostgreSQL bulkhead_argument_keys (tenant "${tenant}")`);
  }
  return {
    read,
    async create(tenant, key) {
      await pool.query('INSERT INTO bulkhead_argument_keys (tenant, kek, wrapped) VALUES ($1, $2, $3) ON CONFLICT (tenant) DO NOTHING', [tenant, key.kek, key.wrapped]);
      const stored = await read(tenant);
      if (!stored) throw new Error(`PostgreSQL bulkhead_argument_keys: tenant "${tenant}"'s key disappeared while it was created`);
      return stored;
    },
    async rewrap(tenant, from, to) {
      await pool.query('UPDATE bulkhead_argument_keys SET kek = $2, wrapped = $3 WHERE tenant = $1 AND wrapped = $4 AND shredded_at IS NULL', [tenant, to.kek, to.wrapped, from.wrapped]);
    },
    async shred(tenant, at) {
      await pool.query(
        'INSERT INTO bulkhead_argument_keys (tenant, kek, wrapped, shredded_at) VALUES ($1, NULL, NULL, $2) ON CONFLICT (tenant) DO UPDATE SET kek = NULL, wrapped = NULL, shredded_at = COALESCE(bulkhead_argument_keys.shredded_at, EXCLUDED.shredded_at)',
        [tenant, at],
      );
    },
  };
}
