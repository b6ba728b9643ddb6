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

export function authenticate(role: Role, identities: Identities) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const fromCert = (req.socket as TLSSocket).authorized ? identities.fromCertificate?.(req, role) ?? null : null;
    const id = fromCert ?? findByBearer(req.headers.authorization, identities.digests());
    if (!id) {
      const reason = role === 'server' ? 'server_unauthenticated' : 'operator_unauthenticated';
      next(new BrokerError(reason, role === 'server' ? 'MCP server authentication failed' : 'operator authentication failed'));
      return;
    }
    res.locals[role] = id;
    next();
  };
}

export function digestsOf<T>(table: Record<string, T>, pick: (entry: T) => string): Record<string, string> {
  return Object.fromEntries(Object.entries(table).map(([id, entry]) => [id, pick(entry)]));
}
