import type { Policy, ServerPolicy, TenantPolicy } from '../policy/schema';
import { parseScope } from './claims';
import { OAuthError } from './oauth-error';

/**
 * What a grant may ask for: exactly one known server (the audience), and tools inside the bounds the
 * policy sets. A requested scope can only narrow those bounds, never widen them.
 * Policy maps are plain objects, so lookups go through `own` ("constructor" is not a tenant).
 */

export function own<T>(record: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/**
 * The target server from `audience` or RFC 8707 `resource` (or a fallback, for refresh). A `resource`
 * may be the server id or the MCP server's own URL (`servers.<id>.resource`, what an MCP client learns
 * from the server's RFC 9728 metadata); either way the token's `aud` is the server id.
 */
export function resolveAudience(policy: Policy, fields: { audience?: string; resource?: string }, fallback?: string): { id: string; server: ServerPolicy; resourceUrl?: string } {
  const { audience } = fields;
  const resource = fields.resource === undefined ? undefined : serverIdOfResource(policy, fields.resource);
  if (audience !== undefined && resource !== undefined && audience !== resource) {
    throw new OAuthError('invalid_target', 'audience and resource name different servers');
  }
  const id = audience ?? resource ?? fallback;
  if (id === undefined) throw new OAuthError('invalid_target', 'audience (or resource) is required');
  const server = own(policy.servers, id);
  if (!server) throw new OAuthError('invalid_target', 'audience is not a known server');
  // Named by its URL: the token's `aud` carries the URL as policy spells it (RFC 9068 §4 compares exactly).
  const byUrl = fields.resource !== undefined && fields.resource !== id && server.resource !== undefined;
  return byUrl ? { id, server, resourceUrl: server.resource! } : { id, server };
}

function serverIdOfResource(policy: Policy, resource: string): string {
  const byUrl = Object.entries(policy.servers).find(([, server]) => server.resource !== undefined && sameResource(server.resource, resource));
  return byUrl ? byUrl[0] : resource;
}

/** RFC 8707 resources compare as URLs without a trailing slash or fragment. */
function sameResource(a: string, b: string): boolean {
  const canonical = (value: string) => value.replace(/#.*$/, '').replace(/\/+$/, '');
  return canonical(a) === canonical(b);
}

/** Tools in every list, in the order of the first. */
export function intersect(first: readonly string[], ...others: ReadonlyArray<readonly string[]>): string[] {
  const sets = others.map((list) => new Set(list));
  return [...new Set(first)].filter((tool) => sets.every((set) => set.has(tool)));
}

export function tenantTools(tenant: TenantPolicy): string[] {
  return Object.keys(tenant.tools);
}

/** `allowed`, or the requested subset of it. Asking for anything outside it is an error, not a trim. */
export function narrowScope(allowed: readonly string[], requested: string | undefined): string[] {
  if (allowed.length === 0) throw new OAuthError('invalid_scope', 'no tools are allowed for this client on this server');
  if (requested === undefined) return [...allowed];
  const asked = parseScope(requested);
  if (asked.length === 0) throw new OAuthError('invalid_scope', 'scope is empty');
  const permitted = new Set(allowed);
  if (!asked.every((tool) => permitted.has(tool))) {
    throw new OAuthError('invalid_scope', 'scope asks for tools this client may not have on this server');
  }
  return asked;
}
