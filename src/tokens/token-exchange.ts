import { decodeJwt, jwtVerify, type JWTPayload } from 'jose';
import type { Clock } from '../clock';
import { isBrokerError } from '../errors';
import type { Policy } from '../policy/schema';
import type { RevocationSubject } from '../revocation/revocation-store';
import { intersect, own, tenantTools } from './grant-scope';
import { tenantOfIdpIssuer } from './idp-issuer-owner';
import type { IdpKeyResolver, IdpSettings } from './idp-keys';
import { CLAIMED_PRINCIPAL, IDENTITY_TOKEN_ALGORITHMS, identityTokenError, unverifiedIssuer } from './identity-token';
import { OAuthError } from './oauth-error';
import type { TenantIdentity, TokenRefusals } from './token-rejection';
import { serverAudience, type TokenVerifier } from './verifier';

/**
 * RFC 8693 token exchange: who the subject token speaks for. Two kinds of subject token:
 * - a still-valid Bulkhead token (refresh): same tenant, principal, session and audience, scope bounded
 *   by the old token; the token service requires the principal's own client authentication for it;
 * - a tenant IdP JWT: the unverified `iss` is read ONLY to pick which tenant's keys and settings to
 *   verify with; verification then requires that same issuer, so the tenant comes from the verified
 *   issuer → tenant mapping and nothing in the token body (a `tid` claim there is ignored).
 */

/** Where a subject token is presented, as its refusal is recorded. */
export const TOKEN_ENDPOINT = '/v1/token';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const TOKEN_TYPE_JWT = 'urn:ietf:params:oauth:token-type:jwt';
export const TOKEN_TYPE_ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';


export interface ExchangeSubject {
  tenant: string;
  principal: string;
  /** RFC 9068 client_id: kept on refresh; for an IdP token, the client the IdP issued it to. */
  clientId: string;
  /** The most the new token may carry before the server's tools and the requested scope narrow it. */
  ceiling: string[];
  /** Set on refresh: what the new token inherits and may never change. */
  refresh?: {
    session: { id: string; startedAt: number };
    /** The old token's audience: a refresh is for the same server, so a stolen token cannot be re-aimed. */
    audience: string;
    /** The old token's resource URL in `aud`, if it had one: the new token's `aud` is the old one's, exactly. */
    resource?: string;
    /** The old token's identity, checked against revocations before anything is issued. */
    revocationSubject: RevocationSubject;
  };
}

export type SubjectKind = 'bulkhead' | 'idp';

export interface SubjectResolverDeps {
  verifier: Pick<TokenVerifier, 'verify'>;
  idpKeys: IdpKeyResolver;
  clock: Clock;
  /**
   * Records a refused IdP subject token (a Bulkhead one is recorded by its verifier): in the tenant's
   * stream when that tenant's IdP signed it, else in the security stream. Absent in unit tests.
   */
  refusals?: TokenRefusals;
}

