import type { Pool } from 'pg';
import { inTransaction } from './pool';

/**
 * The one way rows leave the append-only audit tables: a tenant's stream purged by `tenant delete
 * --purge-audit`, after its signed purge record is in the security stream. The trigger on
 * bulkhead_audit and bulkhead_audit_checkpoints (schema.ts) refuses every UPDATE, and every DELETE
 * unless the transaction set `bulkhead.audit_purge` to the tenant of the row being deleted: a DELETE
 * someone types, or one that names another tenant, is still refused. This guards against mistakes and
 * an application bug, not against a database owner (who can drop the trigger); what proves a purge was
 * meant is the signed record, and a stream gone without one reads as deleted.
 */
export async function purgeAuditRows(pool: Pool, tenant: string): Promise<void> {
  await inTransaction(pool, async (client) => {
    // SET LOCAL: the flag ends with this transaction, whatever happens to the connection afterwards.
    await client.query("SELECT set_config('bulkhead.audit_purge', $1, true)", [tenant]);
    // The head row first, locked: no writer of this tenant commits between the deletes.
    await client.query('DELETE FROM bulkhead_audit_heads WHERE tenant = $1', [tenant]);
    await client.query('DELETE FROM bulkhead_audit WHERE tenant = $1', [tenant]);
    await client.query('DELETE FROM bulkhead_audit_checkpoints WHERE tenant = $1', [tenant]);
  });
}
