import { parseVerb } from './options';
import { diffPolicies, type EntryChanges, type PolicyDiff } from '../policy/diff';
import { loadPolicyFile, PolicyError } from '../policy/load';
import type { Policy } from '../policy/schema';
import { policyVersion } from '../policy/version';
import { callBroker } from './http-client';
import { OPERATOR_AUTH, operatorOptions, operatorToken } from './operator';
import { UsageError } from './usage-error';

export const POLICY_HELP = `Usage: bulkhead policy check FILE [--json]
       bulkhead policy diff OLD NEW [--json]
       bulkhead policy reload [--url URL]

  check    validates FILE as \`serve\` would, without starting anything: prints its version (the one a
           broker reports in /readyz, /metrics and audit records), or every error, one per line
           (exit 2). Cross-references (a tool's credential, a principal's tools) are checked once the
           file's shape is valid.
  diff     what changes from OLD to NEW, per tenant: tools, principals, credentials, quotas added,
           removed or changed; servers and operators; broker settings (those need a restart).
  reload   asks a running broker to reload its --config file (POST /v1/policy/reload; SIGHUP does
           the same). The new policy is validated whole and swapped at once; a bad one is refused and
           the old one keeps serving. Scaled out, the other replicas reload their own file too.
  --json   machine-readable output
${OPERATOR_AUTH}`;

export async function policy(argv: string[]): Promise<number> {
  const { values, positionals } = parseVerb('policy', argv, operatorOptions, { positionals: true });
  const [action, ...files] = positionals;
  if (values.help || action === undefined) {
    process.stdout.write(POLICY_HELP + '\n');
    return values.help ? 0 : 2;
  }
  const json = values.json === true;
  if (action === 'check' && files.length === 1) return check(files[0]!, json);
  if (action === 'diff' && files.length === 2) return diff(files[0]!, files[1]!, json);
  if (action === 'reload' && files.length === 0) {
    const answer = await callBroker(values.url, '/v1/policy/reload', { method: 'POST', body: {}, bearer: operatorToken(values) });
    process.stdout.write(JSON.stringify(answer, null, 2) + '\n');
    return 0;
  }
  throw new UsageError(`bulkhead policy: expected "check FILE", "diff OLD NEW" or "reload" (see bulkhead policy --help)`);
}

function check(file: string, json: boolean): number {
  const loaded = load(file);
  if ('issues' in loaded) {
    if (json) process.stdout.write(JSON.stringify({ file, ok: false, issues: loaded.issues }, null, 2) + '\n');
    else process.stderr.write(loaded.issues.map((issue) => `${file}: ${issue}\n`).join(''));
    return 2;
  }
  const p = loaded.policy;
  const summary = { file, ok: true, version: policyVersion(p), tenants: Object.keys(p.tenants).length, servers: Object.keys(p.servers).length, operators: Object.keys(p.operators).length };
  process.stdout.write(json ? JSON.stringify(summary, null, 2) + '\n' : `${file}: ok, version ${summary.version} (${summary.tenants} tenants, ${summary.servers} servers, ${summary.operators} operators)\n`);
  return 0;
}

function diff(oldFile: string, newFile: string, json: boolean): number {
  const before = load(oldFile);
  const after = load(newFile);
  const broken = [before, after].flatMap((l, i) => ('issues' in l ? l.issues.map((issue) => `${i === 0 ? oldFile : newFile}: ${issue}`) : []));
  if (broken.length || 'issues' in before || 'issues' in after) {
    process.stderr.write(broken.map((line) => line + '\n').join(''));
    return 2;
  }
  const changes = diffPolicies(before.policy, after.policy);
  const versions = { old: policyVersion(before.policy), new: policyVersion(after.policy) };
  process.stdout.write(json ? JSON.stringify({ ...versions, ...changes }, null, 2) + '\n' : describeDiff(versions, changes));
  return 0;
}

function load(file: string): { policy: Policy } | { issues: string[] } {
  try {
    return { policy: loadPolicyFile(file) };
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    // An unreadable or unparsable file has one message; a schema failure has one issue per field.
    return { issues: err.issues.length ? err.issues : [err.message.replace(`${file}: `, '')] };
  }
}

function describeDiff(versions: { old: string; new: string }, d: PolicyDiff): string {
  if (d.same) return `no change (version ${versions.old})\n`;
  const lines = [`version ${versions.old} -> ${versions.new}`];
  const entries = (label: string, c: EntryChanges | undefined, indent = '') => {
    if (!c) return;
    for (const [sign, names] of [['+', c.added], ['-', c.removed], ['~', c.changed]] as const) {
      if (names.length) lines.push(`${indent}${sign} ${label}: ${names.join(', ')}`);
    }
  };
  entries('tenants', { ...d.tenants, changed: [] });
  for (const [tenant, t] of Object.entries(d.tenants.details)) {
    lines.push(`~ tenant ${tenant}`);
    entries('tools', t.tools, '    ');
    entries('principals', t.principals, '    ');
    entries('credentials', t.credentials, '    ');
    if (t.quotas) lines.push(`    ~ quotas: ${JSON.stringify(t.quotas.old)} -> ${JSON.stringify(t.quotas.new)}`);
    if (t.settings) lines.push(`    ~ settings: ${t.settings.join(', ')}`);
  }
  entries('servers', d.servers);
  entries('operators', d.operators);
  entries('clients', d.clients);
  if (d.broker.length) lines.push(`~ broker (restart needed): ${d.broker.join(', ')}`);
  return lines.join('\n') + '\n';
}
