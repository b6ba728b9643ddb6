import type { QuarantineListing } from '../operator/quarantine-review';
import { callBroker } from './http-client';
import { help, OPERATOR_AUTH, operatorOptions, operatorToken, print } from './operator';
import { parseVerb } from './options';
import { printTable } from './table';
import { UsageError } from './usage-error';

export const QUARANTINE_HELP = `Usage: bulkhead quarantine list [--tenant T] [--json]
       bulkhead quarantine lift --session SID [--tenant T] --reason TEXT [--json]

A session is quarantined when a call returned more records than its tool's max_records; its calls
are then denied session_quarantined until an operator reviews it.
  list   quarantined sessions: tenant, session, why, since when (--json: the broker's JSON)
  lift   releases the session: its tokens work again on every replica once this returns. Recorded
         with your operator id and the reason in the tenant's audit stream. --tenant is optional
         (the session id finds it). Not quarantined → 404 not_found (exit 1).
${OPERATOR_AUTH}`;

export async function quarantine(argv: string[]): Promise<number> {
  const [action, ...rest] = argv;
  if (action === '--help' || action === '-h') return help(QUARANTINE_HELP);
  if (action === undefined) {
    help(QUARANTINE_HELP);
    return 2;
  }
  if (action === 'list') return list(rest);
  if (action === 'lift') return lift(rest);
  throw new UsageError(`bulkhead quarantine: unknown action "${action}" (see bulkhead quarantine --help)`);
}

async function list(argv: string[]): Promise<number> {
  const { values } = parseVerb('quarantine list', argv, { ...operatorOptions, tenant: { type: 'string' }, json: { type: 'boolean' } });
  if (values.help) return help(QUARANTINE_HELP);
  const query = values.tenant ? `?${new URLSearchParams({ tenant: values.tenant })}` : '';
  const answer = (await callBroker(values.url, `/v1/quarantines${query}`, { method: 'GET', bearer: operatorToken(values) })) as { quarantines: QuarantineListing[] };
  if (values.json) {
    print(answer);
    return 0;
  }
  printTable(
    ['TENANT', 'SESSION', 'SINCE', 'REASON'],
    answer.quarantines.map((q) => [q.tenant, q.session, q.quarantined_at, q.reason]),
    'no session is quarantined',
  );
  return 0;
}

async function lift(argv: string[]): Promise<number> {
  const { values } = parseVerb('quarantine lift', argv, { ...operatorOptions, session: { type: 'string' }, tenant: { type: 'string' }, reason: { type: 'string' }, json: { type: 'boolean' } });
  if (values.help) return help(QUARANTINE_HELP);
  if (!values.session) throw new UsageError('bulkhead quarantine lift: --session is required');
  if (!values.reason?.trim()) throw new UsageError('bulkhead quarantine lift: --reason is required (it is audited)');
  const body = { session: values.session, reason: values.reason, ...(values.tenant ? { tenant: values.tenant } : {}) };
  print(await callBroker(values.url, '/v1/quarantines/lift', { method: 'POST', body, bearer: operatorToken(values) }));
  return 0;
}
