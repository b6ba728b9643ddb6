import { readFileSync, writeFileSync } from 'node:fs';
import { brokerUrl, parseVerb } from './options';
import { stringify as toYaml } from 'yaml';
import { createTenantSecretStore } from '../compose/secret-store';
import { loadOrCreateMasterKey } from '../crypto/master-key';
import { canaryPolicy, newCanaryFile, readCanaryFile } from '../selftest/canary-file';
import { verifyCountersignedReport, type Countersignature } from '../selftest/countersign';
import { formatReport, runSelftest, type SelftestReport } from '../selftest/run-selftest';
import { readKeySet } from './audit-sources';
import { callBroker } from './http-client';
import { loadConfig } from './load-config';
import { OPERATOR_AUTH, operatorOptions, operatorToken } from './operator';
import { UsageError } from './usage-error';
import { parsePolicy } from '../policy/load';

export const SELFTEST_HELP = `Usage: bulkhead selftest --against URL[,URL...] --canaries FILE [--report FILE] [--json]
       bulkhead selftest verify-report FILE --keys KEYS [--json]
       bulkhead selftest init --out FILE
       bulkhead selftest seed --canaries FILE [--config FILE] --data-dir DIR

A containment proof against a live deployment, using the two canary tenants the policy declares
(canary: true; local canary secrets only, never real data). Give every replica's URL: each check runs
on each replica. Checks: discovery; manifest filtering per canary; credential lanes (each canary's call
resolves its own canary secret); the neighbour's resources with path tricks; tenant overrides in
arguments; forged, unsigned, wrong-audience and expired tokens; a kill-switch rehearsal (revoke canary
B, denied on every replica, restore); a quarantine rehearsal; audit attribution (each attempt in its
own tenant's stream) and chain verification; a leak scan of every answer and /metrics.
Prints a table (check, expected, observed, ms); exit 0 only if every check held, 1 otherwise.
The report is countersigned by the broker (the first --against URL, POST /v1/selftest/countersign):
its audit key signs the report digest, run id, verdict and time, so the report can be checked offline
later; a broker that does not countersign fails the run (exit 1).

  --against URLS   comma-separated replica URLs (default $BULKHEAD_ADDR, else http://127.0.0.1:8700)
  --canaries FILE  the canary file from \`selftest init\` (keep it with the pipeline's secrets)
  --report FILE    also write the JSON containment report (checks, one lane per canary, digest)
  --json           print the JSON report instead of the table
${OPERATOR_AUTH}

  verify-report  checks a --report file offline: its digest, and the broker's countersignature against
         KEYS, the broker's audit keys (saved from /.well-known/bulkhead-audit-keys.json). Exit 0 only
         if the report is unaltered, countersigned by one of those keys and every check held; 1 if
         it is altered or not countersigned; 2 if it verifies but containment was not proven.
  init   writes a new canary file (mode 0600) and prints the policy entries to merge into the policy
         file (two canary servers and two canary tenants, hashes only).
  seed   stores each canary's canary secret in a replica's embedded store (run once per data dir).

The kill-switch rehearsal revokes and restores canary B; its tokens from before the rehearsal stay
dead. The quarantine rehearsal leaves one canary session quarantined.`;

