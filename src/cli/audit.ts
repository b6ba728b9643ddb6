import { readFileSync } from 'node:fs';
import { parseHead } from '../audit/audit-evidence';
import { verifyBundle } from '../audit/bundle';
import type { EvidenceResult } from '../audit/evidence';
import type { UnfinishedCall } from '../audit/audit-log';
import { replaceFile } from '../storage/atomic-file';
import { isoOption, openAuditSources, readKeySet } from './audit-sources';
import { auditCorrelate, auditSeal, auditShow, CORRELATE_HELP, SEAL_HELP, SHOW_HELP } from './audit-show';
import { exportTenantBundle } from '../audit/export';
import { parseVerb, stateOptions } from './options';
import { report } from './output';
import { UsageError } from './usage-error';

export const VERIFY_HELP = `Usage: bulkhead audit verify [--tenant T] [--expect-head SEQ:HASH] [--json] [--keys FILE] [--data-dir DIR] [--config FILE]
       bulkhead audit verify --bundle FILE [--keys FILE] [--json]

Checks every tenant's audit evidence (or one tenant's), offline: the hash chain, the signed checkpoints
stored apart from it, and the checkpoint rule they state. Names the first problem and its kind:
edited, deleted, inserted, recomputed, truncated, missing_stream, unknown_tenant, checkpoint_invalid,
checkpoint_missing, unsealed, head_mismatch. A break an operator sealed (bulkhead audit seal) is not
a failure, but never silent: each is reported as a SEALED BREAK (where it broke, what the seal recorded,
what is found now, who sealed it and why); a forged seal, or one whose region changed, is not accepted.
Nor is a call whose intent is recorded with no outcome after it (the broker stopped while resolving its
upstream credential): each is reported as an UNFINISHED CALL, one that may have received its credential.
  --expect-head SEQ:HASH   a head you kept earlier: the stream must still hold it
  --keys FILE              audit keys you pinned (GET /.well-known/bulkhead-audit-keys.json); without it
                           the sealed key ring is opened with the master key
  --bundle FILE            check an export bundle instead (needs nothing but the file)
The broker's security stream (refusals with no verifiable tenant: forged or malformed tokens, wrong
server keys) is named _security and is checked with the tenants (--tenant _security for it alone).
Exit code 0 only when every named stream (or the bundle) verifies; 1 otherwise, including for an
unknown tenant or a missing data dir.`;

export const EXPORT_HELP = `Usage: bulkhead audit export --tenant T [--from ISO] [--to ISO] --out FILE [--data-dir DIR] [--config FILE]

Writes one verifiable bundle of tenant T's records (docs/audit-bundle.md): the records, the checkpoints
that cover them, the audit public keys and a manifest signed with the audit key. Only records already
signed by a checkpoint are exported (stop the broker, or use GET /v1/audit/export on a live one).
Refuses a stream that does not verify.`;

export const AUDIT_HELP = `Usage: bulkhead audit <verify|export|show|correlate|seal> [options]   (bulkhead audit <action> --help)

  verify      check the hash chains and their signed checkpoints, offline
  export      write a verifiable bundle of one tenant's trail
  show        search one tenant's records
  correlate   which tenant record holds a platform request id (operator API; audited)
  seal        serve a tenant whose stream broke again: a signed seal records the break (operator API)`;

const ACTIONS: Record<string, { run: (argv: string[]) => Promise<number>; help: string }> = {
  verify: { run: verify, help: VERIFY_HELP },
  export: { run: exportBundle, help: EXPORT_HELP },
  show: { run: auditShow, help: SHOW_HELP },
  correlate: { run: auditCorrelate, help: CORRELATE_HELP },
  seal: { run: auditSeal, help: SEAL_HELP },
};

export async function audit(argv: string[]): Promise<number> {
  const [action, ...rest] = argv;
  if (action === undefined || action === '--help' || action === '-h') {
    process.stdout.write(AUDIT_HELP + '\n');
    return 0;
  }
  const entry = ACTIONS[action];
  if (!entry) throw new UsageError(`bulkhead audit: unknown action "${action}" (see bulkhead audit --help)`);
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(entry.help + '\n');
    return 0;
  }
  return entry.run(rest);
}

