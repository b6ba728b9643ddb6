import { Router } from 'express';
import type { Logger } from 'pino';
import { z } from 'zod';
import { BrokerError } from '../errors';
import { findByBearer, type Identities } from '../http/authenticate';
import { parseBody } from '../http/parse-body';
import { sendError } from '../http/respond';
import { certificateOperator, cookieName, currentSession, requireCsrf, requireSameOrigin, requireSession, sessionCookie } from './console-guard';
import type { ConsoleSession, ConsoleSessions } from './console-sessions';

// The token is read once, hashed and compared; it is never stored, logged or sent back.
const signInBody = z.object({ token: z.string().min(1).max(4096).optional() }).strict();

export interface SignInDeps {
  sessions: ConsoleSessions;
  operators: Identities;
  logger: Logger;
}

/**
 * POST /api/session exchanges the operator token (or, with mTLS, the operator certificate the browser
 * presented) for a session cookie; GET /api/session tells a reloaded page who is signed in and its CSRF
 * token; DELETE /api/session signs out. Sign-in is same-origin only, so another site cannot sign a
 * browser in as someone else (login CSRF).
 */
export function signInRoutes(deps: SignInDeps): Router {
  const router = Router();
  const view = (s: ConsoleSession) => ({ operator: s.operator, csrf_token: s.csrf, expires_at: new Date(s.expiresAt).toISOString() });

  router.post('/api/session', requireSameOrigin(), (req, res) => {
    try {
      const { token } = parseBody(signInBody, req.body);
      let operator: string | null;
      let proof: string;
      if (token !== undefined) {
        const digests = deps.operators.digests();
        operator = findByBearer(`Bearer ${token}`, digests);
        proof = operator ? `token:${digests[operator]}` : '';
      } else {
        operator = certificateOperator(req, deps.operators);
        proof = 'certificate';
      }
      if (!operator) throw new BrokerError('operator_unauthenticated', 'operator authentication failed');
      const { id, session } = deps.sessions.create(operator, proof);
      res.setHeader('Set-Cookie', sessionCookie(req, id, Math.floor((session.expiresAt - session.createdAt) / 1000)));
      res.locals.operator = operator;
      deps.logger.info({ operator, method: proof === 'certificate' ? 'certificate' : 'token', requestId: res.locals.requestId }, 'console sign-in');
      res.json(view(session));
    } catch (err) {
      sendError(req, res, err, deps.logger);
    }
  });

  router.get('/api/session', requireSession(deps.sessions, deps.operators), (_req, res) => {
    res.json(view(currentSession(res)));
  });

  router.delete('/api/session', requireSession(deps.sessions, deps.operators), requireSameOrigin(), requireCsrf(deps.sessions), (req, res) => {
    deps.sessions.end(res.locals.consoleSessionId as string);
    res.setHeader('Set-Cookie', sessionCookie(req, '', 0));
    deps.logger.info({ operator: currentSession(res).operator, requestId: res.locals.requestId }, 'console sign-out');
    res.json({ signed_out: true, cookie: cookieName(req) });
  });

  return router;
}
