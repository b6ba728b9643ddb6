import { canonicalize } from '../crypto/canonical-json';
import { auditSignatureProblem, type AuditKeySet, type AuditSigner } from './audit-keys';
import type { AuditEvent, AuditRecord } from './audit-log';

/**
 * A purge: the signed statement, kept in the broker's security stream (`_security`), that a tenant's
 * whole audit stream was removed on purpose (`tenant delete --purge-audit`), after an export of it.
 * It is what an auditor finds where the tenant's stream used to be: who purged it, when, the last seq
 * and hash the stream had (so the export bundle can be matched to it) and the SHA-256 of that export.
 * A stream that is gone without such a record was deleted by someone else.
 *
 * The record is written before anything is removed, so a purge interrupted between the two is finished
 * by running it again (the record names the head the stream still has). It is signed with the audit
 * key (Ed25519 over the RFC 8785 canonical JSON of the statement without `sig`), and the security
 * stream's own chain and checkpoints cover it: an edited or forged purge record does not verify.
 */
export const PURGE_KIND = 'bulkhead-audit-purge';

export interface PurgeStatement {
  kind: typeof PURGE_KIND;
  /** The tenant whose stream is purged. */
  tenant: string;
  /** The stream's last record when it was purged. */
  purged_seq: number;
  purged_hash: string;
  /** SHA-256 (hex) of the canonical JSON of the export's audit bundle, and the export record's seq. */
  export_sha256: string;
  export_seq: number;
  operator: string;
  /** ISO-8601, when the purge was decided. */
  at: string;
  kid: string;
  /** base64url Ed25519 signature of canonicalize(statement without sig). */
  sig: string;
}

export type PurgeInput = Omit<PurgeStatement, 'kind' | 'kid' | 'sig'>;

export function purgeEvent(input: PurgeInput, signer: AuditSigner): AuditEvent {
  const unsigned = { kind: PURGE_KIND, ...input, kid: signer.kid } as const;
  const sig = signer.sign(canonicalize(unsigned));
  return {
    type: 'tenant_purge',
    operator: input.operator,
    detail: `audit stream of tenant "${input.tenant}" purged at seq ${input.purged_seq} after an export (bundle sha256 ${input.export_sha256})`,
    purge: { ...unsigned, sig },
  };
}

/** Whether a record of the security stream is a purge record (whatever its signature). */
export function isPurgeRecord(record: AuditRecord): record is AuditRecord & { purge: PurgeStatement } {
  return record.type === 'tenant_purge' && typeof record.purge === 'object' && record.purge !== null;
}

/** Why a purge record is not one the audit keys signed; null when it is. */
export function purgeProblem(record: AuditRecord, keys: AuditKeySet): string | null {
  if (!isPurgeRecord(record)) return 'is a tenant_purge record without a purge statement';
  const { sig, ...unsigned } = record.purge;
  if (unsigned.kind !== PURGE_KIND || typeof unsigned.tenant !== 'string' || !Number.isSafeInteger(unsigned.purged_seq)) return 'is not a purge statement';
  if (record.operator !== unsigned.operator) return 'names another operator than its signed statement (edited)';
  return auditSignatureProblem(keys, unsigned.kid, unsigned, sig);
}
