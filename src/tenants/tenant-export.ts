import type { LocalSecretStore } from '../../adapters/local';
import type { ApprovalStore } from '../approvals/approval-store';
import type { ShowApproval } from '../approvals/approval-view';
import type { AuditEvent, AuditRecord } from '../audit/audit-log';
import type { AuditBundle } from '../audit/bundle';
import { canonicalize } from '../crypto/canonical-json';
import { sha256Hex } from '../crypto/hash';
import { principalBudgetKey, tenantBudgetKey, type BudgetStore } from '../budgets/budget-store';
import type { Clock } from '../clock';
import type { Policy } from '../policy/schema';
import type { QuotaStore } from '../quotas/quota-store';
import type { RevocationStore } from '../revocation/revocation-store';
import type { SessionStore } from '../sessions/session-store';

/**
 * A tenant's data export (DSAR): everything the broker holds about one tenant, and nothing of another.
 * Every part is read through a store method that takes the tenant id and matches it exactly (never a
 * prefix), so "acme" never picks up "acme2"'s data; the test seeds lookalike tenants and scans the
 * export for every value of theirs.
 *
 * The export is recorded in the tenant's audit stream before anything is read (an export whose record
 * cannot be written is refused), and the audit bundle is built after that record is signed, so the
 * bundle carries the evidence of its own export. Secret values are included only when asked for, and
 * the record says so. Once the bundle is built, a second record (`tenant_export`, status `exported`)
 * names what was taken away: the SHA-256 of the bundle's canonical JSON (`audit_sha256` in the answer)
 * and the last seq it holds. That is what `tenant delete --purge-audit` requires before it removes the
 * stream (tenant-delete.ts).
 */
export const TENANT_EXPORT_FORMAT = 'bulkhead-tenant-export/1';

export interface TenantExport {
  format: typeof TENANT_EXPORT_FORMAT;
  tenant: string;
  created_at: string;
  /** The tenant's entry in the live policy (principals' secret hashes redacted) and the OAuth clients bound to it. */
  policy: { tenant: unknown; clients: Record<string, unknown> };
  secrets: { names: string[]; values?: Record<string, string> };
  sessions: { live: Array<{ session: string; expires_at: string }>; quarantined: string[] };
  /** Whether the tenant is revoked now, and every revoke and restore its audit stream records. */
  revocations: { tenant_revoked: boolean; history: Array<Pick<AuditRecord, 'seq' | 'ts' | 'type' | 'detail' | 'reason' | 'operator'>> };
  /**
   * `arguments`: the effective arguments of a pending approval, opened with the tenant's own key exactly
   * as the operator's approval inbox shows them (no flag: the same operator credential reads them there);
   * null once decided or expired (they are deleted then) or when the key cannot open them.
   */
  approvals: Array<{ id: string; principal: string; session: string; tool: string; arguments_mac: string; arguments: Record<string, unknown> | null; arguments_unavailable?: string; status: string; created_at: string; expires_at: string; decided_by?: string }>;
  quota: { calls_last_minute: number; in_flight: number };
  /** Budget use per window: the tenant's, and each policy principal's. */
  budget: { tenant: { hourly: number; daily: number }; principals: Record<string, { hourly: number; daily: number }> };
  /** The verifiable audit bundle (bulkhead-audit-bundle/1): check it with `bulkhead audit verify --bundle`. */
  audit: AuditBundle;
  /** SHA-256 (hex) of canonicalize(audit): the digest the stream's `exported` record names. */
  audit_sha256: string;
}

/** The digest an export's record names: SHA-256 of the bundle's RFC 8785 canonical JSON. */
export function bundleDigest(bundle: AuditBundle): string {
  return sha256Hex(canonicalize(bundle));
}

export interface TenantExportDeps {
  policy: () => Policy;
  sessions: Pick<SessionStore, 'tenantSessions'>;
  revocations: Pick<RevocationStore, 'isTenantRevoked'>;
  approvals: Pick<ApprovalStore, 'listTenant'>;
  /** Opens an approval's sealed arguments under its own tenant's key (approval-view.ts). */
  showApproval: ShowApproval;
  quotas: Pick<QuotaStore, 'usage'>;
  budgets: Pick<BudgetStore, 'usage'>;
  secrets: Pick<LocalSecretStore, 'list' | 'get'>;
  append: (tenant: string, event: AuditEvent) => Promise<unknown>;
  /** Seals what is committed and builds the tenant's whole audit bundle. */
  auditBundle: (tenant: string) => Promise<AuditBundle>;
  clock: Clock;
}

