import { perPolicy } from '../policy/per-policy';
import type { Policy, TenantPolicy } from '../policy/schema';

type Owner = [tenant: string, policy: TenantPolicy];

/** issuer → the tenant whose identity provider it is, or null for an issuer two tenants name. */
const owners = perPolicy((policy) => {
  const index = new Map<string, Owner | null>();
  for (const [tenant, t] of Object.entries(policy.tenants)) if (t.idp) index.set(t.idp.issuer, index.has(t.idp.issuer) ? null : [tenant, t]);
  return index;
});

/**
 * The one tenant whose `idp.issuer` is `issuer`, found through an index rather than a scan of every
 * tenant on each token-exchange or jwt-bearer request (that scan took 4.4 ms per request at 10,000
 * tenants). Policy allows one tenant per issuer; should two name it anyway, neither is the owner.
 */
export function tenantOfIdpIssuer(policy: Policy, issuer: string): Owner | undefined {
  return owners(policy).get(issuer) ?? undefined;
}
