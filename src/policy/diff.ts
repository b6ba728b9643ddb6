import { canonicalJson } from '../crypto/hash';
import type { Policy, TenantPolicy } from './schema';

/** What changed in one map of named entries (tools, principals, credentials, servers, …). */
export interface EntryChanges {
  added: string[];
  removed: string[];
  changed: string[];
}

export interface TenantDiff extends Partial<Record<'tools' | 'principals' | 'credentials', EntryChanges>> {
  /** Set when the tenant's quotas differ. */
  quotas?: { old: TenantPolicy['quotas']; new: TenantPolicy['quotas'] };
  /** Other tenant settings that differ (idp, vault). */
  settings?: string[];
}

export interface PolicyDiff {
  tenants: EntryChanges & { details: Record<string, TenantDiff> };
  servers?: EntryChanges;
  operators?: EntryChanges;
  clients?: EntryChanges;
  /** Dotted paths under `broker` whose values differ: these take effect only at a restart. */
  broker: string[];
  /** True when the two policies are the same version. */
  same: boolean;
}

/**
 * The difference between two validated policies, by name: per tenant its tools, principals,
 * credentials and quotas; the servers and operators; and every broker setting that differs. Secrets
 * appear only as digests in policy, and only the names of entries are reported.
 */
export function diffPolicies(before: Policy, after: Policy): PolicyDiff {
  const tenants = diffEntries(before.tenants, after.tenants);
  const details: Record<string, TenantDiff> = {};
  for (const id of tenants.changed) details[id] = diffTenant(before.tenants[id]!, after.tenants[id]!);
  const diff: PolicyDiff = { tenants: { ...tenants, details }, broker: changedPaths(before.broker, after.broker, 'broker'), same: false };
  const servers = diffEntries(before.servers, after.servers);
  if (!isEmpty(servers)) diff.servers = servers;
  const operators = diffEntries(before.operators, after.operators);
  if (!isEmpty(operators)) diff.operators = operators;
  const clients = diffEntries(before.clients, after.clients);
  if (!isEmpty(clients)) diff.clients = clients;
  diff.same = isEmpty(tenants) && !diff.servers && !diff.operators && !diff.clients && diff.broker.length === 0;
  return diff;
}

function diffTenant(before: TenantPolicy, after: TenantPolicy): TenantDiff {
  const out: TenantDiff = {};
  for (const key of ['tools', 'principals', 'credentials'] as const) {
    const changes = diffEntries(before[key], after[key]);
    if (!isEmpty(changes)) out[key] = changes;
  }
  if (!same(before.quotas, after.quotas)) out.quotas = { old: before.quotas, new: after.quotas };
  const settings = (['idp', 'vault'] as const).filter((key) => !same(before[key], after[key]));
  if (settings.length) out.settings = settings;
  return out;
}

function diffEntries(before: Record<string, unknown>, after: Record<string, unknown>): EntryChanges {
  const added = Object.keys(after).filter((k) => !Object.hasOwn(before, k));
  const removed = Object.keys(before).filter((k) => !Object.hasOwn(after, k));
  const changed = Object.keys(after).filter((k) => Object.hasOwn(before, k) && !same(before[k], after[k]));
  return { added: added.sort(), removed: removed.sort(), changed: changed.sort() };
}

/** Leaf paths whose values differ (objects are descended into; arrays compare whole). */
function changedPaths(before: unknown, after: unknown, path: string): string[] {
  if (isPlainObject(before) && isPlainObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((k) => changedPaths(before[k], after[k], `${path}.${k}`));
  }
  return same(before, after) ? [] : [path];
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

const same = (a: unknown, b: unknown) => canonicalJson(a) === canonicalJson(b);
const isEmpty = (c: EntryChanges) => c.added.length + c.removed.length + c.changed.length === 0;
