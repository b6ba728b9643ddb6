import type { AuditLog } from '../audit/audit-log';
import { systemClock } from '../clock';
import type { Policy } from '../policy/schema';
import { createPostgresAuditLog } from '../state/postgres/audit-log';
import { createPgPool } from '../state/postgres/pool';
import { assertSchema } from '../state/postgres/schema';
import { describeUrl } from '../state/safe-url';

/**
 * The audit log `bulkhead audit verify` reads when the policy is scaled out: the per-tenant chains in
 * PostgreSQL that every replica writes. Null for an embedded policy (the files under --data-dir).
 */
export async function openSharedAuditLog(policy: Policy | null): Promise<{ log: AuditLog & { warnings(): string[] }; where: string } | null> {
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
    log: {
      ...log,
      warnings: () => [],
      async close() {
        await log.close();
        await pool.end();
      },
    },
  };
}
