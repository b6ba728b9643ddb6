import type { AuditLog } from '../audit/audit-log';
import type { Clock } from '../clock';
import type { CredentialResolver } from '../credentials/credential-resolver';
import { quarantineKey } from './in-flight-calls';
import { BrokerError } from '../errors';
import type { QuotaStore } from '../quotas/quota-store';
import type { CallRecord, SessionStore } from '../sessions/session-store';
import type { Spending } from './spend';

export interface CompleteRequest {
  server: string;
  call_id: string;
  status: 'success' | 'error';
  records?: number;
  /** What the call really cost, as the MCP server measured it: replaces the tool's estimated cost. */
  usage?: { cost?: number; tokens?: number };
}

export interface CompleteResult {
  call_id: string;
  completed: true;
  quarantined: boolean;
  upstream_leases_revoked: number;
}

export interface CompletionDeps {
  sessions: Pick<SessionStore, 'takeCall' | 'putCall' | 'quarantine'>;
  quotas: Pick<QuotaStore, 'releaseSlot'>;
  credentials: Pick<CredentialResolver, 'revokeLease'>;
  audit: Pick<AuditLog, 'append'>;
  /** Reaches the session's calls in flight on every replica (as a revoke does), so none of them is allowed after this answers. */
  kills: { kill(key: string): Promise<void> };
  clock: Clock;
  spending?: Pick<Spending, 'correct'>;
}

/**
 * Closes a call the same server opened: frees its concurrency slot, gives back its upstream lease, and
 * applies the anomaly rule — a call that reports more records than the tool's `max_records` quarantines
 * the whole session, because a prompt-injected agent exfiltrating data looks exactly like that.
 *
 * Order, and why: take the call (so it completes once) → store the quarantine durably → stop the
 * session's calls in flight → audit the completion → only then free the slot and the leases, and answer. If the quarantine or the audit
 * record cannot be stored, the answer is a typed 503 and the call is put back as it was, so the MCP
 * server can complete it again once storage is back: a quarantine is never reported done before it is
 * durable, and a completion never happens without its record. (A quarantine that was not stored stays in
 * effect on the broker's hot path meanwhile; only durability is missing, and the retry supplies it.)
 */
export function createCompletion(deps: CompletionDeps) {
  return async function complete(request: CompleteRequest): Promise<CompleteResult> {
    const call = await deps.sessions.takeCall(request.call_id, request.server).catch((err) => {
      throw new BrokerError('state_unavailable', 'session state is unavailable', { cause: err });
    });
    // Another server's call id is answered exactly like an unknown one.
    if (!call || call.server !== request.server) throw new BrokerError('not_found', `no open call "${request.call_id}" for this server`);

    const quarantined = call.max_records !== undefined && request.records !== undefined && request.records > call.max_records;
    const base = { call_id: call.call_id, server: call.server, principal: call.principal, session: call.session, tool: call.tool };
    try {
      if (quarantined) {
        await deps.sessions.quarantine(call.tenant, call.session, `call ${call.call_id} returned ${request.records} records (max ${call.max_records})`).catch((err) => {
          throw new BrokerError('state_unavailable', 'the session quarantine could not be stored durably; the call is still open, complete it again', { cause: err });
        });
        // After the quarantine is stored (new calls see it) and before it is answered or recorded.
        await deps.kills.kill(quarantineKey(call.tenant, call.session)).catch((err) => {
          throw new BrokerError('state_unavailable', 'the calls in flight of the quarantined session could not be reached; the call is still open, complete it again', { cause: err });
        });
      }
      // Reported usage replaces the estimate before the completion is recorded (a failure reopens the call).
      if (call.spend && request.usage?.cost !== undefined) await deps.spending?.correct(call.spend, request.usage.cost);
      // Both records in one group commit: they are stored together or not at all.
      await Promise.all([
        deps.audit.append(call.tenant, { type: 'complete', ...base, status: request.status, records: request.records, cost: request.usage?.cost, tokens: request.usage?.tokens }),
        ...(quarantined ? [deps.audit.append(call.tenant, { type: 'quarantine', ...base, records: request.records, reason: 'max_records_exceeded' })] : []),
      ]).catch((err) => {
        throw new BrokerError('audit_unavailable', 'the completion could not be audited; the call is still open, complete it again', { cause: err });
      });
    } catch (err) {
      await reopen(call);
      throw err;
    }

    await deps.quotas.releaseSlot(call.tenant, call.call_id).catch(() => undefined);
    let leasesRevoked = 0;
    for (const lease of call.lease_ids) {
      await deps.credentials.revokeLease(call.tenant, lease).then(
        () => leasesRevoked++,
        () => undefined,
      );
    }
    return { call_id: call.call_id, completed: true, quarantined, upstream_leases_revoked: leasesRevoked };
  };

  /** Puts a taken call back for the rest of its life; a call past its expiry stays gone (its slot expires with it). */
  async function reopen(call: CallRecord): Promise<void> {
    const ttlMs = (call.expires_at ?? 0) - deps.clock.now();
    if (ttlMs > 0) await deps.sessions.putCall(call, ttlMs).catch(() => undefined);
  }
}
