import { api, op } from '../api';
import { h, relative, replace } from '../dom';
import type { ViewContext } from '../main';

interface Pending {
  id: string;
  tenant: string;
  principal: string;
  session: string;
  tool: string;
  arguments_mac: string;
  /** The effective arguments (null when the tenant's key could not open them: then only their hash). */
  arguments?: unknown;
  arguments_unavailable?: string;
  created_at: string;
  expires_at: string;
}

const POLL_MS = 2000;

/**
 * The approvals inbox: every tenant's pending approvals, newest first, polled every two seconds.
 * Rows are kept by approval id and updated in place, so a keyboard user's focus on a button is not
 * thrown away by the next poll. Approve and Deny go through the operator API as the signed-in
 * operator; the waiting agent's call goes through (or stays refused) on its next poll of the broker.
 */
export function renderInbox(main: HTMLElement, ctx: ViewContext): () => void {
  const rows = new Map<string, { row: HTMLTableRowElement; age: HTMLElement; expiry: HTMLElement; item: Pending; reason: HTMLInputElement }>();
  const body = h('tbody');
  const empty = h('p', { class: 'muted', 'data-testid': 'inbox-empty' }, 'Nothing is waiting for approval.');
  const table = h(
    'table',
    { class: 'grid', 'aria-describedby': 'inbox-help' },
    h('caption', { class: 'sr-only' }, 'Pending approvals, newest first'),
    h('thead', {}, h('tr', {}, ...['Tool', 'Tenant', 'Principal', 'Session', 'Arguments', 'Waiting', 'Expires', 'Decision'].map((c) => h('th', { scope: 'col' }, c)))),
    body,
  );
  const updated = h('span', { class: 'muted' });
  replace(
    main,
    h('h1', {}, 'Approvals'),
    h('p', { id: 'inbox-help', class: 'muted' }, 'Calls to tools that need a person: the agent waits until you decide or the approval expires. ', updated),
    empty,
    table,
  );

  const decide = async (item: Pending, decision: 'approve' | 'deny') => {
    const entry = rows.get(item.id);
    entry?.row.querySelectorAll('button').forEach((b) => (b.disabled = true));
    try {
      const reason = entry?.reason.value.trim() ?? '';
      await op('POST', `/v1/approvals/${encodeURIComponent(item.id)}/${decision}`, reason ? { reason } : {});
      ctx.notify(`${decision === 'approve' ? 'Approved' : 'Denied'} ${item.tool} for ${item.tenant}/${item.principal}.`);
      entry?.row.remove();
      rows.delete(item.id);
    } catch (err) {
      ctx.notify(`Could not ${decision} ${item.tool}: ${(err as Error).message}`, 'error');
      entry?.row.querySelectorAll('button').forEach((b) => (b.disabled = false));
    }
    sync();
  };

  const argumentsCell = (item: Pending) =>
    item.arguments === undefined || item.arguments === null
      ? h(
          'td',
          {},
          h('code', { title: `HMAC-SHA256 of the effective arguments under the tenant's argument key: ${item.arguments_mac}` }, `mac ${item.arguments_mac.slice(0, 12)}…`),
          item.arguments_unavailable ? h('p', { class: 'muted' }, `Arguments not shown: ${item.arguments_unavailable}.`) : null,
        )
      : h('td', {}, h('pre', { class: 'args' }, JSON.stringify(item.arguments, null, 1)));

  const addRow = (item: Pending) => {
    const age = h('td');
    const expiry = h('td');
    const label = `${item.tool} for ${item.tenant}/${item.principal}`;
    // Optional: kept with the decision in the tenant's audit stream.
    const reason = h('input', { type: 'text', maxlength: '500', placeholder: 'Reason (optional)', 'aria-label': `Reason for deciding ${label}` }) as HTMLInputElement;
    const row = h(
      'tr',
      { 'data-approval': item.id, 'data-tenant': item.tenant },
      h('td', {}, h('strong', {}, item.tool)),
      h('td', {}, item.tenant),
      h('td', {}, item.principal),
      h('td', {}, h('code', { title: item.session }, `${item.session.slice(0, 8)}…`)),
      argumentsCell(item),
      age,
      expiry,
      h(
        'td',
        { class: 'actions' },
        reason,
        h('button', { type: 'button', 'aria-label': `Approve ${label}`, onclick: () => void decide(item, 'approve') }, 'Approve'),
        h('button', { type: 'button', class: 'danger', 'aria-label': `Deny ${label}`, onclick: () => void decide(item, 'deny') }, 'Deny'),
      ),
    );
    rows.set(item.id, { row, age, expiry, item, reason });
    return row;
  };

  let offset = 0;
  function sync(): void {
    const now = Date.now() + offset;
    for (const { age, expiry, item } of rows.values()) {
      age.textContent = relative(Date.parse(item.created_at) - now);
      expiry.textContent = relative(Date.parse(item.expires_at) - now);
    }
    table.hidden = rows.size === 0;
    empty.hidden = rows.size > 0;
  }

  let timer: number | undefined;
  let stopped = false;
  async function poll(): Promise<void> {
    try {
      const { now, approvals } = await api<{ now: string; approvals: Pending[] }>('GET', '/inbox');
      offset = Date.parse(now) - Date.now();
      const seen = new Set(approvals.map((a) => a.id));
      for (const [id, entry] of rows) if (!seen.has(id)) (entry.row.remove(), rows.delete(id));
      // Newest first: walk the answer in order and insert each new row before the first older one.
      let before: ChildNode | null = body.firstChild;
      for (const item of approvals) {
        const existing = rows.get(item.id);
        if (existing) before = existing.row.nextSibling;
        else body.insertBefore(addRow(item), before);
      }
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}.`;
    } catch (err) {
      updated.textContent = `Could not refresh: ${(err as Error).message}`;
    }
    sync();
    if (!stopped) timer = window.setTimeout(() => void poll(), POLL_MS);
  }
  void poll();
  return () => {
    stopped = true;
    window.clearTimeout(timer);
  };
}
