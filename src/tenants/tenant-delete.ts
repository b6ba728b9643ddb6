import type { ApprovalStore } from '../approvals/approval-store';
import type { AuditEvent, AuditLog, AuditRecord } from '../audit/audit-log';
import type { BudgetStore } from '../budgets/budget-store';
import type { AuditSigner } from '../audit/audit-keys';
import { isPurgeRecord, purgeEvent, type PurgeStatement } from '../audit/purge';
import { SECURITY_STREAM } from '../audit/security-stream';
import type { ShredOutcome } from '../compose/tenant-shred';
import { BrokerError } from '../errors';
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
 * 8. purge_audit (only with `purgeAudit`): the stream itself is removed (auditPurge below).
 */
export const DELETE_STEPS = ['revoke', 'shred_keys', 'sessions', 'approvals', 'quotas', 'budgets', 'tombstone'] as const;
export type DeleteStep = (typeof DELETE_STEPS)[number] | 'purge_audit';

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
  /** With purge_audit: the signed purge record in the security stream, and what it says was purged. */
  purge?: { record: { stream: typeof SECURITY_STREAM; seq: number; hash: string }; purged: { seq: number; hash: string }; export_sha256: string; export_seq: number };
}

/** What a purge needs: where the signed record's key comes from, and how the stream's records and checkpoints go. */
export interface AuditPurgeDeps {
  signer: () => AuditSigner;
  now: () => number;
  /** Removes the tenant's stream and its checkpoints (files, or PostgreSQL rows), idempotent. */
  remove: (tenant: string) => Promise<void>;
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
  /** Needed for purgeAudit only. */
  purge?: AuditPurgeDeps;
}

const PAGE = 1000;
/** The reason of the revoke the delete's first step records (its own record, like the journal). */
const DELETE_REASON = 'tenant delete';
const STEP_DONE = 'step_done';

