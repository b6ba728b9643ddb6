import { perPolicy } from '../policy/per-policy';
import type { Policy } from '../policy/schema';
import { own } from '../tokens/grant-scope';
import type { OAuthClient } from './clients';
import { loginSettingsOf } from './idp-login';

/**
 * Which tenant's IdP a browser login goes to. In order: the client's own tenant (a static client bound
 * to one), else the domain of an email `login_hint`, else what the person typed on the organisation page
 * (a tenant id, a domain or an email). Only tenants with `idp.login` are candidates, and "unknown" and
 * "cannot log in here" look the same, so the page cannot be used to list the broker's tenants.
 */

export type TenantChoice = { tenant: string } | { ask: true; unknown: boolean } | { conflict: true };

export function findTenant(policy: Policy, client: OAuthClient, hints: { loginHint?: string; organization?: string }): TenantChoice {
  const hinted = hints.loginHint !== undefined ? byDomain(policy, domainOf(hints.loginHint)) : undefined;
  const typed = hints.organization !== undefined ? byName(policy, hints.organization.trim().toLowerCase()) : undefined;
  if (client.tenant !== undefined) {
    // A hint may agree with the client's tenant; it may never move the login elsewhere.
    if ((hinted !== undefined && hinted !== client.tenant) || (typed !== undefined && typed !== client.tenant)) return { conflict: true };
    return { tenant: client.tenant };
  }
  if (hinted !== undefined) return { tenant: hinted };
  if (typed !== undefined) return { tenant: typed };
  return { ask: true, unknown: hints.organization !== undefined };
}

function byName(policy: Policy, typed: string): string | undefined {
  if (typed.length === 0) return undefined;
  if (typed.includes('@') || typed.includes('.')) return byDomain(policy, domainOf(typed));
  return loginSettingsOf(own(policy.tenants, typed)) ? typed : undefined;
}

/**
 * login domain → the tenant that logs in with it (null: two tenants name it), built once per policy
 * instead of a scan of every tenant on each /authorize. Policy validation gives a domain to one tenant at
 * most; a policy object built past it still never sends a login to either of two claimants.
 */
const loginDomainOwners = perPolicy((policy) => {
  const index = new Map<string, string | null>();
  for (const [tenant, t] of Object.entries(policy.tenants)) for (const domain of loginSettingsOf(t)?.login.domains ?? []) index.set(domain, index.has(domain) ? null : tenant);
  return index;
});

function byDomain(policy: Policy, domain: string | undefined): string | undefined {
  return domain === undefined ? undefined : (loginDomainOwners(policy).get(domain) ?? undefined);
}

function domainOf(hint: string): string | undefined {
  const at = hint.lastIndexOf('@');
  const domain = (at >= 0 ? hint.slice(at + 1) : hint).trim().toLowerCase();
  return domain.length > 0 ? domain : undefined;
}
