import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../crypto/hash';
import { parsePolicy } from './load';
import type { Policy } from './schema';

/**
 * The demo that `bulkhead serve` runs with no --config: two tenants on one MCP server, local secrets.
 * There are no default secrets: each data dir gets its own random client secrets, server key and
 * operator token, kept 0600 in demo-credentials.json so the README walkthrough can read them.
 */
export const DEMO_FILE = 'demo-credentials.json';
export const DEMO_SERVER = 'demo-mcp';
export const DEMO_TENANTS = ['acme', 'globex'] as const;
/**
 * Where the example CRM (examples/crm-mcp) listens by default: its RFC 9728 `resource`, so an MCP
 * client that asks for `resource=<this URL>` (RFC 8707) gets a demo-mcp token out of the box.
 */
export const DEMO_MCP_URL = 'http://127.0.0.1:8800/mcp';

export interface DemoCredentials {
  server: { id: string; key: string };
  operator: { id: string; token: string };
  clients: Record<string, { tenant: string; secret: string }>;
  /** Upstream secret values the demo stores in the local store, per tenant. */
  secrets: Record<string, Record<string, string>>;
}

const random = () => randomBytes(24).toString('base64url');

export async function loadOrCreateDemoCredentials(dataDir: string): Promise<DemoCredentials> {
  const path = join(dataDir, DEMO_FILE);
  try {
    return JSON.parse(await readFile(path, 'utf8')) as DemoCredentials;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const creds: DemoCredentials = {
    server: { id: DEMO_SERVER, key: random() },
    operator: { id: 'ops', token: random() },
    clients: Object.fromEntries(DEMO_TENANTS.map((t) => [`${t}-agent`, { tenant: t, secret: random() }])),
    secrets: Object.fromEntries(DEMO_TENANTS.map((t) => [t, { crm: `${t}-crm-${random()}`, mail: `${t}-smtp-${random()}` }])),
  };
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  try {
    const handle = await open(path, 'wx', 0o600);
    await handle.writeFile(JSON.stringify(creds, null, 2) + '\n');
    await handle.sync();
    await handle.close();
    return creds;
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateDemoCredentials(dataDir);
    throw err;
  }
}

export function demoPolicy(creds: DemoCredentials, issuer: string): Policy {
  const tenants = Object.fromEntries(
    DEMO_TENANTS.map((t) => [
      t,
      {
        principals: { [`${t}-agent`]: { secret_sha256: sha256Hex(creds.clients[`${t}-agent`]!.secret), tools: ['query_crm', 'export_report', 'send_email'] } },
        tools: {
          query_crm: { credential: 'crm', resource: { arg: 'path', prefix: `${t}/` }, inject: { region: 'eu-west-1' } },
          export_report: { credential: 'crm', max_records: 1000 },
          send_email: { credential: 'mail', approval: true },
        },
        credentials: { crm: { source: 'local', name: 'crm' }, mail: { source: 'local', name: 'mail' } },
        quotas: { calls_per_minute: 600, concurrency: 8 },
      },
    ]),
  );
  return parsePolicy(
    {
      broker: { issuer },
      operators: { [creds.operator.id]: { token_sha256: sha256Hex(creds.operator.token) } },
      servers: { [DEMO_SERVER]: { key_sha256: sha256Hex(creds.server.key), tools: ['query_crm', 'export_report', 'send_email'], resource: DEMO_MCP_URL } },
      tenants,
    },
    'demo policy',
  );
}
