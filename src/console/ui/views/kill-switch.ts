import { api, op } from '../api';
import { h, replace, uid } from '../dom';
import type { ViewContext } from '../main';
import { liftPanels } from './lifts';

type Kind = 'tenant' | 'principal' | 'session' | 'jti';
const KINDS: Array<[Kind, string, string]> = [
  ['tenant', 'Tenant', 'every call of every principal of the tenant, until restored'],
  ['principal', 'Principal', 'tenant/principal: every session of that agent, until lifted'],
  ['session', 'Session', 'one session id (sid): every token of it, until lifted'],
  ['jti', 'Token', 'one token id (jti), until lifted'],
];

/**
 * The kill switch: revoke a tenant, principal, session or token, with the target typed back and a
 * reason; restore a revoked tenant the same way, lift a principal or session revocation and release a
 * quarantined session (lifts.ts). A target the broker has never seen is refused (unknown_target). The broker checks the typed-back target too (the
 * console API refuses a mismatch), and the operator API records each action with the operator's id.
 */
export function renderKillSwitch(main: HTMLElement, ctx: ViewContext): () => void {
  const kind = h('select', { id: 'revoke-kind', name: 'kind' }, ...KINDS.map(([value, label]) => h('option', { value }, label)));
  const help = h('p', { id: 'revoke-kind-help', class: 'muted' });
  const target = h('input', { id: 'revoke-target', name: 'target', required: true, autocomplete: 'off', spellcheck: 'false' });
  const reason = h('input', { id: 'revoke-reason', name: 'reason', required: true, maxlength: 500, autocomplete: 'off' });
  const confirm = h('input', { id: 'revoke-confirm', name: 'confirm', required: true, autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'revoke-confirm-help' });
  const button = h('button', { type: 'submit', class: 'danger', disabled: true }, 'Revoke');
  const result = h('div', { 'aria-live': 'polite' });
  const check = () => {
    help.textContent = KINDS.find(([k]) => k === kind.value)![2];
    button.disabled = !(target.value !== '' && confirm.value === target.value && reason.value.trim() !== '');
  };
  for (const el of [kind, target, reason, confirm]) el.addEventListener('input', check);

  const form = h(
    'form',
    {
      class: 'card',
      'aria-labelledby': 'revoke-title',
      onsubmit: async (event: Event) => {
        event.preventDefault();
        button.disabled = true;
        const k = kind.value as Kind;
        try {
          const answer = await op<{ revoked: Record<string, string>; upstream_leases_revoked: number; effective_at: string }>('POST', '/v1/revoke', { [k]: target.value, reason: reason.value, confirm: confirm.value });
          replace(result, h('p', { class: 'note ok', 'data-testid': 'revoke-result' }, `Revoked ${k} ${target.value} at ${answer.effective_at}; ${answer.upstream_leases_revoked} upstream lease(s) revoked. The next call is denied.`));
          ctx.notify(`Revoked ${k} ${target.value}.`);
          target.value = reason.value = confirm.value = '';
          void refresh();
        } catch (err) {
          replace(result, h('p', { class: 'error', role: 'alert' }, `Not revoked: ${(err as Error).message}`));
        }
        check();
      },
    },
    h('h2', { id: 'revoke-title' }, 'Revoke'),
    h('label', { for: 'revoke-kind' }, 'What to revoke'),
    kind,
    help,
    h('label', { for: 'revoke-target' }, 'Target'),
    target,
    h('label', { for: 'revoke-reason' }, 'Reason'),
    reason,
    h('label', { for: 'revoke-confirm' }, 'Type the target again to confirm'),
    confirm,
    h('p', { id: 'revoke-confirm-help', class: 'muted' }, 'The Revoke button stays off until both match.'),
    h('div', { class: 'actions' }, button),
    result,
  );
  check();

  const revokedList = h('div', { 'data-testid': 'revoked-tenants' });
  const extras = h('div', { class: 'columns' });
  replace(main, h('h1', {}, 'Kill switch'), h('div', { class: 'columns' }, form, h('section', { class: 'card', 'aria-labelledby': 'restore-title' }, h('h2', { id: 'restore-title' }, 'Revoked tenants'), revokedList)), extras);

  async function refresh(): Promise<void> {
    const { tenants } = await api<{ tenants: string[] }>('GET', '/overview');
    const states = await Promise.all(tenants.map((t) => op<{ tenant: string; revoked: boolean }>('GET', `/v1/tenants/${encodeURIComponent(t)}`).catch(() => null)));
    const revoked = states.filter((s): s is { tenant: string; revoked: boolean } => Boolean(s?.revoked));
    replace(revokedList, revoked.length === 0 ? h('p', { class: 'muted' }, 'No tenant is revoked.') : h('ul', { class: 'plain' }, ...revoked.map((s) => restoreItem(s.tenant))));
  }

  function restoreItem(tenant: string): HTMLElement {
    const id = uid('restore');
    const typed = h('input', { id, autocomplete: 'off', spellcheck: 'false' });
    const go = h('button', { type: 'button', disabled: true }, `Restore ${tenant}`);
    typed.addEventListener('input', () => (go.disabled = typed.value !== tenant));
    go.addEventListener('click', async () => {
      go.disabled = true;
      try {
        await op('POST', '/v1/restore', { tenant, confirm: typed.value });
        ctx.notify(`Restored ${tenant}.`);
        void refresh();
      } catch (err) {
        ctx.notify(`Not restored: ${(err as Error).message}`, 'error');
        go.disabled = false;
      }
    });
    return h('li', { 'data-tenant': tenant }, h('strong', {}, tenant), ' ', h('label', { for: id }, `Type ${tenant} to restore`), typed, go);
  }

  void refresh().catch((err) => replace(revokedList, h('p', { class: 'error' }, `Could not load tenants: ${(err as Error).message}`)));
  void liftPanels(ctx).then((panels) => extras.append(...panels));
  return () => undefined;
}
