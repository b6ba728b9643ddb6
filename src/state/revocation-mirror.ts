import type { Clock } from '../clock';
import type { DenyReason } from '../errors';
import { inForce, type RevocationSubject } from '../revocation/revocation-store';

/**
 * One replica's in-memory copy of the shared revocation table, which every authorize checks without any
 * I/O. Changes arrive three ways — applied locally by the replica that made them, pushed over Redis
 * pub/sub, and re-read from PostgreSQL on (re)subscribe and periodically — possibly more than once and
 * out of order. Each carries its row's version, and the mirror keeps the highest version per key, so
 * whatever the order, every replica converges on what PostgreSQL holds.
 */
export interface RevocationChange {
  /** `revocationKey(target)`: tenant:…, principal:tenant/…, session:…, jti:… */
  key: string;
  active: boolean;
  version: number;
  /** Tenant keys: the latest revoke's second. Tokens with iat ≤ it stay revoked when the row is lifted. */
  notBefore?: number;
  /** Epoch ms after which an active revocation stops denying (a TTL); absent: until lifted. */
  expiresAt?: number;
}

export interface RevocationMirror {
  /** Applies a change unless the mirror already holds that version or a newer one; true if applied. */
  apply(change: RevocationChange): boolean;
  /** Same precedence as subjectKeys(): tenant, principal, session, then token. */
  check(subject: RevocationSubject): DenyReason | null;
  isTenantRevoked(tenant: string): boolean;
  /** Number of keys currently revoked. */
  size(): number;
}

/** Expiry is judged on this replica's clock at each check, so an expired revocation stops denying without any message. */
export function createRevocationMirror(clock: Pick<Clock, 'now'>): RevocationMirror {
  const entries = new Map<string, { active: boolean; version: number; notBefore?: number; expiresAt?: number }>();
  const inEffect = (entry: { active: boolean; expiresAt?: number } | undefined) => entry?.active === true && (entry.expiresAt === undefined || inForce(entry.expiresAt, clock.now()));
  const active = (key: string) => inEffect(entries.get(key));

  return {
    apply(change) {
      const known = entries.get(change.key);
      if (known && known.version >= change.version) return false;
      entries.set(change.key, { active: change.active, version: change.version, notBefore: change.notBefore, expiresAt: change.expiresAt });
      return true;
    },
    check(subject) {
      const tenant = entries.get(`tenant:${subject.tid}`);
      if (tenant && (tenant.active || subject.iat <= (tenant.notBefore ?? Number.NEGATIVE_INFINITY))) return 'tenant_revoked';
      if (active(`principal:${subject.tid}/${subject.sub}`)) return 'principal_revoked';
      if (active(`session:${subject.sid}`)) return 'session_revoked';
      if (active(`jti:${subject.jti}`)) return 'token_revoked';
      return null;
    },
    isTenantRevoked: (tenant) => active(`tenant:${tenant}`),
    size() {
      let n = 0;
      for (const entry of entries.values()) if (inEffect(entry)) n++;
      return n;
    },
  };
}
