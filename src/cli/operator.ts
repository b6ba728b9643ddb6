import { resolve } from 'node:path';
import { callBroker, readSecret } from './http-client';
import { ADDRESS_HELP, clientOptions, DEFAULT_DATA_DIR, parseVerb } from './options';
import { UsageError } from './usage-error';

/** How every operator verb authenticates and finds the broker, for their --help. */
export const OPERATOR_AUTH = `  --operator-token-file F   operator token (else $BULKHEAD_OPERATOR_TOKEN, else the demo credentials in --data-dir)
${ADDRESS_HELP}`;

export const REVOKE_HELP = `Usage: bulkhead revoke (--tenant T | --session SID | --principal [TENANT/]P | --jti JTI)
                      [--reason TEXT] [--ttl DURATION] [--force]

Kill switch: once this returns, no replica allows the target again — including calls already in flight
whose upstream is still resolving — and its upstream leases are revoked; the revoke record is in the
tenant's audit stream, after every allow it covers.

A typo is refused, not obeyed: a principal that is neither in policy nor holding a live token, or a
session the broker has not issued (or that has expired), answers 404 unknown_target and revokes
nothing — often with "did you mean". Ids are exact: no trimming, no case folding.
  --force          revoke it anyway (a federated principal that has no token yet, a session id from a log)
                   A --jti always needs --force: the broker keeps no list of token ids.
  --ttl DURATION   stop denying after this long ("90s", "15m", "1h", "7d"; at most a year); not for
                   --tenant. Without it a principal, session or token stays revoked until
                   \`bulkhead restore\`, a tenant until \`bulkhead restore --tenant\`.
  --reason TEXT    kept with the revocation and in the audit record
See what is revoked with \`bulkhead revocations list\`.
${OPERATOR_AUTH}`;

export const RESTORE_HELP = `Usage: bulkhead restore --tenant T [--reason TEXT]
       bulkhead restore (--principal [TENANT/]P | --session SID) --reason TEXT

Undoes a revoke; recorded with your operator id and the reason in the tenant's audit stream, and in
effect on every replica once this returns.
  --tenant     lifts a tenant revocation for tokens issued after it only: tokens issued at or before
               the revoke stay tenant_revoked (agents get new ones). Principals and sessions revoked
               one by one stay revoked.
  --principal  lifts a principal revocation entirely: its tokens, old ones included, work again.
  --session    lifts a session revocation entirely: the session's tokens work again.
  --reason     why (required for --principal and --session)
Nothing revoked under that name is 404 not_found (exit 1). A quarantined session is released with
\`bulkhead quarantine lift\`, not here.
${OPERATOR_AUTH}`;

export const KEYS_HELP = `Usage: bulkhead keys rotate

Moves the signing keys one step now: next becomes current, current becomes previous.
Tokens already issued keep verifying until they expire.
${OPERATOR_AUTH}`;

export const operatorOptions = { ...clientOptions, 'operator-token-file': { type: 'string' } } as const;

export function operatorToken(values: { 'operator-token-file'?: string; 'data-dir'?: string }): string {
  return readSecret({
    file: values['operator-token-file'],
    envName: 'BULKHEAD_OPERATOR_TOKEN',
    demo: (d) => d.operator.token,
    dataDir: resolve(values['data-dir'] ?? process.env.BULKHEAD_DATA_DIR ?? DEFAULT_DATA_DIR),
    what: 'operator token',
  });
}

export async function revoke(argv: string[]): Promise<number> {
  const { values } = parseVerb('revoke', argv, {
    ...operatorOptions,
    tenant: { type: 'string' },
    session: { type: 'string' },
    principal: { type: 'string' },
    jti: { type: 'string' },
    reason: { type: 'string' },
    ttl: { type: 'string' },
    force: { type: 'boolean' },
  });
  if (values.help) return help(REVOKE_HELP);
  const targets = (['tenant', 'session', 'principal', 'jti'] as const).filter((k) => values[k] !== undefined);
  if (targets.length !== 1) throw new UsageError('bulkhead revoke: give exactly one of --tenant, --session, --principal, --jti');
  if (values.ttl !== undefined && values.tenant !== undefined) throw new UsageError('bulkhead revoke: --ttl is for principals, sessions and tokens; a tenant stays revoked until `bulkhead restore --tenant`');
  const body = {
    [targets[0]!]: values[targets[0]!],
    ...(values.reason ? { reason: values.reason } : {}),
    ...(values.ttl !== undefined ? { ttl: values.ttl } : {}),
    ...(values.force ? { force: true } : {}),
  };
  print(await callBroker(values.url, '/v1/revoke', { method: 'POST', body, bearer: operatorToken(values) }));
  return 0;
}

export async function restore(argv: string[]): Promise<number> {
  const { values } = parseVerb('restore', argv, { ...operatorOptions, tenant: { type: 'string' }, principal: { type: 'string' }, session: { type: 'string' }, reason: { type: 'string' } });
  if (values.help) return help(RESTORE_HELP);
  const targets = (['tenant', 'principal', 'session'] as const).filter((k) => values[k] !== undefined);
  if (targets.length !== 1) throw new UsageError('bulkhead restore: give exactly one of --tenant, --principal, --session');
  if (values.tenant === undefined && !values.reason?.trim()) throw new UsageError(`bulkhead restore: --reason is required with --${targets[0]} (it is audited)`);
  const body = { [targets[0]!]: values[targets[0]!], ...(values.reason ? { reason: values.reason } : {}) };
  print(await callBroker(values.url, '/v1/restore', { method: 'POST', body, bearer: operatorToken(values) }));
  return 0;
}

export async function keys(argv: string[]): Promise<number> {
  const [action, ...rest] = argv;
  if (action === undefined || action === '--help' || action === '-h') return help(KEYS_HELP);
  if (action !== 'rotate') throw new UsageError(`bulkhead keys: unknown action "${action}" (see bulkhead keys --help)`);
  const { values } = parseVerb('keys rotate', rest, operatorOptions);
  if (values.help) return help(KEYS_HELP);
  print(await callBroker(values.url, '/v1/keys/rotate', { method: 'POST', body: {}, bearer: operatorToken(values) }));
  return 0;
}

export function help(text: string): number {
  process.stdout.write(text + '\n');
  return 0;
}

export function print(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}
