import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { stringify as toYaml } from 'yaml';
import { createTenantSecretStore } from '../compose/secret-store';
import { loadOrCreateMasterKey } from '../crypto/master-key';
import { canaryPolicy, newCanaryFile, readCanaryFile } from '../selftest/canary-file';
import { formatReport, runSelftest } from '../selftest/run-selftest';
import { loadConfig } from './load-config';
import { OPERATOR_AUTH, operatorOptions, operatorToken } from './operator';
import { UsageError } from './usage-error';
import { parsePolicy } from '../policy/load';

export const SELFTEST_HELP = `Usage: bulkhead selftest --against URL[,URL...] --canaries FILE [--report FILE] [--json]
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

  --against URLS   comma-separated replica URLs (default $BULKHEAD_URL or http://127.0.0.1:8700)
  --canaries FILE  the canary file from \`selftest init\` (keep it with the pipeline's secrets)
  --report FILE    also write the JSON containment report (checks, one lane per canary, digest)
  --json           print the JSON report instead of the table
${OPERATOR_AUTH}

  init   writes a new canary file (mode 0600) and prints the policy entries to merge into the policy
         file (two canary servers and two canary tenants, hashes only).
  seed   stores each canary's canary secret in a replica's embedded store (run once per data dir).

The kill-switch rehearsal revokes and restores canary B; its tokens from before the rehearsal stay
dead. The quarantine rehearsal leaves one canary session quarantined.`;

export async function selftest(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...operatorOptions, against: { type: 'string' }, canaries: { type: 'string' }, report: { type: 'string' }, json: { type: 'boolean' }, out: { type: 'string' } },
      strict: true,
      allowPositionals: true,
    });
  } catch (err) {
    throw new UsageError(`bulkhead selftest: ${(err as Error).message.split('\n')[0]} (see bulkhead selftest --help)`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(SELFTEST_HELP + '\n');
    return 0;
  }
  const [action, ...extra] = positionals;
  if (extra.length || (action !== undefined && action !== 'init' && action !== 'seed')) throw new UsageError('bulkhead selftest: expected no argument, "init" or "seed" (see bulkhead selftest --help)');

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

  const replicas = (values.against ?? process.env.BULKHEAD_URL ?? 'http://127.0.0.1:8700').split(',').map((u) => u.trim()).filter(Boolean);
  for (const url of replicas) if (!/^https?:\/\//.test(url)) throw new UsageError(`bulkhead selftest: --against "${url}" is not an http(s) URL`);
  const report = await runSelftest({ replicas, canaries, operatorToken: operatorToken(values) });
  if (values.report) writeFileSync(values.report, JSON.stringify(report, null, 2) + '\n', { mode: 0o600 });
  process.stdout.write(values.json ? JSON.stringify(report, null, 2) + '\n' : formatReport(report));
  return report.ok ? 0 : 1;
}
