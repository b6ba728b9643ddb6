import { op } from '../api';
import { h, replace, uid } from '../dom';
import type { ViewContext } from '../main';
import { optionalPanel } from './unavailable';

interface Revocation {
  kind: 'tenant' | 'principal' | 'session' | 'jti';
  target: string;
  tenant?: string;
  reason?: string;
  revoked_at: string;
  expires_at?: string;
}

interface Quarantine {
  tenant: string;
  session: string;
  reason: string;
  quarantined_at: string;
}

/**
 * Undoing a kill from the console: lift a principal or session revocation, or release a quarantined
 * session. Each needs a reason and the target typed back (the console API checks both again), and is
 * recorded by the operator API with the signed-in operator's id in the tenant's stream.
 */
export function liftPanels(ctx: ViewContext): Promise<HTMLElement[]> {
  return Promise.all([
    optionalPanel(
      'Revoked principals and sessions',
      () => op<{ revocations: Revocation[] }>('GET', '/v1/revocations'),
      (d) => list('revocations', d.revocations.filter((r) => r.kind === 'principal' || r.kind === 'session').slice(0, 50), 'Nothing is revoked.', (r) =>
        liftItem(ctx, {
          target: r.target,
          what: `${r.kind} ${r.target}`,
          detail: `${r.tenant ?? 'no tenant'} · ${r.reason ?? 'no reason'} · ${r.expires_at ? `expires ${r.expires_at}` : 'until lifted'}`,
          button: 'Lift',
          send: (reason, confirm) => op('POST', '/v1/restore', { [r.kind]: r.target, reason, confirm }),
        }),
      ),
    ),
    optionalPanel(
      'Quarantined sessions',
      () => op<{ quarantines: Quarantine[] }>('GET', '/v1/quarantines'),
      (d) => list('quarantines', d.quarantines.slice(0, 50), 'No session is quarantined.', (q) =>
        liftItem(ctx, {
          target: q.session,
          what: `session ${q.session}`,
          detail: `${q.tenant} · ${q.reason} · since ${q.quarantined_at}`,
          button: 'Release',
          send: (reason, confirm) => op('POST', '/v1/quarantines/lift', { session: q.session, tenant: q.tenant, reason, confirm }),
        }),
      ),
    ),
  ]);
}

function list<T>(testId: string, items: T[], empty: string, item: (value: T) => HTMLElement): HTMLElement {
  return items.length === 0 ? h('p', { class: 'muted', 'data-testid': testId }, empty) : h('ul', { class: 'plain', 'data-testid': testId }, ...items.map(item));
}

function liftItem(ctx: ViewContext, o: { target: string; what: string; detail: string; button: string; send: (reason: string, confirm: string) => Promise<unknown> }): HTMLElement {
  const reasonId = uid('lift-reason');
  const typedId = uid('lift-typed');
  const reason = h('input', { id: reasonId, autocomplete: 'off', maxlength: 500 });
  const typed = h('input', { id: typedId, autocomplete: 'off', spellcheck: 'false' });
  const go = h('button', { type: 'button', disabled: true }, `${o.button} ${o.what}`);
  const check = () => (go.disabled = typed.value !== o.target || reason.value.trim() === '');
  reason.addEventListener('input', check);
  typed.addEventListener('input', check);
  const item = h(
    'li',
    { 'data-target': o.target },
    h('strong', {}, o.what),
    h('p', { class: 'muted' }, o.detail),
    h('label', { for: reasonId }, `Why lift ${o.what}`),
    reason,
    h('label', { for: typedId }, `Type ${o.target} to confirm`),
    typed,
    go,
  );
  go.addEventListener('click', async () => {
    go.disabled = true;
    try {
      await o.send(reason.value, typed.value);
      ctx.notify(`${o.button === 'Lift' ? 'Lifted' : 'Released'} ${o.what}.`);
      replace(item, h('p', { class: 'note ok' }, `${o.what}: ${o.button === 'Lift' ? 'lifted' : 'released'}; its next call is served.`));
    } catch (err) {
      ctx.notify(`Not lifted: ${(err as Error).message}`, 'error');
      check();
    }
  });
  return item;
}
