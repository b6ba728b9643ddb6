import { BrokerError } from '../errors';
import type { TokenIssuer } from '../tokens/issuer';
import type { SessionStore } from './session-store';

/**
 * Makes every issued token known to the session store before it is handed out, so the broker knows a
 * session (and its tenant) from issuance, not from its first allow: a kill of a session that has not
 * made a call yet is still recorded in its tenant's stream. A refresh extends the session's life.
 * If the session cannot be noted the token is not handed out (503 temporarily_unavailable): a session
 * the broker does not know could be killed without its tenant's record.
 */
export function registeringSessions(issuer: TokenIssuer, sessions: Pick<SessionStore, 'touch'>): TokenIssuer {
  return {
    async issue(request) {
      const issued = await issuer.issue(request);
      await sessions.touch(issued.claims.tid, issued.claims.sid, issued.claims.exp * 1000, issued.claims.sub).catch((err) => {
        throw new BrokerError('state_unavailable', 'session state is unavailable; no token was issued', { cause: err });
      });
      return issued;
    },
  };
}
