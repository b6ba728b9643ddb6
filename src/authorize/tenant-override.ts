import { isTenantKeyFolded } from './tenant-keys';

/**
 * Tenant binding of tool arguments. The tenant comes from the verified token only; arguments that name
 * a tenant must name that one, and fields the policy injects always win over what the caller sent.
 */

/** Nesting beyond this is refused rather than walked: no real tool needs it, and it bounds the work. */
export const MAX_ARGUMENT_DEPTH = 32;
/** Objects, arrays and scalars visited before the arguments count as too big to check. */
export const MAX_ARGUMENT_NODES = 10_000;

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/**
 * The path (e.g. `filter.tenant_id`, `items[2].tid`) of the first tenant key whose value is not exactly
 * the token's tenant, or null. Arguments too deep or too big to check are a violation, never a pass.
 */
export function findTenantOverride(args: unknown, tenant: string): string | null {
  const budget = { nodes: 0 };
  return walk(args, tenant, '', 0, budget);
}

function walk(value: unknown, tenant: string, path: string, depth: number, budget: { nodes: number }): string | null {
  if (++budget.nodes > MAX_ARGUMENT_NODES) return '(too big)';
  if (value === null || typeof value !== 'object') return null;
  if (depth >= MAX_ARGUMENT_DEPTH) return '(too deep)';

  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = walk(value[i], tenant, `${path}[${i}]`, depth + 1, budget);
      if (found !== null) return found;
    }
    return null;
  }
  for (const key of Object.keys(value)) {
    const child = (value as Record<string, unknown>)[key];
    const childPath = joinPath(path, key);
    // Only an exact string match is the same tenant: null, objects, "ACME" or "ａｃｍｅ" are all refused,
    // because some server downstream may read them as "all tenants" or fold them into another one.
    if (isTenantKeyFolded(key) && child !== tenant) return childPath;
    const found = walk(child, tenant, childPath, depth + 1, budget);
    if (found !== null) return found;
  }
  return null;
}

/**
 * The effective arguments: a deep copy of the caller's with every injected field forced on top (also
 * deep-copied, so a later change to either never reaches the policy or the caller).
 */
export function applyInject(args: Record<string, unknown>, inject: Record<string, unknown> | undefined): Record<string, unknown> {
  const out = cloneJson(args) as Record<string, unknown>;
  if (!inject) return out;
  for (const key of Object.keys(inject)) {
    // defineProperty, not assignment: a key named "__proto__" must become a field, not a prototype.
    Object.defineProperty(out, key, { value: cloneJson(inject[key]), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/**
 * Arguments arrive as JSON, so a JSON round trip is an exact deep copy; unlike structuredClone it keeps
 * an own "__proto__" key a plain field and builds the copy in this realm.
 */
function cloneJson(value: unknown): unknown {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

function joinPath(path: string, key: string): string {
  if (IDENTIFIER.test(key)) return path === '' ? key : `${path}.${key}`;
  // Quoted and shortened: keys are caller-controlled and end up in a deny message.
  return `${path}[${JSON.stringify(key.length > 64 ? `${key.slice(0, 64)}…` : key)}]`;
}
