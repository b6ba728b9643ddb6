import { canonicalize } from '../crypto/canonical-json';
import { auditSignatureProblem, type AuditKeySet, type AuditSigner } from './audit-keys';
import type { AuditRecord } from './audit-log';
import { buildRecord, recordHash, type ChainHead } from './chain';

/**
 * A seal: the operator's signed statement that a tenant's stream was found broken, recorded in the
 * stream itself as the first record of a new segment, so the tenant can be served (and audited) again
 * without anyone editing a file.
 *
 * The seal record chains to the bytes before it, whatever they are: its `prev_hash` is the SHA-256 of
 * the whole file up to the seal line. Nothing before it is changed or removed; the broken region stays
 * in place as evidence, and the seal says where the chain last verified (`verified_seq`,
 * `verified_hash`), where it broke (`break_seq`), what was found there (`found`), who sealed it and why.
 * Its seq is past every seq the region and the signed checkpoints ever reached, so seqs stay unique.
 *
 * It is signed with the audit key (Ed25519 over the RFC 8785 canonical JSON of `sealPayload`): a forged
 * seal — someone with write access to the audit dir appending one to hide an edit — does not verify,
 * so neither the writer nor `audit verify` accepts it, and the break is reported as it was.
 */
export const SEAL_KIND = 'bulkhead-audit-seal';

export interface SealStatement {
  kind: typeof SEAL_KIND;
  /** Bytes of the stream before the seal line; `prev_hash` is their SHA-256. */
  region_bytes: number;
  /** The last record that verified before the break (0 and the genesis hash: none did). */
  verified_seq: number;
  verified_hash: string;
  /** The seq where the chain broke (the first one that did not verify). */
  break_seq: number;
  /** What was found there, as the verifier reported it. */
  found: string;
  kid: string;
  /** base64url Ed25519 signature of canonicalize(sealPayload(record)). */
  sig: string;
}

export interface SealInput {
  tenant: string;
  seq: number;
  ts: string;
  region: { bytes: number; sha256: string };
  verified: ChainHead;
  breakSeq: number;
  found: string;
  operator: string;
  reason: string;
  requestId?: string;
}

/** What the seal's signature covers: everything in the record but `hash` and the signature itself. */
function sealPayload(fields: { tenant: string; seq: number; ts: string; prev_hash: string; operator?: string; detail?: string; request_id?: string; seal: Omit<SealStatement, 'sig'> }) {
  const { kind, region_bytes, verified_seq, verified_hash, break_seq, found, kid } = fields.seal;
  return {
    kind,
    tenant: fields.tenant,
    seq: fields.seq,
    ts: fields.ts,
    prev_hash: fields.prev_hash,
    operator: fields.operator ?? null,
    reason: fields.detail ?? null,
    request_id: fields.request_id ?? null,
    region_bytes,
    verified_seq,
    verified_hash,
    break_seq,
    found,
    kid,
  };
}

export function buildSealRecord(input: SealInput, signer: AuditSigner): AuditRecord {
  const unsigned: Omit<SealStatement, 'sig'> = {
    kind: SEAL_KIND,
    region_bytes: input.region.bytes,
    verified_seq: input.verified.seq,
    verified_hash: input.verified.hash,
    break_seq: input.breakSeq,
    found: input.found,
    kid: signer.kid,
  };
  const sig = signer.sign(canonicalize(sealPayload({ tenant: input.tenant, seq: input.seq, ts: input.ts, prev_hash: input.region.sha256, operator: input.operator, detail: input.reason, request_id: input.requestId, seal: unsigned })));
  const prev: ChainHead = { seq: input.seq - 1, hash: input.region.sha256 };
  return buildRecord(input.tenant, prev, input.ts, {
    type: 'seal',
    operator: input.operator,
    detail: input.reason,
    ...(input.requestId ? { request_id: input.requestId } : {}),
    seal: { ...unsigned, sig },
  });
}

/** Whether a parsed line is shaped like a seal at all (cheap: before any hashing or signature check). */
export function looksLikeSeal(value: unknown): value is AuditRecord & { seal: SealStatement } {
  const record = value as AuditRecord | null;
  return typeof record === 'object' && record !== null && record.type === 'seal' && typeof record.seal === 'object' && record.seal !== null;
}

/**
 * Why `value`, found at byte `region.bytes` of tenant's stream after `region` (those bytes' SHA-256),
 * is not a seal the audit keys signed for exactly that place; null when it is.
 */
export function sealProblem(value: unknown, tenant: string, keys: AuditKeySet, region: { bytes: number; sha256: string }, after: ChainHead): string | null {
  if (!looksLikeSeal(value)) return 'is not a seal';
  const record = value;
  const seal = record.seal;
  if (record.tenant !== tenant) return `names tenant "${String(record.tenant)}"`;
  if (seal.kind !== SEAL_KIND || typeof seal.found !== 'string' || typeof seal.verified_hash !== 'string') return 'is not a seal statement';
  if (!Number.isSafeInteger(record.seq) || !Number.isSafeInteger(seal.region_bytes) || !Number.isSafeInteger(seal.verified_seq) || !Number.isSafeInteger(seal.break_seq)) return 'lacks its seq or region';
  if (seal.region_bytes !== region.bytes || record.prev_hash !== region.sha256) return 'does not cover the bytes before it (moved or the region was changed after sealing)';
  if (seal.verified_seq !== after.seq || seal.verified_hash !== after.hash) return `names seq ${seal.verified_seq} as the last verified record, but the chain verified through seq ${after.seq}`;
  if (record.seq <= after.seq) return 'does not start past the records before it';
  if (record.hash !== recordHash(record)) return 'hash does not match the record (record was altered)';
  const { sig, ...unsigned } = seal;
  return auditSignatureProblem(keys, seal.kid, sealPayload({ ...record, seal: unsigned }), sig);
}