export function createSubjectResolver(deps: SubjectResolverDeps) {
  async function fromBulkhead(policy: Policy, token: string, claims: JWTPayload): Promise<ExchangeSubject> {
    let verified;
    try {
      // Any audience it was issued for: `aud` is signed, so the unverified value is only a lookup key.
      const audience = serverAudience(claims.aud);
      verified = await deps.verifier.verify(token, typeof audience === 'string' ? audience : '', { endpoint: TOKEN_ENDPOINT });
    } catch (err) {
      if (isBrokerError(err) && err.reason === 'token_expired') throw new OAuthError('invalid_grant', 'subject_token has expired');
      throw new OAuthError('invalid_grant', 'subject_token is invalid', 400, { cause: err });
    }
    const tenant = own(policy.tenants, verified.tenant);
    if (!tenant) throw new OAuthError('invalid_grant', 'subject_token tenant no longer exists');
    // Policy may have shrunk since the old token was issued: bound by what the principal may have now.
    const principal = own(tenant.principals, verified.principal);
    const current = principal ? principal.tools : tenant.idp ? (tenant.idp.scope ?? tenantTools(tenant)) : [];
    return {
      tenant: verified.tenant,
      principal: verified.principal,
      clientId: verified.clientId,
      ceiling: intersect(verified.scope, current, tenantTools(tenant)),
      refresh: {
        session: { id: verified.session, startedAt: Math.floor(verified.sessionStartedAt / 1000) },
        audience: verified.audience,
        ...(verified.resource !== undefined ? { resource: verified.resource } : {}),
        revocationSubject: { tid: verified.tenant, sub: verified.principal, sid: verified.session, jti: verified.jti, iat: Math.floor(verified.issuedAt / 1000) },
      },
    };
  }

  const attempt = { endpoint: TOKEN_ENDPOINT };
  const unsigned = (detail: string, token?: string) => deps.refusals?.withoutTenant('token_invalid', detail, attempt, token).catch(() => undefined);
  const signedBy = (identity: TenantIdentity, reason: string, detail: string) => deps.refusals?.refusedSigned(identity, reason, attempt, detail).catch(() => undefined);

  async function fromIdp(policy: Policy, token: string, issuer: string): Promise<ExchangeSubject> {
    const owner = tenantOfIdpIssuer(policy, issuer);
    if (!owner) {
      await unsigned('subject_token issuer is not a tenant identity provider', token);
      throw new OAuthError('invalid_grant', 'subject_token issuer is not trusted');
    }
    const [tenantId, tenant] = owner;
    const idp = tenant.idp as IdpSettings;
    const principalOf = (claims: unknown): string | undefined => {
      const value = (claims as Record<string, unknown> | undefined)?.[idp.principal_claim];
      return typeof value === 'string' && CLAIMED_PRINCIPAL.test(value) ? value : undefined;
    };
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, deps.idpKeys(tenantId, idp, { timeoutMs: policy.broker.upstreams.idp.timeout, maxBytes: policy.broker.upstreams.idp.body_limit }), {
        issuer: idp.issuer,
        audience: idp.audience,
        algorithms: IDENTITY_TOKEN_ALGORITHMS,
        requiredClaims: ['exp', idp.principal_claim],
        currentDate: new Date(deps.clock.now()),
        clockTolerance: policy.broker.clock_skew / 1000,
      }));
    } catch (err) {
      const refusal = isBrokerError(err) ? err : identityTokenError(err, 'subject_token');
      if (refusal instanceof OAuthError) {
        // jose checks claims only once the signature verified: then the tenant's own IdP signed it.
        const { code, claim, payload: claims } = (err ?? {}) as { code?: unknown; claim?: unknown; payload?: unknown };
        if (code === 'ERR_JWT_EXPIRED' || code === 'ERR_JWT_CLAIM_VALIDATION_FAILED') {
          const principal = principalOf(claims);
          const reason = code === 'ERR_JWT_EXPIRED' ? 'token_expired' : claim === 'aud' ? 'audience_mismatch' : 'token_invalid';
          await signedBy({ tenant: tenantId, ...(principal !== undefined ? { principal } : {}) }, reason, 'tenant identity provider token refused');
        } else {
          await unsigned('tenant identity provider token did not verify', token);
        }
      }
      throw refusal;
    }
    const principal = principalOf(payload);
    if (principal === undefined) {
      await signedBy({ tenant: tenantId }, 'token_invalid', 'tenant identity provider token names no usable principal');
      throw new OAuthError('invalid_grant', `subject_token claim "${idp.principal_claim}" is not a usable principal id`);
    }
    const clientId = typeof payload.azp === 'string' ? payload.azp : typeof payload.client_id === 'string' ? payload.client_id : idp.audience;
    return { tenant: tenantId, principal, clientId, ceiling: intersect(idp.scope ?? tenantTools(tenant), tenantTools(tenant)) };
  }

  return {
    /**
     * Which kind of subject token this claims to be, from its unverified issuer: enough to know which
     * client authentication the exchange needs before any signature work is done.
     */
    async kindOf(policy: Policy, subjectToken: string): Promise<SubjectKind> {
      try {
        return unverifiedIssuer(subjectToken, 'subject_token') === policy.broker.issuer ? 'bulkhead' : 'idp';
      } catch (err) {
        await unsigned('subject_token is not a JWT with an issuer', subjectToken);
        throw err;
      }
    },
    async resolve(policy: Policy, subjectToken: string): Promise<ExchangeSubject> {
      const issuer = unverifiedIssuer(subjectToken, 'subject_token');
      return issuer === policy.broker.issuer ? fromBulkhead(policy, subjectToken, decodeJwt(subjectToken)) : fromIdp(policy, subjectToken, issuer);
    },
  };
}

export type SubjectResolver = ReturnType<typeof createSubjectResolver>;