export async function deleteTenant(deps: TenantDeleteDeps, tenant: string, operator: string, options: { purgeAudit?: boolean } = {}): Promise<TenantDeleteResult> {
  if (options.purgeAudit) {
    if (!deps.purge) throw new BrokerError('conflict', 'this broker cannot purge audit streams');
    if (tenant === SECURITY_STREAM) throw new BrokerError('bad_request', 'the security stream is never purged');
    // A purge whose signed record is written but whose stream is still (partly) there: finish it.
    const unfinished = await unfinishedPurge(deps, tenant);
    if (unfinished) return finishPurge(deps, tenant, unfinished);
    // Refused before anything is deleted: without an export, nothing of the stream would be left.
    await coveringExport(deps, tenant);
  }
  const journal = await openRun(deps, tenant);
  const resumed = journal !== null;
  const done = journal ?? new Set<DeleteStep>();
  if (!resumed) await deps.append(tenant, { type: 'tenant_delete', status: 'started', operator, detail: `steps: ${DELETE_STEPS.join(', ')}` });

  const run: Record<Exclude<DeleteStep, 'tombstone' | 'purge_audit'>, () => Promise<string>> = {
    async revoke() {
      const result = await deps.revoke({ tenant, operator, reason: DELETE_REASON });
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
  if (options.purgeAudit) {
    const purge = await auditPurge(deps, tenant, operator);
    report({ step: 'purge_audit', status: 'done', detail: purgeDetail(purge) });
    return { tenant, deleted: true, resumed, steps, tombstone: { seq: tombstone.seq, hash: tombstone.hash, ts: tombstone.ts }, retained: purgeRetained, purge: purgeSummary(purge) };
  }
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

/**
 * The export a purge requires: the stream's last `tenant_export`/`exported` record, whose bundle holds
 * every record before it, and after which the stream has only that record and the delete's own records
 * (its `tenant_delete` journal and the revoke its first step records: the broker's, not the tenant's). Any other record after the export (a
 * call, a deny of the revoked tenant) was never exported: refused `export_required` (409), export again.
 */
async function coveringExport(deps: Pick<TenantDeleteDeps, 'log'>, tenant: string): Promise<{ record: AuditRecord; last: AuditRecord }> {
  let exported: AuditRecord | undefined;
  let uncovered: AuditRecord | undefined;
  let last: AuditRecord | undefined;
  let inRun = false;
  for (let after = 0; ; ) {
    const page = await deps.log.read(tenant, { afterSeq: after, limit: PAGE });
    for (const record of page) {
      last = record;
      if (record.type === 'tenant_delete') inRun = record.status !== 'deleted';
      const deletes = record.type === 'tenant_delete' || (inRun && record.type === 'revoke' && record.reason === DELETE_REASON);
      if (record.type === 'tenant_export' && record.status === 'exported' && typeof record.bundle_sha256 === 'string' && record.records === record.seq - 1) {
        exported = record;
        uncovered = undefined;
      } else if (!deletes && uncovered === undefined) uncovered = record;
    }
    if (page.length < PAGE) break;
    after = page[page.length - 1]!.seq;
  }
  if (!exported) throw new BrokerError('export_required', `tenant "${tenant}"'s audit stream has no export: run bulkhead tenant export ${tenant} --out DIR first, then purge`);
  if (uncovered) {
    throw new BrokerError('export_required', `tenant "${tenant}"'s audit stream has records after its last export (seq ${uncovered.seq}, ${uncovered.type}): export it again, then purge`, { details: { uncovered_seq: uncovered.seq, export_seq: exported.seq } });
  }
  return { record: exported, last: last! };
}

const purgeRetained = [
  'the signed purge record in the security stream (_security): who purged the stream, its last seq and hash, and the export digest',
  'the tenant revocation, so no token of the tenant works again while the policy still names it',
];

/** Writes the signed purge record (then signs the security stream's head), then removes the stream. */
async function auditPurge(deps: TenantDeleteDeps, tenant: string, operator: string): Promise<AuditRecord & { purge: PurgeStatement }> {
  const purgeDeps = deps.purge!;
  const { record: exported, last } = await coveringExport(deps, tenant);
  const event = purgeEvent(
    { tenant, purged_seq: last.seq, purged_hash: last.hash, export_sha256: exported.bundle_sha256!, export_seq: exported.seq, operator, at: new Date(purgeDeps.now()).toISOString() },
    purgeDeps.signer(),
  );
  const record = (await deps.append(SECURITY_STREAM, event)) as AuditRecord & { purge: PurgeStatement };
  await deps.seal(SECURITY_STREAM);
  // A crash here leaves the record naming the head the stream still has: the next run finishes it.
  await purgeDeps.remove(tenant);
  return record;
}

/**
 * The newest signed purge record of the tenant whose stream is still there as it named it (its last
 * record is the purged one) or is already gone: the purge was interrupted after its record. Null when
 * the stream moved on (a new stream since) or was never purged.
 */
async function unfinishedPurge(deps: Pick<TenantDeleteDeps, 'log'>, tenant: string): Promise<(AuditRecord & { purge: PurgeStatement }) | null> {
  let latest: (AuditRecord & { purge: PurgeStatement }) | null = null;
  for (let after = 0; ; ) {
    const page = await deps.log.read(SECURITY_STREAM, { afterSeq: after, limit: PAGE });
    for (const record of page) if (isPurgeRecord(record) && record.purge.tenant === tenant) latest = record;
    if (page.length < PAGE) break;
    after = page[page.length - 1]!.seq;
  }
  if (!latest) return null;
  const head = await lastRecord(deps, tenant);
  if (head === undefined) return latest;
  return head.seq === latest.purge.purged_seq && head.hash === latest.purge.purged_hash ? latest : null;
}

async function finishPurge(deps: TenantDeleteDeps, tenant: string, record: AuditRecord & { purge: PurgeStatement }): Promise<TenantDeleteResult> {
  await deps.purge!.remove(tenant);
  const steps: DeleteStepReport[] = [];
  for (const step of DELETE_STEPS) steps.push({ step, status: 'skipped', detail: 'done by an earlier run' });
  steps.push({ step: 'purge_audit', status: 'done', detail: `${purgeDetail(record)} (finished an interrupted purge)` });
  for (const step of steps) deps.onStep?.(step);
  const { purged_seq, purged_hash } = record.purge;
  return { tenant, deleted: true, resumed: true, steps, tombstone: { seq: purged_seq, hash: purged_hash, ts: record.purge.at }, retained: purgeRetained, purge: purgeSummary(record) };
}

function purgeDetail(record: AuditRecord & { purge: PurgeStatement }): string {
  return `audit stream (records 1..${record.purge.purged_seq}) and its checkpoints removed; signed purge record ${SECURITY_STREAM} seq ${record.seq}`;
}

function purgeSummary(record: AuditRecord & { purge: PurgeStatement }): NonNullable<TenantDeleteResult['purge']> {
  const p = record.purge;
  return { record: { stream: SECURITY_STREAM, seq: record.seq, hash: record.hash }, purged: { seq: p.purged_seq, hash: p.purged_hash }, export_sha256: p.export_sha256, export_seq: p.export_seq };
}

async function lastRecord(deps: Pick<TenantDeleteDeps, 'log'>, tenant: string): Promise<AuditRecord | undefined> {
  let last: AuditRecord | undefined;
  for (let after = 0; ; ) {
    const page = await deps.log.read(tenant, { afterSeq: after, limit: PAGE });
    if (page.length > 0) last = page[page.length - 1];
    if (page.length < PAGE) return last;
    after = last!.seq;
  }
}
