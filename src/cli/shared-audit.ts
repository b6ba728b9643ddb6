import type { AuditLog } from '../audit/audit-log';
import type { CheckpointStore } from '../audit/checkpoint-store';
import { systemClock } from '../clock';
import type { Policy } from '../policy/schema';
import { createPostgresAuditLog } from '../state/postgres/audit-log';
import { createCheckpointTable } from '../state/postgres/checkpoint-table';
import { createPostgresKeyStorage } from '../state/postgres/key-storage';
import { createPgPool } from '../state/postgres/pool';
import { assertSchema } from '../state/postgres/schema';
import { describeUrl } from '../state/safe-url';
import type { SealedKeyStorage } from '../tokens/key-store';

/**
 * The audit evidence the `bulkhead audit` verbs read when the policy is scaled out: the per-tenant
 * chains every replica writes, their checkpoints and the sealed audit keys, all in PostgreSQL. Null for
 * an embedded policy (the files under --data-dir).
 */
export interface SharedAuditStores {
  log: AuditLog;
  checkpoints: CheckpointStore;
  auditKeys: SealedKeyStorage;
  where: string;
  close(): Promise<void>;
}

export async function openSharedAuditStores(policy: Policy | null): Promise<SharedAuditStores | null> {
  const url = policy?.broker.state.postgres_url;
  if (!url) return null;
  const pool = createPgPool({ url, timeoutMs: 30_000, max: 2 });
  try {
    await assertSchema(pool);
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw new Error(`PostgreSQL at ${describeUrl(url)}: ${(err as Error).message}`, { cause: err });
  }
  const log = createPostgresAuditLog({ pool, clock: systemClock });
  return {
    where: describeUrl(url),
    log,
    checkpoints: createCheckpointTable(pool),
    auditKeys: createPostgresKeyStorage(pool, { table: 'bulkhead_audit_keys' }),
    async close() {
      await log.close();
      await pool.end();
    },
  };
}