async function verify(argv: string[]): Promise<number> {
  const { values } = parseVerb('audit verify', argv, {
    ...stateOptions,
    tenant: { type: 'string' },
    'expect-head': { type: 'string' },
    json: { type: 'boolean' },
    keys: { type: 'string' },
    bundle: { type: 'string' },
  });
  if (values.bundle) return verifyBundleFile(values.bundle, values.keys, values.json === true);
  const expectHead = values['expect-head'] === undefined ? undefined : parseHead(values['expect-head']);
  if (values['expect-head'] !== undefined && !expectHead) throw new UsageError('bulkhead audit verify: --expect-head must be SEQ:HASH (a seq and a 64-hex-digit hash)');
  if (expectHead && !values.tenant) throw new UsageError('bulkhead audit verify: --expect-head needs --tenant');
  const sources = await openAuditSources(values);
  try {
    const tenants = values.tenant ? [values.tenant] : await sources.evidence.tenants();
    const results: EvidenceResult[] = [];
    for (const tenant of tenants) results.push(await sources.evidence.verify(tenant, { expectHead, known: sources.known(tenant) }));
    const ok = tenants.length > 0 && results.every((r) => r.ok);
    if (values.json) process.stdout.write(JSON.stringify({ ok, where: sources.where, tenants: results }, null, 2) + '\n');
    else if (tenants.length === 0) process.stdout.write(`no audit streams in ${sources.where}\n`);
    else for (const result of results) process.stdout.write(describe(result) + '\n');
    // Repairs the log made while opening files (a torn line cut, say) are worth an operator's eye.
    for (const warning of (sources.log as { warnings?: () => string[] }).warnings?.() ?? []) process.stderr.write(`warning: ${warning}\n`);
    return ok ? 0 : 1;
  } finally {
    await sources.close();
  }
}

function describe(result: EvidenceResult): string {
  const sealed = (result.sealed ?? []).map(
    (b) =>
      `\n  SEALED BREAK at record ${b.break_seq}: verified through seq ${b.verified_seq}, sealed by ${b.operator ?? '(unknown)'} at ${b.ts} as record ${b.seal_seq}` +
      ` (reason: ${b.reason ?? '-'}); recorded: ${b.recorded}; found now: ${b.found}; records ${b.verified_seq + 1}..${b.seal_seq - 1} are not vouched for`,
  );
  if (!result.ok) return `${result.tenant}: BROKEN at record ${result.broken?.seq} (${result.broken?.kind}): ${result.broken?.problem} (${result.events} events checked)${sealed.join('')}`;
  const unsealed = result.unsealed > 0 ? `, ${result.unsealed} newer not signed yet` : '';
  const unfinished = unfinishedLines(result.unfinished, 'follows (the broker stopped while resolving its credential, or the call is still open)');
  const acknowledged = sealed.length > 0 ? `, ${sealed.length} sealed break${sealed.length > 1 ? 's' : ''}` : '';
  return `${result.tenant}: ok${acknowledged}, ${result.events} events, head ${result.head}, signed through seq ${result.signed_through}${unsealed}${sealed.join('')}${unfinished.join('')}`;
}

/** One line per call whose intent has no outcome (audit-log.ts, AuditEvent `decision`). */
function unfinishedLines(calls: UnfinishedCall[] | undefined, where: string): string[] {
  return (calls ?? []).map((c) => `\n  UNFINISHED CALL ${c.call_id} at record ${c.seq}: its intent is recorded and no outcome ${where}; it may have received its credential`);
}

async function verifyBundleFile(file: string, keysFile: string | undefined, json: boolean): Promise<number> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    throw new UsageError(`${file}: cannot read a bundle (JSON)`);
  }
  const verdict = verifyBundle(raw, keysFile ? readKeySet(keysFile) : undefined);
  if (json) process.stdout.write(JSON.stringify(verdict, null, 2) + '\n');
  else if (verdict.ok) process.stdout.write(`${file}: ok, tenant ${verdict.tenant}, ${verdict.selected} records selected${keysFile ? '' : ' (keys from the bundle itself: pass --keys to pin them)'}${unfinishedLines(verdict.unfinished, 'is in the bundle').join('')}\n`);
  else process.stdout.write(`${file}: BROKEN: ${verdict.problems.join('; ')}\n`);
  return verdict.ok ? 0 : 1;
}

async function exportBundle(argv: string[]): Promise<number> {
  const { values } = parseVerb('audit export', argv, { ...stateOptions, tenant: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' }, out: { type: 'string' } });
  if (!values.tenant || !values.out) throw new UsageError('bulkhead audit export: --tenant and --out are required');
  const from = isoOption('from', values.from);
  const to = isoOption('to', values.to);
  const sources = await openAuditSources(values, { sign: true });
  try {
    const bundle = await exportTenantBundle({
      tenant: values.tenant,
      from,
      to,
      issuer: sources.issuer,
      now: Date.now(),
      log: sources.log,
      checkpoints: sources.checkpoints,
      evidence: sources.evidence,
      known: sources.known(values.tenant),
      keys: sources.keys,
      signer: sources.signer(),
    });
    await replaceFile(values.out, JSON.stringify(bundle, null, 2) + '\n');
    const { first_seq, last_seq } = bundle.manifest.selection;
    const written = { file: values.out, tenant: values.tenant, first_seq, last_seq, checkpoints: bundle.checkpoints.length, unsealed_excluded: bundle.manifest.unsealed_excluded };
    report(values.json, written, `${values.out}: tenant ${values.tenant}, records ${first_seq}..${last_seq}, ${bundle.checkpoints.length} checkpoints`);
    if (bundle.manifest.unsealed_excluded > 0) process.stderr.write(`warning: ${bundle.manifest.unsealed_excluded} newer records are not signed by a checkpoint yet and were left out\n`);
    return 0;
  } finally {
    await sources.close();
  }
}
