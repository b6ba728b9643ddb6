import type { AuditLog } from '../audit/audit-log';
import { BrokerError } from '../errors';
import type { SessionStore } from '../sessions/session-store';

export interface QuarantineListing {
  tenant: string;
  session: string;
  reason: string;
  quarantined_at: string;
}

export interface QuarantineReviewDeps {
  sessions: Pick<SessionStore, 'quarantines' | 'liftQuarantine'>;
  audit: Pick<AuditLog, 'append'>;
}

/**
 * What "an operator must review it" (the session_quarantined deny) leads to: the quarantined sessions
 * can be listed, and one released with a reason. The release is durable and seen by every replica's
 * next check before it answers (embedded: journalled; scaled out: PostgreSQL row deleted, then the Redis
 * set every replica reads), and recorded in the session's tenant's stream with the operator's id.
 */
export function createQuarantineReview(deps: QuarantineReviewDeps) {
  async function list(tenant?: string): Promise<QuarantineListing[]> {
    const entries = await deps.sessions.quarantines(tenant).catch((err) => {
      throw new BrokerError('state_unavailable', 'quarantine state is unavailable', { cause: err });
    });
    return entries.map((e) => ({ tenant: e.tenant, session: e.session, reason: e.reason, quarantined_at: new Date(e.at).toISOString() }));
  }

  /** `tenant` may be left out: a session id is unique enough to find its tenant among the quarantined. */
  async function lift(input: { session: string; tenant?: string; reason?: string; operator: string }): Promise<{ lifted: true; tenant: string; session: string }> {
    const reason = input.reason?.slice(0, 200);
    if (!reason?.trim()) throw new BrokerError('bad_request', "lifting a quarantine needs a reason (it is audited with the operator's id)");
    const tenant = input.tenant ?? (await list()).find((q) => q.session === input.session)?.tenant;
    if (tenant === undefined) throw new BrokerError('not_found', `session "${input.session}" is not quarantined`);
    const lifted = await deps.sessions.liftQuarantine(tenant, input.session).catch((err) => {
      throw new BrokerError('state_unavailable', 'the lift could not be stored; the session is still quarantined', { cause: err });
    });
    if (!lifted) throw new BrokerError('not_found', `session "${input.session}" is not quarantined in tenant "${tenant}"`);
    await deps.audit.append(tenant, { type: 'quarantine_lift', operator: input.operator, session: input.session, reason }).catch((err) => {
      throw new BrokerError('audit_unavailable', 'the quarantine is lifted but its audit record could not be written', { cause: err });
    });
    return { lifted: true, tenant, session: input.session };
  }

  return { list, lift };
}
