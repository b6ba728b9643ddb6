import { createHash, timingSafeEqual } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { NextFunction, Request, Response } from 'express';
import { BrokerError } from '../errors';

/**
 * Who is calling: an MCP server (for /v1/authorize, /v1/complete, /v1/manifest) or an operator (for the
 * operator API). Each has its own credential table, so a server key never opens the operator API.
 * A bearer key is hashed and compared against every registered digest in constant time; with mTLS on,
 * a verified client certificate whose SAN names a registered identity is accepted instead.
 */
export type Role = 'server' | 'operator';

export interface Identities {
  /** id → SHA-256 hex of its bearer secret. */
  digests: () => Record<string, string>;
  /** Identity from a verified client certificate, if mTLS is on (set by rotation/ certificate code). */
  fromCertificate?: (req: Request, role: Role) => string | null;
}

export function findByBearer(authorization: string | undefined, digests: Record<string, string>): string | null {
  const match = /^Bearer ([\x21-\x7e]{1,4096})$/.exec(authorization ?? '');
  const presented = createHash('sha256').update(match?.[1] ?? '', 'utf8').digest();
  let found: string | null = null;
  // Visit every entry so the time taken does not depend on which one matches.
  for (const [id, digestHex] of Object.entries(digests)) {
    const expected = Buffer.from(digestHex, 'hex');
    if (expected.length === presented.length && timingSafeEqual(expected, presented) && match) found = id;
  }
  return found;
}

/**
 * Records a refused caller (the broker's security stream, token-denies.ts): `endpoint` is the route
 * group's own path, `token` the token in the body if there was one (only its fingerprint is kept).
 */
export type OnUnauthenticated = (reason: 'server_unauthenticated' | 'operator_unauthenticated', detail: string, attempt: { endpoint: string }, token?: string) => Promise<void>;

export function authenticate(role: Role, identities: Identities, onUnauthenticated?: OnUnauthenticated) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const fromCert = (req.socket as TLSSocket).authorized ? identities.fromCertificate?.(req, role) ?? null : null;
    const id = fromCert ?? findByBearer(req.headers.authorization, identities.digests());
    if (!id) {
      const reason = role === 'server' ? 'server_unauthenticated' : 'operator_unauthenticated';
      const refusal = new BrokerError(reason, role === 'server' ? 'MCP server authentication failed' : 'operator authentication failed');
      // The mount path this middleware sits on (matched case-insensitively, so lowercased): never the caller's URL.
      const endpoint = (req.baseUrl || req.path).toLowerCase().slice(0, 64);
      const token = (req.body as { token?: unknown } | undefined)?.token;
      const recorded = onUnauthenticated?.(reason, refusal.message, { endpoint }, typeof token === 'string' && token.length <= 8192 ? token : undefined) ?? Promise.resolve();
      void recorded.catch(() => undefined).then(() => next(refusal));
      return;
    }
    res.locals[role] = id;
    next();
  };
}

export function digestsOf<T>(table: Record<string, T>, pick: (entry: T) => string): Record<string, string> {
  return Object.fromEntries(Object.entries(table).map(([id, entry]) => [id, pick(entry)]));
}
