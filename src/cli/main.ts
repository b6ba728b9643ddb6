#!/usr/bin/env node
import { audit } from './audit';
import { certs } from './certs';
import { keys, restore, revoke } from './operator';
import { secret } from './secret';
import { serve } from './serve';
import { state } from './state';
import { token } from './token';
import { UsageError } from './usage-error';

/** Exit codes: 0 ok, 1 runtime failure, 2 usage or config error (one line naming the file and field). */
const VERBS: Record<string, { run: (argv: string[]) => Promise<number>; summary: string }> = {
  serve: { run: serve, summary: 'run the broker (demo policy without --config)' },
  token: { run: token, summary: 'get an access token for a principal' },
  revoke: { run: revoke, summary: 'kill switch: revoke a tenant, session, principal or token' },
  restore: { run: restore, summary: 'lift a tenant revocation' },
  audit: { run: audit, summary: 'audit verify: check the hash chains' },
  keys: { run: keys, summary: 'keys rotate: move the signing keys one step' },
  secret: { run: secret, summary: 'secret set: store a secret in the embedded store' },
  state: { run: state, summary: 'state init: create the PostgreSQL schema for scale-out' },
  certs: { run: certs, summary: 'certs issue|renew: mTLS client certificates for MCP servers and operators' },
};

export const HELP = `Usage: bulkhead <verb> [options]     (bulkhead <verb> --help for each)

${Object.entries(VERBS)
  .map(([name, v]) => `  ${name.padEnd(9)}${v.summary}`)
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
    return await entry.run(rest);
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

