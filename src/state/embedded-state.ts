import { join } from 'node:path';
import { createSoleLeaderLock } from '../../rotation/leader-lock';
import { createMemoryApprovalStore } from '../approvals/memory-approval-store';
import { createFileAuditLog } from '../audit/file-audit-log';
import type { Clock } from '../clock';
import { createMemoryOneTimeStore } from '../oauth/one-time-store';
import { createMemoryQuotaStore } from '../quotas/memory-quota-store';
import { createFileRevocationStore } from '../revocation/file-revocation-store';
import { createMemorySessionStore } from '../sessions/memory-session-store';
import { createFileKeyStore } from '../tokens/key-store';
import type { BrokerState } from './broker-state';

/**
 * The embedded default: one process, everything durable under --data-dir (signing keys, revocations,
 * quarantines, audit); counters and approvals in memory. Nothing here needs a network service.
 */
export async function createEmbeddedState(options: { dataDir: string; masterKey: Buffer; clock: Clock }): Promise<BrokerState> {
  const { dataDir, masterKey, clock } = options;
  const revocations = await createFileRevocationStore({ dataDir });
  const audit = createFileAuditLog({ dir: join(dataDir, 'audit'), clock });
  const sessions = createMemorySessionStore({ clock, dataDir });
  // Load the quarantine journal now: a damaged file stops the broker at start, not every call later.
  await sessions.ready();
  return {
    kind: 'embedded',
    revocations,
    quotas: createMemoryQuotaStore({ clock }),
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
    },
  };
}
