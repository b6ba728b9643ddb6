import type { Pool } from 'pg';
import type { CheckpointStore } from '../../audit/checkpoint-store';
import { purgeAuditRows } from './audit-purge';

/**
 * The shared checkpoint store: `bulkhead_audit_checkpoints`, one row per signed checkpoint, append-only
 * (the same trigger as the records). Every replica signs the heads it committed itself; two replicas
 * never sign the same seq (only one committed it), and a retry of the same checkpoint is a no-op.
 */
export function createCheckpointTable(pool: Pool): CheckpointStore {
  return {
    async add(checkpoint) {
      await pool.query('INSERT INTO bulkhead_audit_checkpoints (tenant, seq, checkpoint) VALUES ($1, $2, $3) ON CONFLICT (tenant, seq) DO NOTHING', [
        checkpoint.tenant,
        checkpoint.seq,
        JSON.stringify(checkpoint),
      ]);
    },

    async list(tenant) {
      const result = await pool.query<{ checkpoint: string }>('SELECT checkpoint FROM bulkhead_audit_checkpoints WHERE tenant = $1 ORDER BY seq', [tenant]);
      return result.rows.map((row) => {
        try {
          return JSON.parse(row.checkpoint) as unknown;
        } catch {
          return { unparsable: true };
        }
      });
    },

    async tenants() {
      return (await pool.query<{ tenant: string }>('SELECT DISTINCT tenant FROM bulkhead_audit_checkpoints ORDER BY tenant')).rows.map((r) => r.tenant);
    },

    // The records, head and checkpoints go together, in one transaction (audit-purge.ts).
    purge: (tenant) => purgeAuditRows(pool, tenant),
  };
}
