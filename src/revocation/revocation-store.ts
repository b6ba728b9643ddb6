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
}

export interface RevocationStore {
  /** Durable before it resolves: once it has, every check (on every replica) sees it. */
  revoke(record: RevocationRecord): Promise<void>;
  /** Lifts a tenant revocation. Sessions, principals and tokens stay revoked forever. */
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
