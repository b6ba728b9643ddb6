import type { LeaderLock } from '../../rotation/leader-lock';
import type { ApprovalStore } from '../approvals/approval-store';
import type { ArgumentKeyStorage } from '../argument-keys/argument-key-storage';
import type { AuditLog } from '../audit/audit-log';
import type { BudgetStore } from '../budgets/budget-store';
import type { CheckpointStore } from '../audit/checkpoint-store';
import type { QuotaStore } from '../quotas/quota-store';
import type { RevocationStore } from '../revocation/revocation-store';
import type { SessionStore } from '../sessions/session-store';
import type { OneTimeStore } from '../oauth/one-time-store';
import type { KeyStore } from '../tokens/key-store';
import type { Readiness } from '../observability/readiness';

/**
 * Everything the broker keeps between calls. The embedded default keeps it in one process under
 * --data-dir; scale-out keeps it in Redis and PostgreSQL. The authorize pipeline sees only these
 * interfaces, so both deployments run the same code paths.
 */
export interface BrokerState {
  kind: 'embedded' | 'shared';
  revocations: RevocationStore;
  quotas: QuotaStore;
  budgets: BudgetStore;
  sessions: SessionStore;
  approvals: ApprovalStore;
  /** Pending logins and authorization codes: single use, short-lived. */
  oneTime: OneTimeStore;
  audit: AuditLog;
  /** Signed checkpoints of the audit heads, stored apart from the streams. */
  checkpoints: CheckpointStore;
  keys: KeyStore;
  /** Each tenant's argument key (the key of `arguments_mac`), wrapped by the tenant's root, or its tombstone. */
  argumentKeys: ArgumentKeyStorage;
  /** The audit signing keys (sealed, purpose `audit-key`). */
  auditKeys: KeyStore;
  /** Who rotates the audit keys (a lock of its own: the two rings rotate on different timers). */
  auditKeyLock?: LeaderLock;
  /** Who rotates the signing keys: one replica at a time when shared; the embedded broker always holds it. */
  leaderLock?: LeaderLock;
  /** Shared state only: calls `listener` when another replica may have changed the key ring (reload it). */
  onKeysChanged?(listener: () => void): void;
  /** Shared state only: a policy reload on one replica is announced, and the others reload their file. */
  policyChanges?: { announce(): Promise<void>; onChange(listener: () => void): void };
  /**
   * Shared state only: calls `listener` with the key of every revocation (or announced kill) another
   * replica made, after it is in this replica's revocation view and before this replica acknowledges
   * it, so the acknowledgement also means "my calls in flight for it are settled".
   */
  onKill?(listener: (key: string) => Promise<void>): void;
  /** Shared state only: tells every replica to kill its calls in flight for `key` (a quarantine); resolves once they have. */
  announceKill?(key: string): Promise<void>;
  /** Readiness of each backing service, for /readyz: ready, or what failed (never a tenant id). */
  ready(): Promise<Record<string, Readiness>>;
  close(): Promise<void>;
}
