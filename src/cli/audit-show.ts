import { searchAudit, type AuditFilter } from '../audit/search';
import { isoOption, openAuditSources } from './audit-sources';
import { callBroker } from './http-client';
import { operatorOptions, operatorToken, print } from './operator';
import { parseVerb, stateOptions } from './options';
import { UsageError } from './usage-error';

export const SHOW_HELP = `Usage: bulkhead audit show --tenant T [--type X] [--decision allow|deny] [--reason R] [--tool X]
         [--principal P] [--session S] [--server X] [--request-id R] [--from ISO] [--to ISO]
         [--after SEQ] [--limit N] [--json] [--data-dir DIR] [--config FILE]

Lists tenant T's audit records that match every filter given, oldest first, read from the data dir
(or PostgreSQL when scaled out). --after SEQ starts after that record: the last line says where the
next page starts. GET /v1/audit takes the same filters. --tenant _security shows the broker's
security stream (refusals with no verifiable tenant).`;

export const CORRELATE_HELP = `Usage: bulkhead audit correlate --request-id R [--operator-token-file F] [--url URL]

Says which tenant stream and record hold platform request R (the requestId of a log line, the
X-Request-Id of a response). Asks the broker's operator API, which records the join in every stream
it found R in.`;

export const SEAL_HELP = `Usage: bulkhead audit seal --tenant T --reason TEXT [--operator-token-file F] [--url URL]

Serves tenant T again after its audit stream was found broken (GET /v1/tenants/T shows
audit.state "locked" and what was found). The broker appends a seal record signed with the audit key:
it records where the chain last verified, where it broke, what was found, who sealed it and why, and
starts a new segment. Nothing is edited or removed: the broken region stays in place as evidence.
Afterwards "bulkhead audit verify" reports the stream as ok with a SEALED BREAK (what the seal recorded
and what is found there now), never silently ok; a change to anything before the seal voids it.
Refuses a stream that is not locked. Asks the broker's operator API (POST /v1/audit/seal).`;

const FILTERS = ['type', 'decision', 'reason', 'tool', 'principal', 'session', 'server'] as const;

export async function auditShow(argv: string[]): Promise<number> {
  const { values } = parseVerb('audit show', argv, {
    ...stateOptions,
    tenant: { type: 'string' },
    ...Object.fromEntries(FILTERS.map((f) => [f, { type: 'string' as const }])),
    'request-id': { type: 'string' },
    from: { type: 'string' },
    to: { type: 'string' },
    after: { type: 'string' },
    limit: { type: 'string' },
    json: { type: 'boolean' },
  } as const);
  const options = values as Record<string, string | boolean | undefined>;
  if (!values.tenant) throw new UsageError('bulkhead audit show: --tenant is required');
  const filter: AuditFilter = { from: isoOption('from', values.from), to: isoOption('to', values.to), request_id: values['request-id'] };
  for (const f of FILTERS) if (typeof options[f] === 'string') filter[f] = options[f] as string;
  const after = count('after', values.after, 0);
  const limit = count('limit', values.limit, 1);
  const sources = await openAuditSources({ ...values, keys: undefined });
  try {
    const page = await searchAudit(sources.log, values.tenant, filter, { after, limit: limit ?? 100 });
    if (values.json) {
      process.stdout.write(JSON.stringify({ tenant: values.tenant, ...page }, null, 2) + '\n');
      return 0;
    }
    for (const e of page.events) {
      const fields = [e.type, e.decision, e.reason, e.tool, e.principal && `principal=${e.principal}`, e.session && `session=${e.session}`, e.operator && `operator=${e.operator}`, e.request_id && `request=${e.request_id}`];
      process.stdout.write(`${e.seq}\t${e.ts}\t${fields.filter(Boolean).join(' ')}\n`);
    }
    process.stdout.write(page.next_after === undefined ? `${page.events.length} records\n` : `${page.events.length} records; more after seq ${page.next_after} (--after ${page.next_after})\n`);
    return 0;
  } finally {
    await sources.close();
  }
}

function count(name: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,9}$/.test(value) || Number(value) < min) throw new UsageError(`bulkhead audit show: --${name} must be a whole number ≥ ${min}`);
  return Number(value);
}

export async function auditSeal(argv: string[]): Promise<number> {
  const { values } = parseVerb('audit seal', argv, { ...operatorOptions, tenant: { type: 'string' }, reason: { type: 'string' } });
  if (!values.tenant || !values.reason) throw new UsageError('bulkhead audit seal: --tenant and --reason are required (the reason is recorded in the seal)');
  print(await callBroker(values.url, '/v1/audit/seal', { method: 'POST', bearer: operatorToken(values), body: { tenant: values.tenant, reason: values.reason } }));
  return 0;
}

export async function auditCorrelate(argv: string[]): Promise<number> {
  const { values } = parseVerb('audit correlate', argv, { ...operatorOptions, 'request-id': { type: 'string' } });
  const requestId = values['request-id'];
  if (!requestId) throw new UsageError('bulkhead audit correlate: --request-id is required');
  const answer = (await callBroker(values.url, `/v1/audit/correlate?request_id=${encodeURIComponent(requestId)}`, { method: 'GET', bearer: operatorToken(values) })) as { matches: unknown[] };
  print(answer);
  return answer.matches.length > 0 ? 0 : 1;
}
