import { api, ApiError } from '../api';
import { h, replace } from '../dom';

/**
 * Sign-in: the operator token is posted once to /console/api/session and exchanged for a session
 * cookie; the field is cleared straight away, so the token stays in the page no longer than the
 * request. With mTLS, the browser's operator certificate signs in without a token.
 */
export function renderSignIn(main: HTMLElement, options: { message?: string; onSignedIn: (s: { operator: string; csrf_token: string }) => void }): () => void {
  const input = h('input', { id: 'operator-token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true, 'aria-describedby': 'token-help' });
  const error = h('p', { class: 'error', role: 'alert' });
  const submit = async (token?: string) => {
    replace(error);
    try {
      const session = await api<{ operator: string; csrf_token: string }>('POST', '/session', token === undefined ? {} : { token });
      options.onSignedIn(session);
    } catch (err) {
      replace(error, err instanceof ApiError && err.status === 401 ? 'That operator token (or certificate) is not accepted.' : `Sign-in failed: ${(err as Error).message}`);
      input.focus();
    }
  };
  const form = h(
    'form',
    {
      class: 'card narrow',
      'aria-labelledby': 'sign-in-title',
      onsubmit: (event: Event) => {
        event.preventDefault();
        const token = input.value;
        input.value = '';
        void submit(token);
      },
    },
    h('h1', { id: 'sign-in-title' }, 'Sign in'),
    options.message ? h('p', { class: 'note' }, options.message) : null,
    h('label', { for: 'operator-token' }, 'Operator token'),
    input,
    h('p', { id: 'token-help', class: 'muted' }, 'The token whose SHA-256 is under operators in the policy. It is exchanged for a session cookie and not kept by this page.'),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Sign in'), h('button', { type: 'button', class: 'secondary', onclick: () => void submit() }, 'Use my client certificate')),
    error,
  );
  replace(main, form);
  input.focus();
  return () => undefined;
}
