import { z } from 'zod';
import type { Clock } from '../clock';
import { BrokerError, isBrokerError } from '../errors';
import type { Policy } from '../policy/schema';
import type { RevocationStore, RevocationSubject } from '../revocation/revocation-store';
import { authenticatePresented, CLIENT_AUTH_FAILED, type AuthenticatedClient } from './client-auth';
import type { OneTimeStore } from '../oauth/one-time-store';
import { createAuthorizationCodeGrant } from './authorization-code-grant';
import { AUTHORIZATION_CODE_GRANT } from './metadata';
import { intersect, narrowScope, resolveAudience, tenantTools } from './grant-scope';
import { createRemoteIdpKeys, type IdpKeyResolver } from './idp-keys';
import { SessionEndedError, type IssueRequest, type TokenIssuer } from './issuer';
import { OAuthError } from './oauth-error';
import { createJwtBearerGrant, JWT_BEARER_GRANT } from './jwt-bearer-grant';
import type { TokenRefusals } from './token-rejection';
import { createSubjectResolver, TOKEN_ENDPOINT, TOKEN_EXCHANGE_GRANT, TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_JWT } from './token-exchange';
import type { TokenVerifier } from './verifier';

/**
 * The OAuth 2.0 token endpoint, without HTTP: parameters in, a token response or an OAuthError out.
 * Grants: client_credentials (a policy principal and its secret), RFC 8693 token exchange (refresh
 * of a Bulkhead token, or a tenant IdP JWT), authorization_code (PKCE, federated login) and RFC 7523
 * jwt-bearer (a workload identity token, or an ID-JAG from a tenant IdP). Every grant ends the same way: one known server as
 * audience, tools within policy bounds, a lifetime no longer than policy allows (token and session),
 * revocation checked. Client credentials, wherever presented, are verified first.
 * A revocation store that cannot answer is a BrokerError `state_unavailable` (fail closed), and an
 * unreachable IdP is `upstream_unavailable`: neither is the client's fault.
 */

export interface TokenServiceDeps {
  /** The policy, or a getter for the live one after reloads. */
  policy: Policy | (() => Policy);
  issuer: Pick<TokenIssuer, 'issue'>;
  verifier: Pick<TokenVerifier, 'verify'>;
  revocations: Pick<RevocationStore, 'check'>;
  clock: Clock;
  /** Authorization codes issued by /authorize/callback, redeemed once here; ID-JAG `jti`s, spent once here. */
  codes?: Pick<OneTimeStore, 'take' | 'put'>;
  /** Per-tenant IdP keys; defaults to each tenant's remote JWKS (bounded fetch, cached per tenant). */
  idpJwks?: IdpKeyResolver;
  /** Records a refresh refused because its subject token is revoked (the verifier records its own refusals). */
  refusals?: TokenRefusals;
}

export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
  /** RFC 8693 §2.2.1: present on token exchange answers. */
  issued_token_type?: string;
}

export interface TokenService {
  /** `basic`: HTTP Basic client credentials, already base64- and form-decoded by the HTTP layer. */
  grant(params: Record<string, unknown>, basic?: { id: string; secret: string }): Promise<TokenResponse>;
}

// Form posts deliver strings; JSON may deliver numbers. Unknown parameters are ignored (RFC 6749 §3.2).
const text = (max: number) => z.string().min(1).max(max);
/**
 * A positive whole number of seconds, however large: one above the cap is clamped to it (the answer's
 * expires_in says what was granted), never refused and never replaced by the default. Zero, negative,
 * fractional and exponent forms are malformed.
 */
const expiresIn = z.union([
  z.number().refine((n) => Number.isInteger(n) && n > 0),
  z.string().regex(/^[1-9]\d{0,63}$/).transform(Number),
]);
const common = {
  audience: text(256).optional(),
  resource: text(2048).optional(),
  scope: z.string().max(4096).optional(),
  expires_in: expiresIn.optional(),
  client_id: text(256).optional(),
  client_secret: text(1024).optional(),
};
export const clientCredentialsParams = z.object(common);
export const tokenExchangeParams = z.object({
  ...common,
  subject_token: text(16_384),
  subject_token_type: z.enum([TOKEN_TYPE_JWT, TOKEN_TYPE_ACCESS_TOKEN]),
  requested_token_type: z.enum([TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_JWT]).optional(),
  actor_token: z.undefined().optional(),
  actor_token_type: z.undefined().optional(),
});
const jwtBearerParams = z.object({ ...common, assertion: text(16_384) });
const credentialParams = z.object({ client_id: common.client_id, client_secret: common.client_secret });

