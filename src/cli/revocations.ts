import type { RevocationListing } from '../operator/revocation-view';
import { callBroker } from './http-client';
import { help, OPERATOR_AUTH, operatorOptions, operatorToken, print } from './operator';
import { parseVerb } from './options';
import { printTable } from './table';
import { UsageError } from './usage-error';

export const REVOCATIONS_HELP = `Usage: bulkhead revocations list [--kind tenant|principal|session|jti] [--tenant T] [--json]

What is revoked now: kind, target (as \\\`bulkhead revoke\\\` takes it), tenant, reason, when, and when
it expires (a revocation with --ttl; "-" means until restored). An expired revocation no longer
denies and is not listed. A forced revoke of a bare jti or an unknown session has no tenant, so
--tenant does not list it.
  --json   the broker's answer as JSON ({revocations:[...]}) instead of a table
Undo one with \\\`bulkhead restore\\\`.
${OPERATOR_AUTH}`;

export async function revocations(argv: string[]): Promise<number> {
  const [action, ...rest] = argv;
  if (action === '--help' || action === '-h') return help(REVOCATIONS_HELP);
  if (action === undefined) {
    help(REVOCATIONS_HELP);
    return 2;
  }
  if (action !== 'list') throw new UsageError(`bulkhead revocations: unknown action "${action}" (see bulkhead revocations --help)`);
  const { values } = parseVerb('revocations list', rest, { ...operatorOptions, kind: { type: 'string' }, tenant: { type: 'string' }, json: { type: 'boolean' } });
  if (values.help) return help(REVOCATIONS_HELP);
  if (values.kind !== undefined && !['tenant', 'principal', 'session', 'jti'].includes(values.kind)) {
    throw new UsageError(`bulkhead revocations list: --kind must be tenant, principal, session or jti, not "${values.kind}"`);
  }
  const query = new URLSearchParams({ ...(values.kind ? { kind: values.kind } : {}), ...(values.tenant ? { tenant: values.tenant } : {}) });
  const answer = (await callBroker(values.url, `/v1/revocations${query.size ? `?${query}` : ''}`, { method: 'GET', bearer: operatorToken(values) })) as { revocations: RevocationListing[] };
  if (values.json) {
    print(answer);
    return 0;
  }
  printTable(
    ['KIND', 'TARGET', 'TENANT', 'REVOKED AT', 'EXPIRES AT', 'REASON'],
    answer.revocations.map((r) => [r.kind, r.target, r.tenant ?? '-', r.revoked_at, r.expires_at ?? '-', r.reason ?? '']),
    'nothing is revoked',
  );
  return 0;
}
