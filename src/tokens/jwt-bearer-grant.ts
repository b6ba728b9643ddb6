import { createHash } from 'node:crypto';
import { decodeProtectedHeader, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { Clock } from '../clock';
import { isBrokerError } from '../errors';
import type { OneTimeStore } from '../oauth/one-time-store';
import { perPolicy } from '../policy/per-policy';
import type { Policy, TenantPolicy, WorkloadIssuer } from '../policy/schema';
import type { AuthenticatedClient } from './client-auth';
import { intersect, tenantTools } from './grant-scope';
import { CLAIMED_PRINCIPAL, IDENTITY_TOKEN_ALGORITHMS, identityTokenError, unverifiedIssuer } from './identity-token';
import { tenantOfIdpIssuer } from './idp-issuer-owner';
import type { IdpKeyResolver, IdpSettings } from './idp-keys';
import { OAuthError } from './oauth-error';
import type { TenantIdentity, TokenRefusals } from './token-rejection';
import { TOKEN_ENDPOINT } from './token-exchange';

/**
 * RFC 7523 jwt-bearer: a JWT someone else signed, presented as the grant. Two kinds, told apart by the
 * assertion's `iss` (policy keeps every issuer string unique across both, and from the broker's own):
 *
 * - a workload identity token (a Kubernetes service-account token, a SPIFFE JWT-SVID) from an issuer
 *   under `workload_issuers`: verified against that issuer's JWKS with its `aud`, then mapped by policy,
 *   (issuer, exact `sub`) → the one principal whose `workload` names them. Its tenant and principal are
 *   never read from a claim. Reusable until it expires, as these tokens are meant to be.
 * - an Identity Assertion JWT Authorization Grant (ID-JAG, `typ: oauth-id-jag+jwt`; the MCP
 *   enterprise-managed authorization extension) from a tenant IdP with `idp.id_jag: true`: audience
 *   this broker's issuer, presented by an authenticated client of that tenant whose id is the
 *   assertion's `client_id`; the person is `idp.principal_claim`, as on token exchange. Single use
 *   (its `jti`, across replicas through the one-time store), its `scope` and `resource` bound the token.
 *
 * The unverified `iss` only picks which keys and rules to verify with; verification then requires that
 * same issuer. Everything a caller sends that policy has not said is refused, with invalid_grant, and
 * recorded: in the tenant's audit stream once a signature vouches for the tenant (the tenant IdP signed
 * the ID-JAG; the workload issuer signed a subject policy maps), else in the broker's security stream.
 */

export const JWT_BEARER_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
export const ID_JAG_TYPE = 'oauth-id-jag+jwt';

export interface JwtBearerSubject {
  tenant: string;
  principal: string;
  clientId: string;
  /** The most the new token may carry before the server's tools and the requested scope narrow it. */
  ceiling: string[];
  /** An ID-JAG's `resource`: the token is for that server and no other. */
  resource?: string;
}

export interface JwtBearerDeps {
  idpKeys: IdpKeyResolver;
  clock: Clock;
  /** Records each ID-JAG `jti` once; a second `put` of the same key is a replay. */
  replay: Pick<OneTimeStore, 'put'>;
  refusals?: TokenRefusals;
}

/** What one grant attempt established so far: the tenant a signature vouched for, if any. */
interface Attempt {
  vouched?: TenantIdentity;
  /** The jose code of a verification failure after the signature held (expired, a claim). */
  signedFailure?: { code: string; claim?: unknown; payload: JWTPayload };
}

/** (issuer name, subject) → principal. */
const workloadIndex = perPolicy((policy) => {
  const index = new Map<string, AuthenticatedClient>();
  for (const [tenant, t] of Object.entries(policy.tenants)) {
    for (const [principal, p] of Object.entries(t.principals)) if (p.workload) index.set(`${p.workload.issuer}\n${p.workload.subject}`, { tenant, principal });
  }
  return index;
});

function workloadPrincipal(policy: Policy, issuerName: string, subject: string): AuthenticatedClient | undefined {
  return workloadIndex(policy).get(`${issuerName}\n${subject}`);
}

export function createJwtBearerGrant(deps: JwtBearerDeps) {
  const limitsOf = (policy: Policy) => ({ timeoutMs: policy.broker.upstreams.idp.timeout, maxBytes: policy.broker.upstreams.idp.body_limit });

  /**
   * Verifies, and records in `attempt` whom the issuer's signature vouches for (`vouch` of the signed
   * payload): on success, and also when jose refused a claim after the signature held.
   */
  async function verify(
    policy: Policy,
    assertion: string,
    keys: JWTVerifyGetKey,
    rules: { issuer: string; audience: string; typ?: string; required: string[] },
    attempt: Attempt,
    vouch: (payload: JWTPayload) => TenantIdentity | undefined,
  ): Promise<JWTPayload> {
    try {
      const { payload } = await jwtVerify(assertion, keys, {
        issuer: rules.issuer,
        audience: rules.audience,
        algorithms: IDENTITY_TOKEN_ALGORITHMS,
        requiredClaims: ['exp', ...rules.required],
        ...(rules.typ ? { typ: rules.typ } : {}),
        currentDate: new Date(deps.clock.now()),
        clockTolerance: policy.broker.clock_skew / 1000,
      });
      attempt.vouched = vouch(payload);
      return payload;
    } catch (err) {
      // jose checks claims only once the signature verified: then the issuer really signed this payload.
      const { code, claim, payload } = (err ?? {}) as { code?: unknown; claim?: unknown; payload?: JWTPayload };
      if ((code === 'ERR_JWT_EXPIRED' || code === 'ERR_JWT_CLAIM_VALIDATION_FAILED') && payload) {
        attempt.signedFailure = { code, claim, payload };
        attempt.vouched = vouch(payload);
      }
      throw isBrokerError(err) ? err : identityTokenError(err, 'assertion');
    }
  }

  async function fromWorkload(policy: Policy, assertion: string, name: string, source: WorkloadIssuer, client: AuthenticatedClient | null, attempt: Attempt): Promise<JwtBearerSubject> {
    // An ID-JAG is for a person's IdP; a workload issuer's token of that type is a confusion, not a workload.
    if (typeOf(assertion) === ID_JAG_TYPE) throw new OAuthError('invalid_grant', 'assertion is an ID-JAG, but its issuer is a workload issuer');
    const principalOf = (signed: JWTPayload) => (typeof signed.sub === 'string' ? workloadPrincipal(policy, name, signed.sub) : undefined);
    const payload = await verify(policy, assertion, deps.idpKeys(`workload:${name}`, source, limitsOf(policy)), { issuer: source.issuer, audience: source.audience, required: ['sub'] }, attempt, principalOf);
    if ((payload.exp as number) * 1000 - deps.clock.now() > source.max_lifetime) {
      throw new OAuthError('invalid_grant', `assertion is valid for longer than workload_issuers.${name}.max_lifetime allows`);
    }
    const mapped = principalOf(payload);
    if (!mapped) throw new OAuthError('invalid_grant', 'assertion subject is not a workload of any principal in policy');
    // Client authentication is optional on this grant (RFC 7523 §3.1); if presented, it is the same principal.
    if (client && (client.tenant !== mapped.tenant || client.principal !== mapped.principal)) throw new OAuthError('invalid_client', 'the authenticated client is not the assertion\'s principal', 401);
    const tenant = policy.tenants[mapped.tenant]!;
    return { ...mapped, clientId: `${mapped.tenant}/${mapped.principal}`, ceiling: intersect(tenant.principals[mapped.principal]!.tools, tenantTools(tenant)) };
  }

  async function fromIdJag(policy: Policy, assertion: string, tenantId: string, tenant: TenantPolicy, client: AuthenticatedClient | null, attempt: Attempt): Promise<JwtBearerSubject> {
    const idp = tenant.idp as IdpSettings;
    // The client is checked before the signature: an unauthenticated caller learns nothing about the assertion.
    if (!client) throw new OAuthError('invalid_client', 'an ID-JAG must be presented by an authenticated client', 401);
    if (client.tenant !== tenantId) throw new OAuthError('invalid_client', 'this client is not of the assertion\'s tenant', 401);
    const payload = await verify(policy, assertion, deps.idpKeys(tenantId, idp, limitsOf(policy)), { issuer: idp.issuer, audience: policy.broker.issuer, typ: ID_JAG_TYPE, required: ['iat', 'jti', 'client_id', idp.principal_claim] }, attempt, () => ({ tenant: tenantId }));
    if (payload.client_id !== client.principal && payload.client_id !== `${client.tenant}/${client.principal}`) {
      throw new OAuthError('invalid_grant', 'assertion was issued to another client');
    }
    const principal = payload[idp.principal_claim];
    if (typeof principal !== 'string' || !CLAIMED_PRINCIPAL.test(principal)) throw new OAuthError('invalid_grant', `assertion claim "${idp.principal_claim}" is not a usable principal id`);
    if (payload.scope !== undefined && typeof payload.scope !== 'string') throw new OAuthError('invalid_grant', 'assertion scope is not a string');
    if (payload.resource !== undefined && typeof payload.resource !== 'string') throw new OAuthError('invalid_grant', 'assertion resource is not a single URL');
    // Only now, with everything else verified, is the jti spent: junk cannot burn a real assertion's jti.
    const key = `jwt-bearer:${createHash('sha256').update(`${idp.issuer}\n${String(payload.jti)}`).digest('base64url')}`;
    const ttlMs = Math.max(1000, (payload.exp as number) * 1000 - deps.clock.now() + policy.broker.clock_skew);
    if (!(await deps.replay.put(key, '1', ttlMs))) throw new OAuthError('invalid_grant', 'assertion was already used');
    const allowed = intersect(idp.scope ?? tenantTools(tenant), tenantTools(tenant));
    const ceiling = payload.scope === undefined ? allowed : intersect(allowed, payload.scope.split(' ').filter(Boolean));
    return { tenant: tenantId, principal, clientId: String(payload.client_id), ceiling, ...(payload.resource !== undefined ? { resource: payload.resource } : {}) };
  }

  async function route(policy: Policy, assertion: string, client: AuthenticatedClient | null, attempt: Attempt): Promise<JwtBearerSubject> {
    const issuer = unverifiedIssuer(assertion, 'assertion');
    const workload = Object.entries(policy.workload_issuers).find(([, w]) => w.issuer === issuer);
    if (workload) return fromWorkload(policy, assertion, workload[0], workload[1], client, attempt);
    const owner = tenantOfIdpIssuer(policy, issuer);
    if (owner && owner[1].idp?.id_jag) return fromIdJag(policy, assertion, owner[0], owner[1], client, attempt);
    throw new OAuthError('invalid_grant', owner ? 'this tenant\'s identity provider is not trusted for ID-JAG (idp.id_jag)' : 'assertion issuer is not trusted');
  }

  /** Every refusal recorded where its signature says (see above); an issuer we cannot reach (503) is ours, not a decision. */
  async function record(err: unknown, attempt: Attempt, assertion: string): Promise<void> {
    if (!deps.refusals || !(err instanceof OAuthError)) return;
    const where = { endpoint: TOKEN_ENDPOINT };
    const failure = attempt.signedFailure;
    const reason = failure?.code === 'ERR_JWT_EXPIRED' ? 'token_expired' : failure?.claim === 'aud' ? 'audience_mismatch' : 'token_invalid';
    const detail = `jwt-bearer assertion refused: ${err.error_description}`;
    await (attempt.vouched ? deps.refusals.refusedSigned(attempt.vouched, reason, where, detail) : deps.refusals.withoutTenant('token_invalid', detail, where, assertion)).catch(() => undefined);
  }

  return {
    async resolve(policy: Policy, assertion: string, client: AuthenticatedClient | null): Promise<JwtBearerSubject> {
      const attempt: Attempt = {};
      try {
        return await route(policy, assertion, client, attempt);
      } catch (err) {
        await record(err, attempt, assertion);
        throw err;
      }
    },
  };
}

export type JwtBearerGrant = ReturnType<typeof createJwtBearerGrant>;


function typeOf(assertion: string): string | undefined {
  const typ = decodeProtectedHeader(assertion).typ;
  return typeof typ === 'string' ? typ.toLowerCase().replace(/^application\//, '') : undefined;
}
