import { join } from 'node:path';
import { createSoleLeaderLock } from '../../rotation/leader-lock';
import { createMemoryApprovalStore } from '../approvals/memory-approval-store';
import { createFileAuditLog } from '../audit/file-audit-log';
import { createFileBudgetStore } from '../budgets/file-budget-store';
import type { Clock } from '../clock';
import { createMemoryOneTimeStore } from '../oauth/one-time-store';
import { createMemoryQuotaStore } from '../quotas/memory-quota-store';
import { createFileRevocationStore } from '../revocation/file-revocation-store';
import { createMemorySessionStore } from '../sessions/memory-session-store';
import { createFileKeyStore } from '../tokens/key-store';
import type { BrokerState } from './broker-state';

/**
 * The embedded default: one process, everything durable under --data-dir (signing keys, revocations,
 * quarantines, audit, budget charges); counters and approvals in memory. Nothing here needs a network service.
 */
export async function createEmbeddedState(options: { dataDir: string; masterKey: Buffer; clock: Clock }): Promise<BrokerState> {
  const { dataDir, masterKey, clock } = options;
  const revocations = await createFileRevocationStore({ dataDir });
  const audit = createFileAuditLog({ dir: join(dataDir, 'audit'), clock });
  const sessions = createMemorySessionStore({ clock, dataDir });
  // Load the quarantine journal now: a damaged file stops the broker at start, not every call later.
  await sessions.ready();
  const budgets = await createFileBudgetStore({ dataDir, now: () => clock.now() });
  return {
    kind: 'embedded',
    revocations,
    quotas: createMemoryQuotaStore({ clock }),
    budgets,
    sessions,
    approvals: createMemoryApprovalStore({}),
    oneTime: createMemoryOneTimeStore({ clock }),
    audit,
    keys: createFileKeyStore(dataDir, masterKey),
    leaderLock: createSoleLeaderLock(),
    ready: async () => ({ audit: (await audit.ready?.()) ?? true }),
    close: async () => {
      await audit.close();
      await revocations.close?.();
      await sessions.close?.();
      await budgets.close?.();
    },
  };
}
