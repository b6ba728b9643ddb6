/**
 * The page's only way to the broker: same-origin fetches to /console/api, the session cookie sent by
 * the browser (HttpOnly: this script never sees it), the CSRF token from the session answer sent on
 * every state change. A 401 sends the operator back to sign-in; a 404 naming a missing endpoint is
 * "not available on this broker" for the view that asked, not a failure of the page.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly unavailable = false,
  ) {
    super(message);
  }
}

let csrf: string | null = null;
let onSignedOut: () => void = () => undefined;

export function setCsrf(token: string | null): void {
  csrf = token;
}

export function whenSignedOut(handler: () => void): void {
  onSignedOut = handler;
}

export async function api<T = any>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['x-csrf-token'] = csrf;
  const response = await fetch(`/console/api${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin', cache: 'no-store' });
  const json = (await response.json().catch(() => ({}))) as Record<string, unknown>;
  if (response.ok) return json as T;
  const code = typeof json.error === 'string' ? json.error : 'error';
  const message = typeof json.message === 'string' ? json.message : `HTTP ${response.status}`;
  if (response.status === 401 && path !== '/session') {
    setCsrf(null);
    onSignedOut();
  }
  throw new ApiError(response.status, code, message, response.status === 404 && json.endpoint === 'missing');
}

/** The operator API, run by the broker as the signed-in operator. */
export const op = <T = any>(method: 'GET' | 'POST', path: string, body?: unknown) => api<T>(method, `/op${path}`, body);
