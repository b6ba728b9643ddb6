import { z } from 'zod';
import { BrokerError, isBrokerError } from '../errors';
import type { RevokeInput, RevokeResult } from '../operator/kill-switch';
import type { Policy } from '../policy/schema';
import type { RevocationStore } from '../revocation/revocation-store';
import { isUrlClientId } from '../oauth/client-metadata-document';
import { authenticatePresented } from './client-auth';
import { own } from './grant-scope';
import { OAuthError } from './oauth-error';
import { serverAudience, type TokenVerifier } from './verifier';
import { INTROSPECTION_PATH, REVOCATION_PATH } from './metadata';
import type { TokenRefusals } from './token-rejection';
import { decodeJwt } from 'jose';

/**
 * RFC 7662 introspection and RFC 7009 revocation, for resource servers and clients that do not use
 * the MCP wrapper.
 * - Introspection is asked by a registered MCP server (its server key) and answers `active: true` only
 *   for a token that verifies, is for that very server, and is not revoked — the same revocation check
 *   as every /v1/authorize, so a revoked token is inactive from the moment /v1/revoke answered. A token
 *   for another server is `active: false`: a server learns nothing about tokens that are not its own.
 * - Revocation is asked by the client the token was issued to (RFC 7009 §2.1): a policy principal
 *   authenticated by its secret, or a public client naming its client_id. It revokes that token's
 *   `jti` through the kill switch (durable before the answer, open calls' leases revoked). A token
 *   that is invalid already answers 200, as the RFC asks.
 */

export interface IntrospectionDeps {
  policy: () => Policy;
  verifier: Pick<TokenVerifier, 'verify'>;
  revocations: Pick<RevocationStore, 'check'>;
  revoke: (input: RevokeInput) => Promise<RevokeResult>;
  /** Records a verified token found revoked (the verifier records its own refusals). */
  refusals?: TokenRefusals;
}

export const tokenParams = z.object({ token: z.string().min(1).max(8192), token_type_hint: z.string().max(64).optional() });
export const clientParams = z.object({ client_id: z.string().min(1).max(2048).optional(), client_secret: z.string().min(1).max(1024).optional() });

export function createTokenIntrospection(deps: IntrospectionDeps) {
  function tokenOf(raw: Record<string, unknown>): string {
    const parsed = tokenParams.safeParse(raw);
    if (!parsed.success) throw new OAuthError('invalid_request', raw.token === undefined ? 'token is required' : 'token is invalid');
    return parsed.data.token;
  }

  async function revokedReason(subject: Parameters<RevocationStore['check']>[0]): Promise<string | null> {
    try {
      return await deps.revocations.check(subject);
    } catch (err) {
      if (isBrokerError(err)) throw err;
      throw new BrokerError('state_unavailable', 'revocation state is unavailable', { cause: err });
    }
  }

  return {
    /** `server`: the authenticated MCP server asking. */
    async introspect(server: string, raw: Record<string, unknown>): Promise<Record<string, unknown>> {
      const token = tokenOf(raw);
      const attempt = { endpoint: INTROSPECTION_PATH, server };
      let verified;
      try {
        verified = await deps.verifier.verify(token, server, attempt);
      } catch (err) {
        if (isBrokerError(err) && err.status >= 500) throw err;
        return { active: false };
      }
      const revoked = await revokedReason({ tid: verified.tenant, sub: verified.principal, sid: verified.session, jti: verified.jti, iat: Math.floor(verified.issuedAt / 1000) });
      if (revoked) {
        await deps.refusals?.refusedSigned(verified, revoked, attempt).catch(() => undefined);
        return { active: false };
      }
      const claims = decodeJwt(token);
      return {
        active: true,
        token_type: 'Bearer',
        scope: verified.scope.join(' '),
        client_id: verified.clientId,
        sub: verified.principal,
        aud: claims.aud,
        iss: claims.iss,
        exp: claims.exp,
        iat: claims.iat,
        nbf: claims.nbf,
        jti: verified.jti,
        tid: verified.tenant,
        sid: verified.session,
      };
    },

    async revoke(raw: Record<string, unknown>, basic?: { id: string; secret: string }): Promise<void> {
      const token = tokenOf(raw);
      const presented = clientParams.safeParse(raw);
      if (!presented.success) throw new OAuthError('invalid_request', 'client_id or client_secret is invalid');
      const policy = deps.policy();
      const { client_id, client_secret } = presented.data;
      let clientId: string;
      if (basic || client_secret !== undefined) {
        const client = authenticatePresented(policy, { basic, client_id, client_secret })!;
        clientId = `${client.tenant}/${client.principal}`;
      } else {
        // A public client names itself; only ids that are public clients can (a principal needs its secret).
        if (client_id === undefined || !(isUrlClientId(client_id) || own(policy.clients, client_id))) throw new OAuthError('invalid_client', 'client authentication failed', 401);
        clientId = client_id;
      }
      let verified;
      try {
        verified = await deps.verifier.verify(token, ownAudience(token), { endpoint: REVOCATION_PATH });
      } catch (err) {
        if (isBrokerError(err) && err.status >= 500) throw err;
        return; // RFC 7009 §2.2: an invalid token is no error.
      }
      if (verified.clientId !== clientId) throw new OAuthError('unauthorized_client', 'the token was not issued to this client');
      // The token itself was presented and verified, so its jti is no typo: forced past the kill switch's
      // unknown-target guard, and recorded in the token's tenant's stream.
      await deps.revoke({ jti: verified.jti, reason: 'revoked by its client (RFC 7009)', operator: `client:${clientId}`, force: true, tenantOfToken: verified.tenant });
    },
  };
}

/** The audience a token names (read unverified: it is signed, so it only picks what to compare); "" if none. */
function ownAudience(token: string): string {
  let audience: unknown;
  try {
    audience = serverAudience(decodeJwt(token).aud);
  } catch {
    return ''; // not a JWT: the verifier refuses it (and records that) as malformed
  }
  return typeof audience === 'string' ? audience : '';
}

export type TokenIntrospection = ReturnType<typeof createTokenIntrospection>;
