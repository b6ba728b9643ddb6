import { randomBytes } from 'node:crypto';
import { secretMatchesHash, sha256Hex } from '../crypto/hash';
import { perPolicy } from '../policy/per-policy';
import type { Policy } from '../policy/schema';
import { own } from './grant-scope';
import { OAuthError } from './oauth-error';

/**
 * Client authentication on the token endpoint. A client id is a principal id, or
 * `tenant/principal` when the same principal id exists in several tenants (a bare id that is
 * ambiguous authenticates nobody). Exactly one constant-time hash comparison runs for every attempt,
 * against a dummy digest nobody knows the preimage of when the client is unknown, so an unknown client
 * and a wrong secret cost the same and answer the same.
 */

export interface AuthenticatedClient {
  tenant: string;
  principal: string;
}

const DUMMY_SHA256 = sha256Hex(randomBytes(32));

/** principal id → every tenant that has it. */
const principalIndex = perPolicy((policy) => {
  const index = new Map<string, AuthenticatedClient[]>();
  for (const [tenant, tenantPolicy] of Object.entries(policy.tenants)) {
    for (const principal of Object.keys(tenantPolicy.principals)) {
      const list = index.get(principal) ?? [];
      list.push({ tenant, principal });
      index.set(principal, list);
    }
  }
  return index;
});

function findClient(policy: Policy, clientId: string): AuthenticatedClient | undefined {
  const slash = clientId.indexOf('/');
  if (slash >= 0) {
    const tenant = clientId.slice(0, slash);
    const principal = clientId.slice(slash + 1);
    const tenantPolicy = own(policy.tenants, tenant);
    return tenantPolicy && own(tenantPolicy.principals, principal) ? { tenant, principal } : undefined;
  }
  const matches = principalIndex(policy).get(clientId);
  return matches?.length === 1 ? matches[0] : undefined;
}

/** The client, or null: callers must not tell an unknown client from a wrong secret. */
export function authenticateClient(policy: Policy, clientId: string, secret: string): AuthenticatedClient | null {
  const client = findClient(policy, clientId);
  // A workload-only principal has no secret: it authenticates with an identity token (jwt-bearer), never here.
  const expected = (client && policy.tenants[client.tenant]!.principals[client.principal]!.secret_sha256) ?? DUMMY_SHA256;
  const matches = secretMatchesHash(secret, expected);
  return client && matches && policy.tenants[client.tenant]!.principals[client.principal]!.secret_sha256 !== undefined ? client : null;
}

export const CLIENT_AUTH_FAILED = 'client authentication failed';

/** What a token request carried: HTTP Basic (already decoded) and/or `client_id` / `client_secret` in the body. */
export interface PresentedCredentials {
  basic?: { id: string; secret: string };
  client_id?: string;
  client_secret?: string;
}

/**
 * Authenticates whatever client credentials a request presents, on every grant, whether or not the
 * grant needs them: presented credentials are never ignored, so a wrong secret is always a 401 and never
 * quietly falls through to an unauthenticated path. Null only when nothing at all was presented; a
 * `client_id` without a secret is a presentation (Bulkhead has no public clients), and so fails.
 */
export function authenticatePresented(policy: Policy, presented: PresentedCredentials): AuthenticatedClient | null {
  const { basic, client_id, client_secret } = presented;
  if (!basic && client_id === undefined && client_secret === undefined) return null;
  if (basic && client_secret !== undefined) throw new OAuthError('invalid_request', 'use one client authentication method, not both');
  if (basic && client_id !== undefined && client_id !== basic.id) throw new OAuthError('invalid_request', 'client_id does not match the HTTP Basic credentials');
  const id = basic?.id ?? client_id;
  const client = id === undefined ? null : authenticateClient(policy, id, basic?.secret ?? client_secret ?? '');
  if (!client) throw new OAuthError('invalid_client', CLIENT_AUTH_FAILED, 401);
  return client;
}
