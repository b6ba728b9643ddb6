#!/usr/bin/env node
import { UsageError } from './usage-error';

type Verb = (argv: string[]) => Promise<number>;

/**
 * Exit codes: 0 ok, 1 runtime failure, 2 usage or config error (one line naming the file and field).
 * Each verb's module is loaded only when it runs: `serve` pulls in the upstream SDKs, which a quick
 * `bulkhead token` or `bulkhead revoke` should not pay for.
 */
const VERBS: Record<string, { load: () => Verb; summary: string }> = {
  serve: { load: () => (require('./serve') as typeof import('./serve')).serve, summary: 'run the broker (demo policy without --config)' },
  token: { load: () => (require('./token') as typeof import('./token')).token, summary: 'get an access token for a principal' },
  revoke: { load: () => (require('./operator') as typeof import('./operator')).revoke, summary: 'kill switch: revoke a tenant, session, principal or token' },
  restore: { load: () => (require('./operator') as typeof import('./operator')).restore, summary: 'undo a revoke: a tenant (new tokens only), a principal or a session' },
  revocations: { load: () => (require('./revocations') as typeof import('./revocations')).revocations, summary: 'revocations list: what is revoked now, with reasons and expiries' },
  quarantine: { load: () => (require('./quarantine') as typeof import('./quarantine')).quarantine, summary: 'quarantine list|lift: review and release quarantined sessions' },
  audit: { load: () => (require('./audit') as typeof import('./audit')).audit, summary: 'audit verify|export|show|correlate: check, export and search the audit' },
  keys: { load: () => (require('./operator') as typeof import('./operator')).keys, summary: 'keys rotate: move the signing keys one step' },
  approvals: { load: () => (require('./approvals') as typeof import('./approvals')).approvals, summary: 'approvals list|approve|deny: calls waiting for a human' },
  secret: { load: () => (require('./secret') as typeof import('./secret')).secret, summary: 'secret set|list|delete|shred: the embedded secret store' },
  tenant: { load: () => (require('./tenant') as typeof import('./tenant')).tenant, summary: 'tenant status|export|delete|shred: budget and quota use; DSAR export; delete a tenant; crypto-shred its keys' },
  selftest: { load: () => (require('./selftest') as typeof import('./selftest')).selftest, summary: 'selftest: containment proof against a live deployment, with canary tenants' },
  state: { load: () => (require('./state') as typeof import('./state')).state, summary: 'state init: create the PostgreSQL schema for scale-out' },
  policy: { load: () => (require('./policy') as typeof import('./policy')).policy, summary: 'policy check|diff|reload: validate, compare and live-reload policy files' },
  certs: { load: () => (require('./certs') as typeof import('./certs')).certs, summary: 'certs issue|renew: mTLS client certificates for MCP servers and operators' },
};

export const HELP = `Usage: bulkhead <verb> [options]     (bulkhead <verb> --help for each)

${Object.entries(VERBS)
  .map(([name, v]) => `  ${name.padEnd(11)}${v.summary}`)
  .join('\n')}

Verbs that read policy or state take --config FILE and --data-dir DIR.
Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.`;

export async function main(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  if (verb === undefined || verb === '--help' || verb === '-h' || verb === 'help') {
    process.stdout.write(HELP + '\n');
    return verb === undefined ? 2 : 0;
  }
  const entry = VERBS[verb];
  if (!entry) {
    process.stderr.write(`bulkhead: unknown verb "${verb}" (see bulkhead --help)\n`);
    return 2;
  }
  try {
    return await entry.load()(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    process.stderr.write(`bulkhead ${verb}: ${(err as Error).message}\n`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`bulkhead: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}

