import type { Clock } from '../clock';
import type { DenyReason } from '../errors';

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
}

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
   * Sessions, principals and tokens stay revoked forever.
   */
  restoreTenant(tenant: string): Promise<boolean>;
  /** The deny reason for the first revocation that matches: tenant, principal, session, then token. */
  check(subject: RevocationSubject): Promise<DenyReason | null>;
  isTenantRevoked(tenant: string): Promise<boolean>;
  close?(): Promise<void>;
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
