import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import type { Clock } from '../clock';
import { formatScope, type TokenClaims } from './claims';
import type { KeyRing } from './key-ring';
import { SIGNING_ALG } from './signing-key';

/** Signs Bulkhead access tokens with the key ring's current key. Policy decisions happen before this. */

export const TOKEN_TYPE = 'at+jwt';

export interface TokenIssuerDeps {
  keyRing: Pick<KeyRing, 'signingKey' | 'maxTokenTtlMs'>;
  clock: Clock;
  /** The broker's issuer URL (`iss`). */
  issuer: string;
  /** UUID source for `sid` and `jti`; injectable for tests. */
  random?: () => string;
}

export interface IssueRequest {
  tenant: string;
  principal: string;
  /** The server id. */
  audience: string;
  /** The RFC 8707 resource URL the client named, when it named one (joins `aud`). */
  resource?: string;
  /** RFC 9068 `client_id`; default `tenant/principal`, the canonical id of a policy principal's client. */
  clientId?: string;
  scope: readonly string[];
  /** Kept on refresh, with the session's start; a new session (starting now) otherwise. */
  session?: { id: string; startedAt: number };
  ttlMs: number;
  /** Epoch seconds no token of this session may outlive (session start + session_max_lifetime). */
  sessionEndsAt?: number;
}

/** The session has no whole second of life left: a token for it would be born expired. */
export class SessionEndedError extends Error {
  constructor() {
    super('the session has reached its maximum lifetime');
    this.name = 'SessionEndedError';
  }
}

export interface IssuedToken {
  token: string;
  claims: TokenClaims;
}

export interface TokenIssuer {
  issue(request: IssueRequest): Promise<IssuedToken>;
}

export function createTokenIssuer(deps: TokenIssuerDeps): TokenIssuer {
  const random = deps.random ?? randomUUID;

  return {
    async issue(request) {
      const ttlSeconds = Math.floor(request.ttlMs / 1000);
      // A token that outlives the key ring's window would stop verifying early; refuse to make one.
      if (!(ttlSeconds >= 1) || request.ttlMs > deps.keyRing.maxTokenTtlMs) {
        throw new Error(`token lifetime must be between 1s and ${deps.keyRing.maxTokenTtlMs}ms`);
      }
      if (request.scope.length === 0) throw new Error('a token needs at least one tool in scope');
      const { kid, privateKey } = deps.keyRing.signingKey();
      const iat = Math.floor(deps.clock.now() / 1000);
      // Clamped here, on the same clock reading as iat, so exp can never pass the session's end.
      const exp = Math.min(iat + ttlSeconds, request.sessionEndsAt ?? Number.POSITIVE_INFINITY);
      if (exp <= iat) throw new SessionEndedError();
      const claims: TokenClaims = {
        iss: deps.issuer,
        sub: request.principal,
        aud: request.resource !== undefined && request.resource !== request.audience ? [request.audience, request.resource] : request.audience,
        client_id: request.clientId ?? `${request.tenant}/${request.principal}`,
        tid: request.tenant,
        sid: request.session?.id ?? random(),
        jti: random(),
        scope: formatScope(request.scope),
        auth_time: request.session?.startedAt ?? iat,
        iat,
        nbf: iat,
        exp,
      };
      const token = await new SignJWT({ ...claims }).setProtectedHeader({ alg: SIGNING_ALG, typ: TOKEN_TYPE, kid }).sign(privateKey);
      return { token, claims };
    },
  };
}
