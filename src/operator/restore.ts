import type { AuditLog } from '../audit/audit-log';
import type { Clock } from '../clock';
import { BrokerError } from '../errors';
import type { Policy } from '../policy/schema';
import type { LiftableTarget, RevocationStore } from '../revocation/revocation-store';
import type { SessionStore } from '../sessions/session-store';
import { describeTarget, publicTarget } from './revocation-view';
import { resolveTarget } from './revoke-target';

export interface RestoreInput {
  tenant?: string;
  principal?: string;
  session?: string;
  reason?: string;
  operator: string;
}

export interface RestoreResult {
  restored: boolean;
  tenant?: string;
  principal?: string;
  session?: string;
}

export interface RestoreDeps {
  policy: () => Policy;
  revocations: Pick<RevocationStore, 'restoreTenant' | 'lift'>;
  sessions: Pick<SessionStore, 'tenantOfSession'>;
  audit: Pick<AuditLog, 'append'>;
  clock: Clock;
}

/**
 * Undoing a revoke. A tenant restore admits tokens issued after it only (the revoke stays its "not
 * before"). A principal or session lift undoes the revoke entirely — the same tokens work again — so
 * it is for a mistake, and needs a reason. Both are durable and in effect on every replica before this
 * answers, and recorded (operator, reason) in the tenant's stream. A lift of something not revoked is
 * 404 `not_found`, so a typo in a restore is as visible as one in a revoke.
 */
export function createRestore(deps: RestoreDeps) {
  return async function restore(input: RestoreInput): Promise<RestoreResult> {
    const given = (['tenant', 'principal', 'session'] as const).filter((k) => input[k] !== undefined);
    if (given.length !== 1) throw new BrokerError('bad_request', 'give exactly one of tenant, principal, session (a token is not restored: get a new one)');
    const target = resolveTarget(deps.policy(), { [given[0]!]: input[given[0]!] });
    const reason = input.reason?.slice(0, 200);
    if (target.kind === 'tenant') {
      const restored = await deps.revocations.restoreTenant(target.tenant).catch((err) => {
        throw new BrokerError('state_unavailable', 'the restore could not be stored', { cause: err });
      });
      await record(target.tenant, { type: 'restore', operator: input.operator, detail: describeTarget(target), reason });
      return { restored, tenant: target.tenant };
    }
    if (!reason?.trim()) throw new BrokerError('bad_request', `lifting a ${target.kind} revocation needs a reason (it is audited with the operator's id)`);
    const lifted = await deps.revocations.lift(target as LiftableTarget).catch((err) => {
      throw new BrokerError('state_unavailable', 'the lift could not be stored; the revocation is still in force', { cause: err });
    });
    if (!lifted) throw new BrokerError('not_found', `no revocation in force for ${describeTarget(target)}`);
    const tenant =
      'tenant' in target
        ? target.tenant
        : (lifted.tenant ?? (target.kind === 'session' ? await deps.sessions.tenantOfSession(target.session, Object.keys(deps.policy().tenants)).catch(() => null) : null));
    if (tenant) await record(tenant, { type: 'restore', operator: input.operator, detail: describeTarget(target), reason });
    return { restored: true, ...publicTarget(target) };
  };

  async function record(tenant: string, event: Parameters<AuditLog['append']>[1]): Promise<void> {
    await deps.audit.append(tenant, event).catch((err) => {
      // In effect already; a second restore finds nothing to lift, so say so rather than invite a retry.
      throw new BrokerError('audit_unavailable', 'the restore is in effect but its audit record could not be written', { cause: err });
    });
  }
}
