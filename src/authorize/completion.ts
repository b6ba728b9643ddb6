import type { AuditLog } from '../audit/audit-log';
import { quarantineKey } from './in-flight-calls';
import type { CredentialResolver } from '../credentials/credential-resolver';
import { BrokerError } from '../errors';
import type { QuotaStore } from '../quotas/quota-store';
import type { SessionStore } from '../sessions/session-store';

export interface CompleteRequest {
  server: string;
  call_id: string;
  status: 'success' | 'error';
  records?: number;
}

export interface CompleteResult {
  call_id: string;
  completed: true;
  quarantined: boolean;
  upstream_leases_revoked: number;
}

export interface CompletionDeps {
  sessions: Pick<SessionStore, 'takeCall' | 'quarantine'>;
  quotas: Pick<QuotaStore, 'releaseSlot'>;
  credentials: Pick<CredentialResolver, 'revokeLease'>;
  audit: Pick<AuditLog, 'append'>;
  /** Reaches the session's calls in flight on every replica (as a revoke does), so none of them is allowed after this answers. */
  kills: { kill(key: string): Promise<void> };
}

/**
 * Closes a call the same server opened: frees its concurrency slot, gives back its upstream lease, and
 * applies the anomaly rule — a call that reports more records than the tool's `max_records` quarantines
 * the whole session, because a prompt-injected agent exfiltrating data looks exactly like that.
 */
export function createCompletion(deps: CompletionDeps) {
  return async function complete(request: CompleteRequest): Promise<CompleteResult> {
    const call = await deps.sessions.takeCall(request.call_id, request.server).catch((err) => {
      throw new BrokerError('state_unavailable', 'session state is unavailable', { cause: err });
    });
    // Another server's call id is answered exactly like an unknown one.
    if (!call || call.server !== request.server) throw new BrokerError('not_found', `no open call "${request.call_id}" for this server`);

    await deps.quotas.releaseSlot(call.tenant, call.call_id).catch(() => undefined);
    let leasesRevoked = 0;
    for (const lease of call.lease_ids) {
      await deps.credentials.revokeLease(call.tenant, lease).then(
        () => leasesRevoked++,
        () => undefined,
      );
    }
    const quarantined = call.max_records !== undefined && request.records !== undefined && request.records > call.max_records;
    if (quarantined) {
      await deps.sessions.quarantine(call.tenant, call.session, `call ${call.call_id} returned ${request.records} records (max ${call.max_records})`);
      // After the quarantine is stored (new calls see it) and before it is answered or recorded.
      await deps.kills.kill(quarantineKey(call.tenant, call.session));
    }

    const base = { call_id: call.call_id, server: call.server, principal: call.principal, session: call.session, tool: call.tool };
    await deps.audit.append(call.tenant, { type: 'complete', ...base, status: request.status, records: request.records });
    if (quarantined) await deps.audit.append(call.tenant, { type: 'quarantine', ...base, records: request.records, reason: 'max_records_exceeded' });
    return { call_id: call.call_id, completed: true, quarantined, upstream_leases_revoked: leasesRevoked };
  };
}
