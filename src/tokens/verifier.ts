import { createHash } from 'node:crypto';
import { jwtVerify, type JWTHeaderParameters, type JWTPayload, type KeyLike } from 'jose';
import type { Clock } from '../clock';
import { BrokerError } from '../errors';
import { parseScope, type VerifiedToken } from './claims';
import { TOKEN_TYPE } from './issuer';
import type { KeyRing } from './key-ring';
import { SIGNING_ALG } from './signing-key';
import { identityOfPayload, withSignedIdentity, type TokenAttempt } from './token-rejection';

/**
 * Verifies Bulkhead access tokens. Runs on every tool call, so verified tokens are cached by the
 * SHA-256 of the token (an edited token hashes differently and misses). A cache hit still checks the
 * lifetime and that the signing key is still trusted, and the audience is compared on every call.
 * Errors never quote the token or its claims. A refusal of a token whose signature verified (expired,
 * another audience, claims not acceptable) carries the token's identity (token-rejection.ts), so it can
 * be recorded in that tenant's audit stream; any other refusal carries none.
 */

export interface TokenVerifierDeps {
  keyRing: Pick<KeyRing, 'verificationKey'>;
  clock: Clock;
  /** The broker's issuer URL: tokens from anyone else are invalid here. */
  issuer: string;
  clockSkewMs: number;
  /** Most verified tokens kept (least recently used evicted first); 0 disables the cache. */
  cacheSize?: number;
}

export interface TokenVerifier {
  /** `attempt` says where the token was presented; only a verifier that records refusals reads it. */
  verify(token: string, expectedAudience: string, attempt?: TokenAttempt): Promise<VerifiedToken>;
}

interface CacheEntry {
  verified: VerifiedToken;
  kid: string;
  nbf: number;
  exp: number;
}

/** Far above any token we issue; refuses absurd input before hashing or parsing it. */
const MAX_TOKEN_LENGTH = 8192;
const REQUIRED_CLAIMS = ['iss', 'sub', 'aud', 'tid', 'sid', 'jti', 'scope', 'iat', 'nbf', 'exp'];

export function createTokenVerifier(deps: TokenVerifierDeps): TokenVerifier {
  const { keyRing, clock, issuer } = deps;
  const skewSeconds = deps.clockSkewMs / 1000;
  const cacheSize = deps.cacheSize ?? 10_000;
  const cache = new Map<string, CacheEntry>();

  function getKey(header: JWTHeaderParameters): KeyLike {
    const key = typeof header.kid === 'string' ? keyRing.verificationKey(header.kid) : undefined;
    if (!key) throw new BrokerError('token_invalid', 'token signing key is unknown');
    return key;
  }

  /** The same lifetime rule as jose applies (NumericDate seconds, symmetric skew tolerance). */
  function checkLifetime(nbf: number, exp: number): void {
    const now = Math.floor(clock.now() / 1000);
    if (exp <= now - skewSeconds) throw new BrokerError('token_expired', 'token has expired');
    if (nbf > now + skewSeconds) throw new BrokerError('token_invalid', 'token is not valid yet');
  }

  function forAudience(verified: VerifiedToken, expectedAudience: string): VerifiedToken {
    if (verified.audience !== expectedAudience) throw withSignedIdentity(new BrokerError('audience_mismatch', 'token was issued for a different server'), verified);
    return verified;
  }

  function remember(cacheKey: string, entry: CacheEntry): void {
    if (cacheSize <= 0) return;
    cache.set(cacheKey, entry);
    if (cache.size > cacheSize) cache.delete(cache.keys().next().value as string);
  }

  return {
    async verify(token, expectedAudience) {
      if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
        throw new BrokerError('token_invalid', 'token is malformed');
      }
      const cacheKey = createHash('sha256').update(token).digest('base64');
      const hit = cache.get(cacheKey);
      if (hit) {
        cache.delete(cacheKey);
        try {
          checkLifetime(hit.nbf, hit.exp);
        } catch (err) {
          throw withSignedIdentity(err as BrokerError, hit.verified);
        }
        if (keyRing.verificationKey(hit.kid)) {
          cache.set(cacheKey, hit); // most recently used goes last
          return forAudience(hit.verified, expectedAudience);
        }
        // The key is no longer trusted: verify from scratch, which refuses it.
      }

      let payload: JWTPayload;
      let kid: string;
      try {
        const result = await jwtVerify(token, getKey, {
          algorithms: [SIGNING_ALG],
          typ: TOKEN_TYPE,
          issuer,
          requiredClaims: REQUIRED_CLAIMS,
          currentDate: new Date(clock.now()),
          clockTolerance: skewSeconds,
        });
        payload = result.payload;
        kid = result.protectedHeader.kid as string;
      } catch (err) {
        throw publicError(err);
      }
      let entry: CacheEntry;
      try {
        entry = toEntry(payload, kid);
      } catch (err) {
        const identity = identityOfPayload(payload);
        throw identity ? withSignedIdentity(err as BrokerError, identity) : err;
      }
      remember(cacheKey, entry);
      return forAudience(entry.verified, expectedAudience);
    },
  };
}

