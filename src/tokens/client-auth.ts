import { randomBytes } from 'node:crypto';
import { secretMatchesHash, sha256Hex } from '../crypto/hash';
import type { Policy } from '../policy/schema';
import { own } from './grant-scope';

/**
 * Client authentication for the client_credentials grant. A client id is a principal id, or
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

/** principal id → every tenant that has it; built once per (frozen) policy object. */
const indexes = new WeakMap<Policy, Map<string, AuthenticatedClient[]>>();

function principalIndex(policy: Policy): Map<string, AuthenticatedClient[]> {
  let index = indexes.get(policy);
  if (!index) {
    index = new Map();
    for (const [tenant, tenantPolicy] of Object.entries(policy.tenants)) {
      for (const principal of Object.keys(tenantPolicy.principals)) {
        const list = index.get(principal) ?? [];
        list.push({ tenant, principal });
        index.set(principal, list);
      }
    }
    indexes.set(policy, index);
  }
  return index;
}

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
  const expected = client ? policy.tenants[client.tenant]!.principals[client.principal]!.secret_sha256 : DUMMY_SHA256;
  const matches = secretMatchesHash(secret, expected);
  return client && matches ? client : null;
}
