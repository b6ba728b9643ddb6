import { canonicalize } from '../crypto/canonical-json';
import { auditSignatureProblem, type AuditKeySet, type AuditSigner } from './audit-keys';
import type { ChainHead } from './chain';

/**
 * A signed checkpoint: the audit key's statement that tenant T's chain had head (seq, hash) at time ts.
 * The chain alone proves order and integrity of what is there; a checkpoint pins it, so a chain that was
 * cut below a checkpoint, or edited and re-hashed from some record on, no longer matches a signature
 * only the broker's audit key can make.
 *
 * The signature is Ed25519 over the RFC 8785 canonical JSON of every field but `sig`; `kind` keeps a
 * checkpoint signature from ever being taken for an export manifest's, or the other way round. `every`
 * and `interval_ms` are the checkpoint rule the broker ran under, signed so a verifier can hold a stream
 * to it without being told (and an attacker cannot loosen it).
 */
export const CHECKPOINT_KIND = 'bulkhead-audit-checkpoint';

export interface CheckpointBody {
  kind: typeof CHECKPOINT_KIND;
  tenant: string;
  seq: number;
  hash: string;
  /** ISO-8601, when it was signed. */
  ts: string;
  /** A checkpoint is made at least every `every` records... */
  every: number;
  /** ...and within `interval_ms` of any record, while the broker runs (and at shutdown). */
  interval_ms: number;
  kid: string;
}

export interface Checkpoint extends CheckpointBody {
  /** base64url Ed25519 signature of canonicalize(body). */
  sig: string;
}

export interface CheckpointRule {
  every: number;
  intervalMs: number;
}

export function signCheckpoint(signer: AuditSigner, tenant: string, head: ChainHead, ts: number, rule: CheckpointRule): Checkpoint {
  const body: CheckpointBody = { kind: CHECKPOINT_KIND, tenant, seq: head.seq, hash: head.hash, ts: new Date(ts).toISOString(), every: rule.every, interval_ms: rule.intervalMs, kid: signer.kid };
  return { ...body, sig: signer.sign(canonicalize(body)) };
}

/** Why a stored checkpoint does not count, or null when it is one the audit keys signed for this tenant. */
export function checkpointProblem(value: unknown, tenant: string, keys: AuditKeySet): string | null {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'is not a JSON object';
  const { sig, ...body } = value as Record<string, unknown>;
  if (body.kind !== CHECKPOINT_KIND) return 'is not a checkpoint';
  if (body.tenant !== tenant) return `names tenant "${String(body.tenant)}"`;
  if (!Number.isSafeInteger(body.seq) || (body.seq as number) < 1 || typeof body.hash !== 'string' || typeof body.ts !== 'string') return 'lacks seq, hash or ts';
  if (!Number.isSafeInteger(body.every) || (body.every as number) < 1 || !Number.isSafeInteger(body.interval_ms)) return 'lacks its checkpoint rule';
  return auditSignatureProblem(keys, body.kid, body, sig);
}
