import { api, setCsrf, whenSignedOut, ApiError } from './api';
import { h, replace } from './dom';
import { renderCharts } from './views/charts';
import { renderInbox } from './views/inbox';
import { renderKillSwitch } from './views/kill-switch';
import { renderSignIn } from './views/sign-in';
import { renderTenant } from './views/tenant';
import { renderTenants } from './views/tenants';

/**
 * The console's shell: who is signed in, the navigation, and one view at a time picked by the URL
 * fragment (#/inbox, #/kill-switch, #/tenants, #/tenants/<id>, #/charts). A view returns a function
 * that stops its polling when the operator leaves it.
 */
export interface ViewContext {
  operator: string;
  notify(message: string, kind?: 'ok' | 'error'): void;
  go(hash: string): void;
}
type View = (main: HTMLElement, ctx: ViewContext, param?: string) => () => void;

const ROUTES: Array<{ hash: string; label: string; view: View }> = [
  { hash: '#/inbox', label: 'Approvals', view: renderInbox },
  { hash: '#/kill-switch', label: 'Kill switch', view: renderKillSwitch },
  { hash: '#/tenants', label: 'Tenants', view: renderTenants },
  { hash: '#/charts', label: 'Charts', view: renderCharts },
];

const main = document.getElementById('main')!;
const nav = document.getElementById('nav')!;
const who = document.getElementById('who')!;
const status = document.getElementById('status')!;
let stop: () => void = () => undefined;
let operator: string | null = null;

function notify(message: string, kind: 'ok' | 'error' = 'ok'): void {
  replace(status, h('p', { class: `note ${kind}` }, message));
}

const ctx = (): ViewContext => ({ operator: operator ?? '', notify, go: (hash) => (location.hash = hash) });

function showSignedOut(message?: string): void {
  stop();
  operator = null;
  nav.hidden = true;
  replace(who);
  stop = renderSignIn(main, { message, onSignedIn: signedIn });
}

function signedIn(session: { operator: string; csrf_token: string }): void {
  operator = session.operator;
  setCsrf(session.csrf_token);
  nav.hidden = false;
  replace(nav, h('ul', {}, ...ROUTES.map((r) => h('li', {}, h('a', { href: r.hash, 'data-route': r.hash }, r.label)))));
  replace(
    who,
    h('span', { class: 'muted' }, 'Signed in as '),
    h('strong', { 'data-testid': 'operator' }, session.operator),
    h('button', { type: 'button', class: 'secondary', onclick: signOut }, 'Sign out'),
  );
  if (!location.hash || location.hash === '#/sign-in') location.hash = '#/inbox';
  else route();
}

async function signOut(): Promise<void> {
  try {
    await api('DELETE', '/session');
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) notify(`Sign-out failed: ${(err as Error).message}`, 'error');
  }
  setCsrf(null);
  location.hash = '#/sign-in';
  showSignedOut('Signed out.');
}

function route(): void {
  if (!operator) return;
  stop();
  replace(status);
  const hash = location.hash || '#/inbox';
  const tenant = /^#\/tenants\/([^/]+)$/.exec(hash);
  const match = tenant ? undefined : ROUTES.find((r) => r.hash === hash);
  for (const a of nav.querySelectorAll('a')) {
    const current = a.getAttribute('data-route') === (tenant ? '#/tenants' : hash);
    if (current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  replace(main);
  stop = tenant ? renderTenant(main, ctx(), decodeURIComponent(tenant[1]!)) : (match ?? ROUTES[0]!).view(main, ctx());
  // Keyboard and screen-reader users land on the new view's heading.
  main.querySelector('h1')?.setAttribute('tabindex', '-1');
  (main.querySelector('h1') as HTMLElement | null)?.focus();
}

window.addEventListener('hashchange', route);
whenSignedOut(() => showSignedOut('Your console session ended. Sign in again.'));
api('GET', '/session').then(signedIn, () => showSignedOut());
