import { createHash } from 'node:crypto';
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose';
import { InvalidTokenError, ServerError } from '@modelcontextprotocol/sdk/server/auth/errors.js';
import type { OAuthTokenVerifier } from '@modelcontextprotocol/sdk/server/auth/provider.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { systemClock, type Clock } from '../clock';
import { withDeadline } from '../deadline';
import { brokerAddress, unixSocketAgent } from '../net/broker-address';
import { createKeepAliveTransport } from '../net/keep-alive-http';

/**
 * An `OAuthTokenVerifier` for the SDK's `requireBearerAuth`: checks a Bulkhead access token locally
 * (signature against the broker's JWKS, issuer, `typ: at+jwt`, lifetime) and — which the SDK does not —
 * that its audience is this MCP server. Revocation is not checked here: that needs the broker, and it
 * is checked on every tool call by /v1/authorize and on every tools/list by /v1/manifest.
 *
 * Keys come from jose's remote JWKS: cached, refetched when a token names an unknown `kid` (at most once
 * per cooldown, so a flood of made-up kids cannot flood the broker), every fetch bounded by a timeout,
 * concurrent refetches sharing one request. Errors never quote the token or its claims.
 *
 * A verified token is remembered (keyed by its SHA-256, never the token itself) until its `exp`, so an
 * agent's every request does not pay an EdDSA verify: a bounded map, oldest dropped first. This caches
 * the signature check only. Revocation is still the broker's decision on every tools/call and
 * tools/list, and when the broker answers that a token is revoked or expired the wrapper calls
 * `forget()`, so the next request is verified afresh.
 */

export interface BulkheadTokenVerifierOptions {
  /** Where this MCP server reaches Bulkhead (a URL or `unix:/path`, see broker-address.ts); the JWKS is fetched from here. */
  brokerUrl: string | URL;
  /** This MCP server's id in the policy: the only audience accepted. */
  serverId: string;
  /** The broker's `iss`; when absent it is read once from the broker's RFC 8414 metadata. */
  issuer?: string;
  /** Per fetch (JWKS, metadata); default 5000 ms. */
  timeoutMs?: number;
  /** Least time between two JWKS refetches for unknown kids; default 30 s. */
  jwksCooldownMs?: number;
  clockToleranceSeconds?: number;
  /** Most verified tokens remembered; default 10000, 0 disables the cache. */
  cacheEntries?: number;
  clock?: Clock;
}

/** What `AuthInfo.extra` carries for a verified Bulkhead token. */
export interface BulkheadIdentity {
  tenant: string;
  principal: string;
  session: string;
  jti: string;
}

const MAX_TOKEN_LENGTH = 8192;
/** The broker's RFC 8414 metadata is a few hundred bytes; anything far larger is not it. */
const MAX_METADATA_BYTES = 1 << 20;
const REQUIRED_CLAIMS = ['iss', 'sub', 'aud', 'tid', 'sid', 'jti', 'scope', 'exp'];

export interface BulkheadTokenVerifier extends OAuthTokenVerifier {
  /** The broker's issuer identifier (configured, or discovered once from its metadata). */
  issuer(): Promise<string>;
  /** Drops a token from the verified-token cache (the broker said it is revoked or expired). */
  forget(token: string): void;
  /** How many verified tokens are remembered (for metrics and tests). */
  cacheSize(): number;
}

/** A verified token's AuthInfo, without the token, and when it stops being valid (epoch ms). */
interface Verified {
  auth: Omit<AuthInfo, 'token'>;
  validUntil: number;
}

const tokenKey = (token: string): string => createHash('sha256').update(token).digest('base64url');

