import type { AuditLog } from '../audit/audit-log';
import type { InFlightCalls } from '../authorize/in-flight-calls';
import type { Clock } from '../clock';
import type { CredentialResolver } from '../credentials/credential-resolver';
import { BrokerError, isBrokerError } from '../errors';
import type { Policy } from '../policy/schema';
import type { QuotaStore } from '../quotas/quota-store';
import { revocationKey, type RevocationStore, type RevocationTarget } from '../revocation/revocation-store';
import type { SessionStore } from '../sessions/session-store';
import { describeTarget, publicTarget } from './revocation-view';
import { didYouMean, resolveTarget, type TargetInput } from './revoke-target';

export interface RevokeInput extends TargetInput {
  reason?: string;
  operator: string;
  /** Revoke a principal, session or token the broker has not seen (and every jti, which it does not keep). */
  force?: boolean;
  /** Milliseconds until the revocation stops denying by itself; not for a tenant. */
  ttlMs?: number;
  /** The token's tenant, when the caller verified the token itself (RFC 7009): recorded there. */
  tenantOfToken?: string;
}

export interface RevokeResult {
  revoked: { tenant?: string; session?: string; principal?: string; jti?: string };
  upstream_leases_revoked: number;
  effective_at: string;
  expires_at?: string;
}

export interface KillSwitchDeps {
  policy: () => Policy;
  revocations: Pick<RevocationStore, 'revoke' | 'restoreTenant' | 'lift'>;
  sessions: Pick<SessionStore, 'leasesOf' | 'takeCall' | 'tenantOfSession' | 'hasLivePrincipal'>;
  quotas: Pick<QuotaStore, 'releaseSlot'>;
  credentials: Pick<CredentialResolver, 'revokeLease'>;
  audit: Pick<AuditLog, 'append'>;
  inFlight: Pick<InFlightCalls, 'kill'>;
  clock: Clock;
}

/**
 * The operator's kill switch. First, a typo must not pass for a kill: a principal that is neither in
 * policy nor holding a live token, a session the broker has not registered (sessions are registered
 * at issuance), and any bare jti (the broker keeps no list of token ids) are refused 404
 * `unknown_target` unless the operator forces it — a revoke that answers 200 while the real agent stays
 * live is worse than a refusal. Then, why the steps are in this order:
 * 1. The revocation is durable and visible to this replica's revocation view (scaled out: published,
 *    and every other replica has applied it and settled its own calls in flight, or is failing closed).
 *    From here on no authorize that has not yet made its final check can be allowed.
 * 2. This replica's calls in flight for the target are killed: those still resolving upstream are
 *    denied at their final check (their leases revoked there), and those past it are waited for.
 * 3. Upstream leases of the target's open calls are revoked, best effort, and counted.
 * 4. The revoke record goes into the tenant's stream — after every allow it covers — and only once it is
 *    durable does this answer, so "answered" means "no replica answers allow for the target again".
 */
