import { createHash } from 'node:crypto';
import { canonicalize } from '../crypto/canonical-json';
import { canonicalJson } from '../crypto/hash';
import { GENESIS_HASH, type AuditRecord, type UnfinishedCall } from './audit-log';
import { verifyAuditSignature, type AuditKeySet, type AuditSigner } from './audit-keys';
import { recordHash } from './chain';
import { checkpointProblem, type Checkpoint } from './checkpoint';
import { trackUnfinishedCalls } from './unfinished-calls';

/**
 * A verifiable export of one tenant's trail (format in docs/audit-bundle.md): the records of the
 * selected range — plus the record just before it, so a reader sees where the range starts, and the
 * records after it up to the first checkpoint that covers its end — the checkpoints within that span,
 * the audit public keys, and a manifest signed with the audit key that names the hashes of all three.
 * Everything can be checked with RFC 8785, SHA-256 and Ed25519 alone.
 */
export const BUNDLE_FORMAT = 'bulkhead-audit-bundle/1';
export const MANIFEST_KIND = 'bulkhead-audit-bundle-manifest';

export interface BundleManifest {
  kind: typeof MANIFEST_KIND;
  format: typeof BUNDLE_FORMAT;
  tenant: string;
  issuer: string;
  created_at: string;
  /** What was asked for, and the seqs it selected (0/0: nothing matched). */
  selection: { from?: string; to?: string; first_seq: number; last_seq: number };
  /** The records the bundle carries: a contiguous run of seqs, its last one signed by a checkpoint. */
  records: { first_seq: number; last_seq: number; count: number; sha256: string };
  checkpoints: { count: number; sha256: string };
  keys_sha256: string;
  /** Records after the newest checkpoint, left out because nothing signs them yet. */
  unsealed_excluded: number;
}

export interface AuditBundle {
  format: typeof BUNDLE_FORMAT;
  manifest: BundleManifest;
  signature: { alg: 'EdDSA'; kid: string; value: string };
  records: AuditRecord[];
  checkpoints: Checkpoint[];
  keys: AuditKeySet;
}

/** SHA-256 (hex) of the JSON Lines made of each item's RFC 8785 form. */
export function linesDigest(items: readonly unknown[]): string {
  const hash = createHash('sha256');
  for (const item of items) hash.update(canonicalize(item) + '\n');
  return hash.digest('hex');
}

export interface BuildBundleInputs {
  tenant: string;
  issuer: string;
  now: number;
  from?: number;
  to?: number;
  /** Every record of the tenant, in seq order (a verified chain). */
  records: AuditRecord[];
  /** Valid checkpoints of the tenant. */
  checkpoints: Checkpoint[];
  keys: AuditKeySet;
  signer: AuditSigner;
}

export function buildBundle(inputs: BuildBundleInputs): AuditBundle {
  const { records, tenant } = inputs;
  const signedThrough = Math.max(0, ...inputs.checkpoints.map((c) => c.seq));
  const sealed = records.filter((r) => r.seq <= signedThrough);
  const inRange = (r: AuditRecord) => {
    const ts = Date.parse(r.ts);
    return (inputs.from === undefined || ts >= inputs.from) && (inputs.to === undefined || ts <= inputs.to);
  };
  const selected = sealed.filter(inRange);
  const first = selected[0]?.seq ?? 0;
  const last = selected[selected.length - 1]?.seq ?? 0;
  const coveredBy = selected.length ? Math.min(...inputs.checkpoints.filter((c) => c.seq >= last).map((c) => c.seq)) : 0;
  const carried = selected.length ? sealed.filter((r) => r.seq >= Math.max(1, first - 1) && r.seq <= coveredBy) : [];
  for (const record of carried) {
    if (record.tenant !== tenant) throw new Error(`record ${record.seq} names another tenant: refusing to export`);
    // What we hashed must be what a stock RFC 8785 library reproduces, or a third party cannot verify it.
    const { hash: _hash, ...body } = record;
    if (!hasExactRfc8785Form(body)) throw new Error(`record ${record.seq} has no exact RFC 8785 form: refusing to export`);
  }
  const checkpoints = carried.length ? inputs.checkpoints.filter((c) => c.seq >= carried[0]!.seq && c.seq <= coveredBy) : [];
  const manifest: BundleManifest = {
    kind: MANIFEST_KIND,
    format: BUNDLE_FORMAT,
    tenant,
    issuer: inputs.issuer,
    created_at: new Date(inputs.now).toISOString(),
    selection: {
      ...(inputs.from !== undefined ? { from: new Date(inputs.from).toISOString() } : {}),
      ...(inputs.to !== undefined ? { to: new Date(inputs.to).toISOString() } : {}),
      first_seq: first,
      last_seq: last,
    },
    records: { first_seq: carried[0]?.seq ?? 0, last_seq: carried[carried.length - 1]?.seq ?? 0, count: carried.length, sha256: linesDigest(carried) },
    checkpoints: { count: checkpoints.length, sha256: linesDigest(checkpoints) },
    keys_sha256: linesDigest([inputs.keys]),
    unsealed_excluded: records.filter((r) => r.seq > signedThrough && inRange(r)).length,
  };
  const signer = inputs.signer;
  return { format: BUNDLE_FORMAT, manifest, signature: { alg: 'EdDSA', kid: signer.kid, value: signer.sign(canonicalize(manifest)) }, records: carried, checkpoints, keys: inputs.keys };
}

