import { ApiError, op } from '../api';
import { h, replace } from '../dom';
import { gauge } from '../charts/gauge';
import type { ViewContext } from '../main';
import type { TenantStatus } from './tenants';
import { optionalPanel } from './unavailable';

interface AuditEvent {
  tenant: string;
  seq: number;
  ts: string;
  type: string;
  decision?: string;
  reason?: string;
  principal?: string;
  session?: string;
  tool?: string;
  operator?: string;
  status?: string;
  detail?: string;
  call_id?: string;
}

const PAGE = 200;
/** An intent (credential being resolved, its outcome follows) is neither green nor red. */
const BADGE: Record<string, string> = { allow: 'ok', intent: 'pending', deny: 'danger' };

/**
 * One tenant: its state, its audit chain's health, and its audit stream (the newest 200 records,
 * filtered in the page by type, decision and text). Everything here is read with `tenant=<this one>`;
 * the broker answers only that tenant's records, and the table shows the tenant of every row so a
 * stray one would be seen.
 */
export function renderTenant(main: HTMLElement, _ctx: ViewContext, tenant: string): () => void {
  const q = encodeURIComponent(tenant);
  const state = h('section', { class: 'card', 'aria-label': 'State' }, h('h2', {}, 'State'), h('p', {}, 'Loading…'));
  const chain = h('section', { class: 'card', 'aria-label': 'Audit chain' }, h('h2', {}, 'Audit chain'), h('p', {}, 'Verifying…'));
  const extras = h('div', { class: 'columns' });
  const type = h('select', { id: 'audit-type' }, h('option', { value: '' }, 'any'), ...['authorize', 'complete', 'revoke', 'restore', 'approval', 'quarantine', 'policy'].map((t) => h('option', { value: t }, t)));
  const decision = h('select', { id: 'audit-decision' }, h('option', { value: '' }, 'any'), h('option', { value: 'allow' }, 'allow'), h('option', { value: 'deny' }, 'deny'), h('option', { value: 'intent' }, 'intent'));
  const text = h('input', { id: 'audit-text', type: 'search', autocomplete: 'off', placeholder: 'principal, tool, reason, session…' });
  const rows = h('tbody');
  const count = h('p', { class: 'muted', 'aria-live': 'polite' });
  let events: AuditEvent[] = [];

  const filters = h(
    'div',
    { class: 'filters', role: 'group', 'aria-label': 'Audit filters' },
    h('label', { for: 'audit-type' }, 'Type'),
    type,
    h('label', { for: 'audit-decision' }, 'Decision'),
    decision,
    h('label', { for: 'audit-text' }, 'Contains'),
    text,
  );
  const table = h(
    'table',
    { class: 'grid', 'data-testid': 'audit-table' },
    h('caption', { class: 'sr-only' }, `Audit records of ${tenant}, newest first`),
    h('thead', {}, h('tr', {}, ...['#', 'Time', 'Tenant', 'Type', 'Decision', 'Reason / status', 'Principal', 'Tool', 'Session', 'Operator'].map((c) => h('th', { scope: 'col' }, c)))),
    rows,
  );
  replace(
    main,
    h('p', {}, h('a', { href: '#/tenants' }, '← All tenants')),
    h('h1', {}, `Tenant ${tenant}`),
    h('div', { class: 'columns' }, state, chain),
    extras,
    h('section', { class: 'card', 'aria-labelledby': 'audit-title' }, h('h2', { id: 'audit-title' }, 'Audit'), filters, count, table),
  );

  const show = () => {
    const needle = text.value.trim().toLowerCase();
    const shown = events.filter(
      (e) => (!type.value || e.type === type.value) && (!decision.value || e.decision === decision.value) && (!needle || [e.principal, e.tool, e.reason, e.session, e.operator, e.status, e.call_id].some((v) => v?.toLowerCase().includes(needle))),
    );
    count.textContent = `${shown.length} of ${events.length} record(s) shown (newest ${PAGE} at most).`;
    replace(
      rows,
      ...shown.map((e) =>
        h(
          'tr',
          { 'data-seq': e.seq, 'data-tenant': e.tenant },
          h('td', {}, String(e.seq)),
          h('td', {}, h('time', { datetime: e.ts }, e.ts.replace('T', ' ').slice(0, 19))),
          h('td', {}, e.tenant),
          h('td', {}, e.type),
          h('td', {}, e.decision ? h('span', { class: `badge ${BADGE[e.decision] ?? 'danger'}` }, e.decision) : ''),
          h('td', {}, e.reason ?? e.status ?? ''),
          h('td', {}, e.principal ?? ''),
          h('td', {}, e.tool ?? ''),
          h('td', {}, e.session ? h('code', { title: e.session }, `${e.session.slice(0, 8)}…`) : ''),
          h('td', {}, e.operator ?? ''),
        ),
      ),
    );
  };
  for (const el of [type, decision, text]) el.addEventListener('input', show);

  void op<TenantStatus>('GET', `/v1/tenants/${q}`)
    .then((s) =>
      replace(
        state,
        h('h2', {}, 'State'),
        h('p', {}, s.revoked ? h('span', { class: 'badge danger' }, 'revoked') : h('span', { class: 'badge ok' }, 'active'), ' ', `${s.live_sessions} live session(s)`),
        gauge('calls in the last minute', s.quota.calls_last_minute, s.quota.calls_per_minute),
        gauge('calls in flight', s.quota.in_flight, s.quota.concurrency),
        ...(['hourly', 'daily'] as const).flatMap((w) => {
          const use = s.budget?.[w];
          return use ? [gauge(`${w} budget (resets ${new Date(use.resets_at).toLocaleTimeString()})`, use.used, use.limit)] : [];
        }),
        ...(s.budget ? [] : [h('p', { class: 'muted' }, 'No budgets in policy for this tenant.')]),
      ),
    )
    .catch((err) => replace(state, h('h2', {}, 'State'), h('p', { class: 'error' }, (err as Error).message)));

  void op<{ ok: boolean; events: number; head: string | null; broken?: { seq: number; problem: string } }>('GET', `/v1/audit/verify?tenant=${q}`)
    .then(async (v) => {
      replace(
        chain,
        h('h2', {}, 'Audit chain'),
        h('p', { 'data-testid': 'chain-status' }, v.ok ? h('span', { class: 'badge ok' }, 'intact') : h('span', { class: 'badge danger' }, `broken at #${v.broken?.seq}: ${v.broken?.problem}`), ` ${v.events} record(s)`),
        h('p', { class: 'muted' }, 'Head ', h('code', {}, v.head ? `${v.head.slice(0, 16)}…` : '(empty)')),
      );
      const page = await op<{ events: AuditEvent[] }>('GET', `/v1/audit?tenant=${q}&after=${Math.max(0, v.events - PAGE)}&limit=${PAGE}`);
      events = page.events.slice().reverse();
      show();
    })
    .catch((err) => replace(chain, h('h2', {}, 'Audit chain'), h('p', { class: 'error' }, (err as Error).message)));

  void Promise.all([
    optionalPanel('Checkpoints', () => op<{ checkpoints: unknown[] }>('GET', `/v1/audit/checkpoints?tenant=${q}`), (c) => h('p', {}, `${c.checkpoints.length} signed checkpoint(s)`)),
  ]).then((panels) => extras.append(...panels, exportPanel(tenant)));
  return () => undefined;
}

/** Export on request only (a bundle can be large); a broker without the endpoint says so. */
function exportPanel(tenant: string): HTMLElement {
  const out = h('p', { class: 'muted', 'aria-live': 'polite' });
  const button = h('button', { type: 'button', class: 'secondary' }, 'Download export');
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      const bundle = await op<unknown>('GET', `/v1/audit/export?tenant=${encodeURIComponent(tenant)}`);
      const link = h('a', { href: URL.createObjectURL(new Blob([JSON.stringify(bundle)], { type: 'application/json' })), download: `${tenant}-audit-export.json` }, 'Save the export');
      replace(out, link);
      link.click();
    } catch (err) {
      replace(out, err instanceof ApiError && err.unavailable ? 'Not available on this broker.' : `Could not export: ${(err as Error).message}`);
    }
    button.disabled = false;
  });
  return h('section', { class: 'card', 'aria-label': 'Export' }, h('h2', {}, 'Export'), h('p', {}, 'A verifiable bundle of this tenant\'s audit stream.'), button, out);
}
