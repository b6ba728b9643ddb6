import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
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
  fromCertificate?: (req: IncomingMessage, role: Role) => string | null;
}

// Decoded once per digest table (a policy reload makes a new one), not once per request.
const decoded = new WeakMap<Record<string, string>, Array<[string, Buffer]>>();

function decodedDigests(digests: Record<string, string>): Array<[string, Buffer]> {
  let entries = decoded.get(digests);
  if (!entries) {
    entries = Object.entries(digests).map(([id, hex]) => [id, Buffer.from(hex, 'hex')]);
    decoded.set(digests, entries);
  }
  return entries;
}

export function findByBearer(authorization: string | undefined, digests: Record<string, string>): string | null {
  const match = /^Bearer ([\x21-\x7e]{1,4096})$/.exec(authorization ?? '');
  const presented = createHash('sha256').update(match?.[1] ?? '', 'utf8').digest();
  let found: string | null = null;
  // Visit every entry so the time taken does not depend on which one matches.
  for (const [id, expected] of decodedDigests(digests)) {
    if (expected.length === presented.length && timingSafeEqual(expected, presented) && match) found = id;
  }
  return found;
}

/**
 * Records a refused caller (the broker's security stream, token-denies.ts): `endpoint` is the route
 * group's own path, `token` the token in the body if there was one (only its fingerprint is kept).
 */
export type OnUnauthenticated = (reason: 'server_unauthenticated' | 'operator_unauthenticated', detail: string, attempt: { endpoint: string }, token?: string) => Promise<void>;

/** The caller's registered id (client certificate first, then bearer key), or null. */
export function identify(role: Role, identities: Identities, req: IncomingMessage): string | null {
  const fromCert = (req.socket as TLSSocket).authorized ? identities.fromCertificate?.(req, role) ?? null : null;
  return fromCert ?? findByBearer(req.headers.authorization, identities.digests());
}

/**
 * The role's 401, once the refusal is recorded (never failing: a lost record does not turn a 401 into
 * anything else). `endpoint` is the route's own path, never the caller's URL; `body` the parsed body, if any.
 */
export async function refuseUnauthenticated(role: Role, endpoint: string, body: unknown, onUnauthenticated?: OnUnauthenticated): Promise<BrokerError> {
  const reason = role === 'server' ? 'server_unauthenticated' : 'operator_unauthenticated';
  const refusal = new BrokerError(reason, role === 'server' ? 'MCP server authentication failed' : 'operator authentication failed');
  const token = (body as { token?: unknown } | undefined)?.token;
  await onUnauthenticated?.(reason, refusal.message, { endpoint }, typeof token === 'string' && token.length <= 8192 ? token : undefined).catch(() => undefined);
  return refusal;
}

export function authenticate(role: Role, identities: Identities, onUnauthenticated?: OnUnauthenticated) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const id = identify(role, identities, req);
    if (!id) {
      // The mount path this middleware sits on (matched case-insensitively, so lowercased): never the caller's URL.
      const endpoint = (req.baseUrl || req.path).toLowerCase().slice(0, 64);
      void refuseUnauthenticated(role, endpoint, req.body, onUnauthenticated).then(next);
      return;
    }
    res.locals[role] = id;
    next();
  };
}

export function digestsOf<T>(table: () => Record<string, T>, pick: (entry: T) => string): () => Record<string, string> {
  let source: Record<string, T> | undefined;
  let digests: Record<string, string> = {};
  return () => {
    const current = table();
    if (current !== source) {
      digests = Object.fromEntries(Object.entries(current).map(([id, entry]) => [id, pick(entry)]));
      source = current;
    }
    return digests;
  };
}
