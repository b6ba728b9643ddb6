import { Router, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { CALLBACK_PATH, type AuthorizationFlow, type FlowOutcome } from '../../oauth/authorization-flow';
import { messagePage, organizationPage } from '../../oauth/pages';

export interface AuthorizationRouteDeps {
  flow: AuthorizationFlow;
  logger: Logger;
}

/**
 * `GET /authorize` (RFC 6749 §3.1, with PKCE and RFC 8707) and `GET /authorize/callback` (the tenant
 * IdP's answer). Browser-facing: HTML pages for what cannot be redirected, 303s otherwise. Every answer
 * is uncacheable, unframeable, script-free and sends no Referer (a code in a URL must not travel on).
 * A store that cannot answer is a 503 page: the login fails closed and can simply be retried.
 */
export function authorizationRoutes(deps: AuthorizationRouteDeps): Router {
  const router = Router();

  const run = (work: (req: Request) => Promise<FlowOutcome>) => async (req: Request, res: Response) => {
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Pragma', 'no-cache');
    res.setHeader('Content-Security-Policy', "default-src 'none'; form-action 'self'; frame-ancestors 'none'");
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    let outcome: FlowOutcome;
    try {
      outcome = await work(req);
    } catch (err) {
      deps.logger.warn({ err, requestId: res.locals.requestId }, 'authorization endpoint failed closed');
      outcome = { kind: 'page', status: 503, title: 'Sign-in is unavailable', message: `try again shortly (request id ${String(res.locals.requestId)})` };
    }
    send(req, res, outcome);
  };

  router.get('/authorize', run((req) => deps.flow.begin(queryOf(req))));
  router.get(CALLBACK_PATH, run((req) => deps.flow.callback(queryOf(req), (name) => cookieOf(req, name))));
  return router;
}

function send(req: Request, res: Response, outcome: FlowOutcome): void {
  if (outcome.kind === 'redirect') {
    const cookie = outcome.cookie;
    if (cookie && 'clear' in cookie) res.setHeader('Set-Cookie', `${cookie.name}=; Path=${CALLBACK_PATH}; Max-Age=0; HttpOnly; SameSite=Lax${secure(req)}`);
    else if (cookie) res.setHeader('Set-Cookie', `${cookie.name}=${cookie.value}; Path=${CALLBACK_PATH}; Max-Age=${cookie.maxAgeSeconds}; HttpOnly; SameSite=Lax${secure(req)}`);
    res.status(303).setHeader('Location', outcome.location).end();
    return;
  }
  res.type('html');
  if (outcome.kind === 'organization') res.status(200).send(organizationPage('/authorize', outcome.request, outcome.client, outcome.unknown));
  else res.status(outcome.status).send(messagePage(outcome.title, outcome.message));
}

/** The raw query, every repetition kept (express's parser is set to "simple", which would hide them). */
function queryOf(req: Request): URLSearchParams {
  const q = req.originalUrl.indexOf('?');
  return new URLSearchParams(q >= 0 ? req.originalUrl.slice(q + 1) : '');
}

/** The cookie's value, only when it appears exactly once (two would be ambiguous: none is used). */
function cookieOf(req: Request, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  const values = header.split(';').map((part) => part.trim()).filter((part) => part.startsWith(`${name}=`)).map((part) => part.slice(name.length + 1));
  return values.length === 1 && /^[A-Za-z0-9_-]{43}$/.test(values[0]!) ? values[0] : undefined;
}

/** Secure cookies whenever the broker is reached over TLS. */
function secure(req: Request): string {
  return req.secure ? '; Secure' : '';
}
