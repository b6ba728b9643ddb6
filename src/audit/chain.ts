import { canonicalJson, sha256Hex } from '../crypto/hash';
import { GENESIS_HASH, type AuditEvent, type AuditRecord, type AuditVerifyResult, type SealedBreak } from './audit-log';
import { trackUnfinishedCalls } from './unfinished-calls';

/**
 * The hash chain, independent of where records are stored, so the file log and a PostgreSQL log build
 * and verify records the same way. The chain proves order and integrity of what is there; it cannot by
 * itself prove that nothing was cut from the end or that the whole chain was not recomputed, which is
 * why callers that know the last acknowledged head pass it to `checkHead`.
 */

/** The event fields a record may carry. Anything else a caller passes is dropped, not stored. */
const EVENT_FIELDS = [
  'type',
  'decision',
  'reason',
  'call_id',
  'server',
  'principal',
  'session',
  'jti',
  'tool',
  'tool_sha256',
  'arguments_mac',
  'credential_ref',
  'lease_id',
  'status',
  'records',
  'operator',
  'detail',
  'policy_version',
  'denied',
  'reasons',
  'since',
  'cost',
  'tokens',
  'request_id',
  'endpoint',
  'token_sha256',
  'seal',
  'bundle_sha256',
  'purge',
] as const satisfies readonly (keyof AuditEvent)[];

export interface ChainHead {
  seq: number;
  hash: string;
}

export const EMPTY_HEAD: ChainHead = Object.freeze({ seq: 0, hash: GENESIS_HASH });

export function recordHash(record: Omit<AuditRecord, 'hash'> | Record<string, unknown>): string {
  const { hash: _ignored, ...rest } = record as Record<string, unknown>;
  return sha256Hex(canonicalJson(rest));
}

/** Builds the next record after `head`. */
export function buildRecord(tenant: string, head: ChainHead, ts: string, event: AuditEvent): AuditRecord {
  const body: Record<string, unknown> = { tenant, seq: head.seq + 1, ts, prev_hash: head.hash };
  for (const field of EVENT_FIELDS) {
    if (event[field] !== undefined) body[field] = event[field];
  }
  return { ...(body as Omit<AuditRecord, 'hash'>), hash: recordHash(body) };
}

export interface ChainVerifier {
  /** Checks the next stored record; returns false once the chain is broken (later records are not checked). */
  next(record: unknown): boolean;
  /** Same, for one JSONL line: a line that does not parse breaks the chain. */
  nextLine(line: string): boolean;
  /** The last record that verified. */
  head(): ChainHead;
  result(): AuditVerifyResult;
  /** Continues from a seal record (already checked): the break before it is acknowledged, not cleared from `sealed`. */
  resume(seal: SealedBreak, head: ChainHead, prevHash: string): void;
}

/**
 * Verifies records in stored order; `pins` are hashes signed checkpoints vouch for, which a chain
 * rewritten and re-hashed from some record on cannot match. `broken.seq` is the position (the seq that was expected) of the
 * first record that fails, except for a fork: a record claiming the seq just verified and linking to the
 * same predecessor (an inserted record that was re-hashed), which names the seq both claim.
 */
export function createChainVerifier(tenant: string, pins?: ReadonlyMap<number, string>): ChainVerifier {
  let head: ChainHead = EMPTY_HEAD;
  let lastPrevHash: string | undefined;
  let broken: { seq: number; problem: string } | undefined;
  const sealed: SealedBreak[] = [];
  // Verified records only: a record that breaks the chain finishes nothing.
  const unfinished = trackUnfinishedCalls();

  function fail(seq: number, problem: string): false {
    broken = { seq, problem };
    return false;
  }

  function next(value: unknown): boolean {
    if (broken) return false;
    const expected = head.seq + 1;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return fail(expected, 'record is not a JSON object');
    const record = value as Record<string, unknown>;
    if (typeof record.hash !== 'string' || typeof record.prev_hash !== 'string' || typeof record.seq !== 'number') {
      return fail(expected, 'record lacks seq, prev_hash or hash');
    }
    if (record.tenant !== tenant) return fail(expected, `tenant field does not match the stream (expected "${tenant}")`);
    if (record.seq !== expected) {
      if (record.seq === head.seq && record.prev_hash === lastPrevHash) {
        return fail(head.seq, `two records claim seq ${head.seq}: one was inserted`);
      }
      return fail(expected, `seq out of order: expected ${expected}, found ${String(record.seq)}`);
    }
    if (record.prev_hash !== head.hash) return fail(expected, 'prev_hash does not link to the previous record');
    if (record.hash !== recordHash(record)) return fail(expected, 'hash does not match the record (record was altered)');
    const pinned = pins?.get(expected);
    if (pinned !== undefined && pinned !== record.hash) {
      return fail(expected, `record differs from the signed checkpoint at seq ${expected} (the chain was recomputed)`);
    }
    lastPrevHash = record.prev_hash;
    head = { seq: expected, hash: record.hash };
    unfinished.note(record);
    return true;
  }

  return {
    next,
    nextLine(line) {
      if (broken) return false;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        return fail(head.seq + 1, 'unparsable line');
      }
      return next(parsed);
    },
    head: () => head,
    result: () => ({ ok: broken === undefined, events: head.seq, head: head.hash, ...(broken ? { broken } : {}), ...(sealed.length > 0 ? { sealed: [...sealed] } : {}), ...unfinished.result() }),
    resume(seal, sealHead, prevHash) {
      sealed.push(seal);
      const pinned = pins?.get(sealHead.seq);
      broken = undefined;
      head = sealHead;
      lastPrevHash = prevHash;
      if (pinned !== undefined && pinned !== sealHead.hash) fail(sealHead.seq, `record differs from the signed checkpoint at seq ${sealHead.seq} (the chain was recomputed)`);
    },
  };
}

/** What kind of damage a verifier problem (the messages above) is, for reports that say which. */
export function problemKind(problem: string): 'edited' | 'deleted' | 'inserted' | 'recomputed' | 'truncated' {
  if (problem.startsWith('record differs from the signed checkpoint')) return 'recomputed';
  if (problem.startsWith('two records claim')) return 'inserted';
  if (problem.startsWith('seq out of order')) return 'deleted';
  if (problem.startsWith('records after seq')) return 'truncated';
  return 'edited';
}

/**
 * Compares a verified chain with the head this process last acknowledged. Catches what the chain alone
 * cannot: records cut from the end, or a chain recomputed from some point on.
 */
export function checkHead(result: AuditVerifyResult, acknowledged: ChainHead): AuditVerifyResult {
  if (!result.ok) return result;
  if (result.events < acknowledged.seq) {
    return { ...result, ok: false, broken: { seq: result.events + 1, problem: `records after seq ${result.events} are missing` } };
  }
  if (result.events > acknowledged.seq) {
    return { ...result, ok: false, broken: { seq: acknowledged.seq + 1, problem: 'more records than were acknowledged (log was rewritten)' } };
  }
  if (result.head !== acknowledged.hash) {
    return { ...result, ok: false, broken: { seq: acknowledged.seq, problem: 'chain head differs from the acknowledged head (log was rewritten)' } };
  }
  return result;
}