function toEntry(payload: JWTPayload, kid: string): CacheEntry {
  const { sub, tid, sid, jti, scope, iat, nbf, exp, auth_time } = payload;
  const aud = serverAudience(payload.aud);
  // Tokens signed before RFC 9068's client_id was added name their client only as the principal.
  const clientId = payload.client_id === undefined ? sub : payload.client_id;
  const text = (value: unknown): value is string => typeof value === 'string' && value.length > 0;
  const time = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);
  if (!text(sub) || !text(aud) || !text(clientId) || !text(tid) || !text(sid) || !text(jti) || typeof scope !== 'string' || !time(iat) || !time(nbf) || !time(exp) || (auth_time !== undefined && !time(auth_time))) {
    throw new BrokerError('token_invalid', 'token claims are missing or of the wrong type');
  }
  const verified: VerifiedToken = Object.freeze({
    tenant: tid,
    principal: sub,
    session: sid,
    jti,
    audience: aud,
    ...(Array.isArray(payload.aud) ? { resource: payload.aud[1] } : {}),
    clientId,
    scope: Object.freeze(parseScope(scope)),
    issuedAt: iat * 1000,
    sessionStartedAt: (auth_time ?? iat) * 1000,
    expiresAt: exp * 1000,
  });
  return { verified, kid, nbf, exp };
}

/**
 * The server id: `aud` itself, or the first of `[server id, resource URL]` — the only shapes we sign. A
 * server id never contains ":" and a resource URL always does, so two server ids never pass as one
 * token's audience.
 */
export function serverAudience(aud: unknown): unknown {
  if (typeof aud === 'string') return aud.includes(':') ? undefined : aud;
  if (!Array.isArray(aud) || aud.length !== 2) return undefined;
  const [id, url] = aud as unknown[];
  return typeof id === 'string' && !id.includes(':') && typeof url === 'string' && /^https?:\/\//.test(url) ? id : undefined;
}

/**
 * jose's errors carry the decoded payload; keep only their code as the private cause. jose checks the
 * claims only after the signature verified, so a claim failure's payload is one we signed: its identity
 * is kept on the refusal (never the payload itself).
 */
function publicError(err: unknown): BrokerError {
  if (err instanceof BrokerError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const cause = new Error(typeof code === 'string' ? code : 'token verification failed');
  const signed = (refusal: BrokerError) => {
    const identity = identityOfPayload((err as { payload?: unknown }).payload);
    return identity ? withSignedIdentity(refusal, identity) : refusal;
  };
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return signed(new BrokerError('token_expired', 'token has expired', { cause }));
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return new BrokerError('token_invalid', 'token signature is invalid', { cause });
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return new BrokerError('token_invalid', 'token algorithm is not allowed', { cause });
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return signed(new BrokerError('token_invalid', 'token claims are not acceptable', { cause }));
    default:
      return new BrokerError('token_invalid', 'token is malformed', { cause });
  }
}
