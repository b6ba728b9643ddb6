import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../../../src/crypto/hash';
import { decodeJwt } from 'jose';
import { createBroker } from '../../../src/app';
import { createLogger } from '../../../src/observability/logger';
import { DEMO_FILE, DEMO_MCP_URL, DEMO_SERVER, demoPolicy, loadOrCreateDemoCredentials } from '../../../src/policy/demo';
import { tempDir, type TempDir } from './policy-fixtures';

/** The demo `bulkhead serve` runs with no --config: valid, frozen, and with no default secrets. */

let tmp: TempDir;
beforeEach(async () => {
  tmp = await tempDir();
});
afterEach(() => tmp.cleanup());

describe('the demo policy', () => {
  it('passes the same validation as any policy file, and is frozen', async () => {
    const creds = await loadOrCreateDemoCredentials(tmp.dir);
    const policy = demoPolicy(creds, 'http://127.0.0.1:8700');
    expect(Object.keys(policy.tenants).sort()).toEqual(['acme', 'globex']);
    expect(Object.keys(policy.servers)).toEqual([DEMO_SERVER]);
    expect(policy.broker.issuer).toBe('http://127.0.0.1:8700');
    expect(Object.isFrozen(policy.tenants.acme!.tools)).toBe(true);
    for (const tenant of ['acme', 'globex']) {
      expect(policy.tenants[tenant]!.principals[`${tenant}-agent`]!.secret_sha256).toBe(sha256Hex(creds.clients[`${tenant}-agent`]!.secret));
      expect(policy.tenants[tenant]!.tools.query_crm!.resource).toEqual({ arg: 'path', prefix: `${tenant}/` });
    }
    expect(policy.servers[DEMO_SERVER]!.key_sha256).toBe(sha256Hex(creds.server.key));
    expect(policy.operators[creds.operator.id]!.token_sha256).toBe(sha256Hex(creds.operator.token));
  });

  it('has no default secrets: each data dir gets its own, kept 0600, and reused on restart', async () => {
    const other = await tempDir();
    try {
      const first = await loadOrCreateDemoCredentials(tmp.dir);
      const again = await loadOrCreateDemoCredentials(tmp.dir);
      const elsewhere = await loadOrCreateDemoCredentials(other.dir);
      expect(again).toEqual(first);
      expect(elsewhere.server.key).not.toBe(first.server.key);
      expect(elsewhere.clients['acme-agent']!.secret).not.toBe(first.clients['acme-agent']!.secret);
      expect((await stat(join(tmp.dir, DEMO_FILE))).mode & 0o777).toBe(0o600);
    } finally {
      await other.cleanup();
    }
  });

  it('names the example CRM\'s default URL as demo-mcp\'s resource, so an RFC 8707 client gets a token for it', async () => {
    const creds = await loadOrCreateDemoCredentials(tmp.dir);
    const policy = demoPolicy(creds, 'http://127.0.0.1:8700');
    expect(policy.servers[DEMO_SERVER]!.resource).toBe(DEMO_MCP_URL);
    expect(DEMO_MCP_URL).toBe('http://127.0.0.1:8800/mcp'); // examples/crm-mcp/main.ts listens here by default
    const broker = await createBroker({ policy, dataDir: tmp.dir, logger: createLogger({ level: 'silent' }) });
    try {
      const { url } = await broker.listen();
      const answer = await fetch(`${url}/v1/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'acme-agent', client_secret: creds.clients['acme-agent']!.secret, resource: DEMO_MCP_URL }),
      });
      expect(answer.status).toBe(200);
      expect(decodeJwt(((await answer.json()) as { access_token: string }).access_token)).toMatchObject({ aud: [DEMO_SERVER, DEMO_MCP_URL], client_id: 'acme/acme-agent', tid: 'acme' });
    } finally {
      await broker.close();
    }
  });
});