export async function selftest(argv: string[]): Promise<number> {
  const { values, positionals } = parseVerb('selftest', argv, { ...operatorOptions, against: { type: 'string' }, canaries: { type: 'string' }, report: { type: 'string' }, out: { type: 'string' }, keys: { type: 'string' } }, { positionals: true });
  if (values.help) {
    process.stdout.write(SELFTEST_HELP + '\n');
    return 0;
  }
  const [action, ...extra] = positionals;
  if (action === 'verify-report') {
    if (extra.length !== 1 || !values.keys) throw new UsageError('bulkhead selftest verify-report: usage: bulkhead selftest verify-report FILE --keys KEYS');
    return verifyReport(extra[0]!, values.keys, values.json === true);
  }
  if (extra.length || (action !== undefined && action !== 'init' && action !== 'seed')) throw new UsageError('bulkhead selftest: expected no argument, "init", "seed" or "verify-report" (see bulkhead selftest --help)');

  if (action === 'init') {
    if (!values.out) throw new UsageError('bulkhead selftest init: --out FILE is required');
    const file = newCanaryFile();
    writeFileSync(values.out, JSON.stringify(file, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
    process.stdout.write(`wrote ${values.out} (mode 0600). Merge into the policy file:\n\n${toYaml(canaryPolicy(file))}\nthen on each replica's data dir: bulkhead selftest seed --canaries ${values.out} --config POLICY --data-dir DIR\n`);
    return 0;
  }
  if (!values.canaries) throw new UsageError(`bulkhead selftest${action ? ` ${action}` : ''}: --canaries FILE is required`);
  const canaries = readCanaryFile(values.canaries);

  if (action === 'seed') {
    const { dataDir, policy } = loadConfig(values);
    const secrets = createTenantSecretStore({ policy: () => policy ?? parsePolicy({}), dataDir, masterKey: await loadOrCreateMasterKey(dataDir) });
    try {
      for (const t of canaries.tenants) await secrets.store.set(t.id, 'canary', t.credential_value);
    } finally {
      secrets.close();
    }
    process.stdout.write(`stored the canary secrets of ${canaries.tenants.map((t) => t.id).join(' and ')} in ${dataDir}\n`);
    return 0;
  }

  const replicas = brokerUrl(values.against).split(',').map((u) => u.trim()).filter(Boolean);
  for (const url of replicas) if (!/^https?:\/\//.test(url)) throw new UsageError(`bulkhead selftest: --against "${url}" is not an http(s) URL`);
  const token = operatorToken(values);
  const unsigned = await runSelftest({ replicas, canaries, operatorToken: token });
  let report: SelftestReport & { countersignature?: Countersignature } = unsigned;
  let countersignFailure: string | null = null;
  try {
    const countersignature = (await callBroker(replicas[0], '/v1/selftest/countersign', { method: 'POST', body: { digest: unsigned.digest, run_id: unsigned.run_id, ok: unsigned.ok }, bearer: token })) as Countersignature;
    report = { ...unsigned, countersignature };
  } catch (err) {
    countersignFailure = (err as Error).message;
  }
  if (values.report) writeFileSync(values.report, JSON.stringify(report, null, 2) + '\n', { mode: 0o600 });
  process.stdout.write(values.json ? JSON.stringify(report, null, 2) + '\n' : formatReport(report));
  if (countersignFailure) {
    process.stderr.write(`bulkhead selftest: the broker at ${replicas[0]} did not countersign the report (${countersignFailure}); the report cannot be verified later\n`);
    return 1;
  }
  if (!values.json) process.stdout.write(`countersigned by ${report.countersignature!.statement.issuer} (audit key ${report.countersignature!.signature.kid}) at ${report.countersignature!.statement.signed_at}\n`);
  return report.ok ? 0 : 1;
}

function verifyReport(file: string, keysFile: string, json: boolean): number {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    throw new UsageError(`${file}: cannot read a selftest report (JSON)`);
  }
  const verdict = verifyCountersignedReport(raw, readKeySet(keysFile));
  if (json) process.stdout.write(JSON.stringify(verdict, null, 2) + '\n');
  else if (!verdict.ok) process.stdout.write(`${file}: BROKEN: ${verdict.problems.join('; ')}\n`);
  else process.stdout.write(`${file}: countersigned by ${verdict.issuer} at ${verdict.signed_at}; ${verdict.contained ? 'every check held' : 'CONTAINMENT NOT PROVEN (some checks failed)'}\n`);
  return !verdict.ok ? 1 : verdict.contained ? 0 : 2;
}
