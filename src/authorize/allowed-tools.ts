import type { Policy } from '../policy/schema';

/**
 * The tools a token may use on a server: tenant tools ∩ server tools ∩ token scope, and, for a
 * principal configured in policy, ∩ that principal's tools. Recomputed from the current policy on every
 * call, so removing a tool from policy takes effect without waiting for tokens to expire.
 * Principals from a tenant IdP (token exchange) are not listed in policy; their scope was bounded by
 * the tenant's `idp.scope` when the token was issued.
 */
export function allowedTools(policy: Policy, token: { tenant: string; principal: string; audience: string; scope: readonly string[] }): string[] {
  // Object.hasOwn: policy maps are plain objects, and "constructor" is a valid tool id.
  const tenant = Object.hasOwn(policy.tenants, token.tenant) ? policy.tenants[token.tenant] : undefined;
  const server = Object.hasOwn(policy.servers, token.audience) ? policy.servers[token.audience] : undefined;
  if (!tenant || !server || !principalInPolicy(policy, token)) return [];
  const principal = Object.hasOwn(tenant.principals, token.principal) ? tenant.principals[token.principal] : undefined;
  return token.scope.filter(
    (tool) => Object.hasOwn(tenant.tools, tool) && server.tools.includes(tool) && (principal === undefined || principal.tools.includes(tool)),
  );
}

export function isToolAllowed(policy: Policy, token: { tenant: string; principal: string; audience: string; scope: readonly string[] }, tool: string): boolean {
  if (!token.scope.includes(tool)) return false;
  return allowedTools(policy, { ...token, scope: [tool] }).length === 1;
}

/**
 * Whether the token's tenant and principal are still in the policy now serving: a principal listed in
 * policy, or any principal of a tenant that federates an IdP (those are not listed). A reload that
 * removes a tenant or a policy principal denies its tokens from the next call.
 */
export function principalInPolicy(policy: Policy, token: { tenant: string; principal: string }): boolean {
  if (!Object.hasOwn(policy.tenants, token.tenant)) return false;
  const tenant = policy.tenants[token.tenant]!;
  return Object.hasOwn(tenant.principals, token.principal) || tenant.idp !== undefined;
}
