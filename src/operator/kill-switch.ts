import type { AuditLog } from '../audit/audit-log';
import type { InFlightCalls } from '../authorize/in-flight-calls';
import type { Clock } from '../clock';
import type { CredentialResolver } from '../credentials/credential-resolver';
import { BrokerError, isBrokerError } from '../errors';
import type { Policy } from '../policy/schema';
import type { QuotaStore } from '../quotas/quota-store';
import { revocationKey, type RevocationStore, type RevocationTarget } from '../revocation/revocation-store';
import type { SessionStore } from '../sessions/session-store';

export interface RevokeInput {
  tenant?: string;
  session?: string;
  principal?: string;
  jti?: string;
  reason?: string;
  operator: string;
}

export interface RevokeResult {
  revoked: { tenant?: string; session?: string; principal?: string; jti?: string };
  upstream_leases_revoked: number;
  effective_at: string;
}

export interface KillSwitchDeps {
  policy: () => Policy;
  revocations: Pick<RevocationStore, 'revoke' | 'restoreTenant'>;
  sessions: Pick<SessionStore, 'leasesOf' | 'takeCall' | 'tenantOfSession'>;
  quotas: Pick<QuotaStore, 'releaseSlot'>;
  credentials: Pick<CredentialResolver, 'revokeLease'>;
  audit: Pick<AuditLog, 'append'>;
  inFlight: Pick<InFlightCalls, 'kill'>;
  clock: Clock;
}

/**
 * The operator's kill switch. Why the steps are in this order:
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
    const target = resolveTarget(deps.policy(), input);
    const at = deps.clock.now();
    await deps.revocations.revoke({ target, reason: input.reason, at }).catch((err) => {
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
    // A session's tenant is not in the request; the session store knows it from the session's first token
    // until that session's last token expires.
    const tenant =
      'tenant' in target ? target.tenant : target.kind === 'session' ? await deps.sessions.tenantOfSession(target.session, Object.keys(deps.policy().tenants)).catch(() => null) : null;
    if (tenant) {
      await deps.audit.append(tenant, { type: 'revoke', operator: input.operator, detail: describe(target), reason: input.reason?.slice(0, 200) }).catch((err) => {
        // In effect already (and it stays so); the operator retries to get it recorded.
        throw new BrokerError('audit_unavailable', 'the revocation is in effect but its audit record could not be written; retry to record it', { cause: err });
      });
    }
    return { revoked: publicTarget(target), upstream_leases_revoked: leasesRevoked, effective_at: new Date(at).toISOString() };
  }

  async function restore(tenant: string, operator: string): Promise<{ restored: boolean; tenant: string }> {
    if (!Object.hasOwn(deps.policy().tenants, tenant)) throw new BrokerError('not_found', `unknown tenant "${tenant}"`);
    const restored = await deps.revocations.restoreTenant(tenant).catch((err) => {
      throw new BrokerError('state_unavailable', 'the restore could not be stored', { cause: err });
    });
    await deps.audit.append(tenant, { type: 'restore', operator }).catch(() => undefined);
    return { restored, tenant };
  }

  return { revoke, restore };
}

/**
 * Exactly one of tenant / session / principal / jti. Principals are tenant-scoped: "acme/acme-agent"
 * always works; a bare "acme-agent" works when exactly one tenant's policy has that principal.
 */
export function resolveTarget(policy: Policy, input: RevokeInput): RevocationTarget {
  const given = (['tenant', 'session', 'principal', 'jti'] as const).filter((k) => input[k] !== undefined);
  if (given.length !== 1) throw new BrokerError('bad_request', 'give exactly one of tenant, session, principal, jti');
  if (input.tenant !== undefined) {
    // Own keys only: "constructor" is a valid id and must not find Object.prototype's.
    if (!Object.hasOwn(policy.tenants, input.tenant)) throw new BrokerError('not_found', `unknown tenant "${input.tenant}"`);
    return { kind: 'tenant', tenant: input.tenant };
  }
  if (input.session !== undefined) return { kind: 'session', session: input.session };
  if (input.jti !== undefined) return { kind: 'jti', jti: input.jti };
  const principal = input.principal!;
  const slash = principal.indexOf('/');
  if (slash > 0) {
    const tenant = principal.slice(0, slash);
    if (!Object.hasOwn(policy.tenants, tenant)) throw new BrokerError('not_found', `unknown tenant "${tenant}"`);
    return { kind: 'principal', tenant, principal: principal.slice(slash + 1) };
  }
  const owners = Object.entries(policy.tenants).filter(([, t]) => Object.hasOwn(t.principals, principal));
  if (owners.length !== 1) {
    throw new BrokerError(owners.length === 0 ? 'not_found' : 'bad_request', `principal "${principal}" is ${owners.length === 0 ? 'not in policy' : 'in several tenants'}; name it as "tenant/principal"`);
  }
  return { kind: 'principal', tenant: owners[0]![0], principal };
}

function describe(target: RevocationTarget): string {
  switch (target.kind) {
    case 'tenant':
      return `tenant ${target.tenant}`;
    case 'principal':
      return `principal ${target.tenant}/${target.principal}`;
    case 'session':
      return `session ${target.session}`;
    case 'jti':
      return `token ${target.jti}`;
  }
}

function publicTarget(target: RevocationTarget): RevokeResult['revoked'] {
  switch (target.kind) {
    case 'tenant':
      return { tenant: target.tenant };
    case 'principal':
      return { principal: `${target.tenant}/${target.principal}` };
    case 'session':
      return { session: target.session };
    case 'jti':
      return { jti: target.jti };
  }
}
