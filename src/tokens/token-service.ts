import { z } from 'zod';
import type { Clock } from '../clock';
import { BrokerError, isBrokerError } from '../errors';
import type { Policy } from '../policy/schema';
import type { RevocationStore, RevocationSubject } from '../revocation/revocation-store';
import { authenticateClient } from './client-auth';
import { intersect, narrowScope, resolveAudience, tenantTools } from './grant-scope';
import { createRemoteIdpKeys, type IdpKeyResolver } from './idp-keys';
import type { IssueRequest, TokenIssuer } from './issuer';
import { OAuthError } from './oauth-error';
import { createSubjectResolver, TOKEN_EXCHANGE_GRANT, TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_JWT } from './token-exchange';
import type { TokenVerifier } from './verifier';

/**
 * The OAuth 2.0 token endpoint, without HTTP: parameters in, a token response or an OAuthError out.
 * Grants: client_credentials (a policy principal and its secret) and RFC 8693 token exchange (refresh
 * of a Bulkhead token, or a tenant IdP JWT). Every grant ends the same way: one known server as
 * audience, tools within policy bounds, a lifetime no longer than policy allows, revocation checked.
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
  /** Per-tenant IdP keys; defaults to each tenant's remote JWKS (5 s timeout, cached per tenant). */
  idpJwks?: IdpKeyResolver;
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
const common = {
  audience: text(256).optional(),
  resource: text(2048).optional(),
  scope: z.string().max(4096).optional(),
  expires_in: z.union([z.number().int().positive(), z.string().regex(/^[1-9]\d{0,9}$/).transform(Number)]).optional(),
};
const clientCredentialsParams = z.object({ ...common, client_id: text(256).optional(), client_secret: text(1024).optional() });
const tokenExchangeParams = z.object({
  ...common,
  subject_token: text(16_384),
  subject_token_type: z.enum([TOKEN_TYPE_JWT, TOKEN_TYPE_ACCESS_TOKEN]),
  requested_token_type: z.enum([TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_JWT]).optional(),
  actor_token: z.undefined().optional(),
  actor_token_type: z.undefined().optional(),
});

const CLIENT_AUTH_FAILED = 'client authentication failed';

export function createTokenService(deps: TokenServiceDeps): TokenService {
  const source = deps.policy;
  const currentPolicy = typeof source === 'function' ? source : () => source;
  const subjects = createSubjectResolver({ verifier: deps.verifier, idpKeys: deps.idpJwks ?? createRemoteIdpKeys(), clock: deps.clock });

  async function revokedReason(subject: RevocationSubject): Promise<string | null> {
    try {
      return await deps.revocations.check(subject);
    } catch (err) {
      if (isBrokerError(err)) throw err;
      throw new BrokerError('state_unavailable', 'revocation state is unavailable', { cause: err });
    }
  }

  /** Default lifetime from policy; `expires_in` may only shorten it, and never past max_token_ttl. */
  function lifetimeMs(policy: Policy, expiresIn: number | undefined): number {
    const { token_ttl, max_token_ttl } = policy.broker;
    return Math.min(token_ttl, max_token_ttl, expiresIn === undefined ? Number.POSITIVE_INFINITY : expiresIn * 1000);
  }

  /** Issues, then refuses to hand out a token for a tenant or principal that is revoked. */
  async function issue(request: IssueRequest, priorCheck?: RevocationSubject): Promise<TokenResponse> {
    if (priorCheck) {
      const reason = await revokedReason(priorCheck);
      if (reason) throw new OAuthError('invalid_grant', `subject_token can no longer be exchanged (${reason})`);
    }
    const { token, claims } = await deps.issuer.issue(request);
    const reason = priorCheck ? null : await revokedReason({ tid: claims.tid, sub: claims.sub, sid: claims.sid, jti: claims.jti });
    if (reason) throw new OAuthError('invalid_grant', `this client may not obtain tokens (${reason})`);
    return { access_token: token, token_type: 'Bearer', expires_in: claims.exp - claims.iat, scope: claims.scope };
  }

  async function clientCredentials(policy: Policy, raw: Record<string, unknown>, basic?: { id: string; secret: string }): Promise<TokenResponse> {
    const params = parse(clientCredentialsParams, raw);
    if (basic && params.client_secret !== undefined) throw new OAuthError('invalid_request', 'use one client authentication method, not both');
    if (basic && params.client_id !== undefined && params.client_id !== basic.id) {
      throw new OAuthError('invalid_request', 'client_id does not match the HTTP Basic credentials');
    }
    const clientId = basic?.id ?? params.client_id;
    if (!clientId) throw new OAuthError('invalid_client', CLIENT_AUTH_FAILED, 401);
    const client = authenticateClient(policy, clientId, basic?.secret ?? params.client_secret ?? '');
    if (!client) throw new OAuthError('invalid_client', CLIENT_AUTH_FAILED, 401);

    const { id: audience, server } = resolveAudience(policy, params);
    const tenant = policy.tenants[client.tenant]!;
    const allowed = intersect(tenant.principals[client.principal]!.tools, tenantTools(tenant), server.tools);
    const scope = narrowScope(allowed, params.scope);
    return issue({ tenant: client.tenant, principal: client.principal, audience, scope, ttlMs: lifetimeMs(policy, params.expires_in) });
  }

  async function tokenExchange(policy: Policy, raw: Record<string, unknown>): Promise<TokenResponse> {
    const params = parse(tokenExchangeParams, raw);
    const subject = await subjects.resolve(policy, params.subject_token);
    const { id: audience, server } = resolveAudience(policy, params, subject.defaultAudience);
    const scope = narrowScope(intersect(subject.ceiling, server.tools), params.scope);
    const request: IssueRequest = { tenant: subject.tenant, principal: subject.principal, audience, scope, ttlMs: lifetimeMs(policy, params.expires_in) };
    if (subject.session !== undefined) request.session = subject.session;
    const answer = await issue(request, subject.revocationSubject);
    return { ...answer, issued_token_type: TOKEN_TYPE_ACCESS_TOKEN };
  }

  return {
    async grant(params, basic) {
      const policy = currentPolicy();
      const grantType = params.grant_type;
      if (grantType === undefined) throw new OAuthError('invalid_request', 'grant_type is required');
      if (grantType === 'client_credentials') return clientCredentials(policy, params, basic);
      if (grantType === TOKEN_EXCHANGE_GRANT) return tokenExchange(policy, params);
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