function hasExactRfc8785Form(value: unknown): boolean {
  try {
    return canonicalize(value) === canonicalJson(value);
  } catch {
    return false;
  }
}

export interface BundleVerdict {
  ok: boolean;
  tenant?: string;
  /** Records in the selection. */
  selected: number;
  problems: string[];
  /**
   * Carried calls whose intent has no outcome in the bundle: the broker stopped between the two, or the
   * outcome lies past the carried span. Not a problem: the span verifies; each may have had its credential.
   */
  unfinished?: UnfinishedCall[];
}

/**
 * Checks a bundle offline. `trusted` are audit keys the auditor got elsewhere (the broker's
 * /.well-known/bulkhead-audit-keys.json); without them the bundle's own keys are used, which proves
 * integrity and completeness of the span but not who signed it.
 */
export function verifyBundle(raw: unknown, trusted?: AuditKeySet): BundleVerdict {
  const problems: string[] = [];
  const unfinished = trackUnfinishedCalls();
  const done = (tenant?: string, selected = 0): BundleVerdict => ({ ok: problems.length === 0, ...(tenant ? { tenant } : {}), selected, problems, ...unfinished.result() });
  const bundle = raw as Partial<AuditBundle> | null;
  if (!bundle || typeof bundle !== 'object' || bundle.format !== BUNDLE_FORMAT || !bundle.manifest || !bundle.signature || !Array.isArray(bundle.records) || !Array.isArray(bundle.checkpoints) || !Array.isArray(bundle.keys?.keys)) {
    problems.push(`not a ${BUNDLE_FORMAT} bundle`);
    return done();
  }
  const { manifest, records, checkpoints } = bundle as AuditBundle;
  const keys = trusted ?? bundle.keys!;
  if (trusted) {
    for (const key of bundle.keys!.keys) if (!trusted.keys.some((k) => k.kid === key.kid && k.x === key.x)) problems.push(`bundle key ${key.kid} is not among the trusted audit keys`);
  }
  let manifestData: string;
  try {
    manifestData = canonicalize(manifest);
  } catch {
    problems.push('manifest is not canonical JSON');
    return done();
  }
  if (manifest.kind !== MANIFEST_KIND) problems.push('manifest is not a bundle manifest');
  const verdict = verifyAuditSignature(keys, bundle.signature!.kid, manifestData, bundle.signature!.value);
  if (verdict !== 'ok') problems.push(verdict === 'unknown_key' ? `manifest is signed by an unknown key (${bundle.signature!.kid})` : 'manifest signature does not verify');
  if (linesDigest(records) !== manifest.records?.sha256 || records.length !== manifest.records.count) problems.push('records do not match the manifest');
  if (linesDigest(checkpoints) !== manifest.checkpoints?.sha256 || checkpoints.length !== manifest.checkpoints.count) problems.push('checkpoints do not match the manifest');
  if (linesDigest([bundle.keys]) !== manifest.keys_sha256) problems.push('keys do not match the manifest');
  const tenant = manifest.tenant;
  if (records.length === 0) return done(tenant);

  // The carried records form one chain, starting wherever the span starts (what came before is not in
  // the bundle; the first record's prev_hash is only checked when it is record 1).
  const start = records[0]!;
  if (start.seq !== manifest.records.first_seq) problems.push('records do not start where the manifest says');
  const hashes = new Map<number, string>();
  let previous: AuditRecord | undefined;
  for (const record of records) {
    const problem =
      record?.tenant !== tenant
        ? 'names another tenant'
        : previous && record.seq !== previous.seq + 1
          ? 'is out of sequence'
          : record.hash !== recordHash(record)
            ? 'does not match its hash (altered)'
            : (previous ? previous.hash : record.seq === 1 ? GENESIS_HASH : record.prev_hash) !== record.prev_hash
              ? 'does not link to the record before it'
              : undefined;
    if (problem) {
      problems.push(`record ${String(record?.seq)} ${problem}`);
      break;
    }
    hashes.set(record.seq, record.hash);
    unfinished.note(record as unknown as Record<string, unknown>);
    previous = record;
  }
  for (const checkpoint of checkpoints) {
    const problem = checkpointProblem(checkpoint, tenant, keys);
    if (problem) problems.push(`checkpoint at seq ${String((checkpoint as Checkpoint)?.seq)} ${problem}`);
    else if (hashes.get(checkpoint.seq) !== checkpoint.hash) problems.push(`checkpoint at seq ${checkpoint.seq} does not match the record there`);
  }
  const lastSeq = records[records.length - 1]!.seq;
  if (!checkpoints.some((c) => c.seq === lastSeq && c.hash === hashes.get(lastSeq))) problems.push(`no checkpoint signs the last record (seq ${lastSeq}): the span is not proven complete`);
  const { first_seq, last_seq } = manifest.selection ?? { first_seq: 0, last_seq: 0 };
  if (!(first_seq >= start.seq && last_seq <= lastSeq && first_seq <= last_seq)) problems.push('the selection lies outside the carried records');
  return done(tenant, problems.length ? 0 : last_seq - first_seq + 1);
}
