import { join } from 'node:path';
import { createSoleLeaderLock } from '../../rotation/leader-lock';
import { createMemoryApprovalStore } from '../approvals/memory-approval-store';
import { createFileArgumentKeyStorage } from '../argument-keys/file-argument-key-storage';
import { createFileAuditLog } from '../audit/file-audit-log';
import { createFileBudgetStore } from '../budgets/file-budget-store';
import { CHECKPOINT_DIR, createFileCheckpointStore } from '../audit/file-checkpoint-store';
import type { Clock } from '../clock';
import { createMemoryOneTimeStore } from '../oauth/one-time-store';
import { createMemoryQuotaStore } from '../quotas/memory-quota-store';
import { createFileRevocationStore } from '../revocation/file-revocation-store';
import { createMemorySessionStore } from '../sessions/memory-session-store';
import { createFileKeyStorage, createFileKeyStore, createSealedKeyStore } from '../tokens/key-store';
import { publishedFrom } from '../audit/audit-keys';
import { boundedCheck, READINESS_TIMEOUT_MS } from '../observability/readiness';
import type { BrokerState } from './broker-state';

/**
 * The embedded default: one process, everything durable under --data-dir (signing keys, revocations,
 * quarantines, audit streams and their checkpoints, audit keys, budget charges); counters and approvals in memory. Nothing here needs a network service.
 */
/** The sealed audit key ring, beside keys.json. */
export const AUDIT_KEYS_FILE = 'audit-keys.json';

export async function createEmbeddedState(options: { dataDir: string; masterKey: Buffer; clock: Clock }): Promise<BrokerState> {
  const { dataDir, masterKey, clock } = options;
  const revocations = await createFileRevocationStore({ dataDir, clock });
  const auditKeys = createSealedKeyStore(masterKey, createFileKeyStorage(dataDir, AUDIT_KEYS_FILE), 'audit-key');
  // A sealed stream's seal is checked against the audit keys when the writer opens it.
  const audit = createFileAuditLog({ dir: join(dataDir, 'audit'), clock, sealKeys: async () => {
      const ring = await auditKeys.load();
      return ring ? publishedFrom(ring) : { keys: [] };
    },
  });
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
    checkpoints: createFileCheckpointStore(join(dataDir, CHECKPOINT_DIR)),
    keys: createFileKeyStore(dataDir, masterKey),
    argumentKeys: createFileArgumentKeyStorage(dataDir),
    auditKeys,
    leaderLock: createSoleLeaderLock(),
    auditKeyLock: createSoleLeaderLock(),
    ready: async () => ({ audit: await boundedCheck(() => audit.ready!(), READINESS_TIMEOUT_MS) }),
    close: async () => {
      await audit.close();
      await revocations.close?.();
      await sessions.close?.();
      await budgets.close?.();
    },
  };
}