export function createBulkheadTokenVerifier(options: BulkheadTokenVerifierOptions): BulkheadTokenVerifier {
  const { base, socketPath } = brokerAddress(options.brokerUrl);
  const timeoutMs = options.timeoutMs ?? 5000;
  const clock = options.clock ?? systemClock;
  // The keep-alive pool, not fetch, for the metadata: the same request goes over TCP or the broker's unix socket.
  const transport = createKeepAliveTransport({ maxBodyBytes: MAX_METADATA_BYTES, socketPath });
  const keys = createRemoteJWKSet(new URL('/.well-known/jwks.json', base), {
    timeoutDuration: timeoutMs,
    cooldownDuration: options.jwksCooldownMs ?? 30_000,
    ...(socketPath !== undefined ? { agent: unixSocketAgent(socketPath) } : {}),
  });
  let issuer: Promise<string> | null = options.issuer !== undefined ? Promise.resolve(options.issuer) : null;

  /** Discovered once; concurrent first calls share the request, and a failure is retried next time. */
  function brokerIssuer(): Promise<string> {
    issuer ??= (async () => {
      const answer = await withDeadline(timeoutMs, 'broker metadata request', undefined, (signal) => transport.request({ method: 'GET', url: new URL('/.well-known/oauth-authorization-server', base), signal }));
      const body = JSON.parse(answer.text) as { issuer?: unknown } | null;
      if (answer.status !== 200 || typeof body?.issuer !== 'string') throw new Error('no issuer in the broker metadata');
      return body.issuer;
    })().catch((err: unknown) => {
      issuer = null;
      throw err;
    });
    return issuer;
  }

  const cacheEntries = options.cacheEntries ?? 10_000;
  const verified = new Map<string, Verified>();

  function remembered(key: string): Omit<AuthInfo, 'token'> | null {
    const entry = verified.get(key);
    if (!entry) return null;
    if (clock.now() >= entry.validUntil) {
      verified.delete(key);
      return null;
    }
    return entry.auth;
  }

  function remember(key: string, auth: Omit<AuthInfo, 'token'>): void {
    if (cacheEntries <= 0) return;
    // Oldest first: a Map iterates in insertion order.
    while (verified.size >= cacheEntries) verified.delete(verified.keys().next().value as string);
    verified.set(key, { auth, validUntil: (auth.expiresAt ?? 0) * 1000 });
  }

  return {
    issuer: brokerIssuer,
    forget(token: string) {
      verified.delete(tokenKey(token));
    },
    cacheSize: () => verified.size,
    async verifyAccessToken(token: string): Promise<AuthInfo> {
      if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) throw new InvalidTokenError('token is malformed');
      const key = tokenKey(token);
      const known = remembered(key);
      if (known) return { ...known, token };
      let expectedIssuer: string;
      try {
        expectedIssuer = await brokerIssuer();
      } catch {
        throw new ServerError('the authorization server could not be reached to verify tokens');
      }
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, keys, {
          algorithms: ['EdDSA'],
          typ: 'at+jwt',
          issuer: expectedIssuer,
          audience: options.serverId,
          requiredClaims: REQUIRED_CLAIMS,
          currentDate: new Date(clock.now()),
          clockTolerance: options.clockToleranceSeconds ?? 30,
        }));
      } catch (err) {
        throw publicError(err);
      }
      const { sub, tid, sid, jti, scope, exp } = payload;
      if (typeof sub !== 'string' || typeof tid !== 'string' || typeof sid !== 'string' || typeof jti !== 'string' || typeof scope !== 'string' || typeof exp !== 'number') {
        throw new InvalidTokenError('token claims are missing or of the wrong type');
      }
      const identity: BulkheadIdentity = Object.freeze({ tenant: tid, principal: sub, session: sid, jti });
      const auth = { clientId: sub, scopes: Object.freeze(scope.split(' ').filter(Boolean)) as string[], expiresAt: exp, extra: Object.freeze({ bulkhead: identity }) };
      remember(key, auth);
      return { ...auth, token };
    },
  };
}

/** The identity a Bulkhead verifier put on a request's AuthInfo, or null if it is not one. */
export function identityOf(auth: Pick<AuthInfo, 'extra'> | undefined): BulkheadIdentity | null {
  const identity = auth?.extra?.bulkhead as Partial<BulkheadIdentity> | undefined;
  if (!identity || typeof identity.tenant !== 'string' || typeof identity.principal !== 'string' || typeof identity.session !== 'string') return null;
  return identity as BulkheadIdentity;
}

/** jose errors carry the decoded payload; only a fixed message leaves here. */
function publicError(err: unknown): Error {
  const e = err as { code?: unknown; claim?: unknown } | null;
  switch (e?.code) {
    case 'ERR_JWT_EXPIRED':
      return new InvalidTokenError('token has expired');
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (e.claim === 'aud') return new InvalidTokenError('token was issued for a different server');
      if (e.claim === 'iss') return new InvalidTokenError('token was not issued by this server\'s authorization server');
      return new InvalidTokenError('token claims are not acceptable');
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return new InvalidTokenError('token signing key is unknown');
    case 'ERR_JWKS_TIMEOUT':
    case 'ERR_JWKS_INVALID':
      return new ServerError('the authorization server\'s keys could not be fetched');
    default:
      // jose's own errors are about the token; anything else (a refused connection) is about the broker.
      return typeof e?.code === 'string' && e.code.startsWith('ERR_J') ? new InvalidTokenError('token is invalid') : new ServerError('the authorization server\'s keys could not be fetched');
  }
}