export function createKillSwitch(deps: KillSwitchDeps) {
  async function revoke(input: RevokeInput): Promise<RevokeResult> {
    const policy = deps.policy();
    const target = resolveTarget(policy, input);
    if (input.ttlMs !== undefined && target.kind === 'tenant') throw new BrokerError('bad_request', 'a tenant revocation has no TTL: it lasts until `bulkhead restore --tenant`');
    const tenant = await tenantOfTarget(policy, target, input);
    await assertSeen(policy, target, tenant, input.force === true);
    const at = deps.clock.now();
    const expiresAt = input.ttlMs === undefined ? undefined : at + input.ttlMs;
    await deps.revocations.revoke({ target, reason: input.reason, at, ...(expiresAt === undefined ? {} : { expiresAt }), ...(tenant ? { tenant } : {}) }).catch((err) => {
      // A store that says more precisely what happened (stored but not yet pushed to every replica) is passed on.
      if (isBrokerError(err)) throw err;
      throw new BrokerError('state_unavailable', 'the revocation could not be stored; nothing was revoked', { cause: err });
    });

    await deps.inFlight.kill(revocationKey(target));

    const filter =
      target.kind === 'tenant' ? { tenant: target.tenant } : target.kind === 'principal' ? { tenant: target.tenant, principal: target.principal } : target.kind === 'session' ? { session: target.session } : null;
    let leasesRevoked = 0;
    if (filter) {
      const calls = await deps.sessions.leasesOf(filter).catch(() => []);
      for (const open of calls) {
        // Taking the call ends it: a later /v1/complete or a second kill cannot revoke (and count) its
        // leases again, and whichever of them takes it first is the one that frees the slot.
        const call = await deps.sessions.takeCall(open.call_id).catch(() => null);
        if (!call) continue;
        await deps.quotas.releaseSlot(call.tenant, call.call_id).catch(() => undefined);
        for (const lease of call.lease_ids) {
          await deps.credentials.revokeLease(call.tenant, lease).then(
            () => leasesRevoked++,
            () => undefined,
          );
        }
      }
    }
    if (tenant) {
      const ttl = expiresAt === undefined ? {} : { status: `expires ${new Date(expiresAt).toISOString()}` };
      await deps.audit.append(tenant, { type: 'revoke', operator: input.operator, detail: describeTarget(target), reason: input.reason?.slice(0, 200), ...ttl }).catch((err) => {
        // In effect already (and it stays so); the operator retries to get it recorded.
        throw new BrokerError('audit_unavailable', 'the revocation is in effect but its audit record could not be written; retry to record it', { cause: err });
      });
    }
    return {
      revoked: publicTarget(target),
      upstream_leases_revoked: leasesRevoked,
      effective_at: new Date(at).toISOString(),
      ...(expiresAt === undefined ? {} : { expires_at: new Date(expiresAt).toISOString() }),
    };
  }

  /**
   * The tenant whose stream records the revoke: in the target (tenant, principal); for a session, the
   * session store knows it from the session's first token until its last token expires; for a jti, only
   * when the caller verified the token. `undefined` when the session store cannot be asked.
   */
  async function tenantOfTarget(policy: Policy, target: RevocationTarget, input: RevokeInput): Promise<string | null | undefined> {
    if ('tenant' in target) return target.tenant;
    if (target.kind === 'jti') return input.tenantOfToken ?? null;
    return deps.sessions.tenantOfSession(target.session, Object.keys(policy.tenants)).catch(() => undefined);
  }

  /**
   * The typo guard. It never stands between an operator and a kill because shared state is down: when
   * it cannot look (the session store is unreachable), it lets the revoke through as if forced — a
   * false kill is undone with a restore, a missed one is not.
   */
  async function assertSeen(policy: Policy, target: RevocationTarget, tenant: string | null | undefined, force: boolean): Promise<void> {
    if (force || target.kind === 'tenant') return;
    if (target.kind === 'jti') {
      throw new BrokerError('unknown_target', 'the broker keeps no list of token ids, so it cannot tell a real jti from a typo: give force to revoke it as given, or revoke its session', {
        details: { target: 'jti' },
      });
    }
    if (target.kind === 'session') {
      if (tenant === null) throw new BrokerError('unknown_target', `session "${target.session}" is unknown or has expired; nothing was revoked (give force to revoke it anyway)`, { details: { target: 'session' } });
      return;
    }
    const principals = policy.tenants[target.tenant]!.principals;
    if (Object.hasOwn(principals, target.principal)) return;
    const live = await deps.sessions.hasLivePrincipal(target.tenant, target.principal, deps.clock.now()).catch(() => true);
    if (live) return;
    const hint = didYouMean(target.principal, Object.keys(principals)).replace('"', `"${target.tenant}/`);
    throw new BrokerError('unknown_target', `principal "${target.tenant}/${target.principal}" is not in policy and holds no live token${hint}; nothing was revoked (give force to revoke it anyway)`, {
      details: { target: 'principal' },
    });
  }

  return { revoke };
}
