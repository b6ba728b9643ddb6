import { join } from 'node:path';
import { createFileAuditLog } from '../audit/file-audit-log';
import { systemClock } from '../clock';
import { loadConfig } from './load-config';
import { parseVerb, stateOptions } from './options';
import { openSharedAuditLog } from './shared-audit';
import { UsageError } from './usage-error';

export const AUDIT_HELP = `Usage: bulkhead audit verify [--tenant T] [--data-dir DIR] [--config FILE]

Checks every tenant's audit hash chain (or one tenant's) and names the first broken record.
Exit code 0 when every chain verifies, 1 when one does not.`;

export async function audit(argv: string[]): Promise<number> {
  const [action, ...rest] = argv;
  if (action === undefined || action === '--help' || action === '-h') {
    process.stdout.write(AUDIT_HELP + '\n');
    return 0;
  }
  if (action !== 'verify') throw new UsageError(`bulkhead audit: unknown action "${action}" (see bulkhead audit --help)`);
  const { values } = parseVerb('audit verify', rest, { ...stateOptions, tenant: { type: 'string' } });
  if (values.help) {
    process.stdout.write(AUDIT_HELP + '\n');
    return 0;
  }
  const { policy, dataDir } = loadConfig(values);
  // Scaled out (broker.state in the policy), the chains live in PostgreSQL, not under --data-dir.
  const shared = await openSharedAuditLog(policy);
  const log = shared?.log ?? createFileAuditLog({ dir: join(dataDir, 'audit'), clock: systemClock });
  try {
    const tenants = values.tenant ? [values.tenant] : await log.tenants();
    if (tenants.length === 0) {
      process.stdout.write(`no audit streams in ${shared?.where ?? join(dataDir, 'audit')}\n`);
      return 0;
    }
    let allOk = true;
    for (const tenant of tenants) {
      const result = await log.verify(tenant);
      allOk &&= result.ok;
      process.stdout.write(
        result.ok
          ? `${tenant}: ok, ${result.events} events, head ${result.head}\n`
          : `${tenant}: BROKEN at record ${result.broken?.seq}: ${result.broken?.problem} (${result.events} events checked)\n`,
      );
    }
    // Repairs the log made while opening files (a torn line cut, say) are worth an operator's eye.
    for (const warning of log.warnings()) process.stderr.write(`warning: ${warning}\n`);
    return allOk ? 0 : 1;
  } finally {
    await log.close();
  }
}
