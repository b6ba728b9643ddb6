import type { AuditLog, AuditVerifyResult } from './audit-log';
import type { AuditKeySet } from './audit-keys';
import { problemKind, type ChainHead } from './chain';
import { checkpointProblem, type Checkpoint, type CheckpointRule } from './checkpoint';

/**
 * What `audit verify` concludes about one tenant from its stream, its signed checkpoints and the audit
 * public keys, and nothing else (offline: no running broker's memory is needed). In order:
 * 1. every stored checkpoint is signed by an audit key for this tenant (else `checkpoint_invalid`);
 * 2. the stream exists if a checkpoint says it has records (else `missing_stream`), and something at
 *    all exists for a tenant that was named (else `unknown_tenant`);
 * 3. the chain verifies, with each checkpointed seq pinned to its signed hash (`edited`, `deleted`,
 *    `inserted`, or `recomputed` when a well-formed chain disagrees with a signature);
 * 4. the stream reaches the last checkpoint (else `truncated`: a tail cut);
 * 5. the checkpoint rule held: a checkpoint at or after every multiple of `every` the stream reached
 *    (else `checkpoint_missing`: checkpoints were removed, or an old checkpoint file put back), and no
 *    record past the last checkpoint older than twice the interval (else `unsealed`: the broker died
 *    without its shutdown checkpoint, or the newest checkpoints were cut);
 * 6. the head an auditor kept (`expectHead`) is still there, with the same hash (else `head_mismatch`).
 *
 * A break an operator sealed (`bulkhead audit seal`, seal.ts) is not a failure but is never silent:
 * the stream verifies, and `sealed` lists each break with what the verifier finds there now and what the
 * seal recorded. The records between the break and the seal are vouched for by nothing; a change to
 * anything before a seal invalidates the seal, and the break is reported as the failure it is.
 *
 * Nor is a call with an intent record and no outcome (the broker stopped between the two, or the call
 * is still resolving): `unfinished` lists each, since its credential may have been released.
 */
export type EvidenceProblemKind =
  | 'purge_invalid'
  | 'checkpoint_invalid'
  | 'missing_stream'
  | 'unknown_tenant'
  | 'edited'
  | 'deleted'
  | 'inserted'
  | 'recomputed'
  | 'truncated'
  | 'checkpoint_missing'
  | 'unsealed'
  | 'head_mismatch';

export interface EvidenceResult extends Omit<AuditVerifyResult, 'broken'> {
  tenant: string;
  /** Valid checkpoints found. */
  checkpoints: number;
  /** The seq the newest checkpoint signed (0: none). */
  signed_through: number;
  /** Records after it, not (yet) vouched for by a signature. */
  unsealed: number;
  broken?: { seq: number; problem: string; kind: EvidenceProblemKind };
  /** Signed purges of this tenant's stream the security stream records (purge.ts): records before a new stream began. */
  purged?: Array<{ security_seq: number; purged_seq: number; purged_hash: string; export_sha256: string; operator: string; at: string }>;
}

export interface EvidenceInputs {
  tenant: string;
  log: Pick<AuditLog, 'verify'>;
  /** Whether the stream exists at all (a file, or a head row). */
  streamExists: boolean;
  /** Stored checkpoint entries, untrusted. */
  checkpoints: unknown[];
  keys: AuditKeySet;
  /** The rule to hold a stream with no checkpoint to (the newest checkpoint's own rule wins). */
  rule: CheckpointRule;
  now: number;
  expectHead?: ChainHead;
  /** The tenant is in the policy: with no stream and no checkpoint it has simply had no records yet. */
  known?: boolean;
  /** Records past the last checkpoint, for their times (read only when some are unsealed). */
  readAfter: (seq: number) => Promise<Array<{ ts: string }>>;
}

