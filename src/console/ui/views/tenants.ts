import { api, op } from '../api';
import { h, replace } from '../dom';
import { gauge } from '../charts/gauge';
import type { ViewContext } from '../main';

export interface BudgetWindowUse {
  used: number;
  limit: number;
  resets_at: string;
}

export interface TenantStatus {
  tenant: string;
  revoked: boolean;
  live_sessions: number;
  quota: { calls_last_minute: number; in_flight: number; calls_per_minute: number; concurrency: number };
  /** Present once the broker reports them (quarantine listing, budgets). */
  quarantined_sessions?: number;
  /** Null when the tenant has no budgets; otherwise each configured window's use. */
  budget?: { hourly?: BudgetWindowUse; daily?: BudgetWindowUse } | null;
}

/** Every tenant at a glance: revoked or not, live sessions, quota use, and the policy version served. */
export function renderTenants(main: HTMLElement, _ctx: ViewContext): () => void {
  const list = h('div', { class: 'tiles', 'data-testid': 'tenant-tiles' }, h('p', {}, 'Loading…'));
  const version = h('code');
  replace(main, h('h1', {}, 'Tenants'), h('p', { class: 'muted' }, 'Policy version served: ', version), list);
  let stopped = false;

  void (async () => {
    const overview = await api<{ tenants: string[]; policy_version: string | null }>('GET', '/overview');
    version.textContent = overview.policy_version ?? 'unknown';
    const tiles: HTMLElement[] = [];
    // A few at a time: a broker with many tenants is not sent one burst per tenant.
    for (let i = 0; i < overview.tenants.length && !stopped; i += 4) {
      const batch = await Promise.all(overview.tenants.slice(i, i + 4).map((t) => op<TenantStatus>('GET', `/v1/tenants/${encodeURIComponent(t)}`).catch((err: Error) => ({ tenant: t, error: err.message }))));
      tiles.push(...batch.map(tile));
      replace(list, ...tiles);
    }
    if (overview.tenants.length === 0) replace(list, h('p', { class: 'muted' }, 'This policy has no tenants.'));
  })().catch((err) => replace(list, h('p', { class: 'error' }, `Could not load tenants: ${(err as Error).message}`)));
  return () => {
    stopped = true;
  };
}

function tile(status: TenantStatus | { tenant: string; error: string }): HTMLElement {
  const link = h('a', { href: `#/tenants/${encodeURIComponent(status.tenant)}` }, status.tenant);
  if ('error' in status) return h('article', { class: 'card tile' }, h('h2', {}, link), h('p', { class: 'error' }, status.error));
  return h(
    'article',
    { class: `card tile${status.revoked ? ' revoked' : ''}`, 'data-tenant': status.tenant },
    h('h2', {}, link, ' ', status.revoked ? h('span', { class: 'badge danger' }, 'revoked') : h('span', { class: 'badge ok' }, 'active')),
    h('p', {}, h('strong', {}, String(status.live_sessions)), ' live session(s)', status.quarantined_sessions === undefined ? '' : `, ${status.quarantined_sessions} quarantined`),
    gauge('calls in the last minute', status.quota.calls_last_minute, status.quota.calls_per_minute),
    gauge('calls in flight', status.quota.in_flight, status.quota.concurrency),
  );
}
