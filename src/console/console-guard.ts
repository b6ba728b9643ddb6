import type { TLSSocket } from 'node:tls';
import type { Request, RequestHandler, Response } from 'express';
import { BrokerError } from '../errors';
import type { Identities } from '../http/authenticate';
import type { ConsoleSession, ConsoleSessions } from './console-sessions';

/**
 * The console's two checks, each a middleware that does one thing:
 *
 * - `requireSession`: a cookie naming a live server-side session whose proof still holds against the
 *   live policy (the operator still exists with the same token digest, or the same client certificate
 *   is presented again). Anything else is 401 `operator_unauthenticated`, as on the operator API.
 * - `requireSameOrigin` + `requireCsrf`: every state change (any method but GET/HEAD) must come from a
 *   page of this origin (`Origin` equal to ours, `Sec-Fetch-Site` same-origin when the browser sends it)
 *   and carry the session's synchronizer token in `X-CSRF-Token`. SameSite=Strict already keeps the
 *   cookie off cross-site requests; these hold even where it does not (an old browser, a sibling
 *   subdomain on the same site). Refusals are 403 `csrf_refused`.
 */
export const CSRF_HEADER = 'x-csrf-token';
const SAFE = new Set(['GET', 'HEAD']);

export function cookieName(req: Request): string {
  // The __Secure- prefix makes the browser refuse the cookie unless it was set over TLS with Secure.
  return isTls(req) ? '__Secure-bulkhead_console' : 'bulkhead_console';
}

export function isTls(req: Request): boolean {
  return Boolean((req.socket as TLSSocket).encrypted);
}

export function readCookie(req: Request, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export function sessionCookie(req: Request, value: string, maxAgeSeconds: number): string {
  // Path=/console: the cookie is never sent to /v1/*, which authenticates with bearer tokens only.
  const attributes = [`${cookieName(req)}=${value}`, 'Path=/console', 'HttpOnly', 'SameSite=Strict', `Max-Age=${maxAgeSeconds}`];
  if (isTls(req)) attributes.push('Secure');
  return attributes.join('; ');
}

/** The operator a verified client certificate names, if mTLS is on and the certificate verified. */
export function certificateOperator(req: Request, identities: Identities): string | null {
  return (req.socket as TLSSocket).authorized ? (identities.fromCertificate?.(req, 'operator') ?? null) : null;
}

export function proofHolds(req: Request, session: ConsoleSession, identities: Identities): boolean {
  if (session.proof === 'certificate') return certificateOperator(req, identities) === session.operator;
  const digest = session.proof.startsWith('token:') ? session.proof.slice('token:'.length) : null;
  const current = identities.digests();
  return digest !== null && Object.hasOwn(current, session.operator) && current[session.operator] === digest;
}

export function currentSession(res: Response): ConsoleSession {
  return res.locals.consoleSession as ConsoleSession;
}

export function requireSession(sessions: ConsoleSessions, identities: Identities): RequestHandler {
  return (req, res, next) => {
    const id = readCookie(req, cookieName(req));
    const session = sessions.touch(id);
    if (!session || !proofHolds(req, session, identities)) {
      if (session) sessions.end(id);
      next(new BrokerError('operator_unauthenticated', 'sign in to the console first'));
      return;
    }
    res.locals.consoleSession = session;
    res.locals.consoleSessionId = id;
    // The request log names the operator, as it does on the operator API.
    res.locals.operator = session.operator;
    next();
  };
}

export function requireSameOrigin(): RequestHandler {
  return (req, _res, next) => {
    if (SAFE.has(req.method)) return next();
    const expected = `${req.protocol}://${req.headers.host ?? ''}`;
    const site = req.headers['sec-fetch-site'];
    if (req.headers.origin !== expected || (site !== undefined && site !== 'same-origin')) {
      next(new BrokerError('csrf_refused', 'state changes are accepted only from the console page of this origin'));
      return;
    }
    next();
  };
}

export function requireCsrf(sessions: ConsoleSessions): RequestHandler {
  return (req, res, next) => {
    if (SAFE.has(req.method)) return next();
    if (!sessions.csrfMatches(currentSession(res), req.get(CSRF_HEADER))) {
      next(new BrokerError('csrf_refused', `missing or wrong ${CSRF_HEADER} header`));
      return;
    }
    next();
  };
}
