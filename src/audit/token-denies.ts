import { isBrokerError } from '../errors';
import { noteDenyReason } from '../observability/request-context';
import type { Policy } from '../policy/schema';
import type { TokenVerifier } from '../tokens/verifier';
import { signedIdentityOf, type TenantIdentity, type TokenAttempt, type TokenRefusals } from '../tokens/token-rejection';
import type { AuditEvent } from './audit-log';
import type { DenyBudget } from './deny-budget';
import { SECURITY_STREAM, tokenFingerprint } from './security-stream';

/**
 * Token-level denies, recorded wherever a token is presented. Where a refusal is kept is decided by
 * what verified, never by what the token claims:
 * - its signature verified and its tenant is in the policy (expired, another server's, revoked): that
 *   tenant's stream, with principal, session and jti, like every other deny of the tenant's calls;
 * - anything else (bad signature, malformed, unknown kid, another issuer, a tenant no longer in the
 *   policy, a wrong server key): the security stream, with the token's fingerprint and no claim of it.
 * So a forged token claiming tenant X never writes into X's stream nor spends X's deny budget. Both
 * go through the deny budget (deny-budget.ts): past it, denies are counted into a deny_summary.
 */
export interface TokenDenies extends TokenRefusals {
  /** Records the refusal `err` of `token` presented at `attempt` (errors of ours, 5xx, are not denies of the token). */
  rejected(err: unknown, token: string, attempt: TokenAttempt): Promise<void>;
  /**
   * Records a token whose signature verified, refused for a reason found after verifying (revoked), or
   * a tenant IdP token its IdP signed (expired, another audience): in that tenant's stream. `detail`:
   * fixed text of ours.
   */
  refusedSigned(identity: TenantIdentity, reason: string, attempt: TokenAttempt, detail?: string): Promise<void>;
  /**
   * Records a refusal that no token's signature vouches for (security stream): a caller whose server or
   * operator credential did not authenticate, a request too malformed to read a token from, a token
   * that did not verify. `detail` is fixed text of ours; `token`, if one was sent, is kept only as its
   * fingerprint.
   */
  withoutTenant(reason: string, detail: string, attempt: TokenAttempt, token?: string): Promise<void>;
}

export interface TokenDeniesDeps {
  policy: () => Policy;
  denies: Pick<DenyBudget, 'record'>;
}

export function createTokenDenies(deps: TokenDeniesDeps): TokenDenies {
  const typeOf = (attempt: TokenAttempt): AuditEvent['type'] => (attempt.endpoint === '/v1/authorize' ? 'authorize' : 'token');

  function toTenant(identity: TenantIdentity, reason: string, attempt: TokenAttempt, detail?: string): Promise<void> {
    noteDenyReason(reason);
    // A tenant's authorize records never name the endpoint (it is in their type); others do.
    const { endpoint, ...where } = attempt;
    const { principal, session, jti } = identity;
    return deps.denies.record(identity.tenant, {
      type: typeOf(attempt),
      decision: 'deny',
      reason,
      ...(typeOf(attempt) === 'authorize' ? {} : { endpoint }),
      ...where,
      ...(principal !== undefined ? { principal } : {}),
      ...(session !== undefined ? { session } : {}),
      ...(jti !== undefined ? { jti } : {}),
      ...(detail !== undefined ? { detail } : {}),
    });
  }

  function toSecurity(reason: string, detail: string, attempt: TokenAttempt, token?: string): Promise<void> {
    noteDenyReason(reason);
    return deps.denies.record(SECURITY_STREAM, {
      type: typeOf(attempt),
      decision: 'deny',
      reason,
      detail,
      ...attempt,
      ...(token ? { token_sha256: tokenFingerprint(token) } : {}),
    });
  }

  const inPolicy = (tenant: string) => Object.hasOwn(deps.policy().tenants, tenant);

  return {
    async rejected(err, token, attempt) {
      if (!isBrokerError(err) || err.status >= 500) return;
      const identity = signedIdentityOf(err);
      if (identity && inPolicy(identity.tenant)) return toTenant(identity, err.reason, attempt);
      // A message of the verifier's own (fixed text, never the token's): what about it failed.
      return toSecurity(err.reason, identity ? `${err.message}; its tenant is not in the policy` : err.message, attempt, token);
    },
    async refusedSigned(identity, reason, attempt, detail) {
      if (inPolicy(identity.tenant)) return toTenant(identity, reason, attempt, detail);
      return toSecurity(reason, 'token refused; its tenant is not in the policy', attempt);
    },
    withoutTenant: toSecurity,
  };
}

/**
 * The one choke point for every endpoint that verifies a Bulkhead token: the verifier every consumer
 * is given records each refusal (above) before it is answered.
 */
export function recordingRefusals(verifier: TokenVerifier, denies: Pick<TokenDenies, 'rejected'>): TokenVerifier {
  return {
    async verify(token, audience, attempt = { endpoint: '(unknown)' }) {
      try {
        return await verifier.verify(token, audience);
      } catch (err) {
        await denies.rejected(err, token, attempt).catch(() => undefined);
        throw err;
      }
    },
  };
}
