import { verifyAuditSignature, type AuditKeySet, type AuditSigner } from '../audit/audit-keys';
import { canonicalize } from '../crypto/canonical-json';
import { canonicalJson, sha256Hex } from '../crypto/hash';

/**
 * The broker's countersignature of a selftest containment report. The broker signs, with its audit
 * key, a statement naming the report's digest: "this broker (issuer) was shown a report with this
 * digest, run id and verdict, at this time". Anyone holding the published audit keys
 * (/.well-known/bulkhead-audit-keys.json) checks it offline: recompute the digest from the report,
 * then check the Ed25519 signature over the statement's RFC 8785 form. The broker vouches for when
 * and to whom the report was shown, not for checks it did not run; a report altered after signing
 * (a failed check turned into a pass) no longer matches the digest the statement names.
 */
export const COUNTERSIGNATURE_KIND = 'bulkhead-selftest-countersignature';

export interface CountersignStatement {
  kind: typeof COUNTERSIGNATURE_KIND;
  issuer: string;
  report_digest: string;
  run_id: string;
  ok: boolean;
  signed_at: string;
}

export interface Countersignature {
  statement: CountersignStatement;
  signature: { alg: 'EdDSA'; kid: string; value: string };
}

/** The digest a report carries: SHA-256 of the canonical JSON of the report without `digest` and `countersignature`. */
export function reportDigest(report: Record<string, unknown>): string {
  const { digest: _digest, countersignature: _countersignature, ...body } = report;
  return sha256Hex(canonicalJson(body));
}

export function countersign(input: { digest: string; run_id: string; ok: boolean }, issuer: string, now: number, signer: AuditSigner): Countersignature {
  const statement: CountersignStatement = { kind: COUNTERSIGNATURE_KIND, issuer, report_digest: input.digest, run_id: input.run_id, ok: input.ok, signed_at: new Date(now).toISOString() };
  return { statement, signature: { alg: 'EdDSA', kid: signer.kid, value: signer.sign(canonicalize(statement)) } };
}

export interface CountersignVerdict {
  ok: boolean;
  /** The report's own verdict (every check held), as the countersigned statement names it. */
  contained?: boolean;
  issuer?: string;
  signed_at?: string;
  problems: string[];
}

/** Checks a countersigned report offline against audit keys the verifier got from the broker. */
export function verifyCountersignedReport(raw: unknown, keys: AuditKeySet): CountersignVerdict {
  const problems: string[] = [];
  const report = raw as Record<string, unknown> | null;
  if (!report || typeof report !== 'object' || Array.isArray(report)) return { ok: false, problems: ['not a selftest report (JSON object)'] };
  const counter = report.countersignature as Partial<Countersignature> | undefined;
  if (!counter || typeof counter !== 'object' || !counter.statement || !counter.signature) return { ok: false, problems: ['the report has no countersignature'] };
  const { statement, signature } = counter as Countersignature;
  const digest = reportDigest(report);
  if (report.digest !== digest) problems.push('the report does not match its digest (altered)');
  if (statement.kind !== COUNTERSIGNATURE_KIND) problems.push('the countersignature is not a selftest countersignature');
  if (statement.report_digest !== digest) problems.push('the countersignature names another report (digest differs)');
  if (statement.run_id !== report.run_id || statement.ok !== report.ok) problems.push('the countersignature names another run id or verdict');
  let data: string | null = null;
  try {
    data = canonicalize(statement);
  } catch {
    problems.push('the countersigned statement is not canonical JSON');
  }
  if (data !== null) {
    const verdict = verifyAuditSignature(keys, signature.kid, data, signature.value);
    if (verdict !== 'ok') problems.push(verdict === 'unknown_key' ? `signed by a key not among the audit keys (${String(signature.kid)})` : 'the countersignature does not verify');
  }
  return { ok: problems.length === 0, contained: statement.ok === true && report.ok === true, issuer: statement.issuer, signed_at: statement.signed_at, problems };
}
