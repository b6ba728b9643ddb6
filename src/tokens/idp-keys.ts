import { createRemoteJWKSet, type JWTVerifyGetKey } from 'jose';
import type { TenantPolicy } from '../policy/schema';

/**
 * Where each tenant's IdP signing keys come from. One remote JWKS per tenant, kept across requests so
 * jose's cache and refetch cooldown work, rebuilt when the tenant's `jwks_uri` changes. Every fetch is
 * bounded by a timeout.
 */

export type IdpSettings = NonNullable<TenantPolicy['idp']>;
export type IdpKeyResolver = (tenant: string, idp: IdpSettings) => JWTVerifyGetKey;

export function createRemoteIdpKeys(options: { timeoutMs?: number } = {}): IdpKeyResolver {
  const timeoutDuration = options.timeoutMs ?? 5000;
  const byTenant = new Map<string, { uri: string; keys: JWTVerifyGetKey }>();
  return (tenant, idp) => {
    const cached = byTenant.get(tenant);
    if (cached && cached.uri === idp.jwks_uri) return cached.keys;
    const keys = createRemoteJWKSet(new URL(idp.jwks_uri), { timeoutDuration });
    byTenant.set(tenant, { uri: idp.jwks_uri, keys });
    return keys;
  };
}
