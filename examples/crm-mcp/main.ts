#!/usr/bin/env node
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createLocalSecretStore } from '../../adapters/local';
import { loadOrCreateMasterKey } from '../../src/crypto/master-key';
import { DEMO_FILE, DEMO_MCP_URL, DEMO_TENANTS, type DemoCredentials } from '../../src/policy/demo';
import { createMemoryCrmStore, demoDataset, type CrmStore } from './crm-store';
import { createPostgresCrmStore, setupPostgresDemo } from './postgres-store';
import { startCrmServer } from './server';

/**
 * Runs the example CRM MCP server next to `bulkhead serve` (demo policy): it reads the demo server key
 * and the tenants' demo secrets from the broker's data dir, so the two start with no configuration.
 *
 *   node dist/src/cli/main.js serve                 # terminal 1: Bulkhead on :8700
 *   node dist/examples/crm-mcp/main.js              # terminal 2: the CRM on http://127.0.0.1:8800/mcp
 *
 * `setup-postgres --database-url URL` switches the demo to PostgreSQL: it creates a schema, rows and a
 * login role per tenant, and stores each login in Bulkhead as that tenant's `crm` credential.
 */

const HELP = `Usage: node dist/examples/crm-mcp/main.js [--data-dir DIR] [--broker URL] [--port 8800] [--store memory|postgres]
       node dist/examples/crm-mcp/main.js setup-postgres --database-url URL [--data-dir DIR]

  --data-dir DIR   the broker's data dir, for the demo credentials (default ./.bulkhead or $BULKHEAD_DATA_DIR)
  --broker URL     where Bulkhead listens (default $BULKHEAD_ADDR or http://127.0.0.1:8700)
  --port PORT      where this MCP server listens (default 8800)
  --entry v2|v1    v2 (default): bulkhead/mcp/v2 on SDK 2.x, protocol 2026-07-28
                   v1: bulkhead/mcp on SDK 1.x, for 2025-11-25 clients (run client.js with CRM_MCP_ENTRY=v1)
  --store KIND     memory: demo rows opened by each tenant's demo secret (default)
                   postgres: rows in PostgreSQL, opened by each tenant's database login (run setup-postgres first)
Outside the demo, set BULKHEAD_SERVER_ID and BULKHEAD_SERVER_KEY (memory mode then has no rows).`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'data-dir': { type: 'string' },
      broker: { type: 'string' },
      port: { type: 'string' },
      store: { type: 'string' },
      entry: { type: 'string' },
      'database-url': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const dataDir = resolve(values['data-dir'] ?? process.env.BULKHEAD_DATA_DIR ?? '.bulkhead');
  if (positionals[0] === 'setup-postgres') return setupPostgres(dataDir, values['database-url'] ?? process.env.DATABASE_URL);
  if (positionals.length > 0) throw new Error(`unknown command "${positionals[0]}" (see --help)`);

  const demo = await readDemo(dataDir);
  const serverId = process.env.BULKHEAD_SERVER_ID ?? demo?.server.id;
  const serverKey = process.env.BULKHEAD_SERVER_KEY ?? demo?.server.key;
  if (!serverId || !serverKey) throw new Error(`no server key: start \`bulkhead serve\` first (it writes ${join(dataDir, DEMO_FILE)}), or set BULKHEAD_SERVER_ID and BULKHEAD_SERVER_KEY`);

  let store: CrmStore;
  if (values.store === 'postgres') store = createPostgresCrmStore();
  else if (values.store === undefined || values.store === 'memory') {
    // Each tenant's rows open with that tenant's demo secrets — the values Bulkhead will resolve.
    store = createMemoryCrmStore(demo ? DEMO_TENANTS.map((t) => demoDataset(t, Object.values(demo.secrets[t] ?? {}))) : []);
  } else throw new Error('--store must be memory or postgres');

  const entry = values.entry ?? 'v2';
  if (entry !== 'v1' && entry !== 'v2') throw new Error('--entry must be v2 or v1');
  const brokerUrl = values.broker ?? process.env.BULKHEAD_ADDR ?? process.env.BULKHEAD_URL ?? 'http://127.0.0.1:8700';
  const crm = await startCrmServer({
    entry,
    brokerUrl,
    serverId,
    serverKey,
    store,
    // The demo policy's servers.demo-mcp.resource is DEMO_MCP_URL: listen there unless told otherwise.
    port: Number(values.port ?? new URL(DEMO_MCP_URL).port),
    approval: {
      // The demo agent waits in-request on both entries (with progress), so the walkthrough reads the same;
      // on v2 a client that can answer elicitations gets an MRTR approval round once this wait is over.
      waitMs: 120_000,
      onPending: (p) =>
        process.stderr.write(`\n${p.tenant}/${p.principal} waits for approval of ${p.tool}: node dist/examples/crm-mcp/client.js approve ${p.approvalId}\n\n`),
    },
  });
  process.stderr.write(`CRM MCP server (${values.store ?? 'memory'} store, ${entry} entry) on ${crm.url}, protected by Bulkhead at ${brokerUrl} as "${serverId}"\n`);
  await new Promise<void>((done) => {
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
  await crm.close();
  return 0;
}

async function readDemo(dataDir: string): Promise<DemoCredentials | null> {
  try {
    return JSON.parse(await readFile(join(dataDir, DEMO_FILE), 'utf8')) as DemoCredentials;
  } catch {
    return null;
  }
}

async function setupPostgres(dataDir: string, databaseUrl: string | undefined): Promise<number> {
  if (!databaseUrl) throw new Error('setup-postgres needs --database-url (an admin connection) or $DATABASE_URL');
  const logins = await setupPostgresDemo(databaseUrl, [...DEMO_TENANTS]);
  const secrets = createLocalSecretStore({ dataDir, masterKey: await loadOrCreateMasterKey(dataDir) });
  // The demo policy resolves send_email with the `mail` credential: the same login writes the outbox.
  for (const [tenant, login] of Object.entries(logins)) for (const name of ['crm', 'mail']) await secrets.set(tenant, name, login);
  process.stdout.write(`created schemas, rows and login roles for ${DEMO_TENANTS.join(', ')}; stored each login as that tenant's "crm" and "mail" secrets in ${dataDir}\nnow run: node dist/examples/crm-mcp/main.js --store postgres\n`);
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`crm-mcp: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}
