import type { ApprovalStore } from '../approvals/approval-store';
import type { AuditEvent, AuditLog, AuditRecord } from '../audit/audit-log';
import type { BudgetStore } from '../budgets/budget-store';
import type { ShredOutcome } from '../compose/tenant-shred';
import type { RevokeInput, RevokeResult } from '../operator/kill-switch';
import type { QuotaStore } from '../quotas/quota-store';
import type { SessionStore } from '../sessions/session-store';

/**
 * Tenant delete: ordered, idempotent steps, journaled in the tenant's own audit stream (durable on
 * the embedded default and in PostgreSQL alike, and already the evidence an auditor reads). Each step
 * is recorded once it is done; a delete that was interrupted (the process killed, an upstream down) is
 * resumed by running it again: steps recorded since the run's `started` record are skipped, the rest
 * are run. The run ends with the tombstone, a `tenant_delete`/`deleted` record that the caller gets
 * signed by a checkpoint. The audit stream itself is kept (under retention).
 *
 * Why the steps are in this order:
 * 1. revoke: the tenant revocation is durable on every replica, its calls in flight are killed and
 *    their upstream leases revoked. From here nothing of the tenant is allowed again, so nothing below
 *    races a call that re-creates state.
 * 2. shred_keys: the tenant's root (transit/KMS key) is destroyed, then its data key and local secrets
 *    deleted (the one shred path, compose/tenant-shred.ts). From here no copy of its sealed data opens,
 *    even if a later step fails.
 * 3..6. sessions (live sessions, quarantines, calls), approvals, quota counters, budget counters.
 * 7. tombstone: the last record of the stream.
 */
export const DELETE_STEPS = ['revoke', 'shred_keys', 'sessions', 'approvals', 'quotas', 'budgets', 'tombstone'] as const;
export type DeleteStep = (typeof DELETE_STEPS)[number];

export interface DeleteStepReport {
  step: DeleteStep;
  /** done: run now; skipped: recorded as done by an earlier, interrupted run of this delete. */
  status: 'done' | 'skipped';
  detail: string;
}

export interface TenantDeleteResult {
  tenant: string;
  deleted: true;
  /** This run finished a delete an earlier run started. */
  resumed: boolean;
  steps: DeleteStepReport[];
  /** The tombstone record (seq, hash), signed by the checkpoint the caller seals after it. */
  tombstone: { seq: number; hash: string; ts: string };
  /** What is kept, and why. */
  retained: string[];
}

export interface TenantDeleteDeps {
  revoke: (input: RevokeInput) => Promise<RevokeResult>;
  shred: (tenant: string) => Promise<ShredOutcome>;
  sessions: Pick<SessionStore, 'forgetTenant'>;
  approvals: Pick<ApprovalStore, 'forgetTenant'>;
  quotas: Pick<QuotaStore, 'forgetTenant'>;
  budgets: Pick<BudgetStore, 'forgetTenant'>;
  log: Pick<AuditLog, 'read'>;
  append: (tenant: string, event: AuditEvent) => Promise<AuditRecord>;
  /** Signs what is committed of the stream (the tombstone). */
  seal: (tenant: string) => Promise<void>;
  /** Reports each step as it ends (the CLI prints them as they come). */
  onStep?: (report: DeleteStepReport) => void;
}

const PAGE = 1000;
const STEP_DONE = 'step_done';

export async function deleteTenant(deps: TenantDeleteDeps, tenant: string, operator: string): Promise<TenantDeleteResult> {
  const journal = await openRun(deps, tenant);
  const resumed = journal !== null;
  const done = journal ?? new Set<DeleteStep>();
  if (!resumed) await deps.append(tenant, { type: 'tenant_delete', status: 'started', operator, detail: `steps: ${DELETE_STEPS.join(', ')}` });

  const run: Record<Exclude<DeleteStep, 'tombstone'>, () => Promise<string>> = {
    async revoke() {
      const result = await deps.revoke({ tenant, operator, reason: 'tenant delete' });
      return `tenant revoked; ${result.upstream_leases_revoked} upstream lease(s) of calls in flight revoked`;
    },
    async shred_keys() {
      const outcome = await deps.shred(tenant);
      return `${outcome.root_destroyed ? `${outcome.root_destroyed}; ` : `root ${outcome.root} (shared; not destroyed); `}data key and ${outcome.secrets_deleted} local secret(s) deleted`;
    },
    async sessions() {
      await deps.sessions.forgetTenant(tenant);
      return 'live sessions, their principals, quarantines and calls deleted';
    },
    async approvals() {
      await deps.approvals.forgetTenant(tenant);
      return 'approvals deleted';
    },
    async quotas() {
      await deps.quotas.forgetTenant(tenant);
      return 'quota counters deleted';
    },
    async budgets() {
      await deps.budgets.forgetTenant(tenant);
      return 'budget counters of the tenant and its principals deleted';
    },
  };

  const steps: DeleteStepReport[] = [];
  const report = (r: DeleteStepReport) => {
    steps.push(r);
    deps.onStep?.(r);
  };
  for (const step of DELETE_STEPS) {
    if (step === 'tombstone') break;
    if (done.has(step)) {
      report({ step, status: 'skipped', detail: 'done by an earlier run' });
      continue;
    }
    const detail = await run[step]();
    // Recorded only once the step is done: a crash before this line reruns the step (each is idempotent).
    await deps.append(tenant, { type: 'tenant_delete', status: STEP_DONE, operator, detail: `${step}: ${detail}` });
    report({ step, status: 'done', detail });
  }
  const tombstone = await deps.append(tenant, {
    type: 'tenant_delete',
    status: 'deleted',
    operator,
    detail: 'tenant deleted: revoked, keys shredded, sessions, approvals, quotas and budgets deleted; this audit stream is retained',
  });
  await deps.seal(tenant);
  report({ step: 'tombstone', status: 'done', detail: `final record seq ${tombstone.seq}, signed by a checkpoint` });
  return {
    tenant,
    deleted: true,
    resumed,
    steps,
    tombstone: { seq: tombstone.seq, hash: tombstone.hash, ts: tombstone.ts },
    retained: [
      'the audit stream and its checkpoints (retention; the tombstone is its last record)',
      'the tenant revocation, so no token of the tenant works again while the policy still names it',
    ],
  };
}

/**
 * The steps an unfinished run of this delete recorded, or null when no run is open (none ever started,
 * or the last one ended with its tombstone: a new delete starts a new run, every step again).
 */
async function openRun(deps: Pick<TenantDeleteDeps, 'log'>, tenant: string): Promise<Set<DeleteStep> | null> {
  let open: Set<DeleteStep> | null = null;
  for (let after = 0; ; ) {
    const page = await deps.log.read(tenant, { afterSeq: after, limit: PAGE });
    for (const record of page) {
      if (record.type !== 'tenant_delete') continue;
      if (record.status === 'started') open = new Set();
      else if (record.status === 'deleted') open = null;
      else if (record.status === STEP_DONE && open) {
        const step = record.detail?.split(':', 1)[0] as DeleteStep | undefined;
        if (step && (DELETE_STEPS as readonly string[]).includes(step)) open.add(step);
      }
    }
    if (page.length < PAGE) return open;
    after = page[page.length - 1]!.seq;
  }
}
