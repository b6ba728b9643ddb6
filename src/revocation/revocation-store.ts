import type { Clock } from '../clock';
import { BrokerError, type DenyReason } from '../errors';

/** What an operator can revoke. Principals are tenant-scoped, so their key carries the tenant. */
export type RevocationTarget =
  | { kind: 'tenant'; tenant: string }
  | { kind: 'principal'; tenant: string; principal: string }
  | { kind: 'session'; session: string }
  | { kind: 'jti'; jti: string };

export interface RevocationRecord {
  target: RevocationTarget;
  reason?: string;
  /** Epoch ms when the revocation took effect. */
  at: number;
  /**
   * Epoch ms after which it stops denying (a revocation with a TTL); absent: until lifted. Never on a
   * tenant revocation, which has its own way back (restore, with a "not before").
   */
  expiresAt?: number;
  /** The tenant whose stream recorded it, when known (a session's or principal's; not a bare jti's): for listing and lifting. */
  tenant?: string;
}

/** The targets that can be lifted one by one (a tenant is restored instead). */
export type LiftableTarget = Exclude<RevocationTarget, { kind: 'tenant' }>;

/** The identifying claims of a verified token that revocation is checked against. */
export interface RevocationSubject {
  tid: string;
  sub: string;
  sid: string;
  jti: string;
  /** Issued-at, epoch seconds: a tenant revocation stays in force for tokens issued at or before it. */
  iat: number;
}

export interface RevocationStore {
  /** Durable before it resolves: once it has, every check (on every replica) sees it. */
  revoke(record: RevocationRecord): Promise<void>;
  /**
   * Lifts a tenant revocation for tokens issued after it: the revoke becomes the tenant's "not before",
   * so a token with `iat` at or before the latest revoke's second stays `tenant_revoked` for good.
   */
  restoreTenant(tenant: string): Promise<boolean>;
  /**
   * Lifts a principal, session or token revocation entirely (the same tokens work again: this undoes a
   * mistake). Durable, and in effect on every replica, before it resolves; false when it was not in force.
   */
  lift(target: LiftableTarget): Promise<RevocationRecord | null>;
  /** Every revocation in force at `now` (expired ones are not), tenants included. */
  list(now: number): Promise<RevocationRecord[]>;
  /** The deny reason for the first revocation that matches: tenant, principal, session, then token. */
  check(subject: RevocationSubject): Promise<DenyReason | null>;
  isTenantRevoked(tenant: string): Promise<boolean>;
  close?(): Promise<void>;
}

/** Whether a revocation with this expiry still denies at `now`. */
export function inForce(expiresAt: number | undefined, now: number): boolean {
  return expiresAt === undefined || expiresAt > now;
}

export function revocationKey(target: RevocationTarget): string {
  switch (target.kind) {
    case 'tenant':
      return `tenant:${target.tenant}`;
    case 'principal':
      return `principal:${target.tenant}/${target.principal}`;
    case 'session':
      return `session:${target.session}`;
    case 'jti':
      return `jti:${target.jti}`;
  }
}

/** The keys a token is checked against, in the order their reasons take precedence. */
export function subjectKeys(subject: RevocationSubject): Array<[string, DenyReason]> {
  return [
    [`tenant:${subject.tid}`, 'tenant_revoked'],
    [`principal:${subject.tid}/${subject.sub}`, 'principal_revoked'],
    [`session:${subject.sid}`, 'session_revoked'],
    [`jti:${subject.jti}`, 'token_revoked'],
  ];
}

/** The "not before" second a tenant revoke made at `atMs` leaves behind (JWT `iat` is whole seconds). */
export function notBeforeOf(atMs: number): number {
  return Math.floor(atMs / 1000);
}

/**
 * Restore answers only once the revoke's second is over, so a token issued after the answer has
 * `iat` > not-before and works (one issued in that same second could not be told from an old one).
 * Waits at most a second, on the real timer; the clock says how long.
 */
export async function untilPastSecond(clock: Clock, notBefore: number): Promise<void> {
  const waitMs = (notBefore + 1) * 1000 - clock.now();
  if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(waitMs, 1000)));
}

/** A complete target: its kind and that kind's non-empty ids (journal lines and API input alike). */
export function isRevocationTarget(value: unknown): value is RevocationTarget {
  if (value === null || typeof value !== 'object') return false;
  const t = value as Record<string, unknown>;
  const id = (v: unknown) => typeof v === 'string' && v.length > 0;
  switch (t.kind) {
    case 'tenant':
      return id(t.tenant);
    case 'principal':
      return id(t.tenant) && id(t.principal);
    case 'session':
      return id(t.session);
    case 'jti':
      return id(t.jti);
    default:
      return false;
  }
}

/** What every store refuses before it writes anything: an incomplete target, or a TTL on a tenant revocation. */
export function assertRevocation(record: RevocationRecord): void {
  if (!isRevocationTarget(record.target)) throw new BrokerError('bad_request', 'a revocation needs exactly one complete target');
  if (record.expiresAt !== undefined && (record.target.kind === 'tenant' || !Number.isFinite(record.expiresAt))) {
    throw new BrokerError('bad_request', 'a TTL applies to principal, session and token revocations; a tenant revocation lasts until restored');
  }
}