export function createTokenService(deps: TokenServiceDeps): TokenService {
  const source = deps.policy;
  const currentPolicy = typeof source === 'function' ? source : () => source;
  // Without a code store (unit tests of the other grants) no code is ever valid.
  const codes = createAuthorizationCodeGrant({ codes: deps.codes ?? { take: async () => null } });
  const idpKeys = deps.idpJwks ?? createRemoteIdpKeys({ clock: deps.clock });
  const subjects = createSubjectResolver({ verifier: deps.verifier, idpKeys, clock: deps.clock, refusals: deps.refusals });
  // Without a store (unit tests of the other grants) no ID-JAG is ever accepted: nothing could stop a replay.
  const assertions = createJwtBearerGrant({ idpKeys, clock: deps.clock, replay: deps.codes ?? { put: async () => false }, refusals: deps.refusals });

  async function revokedReason(subject: RevocationSubject): Promise<string | null> {
    try {
      return await deps.revocations.check(subject);
    } catch (err) {
      if (isBrokerError(err)) throw err;
      throw new BrokerError('state_unavailable', 'revocation state is unavailable', { cause: err });
    }
  }

  /**
   * The requested lifetime, or token_ttl when none was asked for; clamped to max_token_ttl. The issuer
   * clamps it again to the session's end, so the answer's expires_in is always what was granted.
   */
  function lifetimeMs(policy: Policy, expiresInSeconds: number | undefined): number {
    const { token_ttl, max_token_ttl } = policy.broker;
    return Math.min(expiresInSeconds === undefined ? token_ttl : expiresInSeconds * 1000, max_token_ttl);
  }

  /** Issues, then refuses to hand out a token for a tenant or principal that is revoked. */
  async function issue(request: IssueRequest, priorCheck?: RevocationSubject): Promise<TokenResponse> {
    if (priorCheck) {
      const reason = await revokedReason(priorCheck);
      if (reason) {
        const identity = { tenant: priorCheck.tid, principal: priorCheck.sub, session: priorCheck.sid, jti: priorCheck.jti };
        await deps.refusals?.refusedSigned(identity, reason, { endpoint: TOKEN_ENDPOINT }).catch(() => undefined);
        throw new OAuthError('invalid_grant', `subject_token can no longer be exchanged (${reason})`);
      }
    }
    if (!priorCheck) {
      // Before issuing: issuing registers the session, and a revoked (or deleted) tenant's client must
      // not leave state behind with every refused request. The check after issuing stays the one that
      // counts (it sees the real session, token id and issue time).
      const early = await revokedReason({ tid: request.tenant, sub: request.principal, sid: '', jti: '', iat: Math.floor(deps.clock.now() / 1000) });
      if (early) throw new OAuthError('invalid_grant', `this client may not obtain tokens (${early})`);
    }
    let issued;
    try {
      issued = await deps.issuer.issue(request);
    } catch (err) {
      if (err instanceof SessionEndedError) throw new OAuthError('invalid_grant', 'the session has reached broker.session_max_lifetime; authenticate again for a new session');
      throw err;
    }
    const { token, claims } = issued;
    const reason = priorCheck ? null : await revokedReason({ tid: claims.tid, sub: claims.sub, sid: claims.sid, jti: claims.jti, iat: claims.iat });
    if (reason) throw new OAuthError('invalid_grant', `this client may not obtain tokens (${reason})`);
    return { access_token: token, token_type: 'Bearer', expires_in: claims.exp - claims.iat, scope: claims.scope };
  }

  async function clientCredentials(policy: Policy, raw: Record<string, unknown>, client: AuthenticatedClient | null): Promise<TokenResponse> {
    const params = parse(clientCredentialsParams, raw);
    if (!client) throw new OAuthError('invalid_client', CLIENT_AUTH_FAILED, 401);
    const { id: audience, server, resourceUrl } = resolveAudience(policy, params);
    const tenant = policy.tenants[client.tenant]!;
    const allowed = intersect(tenant.principals[client.principal]!.tools, tenantTools(tenant), server.tools);
    const scope = narrowScope(allowed, params.scope);
    const request: IssueRequest = { tenant: client.tenant, principal: client.principal, audience, scope, ttlMs: lifetimeMs(policy, params.expires_in) };
    if (resourceUrl !== undefined) request.resource = resourceUrl;
    return issue(request);
  }

  /**
   * A refresh (Bulkhead subject token) is the principal's own client asking, authenticated, for the
   * same server: a token in anyone else's hands — an MCP server it was sent to, another client of the
   * tenant — cannot be turned into a token, let alone one for another server. An IdP subject token needs
   * no client, but if one is presented it must be a client of that IdP's tenant.
   */
  async function tokenExchange(policy: Policy, raw: Record<string, unknown>, client: AuthenticatedClient | null): Promise<TokenResponse> {
    const params = parse(tokenExchangeParams, raw);
    if ((await subjects.kindOf(policy, params.subject_token)) === 'bulkhead' && !client) throw new OAuthError('invalid_client', CLIENT_AUTH_FAILED, 401);
    const subject = await subjects.resolve(policy, params.subject_token);
    const { refresh } = subject;
    if (refresh && (client?.tenant !== subject.tenant || client.principal !== subject.principal)) {
      throw new OAuthError('invalid_client', 'the subject_token was not issued to this client (a principal from an identity provider refreshes by exchanging a fresh IdP token)', 401);
    }
    if (!refresh && client && client.tenant !== subject.tenant) throw new OAuthError('invalid_client', 'this client is not of the subject_token\'s tenant', 401);

    const { id: audience, server, resourceUrl } = resolveAudience(policy, params, refresh?.audience);
    if (refresh && audience !== refresh.audience) throw new OAuthError('invalid_target', 'a refreshed token keeps the subject_token\'s audience');
    const scope = narrowScope(intersect(subject.ceiling, server.tools), params.scope);
    const request: IssueRequest = { tenant: subject.tenant, principal: subject.principal, clientId: subject.clientId, audience, scope, ttlMs: lifetimeMs(policy, params.expires_in) };
    // A refresh keeps `aud` exactly: the old token's resource URL, or none, whatever this request named.
    const resource = refresh ? refresh.resource : resourceUrl;
    if (resource !== undefined) request.resource = resource;
    if (refresh) {
      request.session = refresh.session;
      request.sessionEndsAt = refresh.session.startedAt + Math.floor(policy.broker.session_max_lifetime / 1000);
    }
    const answer = await issue(request, refresh?.revocationSubject);
    return { ...answer, issued_token_type: TOKEN_TYPE_ACCESS_TOKEN };
  }

  /**
   * RFC 7523: the assertion says who (policy maps it to a tenant and principal); an ID-JAG's `resource`
   * also fixes the server, and a request naming another is refused rather than re-aimed.
   */
  async function jwtBearer(policy: Policy, raw: Record<string, unknown>, client: AuthenticatedClient | null): Promise<TokenResponse> {
    const params = parse(jwtBearerParams, raw);
    const subject = await assertions.resolve(policy, params.assertion, client);
    const bound = subject.resource !== undefined ? resolveAudience(policy, { resource: subject.resource }) : undefined;
    const named = params.audience !== undefined || params.resource !== undefined;
    const asked = named || !bound ? resolveAudience(policy, params) : bound;
    if (bound && asked.id !== bound.id) throw new OAuthError('invalid_target', 'the assertion is for another resource');
    const target = bound ?? asked;
    const scope = narrowScope(intersect(subject.ceiling, target.server.tools), params.scope);
    const request: IssueRequest = { tenant: subject.tenant, principal: subject.principal, clientId: subject.clientId, audience: target.id, scope, ttlMs: lifetimeMs(policy, params.expires_in) };
    if (target.resourceUrl !== undefined) request.resource = target.resourceUrl;
    return issue(request);
  }

  /** Public clients redeem their code: the new session starts with the person's login at the IdP. */
  async function authorizationCode(policy: Policy, raw: Record<string, unknown>, authenticated: boolean): Promise<TokenResponse> {
    const code = await codes.redeem(policy, raw, authenticated);
    return issue({ tenant: code.tenant, principal: code.principal, clientId: code.clientId, audience: code.audience, ...(code.resourceUrl !== undefined ? { resource: code.resourceUrl } : {}), scope: code.scope, ttlMs: lifetimeMs(policy, undefined) });
  }

  return {
    async grant(params, basic) {
      const policy = currentPolicy();
      // Public clients: the code grant takes a client_id without a secret, and refuses any secret.
      if (params.grant_type === AUTHORIZATION_CODE_GRANT) return authorizationCode(policy, params, basic !== undefined);
      // Before anything else, on every grant: presented credentials are verified, never ignored.
      const presented = parse(credentialParams, params);
      const client = authenticatePresented(policy, { basic, ...presented });
      const grantType = params.grant_type;
      if (grantType === undefined) throw new OAuthError('invalid_request', 'grant_type is required');
      if (grantType === 'client_credentials') return clientCredentials(policy, params, client);
      if (grantType === TOKEN_EXCHANGE_GRANT) return tokenExchange(policy, params, client);
      if (grantType === JWT_BEARER_GRANT) return jwtBearer(policy, params, client);
      throw new OAuthError('unsupported_grant_type', 'grant_type is not supported');
    },
  };
}

/** zod safeParse; the error names the first bad field and never repeats its value. */
function parse<T extends z.ZodTypeAny>(schema: T, raw: Record<string, unknown>): z.output<T> {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = String(issue.path[0] ?? 'request');
  if (field === 'actor_token' || field === 'actor_token_type') throw new OAuthError('invalid_request', 'delegation (actor_token) is not supported');
  const missing = issue.code === 'invalid_type' && raw[field] === undefined;
  throw new OAuthError('invalid_request', missing ? `${field} is required` : `${field} is invalid`);
}
