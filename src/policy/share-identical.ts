import type { Policy } from './schema';

/**
 * Large deployments repeat themselves: at 10,000 tenants × 100 tools most of the million tool entries
 * are the same few settings, and every principal lists the same tools. A parsed policy is deep-frozen,
 * so leaves with identical content can be one shared object without any reader being able to tell; at
 * that size this halves the heap the policy holds (measured by bench/scale.ts).
 *
 * Only leaves that carry no identity are shared: tool settings, tool-name lists and quota settings.
 * Tenant, principal and credential objects are never shared, so a lookup keyed by one of those objects
 * cannot answer for another tenant. (Caches of tenant data are keyed by tenant id anyway, never by a
 * policy object.) Runs on the fresh zod output, before it is frozen.
 */
export function shareIdenticalLeaves(policy: Policy): Policy {
  const pool = new Map<string, unknown>();
  const share = <T>(value: T): T => {
    const key = JSON.stringify(value);
    const existing = pool.get(key);
    if (existing !== undefined) return existing as T;
    pool.set(key, value);
    return value;
  };
  for (const server of Object.values(policy.servers)) server.tools = share(server.tools);
  for (const tenant of Object.values(policy.tenants)) {
    for (const name of Object.keys(tenant.tools)) tenant.tools[name] = share(tenant.tools[name]!);
    for (const principal of Object.values(tenant.principals)) principal.tools = share(principal.tools);
    if (tenant.idp?.scope) tenant.idp.scope = share(tenant.idp.scope);
    tenant.quotas = share(tenant.quotas);
  }
  return policy;
}