export async function verifyEvidence(inputs: EvidenceInputs): Promise<EvidenceResult> {
  const { tenant } = inputs;
  const valid: Checkpoint[] = [];
  const base = { tenant, checkpoints: 0, signed_through: 0, unsealed: 0 };
  const fail = (result: Partial<Omit<EvidenceResult, 'broken'>>, seq: number, kind: EvidenceProblemKind, problem: string): EvidenceResult => ({
    events: 0,
    head: '',
    ...base,
    checkpoints: valid.length,
    ...result,
    ok: false,
    broken: { seq, problem, kind },
  });

  const pins = new Map<number, string>();
  for (const [index, entry] of inputs.checkpoints.entries()) {
    const problem = checkpointProblem(entry, tenant, inputs.keys);
    const seq = typeof (entry as Checkpoint)?.seq === 'number' ? (entry as Checkpoint).seq : 0;
    if (problem) return fail({}, seq, 'checkpoint_invalid', `checkpoint #${index + 1} ${problem}`);
    const checkpoint = entry as Checkpoint;
    const pinned = pins.get(checkpoint.seq);
    if (pinned !== undefined && pinned !== checkpoint.hash) return fail({}, checkpoint.seq, 'checkpoint_invalid', `two signed checkpoints disagree about seq ${checkpoint.seq}`);
    pins.set(checkpoint.seq, checkpoint.hash);
    valid.push(checkpoint);
  }
  const newest = valid.reduce<Checkpoint | undefined>((a, c) => (a && a.seq >= c.seq ? a : c), undefined);
  const signedThrough = newest?.seq ?? 0;
  const counted = { checkpoints: valid.length, signed_through: signedThrough };

  if (!inputs.streamExists) {
    if (newest) return fail(counted, 1, 'missing_stream', `the audit stream is missing; signed checkpoints say it held ${newest.seq} records`);
    if (!inputs.expectHead && !inputs.known) return fail(counted, 0, 'unknown_tenant', 'no audit stream and no checkpoints for this tenant');
  }
  if (inputs.expectHead) {
    const { seq, hash } = inputs.expectHead;
    const signed = pins.get(seq);
    if (signed !== undefined && signed !== hash) return fail(counted, seq, 'head_mismatch', `the expected head differs from the signed checkpoint at seq ${seq}`);
    pins.set(seq, hash);
  }

  const chain = await inputs.log.verify(tenant, { pins, keys: inputs.keys });
  const result = { ok: chain.ok, events: chain.events, head: chain.head, ...counted, ...(chain.sealed ? { sealed: chain.sealed } : {}), ...(chain.unfinished ? { unfinished: chain.unfinished } : {}) };
  if (!chain.ok) {
    const broken = chain.broken!;
    const kind = problemKind(broken.problem);
    // A pin from --expect-head that fails is the auditor's head, not a signature: say so.
    const fromExpected = kind === 'recomputed' && inputs.expectHead?.seq === broken.seq && !valid.some((c) => c.seq === broken.seq);
    return fail(result, broken.seq, fromExpected ? 'head_mismatch' : kind, fromExpected ? `record ${broken.seq} differs from the expected head` : broken.problem);
  }
  if (chain.events < signedThrough) {
    return fail(result, chain.events + 1, 'truncated', `records after seq ${chain.events} are missing: a signed checkpoint covers seq ${signedThrough} (the tail was cut)`);
  }
  if (inputs.expectHead && chain.events < inputs.expectHead.seq) {
    return fail(result, chain.events + 1, 'head_mismatch', `records after seq ${chain.events} are missing: the expected head is at seq ${inputs.expectHead.seq}`);
  }

  const rule = newest ? { every: newest.every, intervalMs: newest.interval_ms } : inputs.rule;
  const unsealed = chain.events - signedThrough;
  const lastBoundary = Math.floor(chain.events / rule.every) * rule.every;
  if (lastBoundary > signedThrough) {
    return fail(
      { ...result, unsealed },
      lastBoundary,
      'checkpoint_missing',
      `no signed checkpoint at or after seq ${lastBoundary}, though one is made every ${rule.every} records: checkpoints were removed or an older checkpoint set put back`,
    );
  }
  if (unsealed > 0) {
    const [first] = await inputs.readAfter(signedThrough);
    const age = inputs.now - Date.parse(first?.ts ?? '');
    if (!(age <= 2 * rule.intervalMs)) {
      return fail(
        { ...result, unsealed },
        signedThrough + 1,
        'unsealed',
        `records after seq ${signedThrough} were never signed, though a checkpoint is made within ${rule.intervalMs} ms: the broker stopped without its shutdown checkpoint, or the newest checkpoints were removed`,
      );
    }
  }
  return { ...result, ok: true, unsealed, tenant };
}
