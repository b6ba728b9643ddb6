import { z } from 'zod';
import type { CodeGrant } from '../oauth/authorization-flow';
import type { OneTimeStore } from '../oauth/one-time-store';
import { handleKey, verifierMatches } from '../oauth/pkce';
import type { Policy } from '../policy/schema';
import { intersect, own, resolveAudience, tenantTools } from './grant-scope';
import { OAuthError } from './oauth-error';

/**
 * The authorization_code grant (RFC 6749 §4.1.3 with PKCE, RFC 7636 §4.6): a public client redeems
 * the code /authorize/callback issued. The code is taken from the store before any check, so it works
 * once whatever happens next: a wrong verifier burns it, and guessing verifiers against one code gets
 * one guess. Then client_id, redirect_uri (exactly the one of the authorization request) and the PKCE
 * verifier must all match; an RFC 8707 `resource`, if sent again, must name the same server. Scope is
 * re-bounded by the policy of now: a tool removed since the login is not granted.
 */

export interface RedeemedCode {
  tenant: string;
  principal: string;
  clientId: string;
  audience: string;
  /** The server's URL as policy spells it, when the client named the server by URL. */
  resourceUrl?: string;
  scope: string[];
  authTime: number;
}

const text = (max: number) => z.string().min(1).max(max);
export const authorizationCodeParams = z.object({
  code: text(256),
  redirect_uri: text(2048),
  code_verifier: text(256),
  client_id: text(2048),
  resource: text(2048).optional(),
});

export function createAuthorizationCodeGrant(deps: { codes: Pick<OneTimeStore, 'take'> }) {
  return {
    async redeem(policy: Policy, raw: Record<string, unknown>, authenticated: boolean): Promise<RedeemedCode> {
      const parsed = authorizationCodeParams.safeParse(raw);
      if (!parsed.success) {
        const field = String(parsed.error.issues[0]!.path[0] ?? 'request');
        throw new OAuthError('invalid_request', raw[field] === undefined ? `${field} is required` : `${field} is invalid`);
      }
      const p = parsed.data;
      // Codes go to public clients only (static clients and metadata documents have no secret).
      if (authenticated || raw.client_secret !== undefined) throw new OAuthError('invalid_client', 'this client is a public client: send client_id only, and the PKCE code_verifier', 401);
      const stored = await deps.codes.take(handleKey(p.code));
      if (stored === null) throw new OAuthError('invalid_grant', 'the authorization code is invalid, expired or already used');
      const grant = JSON.parse(stored) as CodeGrant;
      if (p.client_id !== grant.client_id) throw new OAuthError('invalid_grant', 'the authorization code was issued to another client');
      if (p.redirect_uri !== grant.redirect_uri) throw new OAuthError('invalid_grant', 'redirect_uri differs from the authorization request');
      if (!verifierMatches(p.code_verifier, grant.code_challenge)) throw new OAuthError('invalid_grant', 'code_verifier does not match the code_challenge (PKCE)');
      if (p.resource !== undefined && resolveAudience(policy, { resource: p.resource }).id !== grant.server) {
        throw new OAuthError('invalid_target', 'resource differs from the authorization request');
      }
      const tenant = own(policy.tenants, grant.tenant);
      const server = own(policy.servers, grant.server);
      if (!tenant || !server) throw new OAuthError('invalid_grant', 'the organisation or server of this code no longer exists');
      let target;
      try {
        target = resolveAudience(policy, { resource: grant.resource });
      } catch {
        throw new OAuthError('invalid_grant', 'the server of this code is no longer reachable by that resource');
      }
      if (target.id !== grant.server) throw new OAuthError('invalid_grant', 'the server of this code is no longer reachable by that resource');
      const ceiling = tenant.idp ? (tenant.idp.scope ?? tenantTools(tenant)) : [];
      const scope = intersect(grant.scope, ceiling, tenantTools(tenant), server.tools);
      if (scope.length === 0) throw new OAuthError('invalid_scope', 'no tools are allowed for this user on this server any more');
      return { tenant: grant.tenant, principal: grant.principal, clientId: grant.client_id, audience: grant.server, ...(target.resourceUrl !== undefined ? { resourceUrl: target.resourceUrl } : {}), scope, authTime: grant.auth_time };
    },
  };
}

export type AuthorizationCodeGrant = ReturnType<typeof createAuthorizationCodeGrant>;
