import type { BrokerError } from '../errors';

/**
 * Who a refused token speaks for — known only when its signature verified (it is expired, for another
 * server, not valid yet, revoked…). A refusal that carries one is recorded in that tenant's audit
 * stream; one without (the signature did not verify, or never got checked) has no tenant anyone can
 * trust, and goes to the broker's security stream instead. The claims of a token whose signature did
 * not verify are never attached: they are whatever the sender wrote.
 */
export interface SignedIdentity {
  tenant: string;
  principal: string;
  session: string;
  jti: string;
}

const signed = new WeakMap<BrokerError, SignedIdentity>();

/** Marks `err` as the refusal of a token whose signature verified, speaking for `identity`. */
export function withSignedIdentity<E extends BrokerError>(err: E, identity: SignedIdentity): E {
  const { tenant, principal, session, jti } = identity; // these four only, whatever object carried them
  signed.set(err, { tenant, principal, session, jti });
  return err;
}

export function signedIdentityOf(err: unknown): SignedIdentity | undefined {
  return typeof err === 'object' && err !== null ? signed.get(err as BrokerError) : undefined;
}

/** The identity of a signature-verified payload, if it names all of it as non-empty strings. */
export function identityOfPayload(payload: unknown): SignedIdentity | undefined {
  const p = (payload ?? {}) as Record<string, unknown>;
  const text = (value: unknown): value is string => typeof value === 'string' && value.length > 0;
  return text(p.tid) && text(p.sub) && text(p.sid) && text(p.jti) ? { tenant: p.tid, principal: p.sub, session: p.sid, jti: p.jti } : undefined;
}

/** Where a token was presented, for the record of its refusal. Server-chosen or fixed text only. */
export interface TokenAttempt {
  /** The endpoint, e.g. "/v1/manifest". */
  endpoint: string;
  /** The MCP server that presented it, when one authenticated (or the audience a token endpoint read). */
  server?: string;
  call_id?: string;
  /** As recorded for /v1/authorize: a tool the server serves, or "(unknown)" with tool_sha256. */
  tool?: string;
  tool_sha256?: string;
}

/** A tenant vouched for by a signature (ours, or the tenant IdP's), and as much of who as is known. */
export type TenantIdentity = Pick<SignedIdentity, 'tenant'> & Partial<Omit<SignedIdentity, 'tenant'>>;

/** What token code records a refusal through (src/audit/token-denies.ts implements it). */
export interface TokenRefusals {
  /** A token whose signature verified, refused for `reason` (e.g. revoked): into that tenant's stream. */
  refusedSigned(identity: TenantIdentity, reason: string, attempt: TokenAttempt, detail?: string): Promise<void>;
  /** A refusal no signature vouches for: into the security stream, `token` only as its fingerprint. */
  withoutTenant(reason: string, detail: string, attempt: TokenAttempt, token?: string): Promise<void>;
}