export async function exportTenant(deps: TenantExportDeps, tenant: string, options: { operator: string; includeSecrets: boolean }): Promise<TenantExport> {
  const policy = deps.policy();
  const entry = policy.tenants[tenant]!;
  await deps.append(tenant, { type: 'tenant_export', operator: options.operator, detail: options.includeSecrets ? 'tenant export with secret values' : 'tenant export (secret names only)' });
  const now = deps.clock.now();
  const [names, live, revoked, approvals, quota, tenantBudget] = await Promise.all([
    deps.secrets.list(tenant),
    deps.sessions.tenantSessions(tenant, now),
    deps.revocations.isTenantRevoked(tenant),
    deps.approvals.listTenant(tenant),
    deps.quotas.usage(tenant),
    deps.budgets.usage(tenantBudgetKey(tenant), now),
  ]);
  const principals: TenantExport['budget']['principals'] = {};
  for (const principal of Object.keys(entry.principals)) principals[principal] = await deps.budgets.usage(principalBudgetKey(tenant, principal), now);
  let values: Record<string, string> | undefined;
  if (options.includeSecrets) {
    values = {};
    for (const name of names) {
      const value = await deps.secrets.get(tenant, name);
      if (value !== undefined) values[name] = value;
    }
  }
  const views = await Promise.all(approvals.map((a) => (a.status === 'pending' ? deps.showApproval(a, now) : null)));
  const audit = await deps.auditBundle(tenant);
  const audit_sha256 = bundleDigest(audit);
  await deps.append(tenant, {
    type: 'tenant_export',
    status: 'exported',
    operator: options.operator,
    records: audit.manifest.records.last_seq,
    bundle_sha256: audit_sha256,
    detail: `audit bundle of records ${audit.manifest.records.first_seq}..${audit.manifest.records.last_seq} exported`,
  });
  const iso = (ms: number) => new Date(ms).toISOString();
  return {
    format: TENANT_EXPORT_FORMAT,
    tenant,
    created_at: iso(now),
    policy: { tenant: policyExcerpt(entry), clients: Object.fromEntries(Object.entries(policy.clients ?? {}).filter(([, c]) => c.tenant === tenant)) },
    secrets: { names, ...(values ? { values } : {}) },
    sessions: { live: live.live.map((s) => ({ session: s.session, expires_at: iso(s.expires_at) })), quarantined: live.quarantined },
    revocations: {
      tenant_revoked: revoked,
      history: audit.records.filter((r) => r.type === 'revoke' || r.type === 'restore').map(({ seq, ts, type, detail, reason, operator }) => ({ seq, ts, type, detail, reason, operator })),
    },
    approvals: approvals.map((a, i) => ({
      id: a.id,
      principal: a.principal,
      session: a.session,
      tool: a.tool,
      arguments_mac: a.arguments_mac,
      arguments: views[i]?.arguments ?? null,
      ...(views[i] ? (views[i]!.arguments_unavailable ? { arguments_unavailable: views[i]!.arguments_unavailable } : {}) : { arguments_unavailable: 'not kept once an approval is decided or expired' }),
      status: a.status,
      created_at: iso(a.created_at),
      expires_at: iso(a.expires_at),
      ...(a.decided_by ? { decided_by: a.decided_by } : {}),
    })),
    quota,
    budget: { tenant: tenantBudget, principals },
    audit,
    audit_sha256,
  };
}

/** The tenant's policy as written, without the principals' secret hashes (a hash of a secret is not for export). */
function policyExcerpt(entry: Policy['tenants'][string]): unknown {
  const principals = Object.fromEntries(Object.entries(entry.principals).map(([id, p]) => [id, { ...p, secret_sha256: '(redacted)' }]));
  return { ...entry, principals };
}
