import type { Policy, TenantPolicy } from '../policy/schema';

/** issuer → the tenant whose identity provider it is; built once per (frozen) policy object. */
const owners = new WeakMap<Policy, Map<string, [tenant: string, policy: TenantPolicy]>>();

/**
 * The tenant whose `idp.issuer` is `issuer` (policy allows one tenant per issuer), found through an
 * index rather than a scan of every tenant on each token-exchange or jwt-bearer request: that scan took
 * 4.4 ms per request at 10,000 tenants.
 */
export function tenantOfIdpIssuer(policy: Policy, issuer: string): [tenant: string, policy: TenantPolicy] | undefined {
  let index = owners.get(policy);
  if (!index) {
    index = new Map();
    for (const [tenant, t] of Object.entries(policy.tenants)) if (t.idp) index.set(t.idp.issuer, [tenant, t]);
    owners.set(policy, index);
  }
  return index.get(issuer);
}
