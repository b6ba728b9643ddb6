import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { createLocalSecretStore } from '../../adapters/local';
import { loadOrCreateMasterKey } from '../../src/crypto/master-key';
import { CrmAccessError } from '../../examples/crm-mcp/crm-store';
import { createPostgresCrmStore, setupPostgresDemo } from '../../examples/crm-mcp/postgres-store';
import { startCrmServer, type CrmServer } from '../../examples/crm-mcp/server';
import { startHarness, type Harness } from '../support/broker-harness';
import { connectMcp, denyOf, textOf, type McpConnection } from '../support/mcp-client';
import { describeWithUpstream, upstreamEnv } from '../support/upstreams';

/**
 * The example CRM's PostgreSQL mode against the real PostgreSQL upstream: each tenant's credential is
 * a login for its own role, and the database itself refuses one tenant's login on another's schema.
 * Then the whole chain: MCP SDK client → protected CRM server → Bulkhead (local store holding those
 * logins) → PostgreSQL. Runs in a throwaway database with randomly named roles, dropped afterwards.
 */

describeWithUpstream(['postgres'], 'example CRM over PostgreSQL, gated by the credential Bulkhead resolves', () => {
  const suffix = randomBytes(4).toString('hex');
  const database = `crm_it_${suffix}`;
  const rolePrefix = `crm_${suffix}_`;
  let adminUrl: URL;
  let logins: Record<string, string>;
  const store = createPostgresCrmStore();

  beforeAll(async () => {
    adminUrl = new URL(upstreamEnv().DATABASE_URL);
    const admin = new Client({ connectionString: adminUrl.toString() });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${database}`);
    await admin.end();
    const dbUrl = new URL(adminUrl);
    dbUrl.pathname = `/${database}`;
    logins = await setupPostgresDemo(dbUrl.toString(), ['acme', 'globex'], rolePrefix);
  });

  afterAll(async () => {
    const admin = new Client({ connectionString: adminUrl.toString() });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    for (const ns of ['acme', 'globex']) await admin.query(`DROP ROLE IF EXISTS ${rolePrefix}${ns}`);
    await admin.end();
  });

  it("reads a tenant's rows with that tenant's login, and the database refuses it on the other tenant's schema", async () => {
    const rows = await store.query(logins.acme!, 'acme/contacts');
    expect(rows.map((r) => r.email)).toEqual(['contact1@acme.example', 'contact2@acme.example', 'contact3@acme.example']);
    expect((await store.exportTable(logins.globex!, 'deals')).map((r) => r.title)).toEqual(['Globex deal 1', 'Globex deal 2']);

    await expect(store.query(logins.acme!, 'globex/contacts')).rejects.toThrow(new CrmAccessError('no table "globex/contacts"'));
    const wrongPassword = new URL(logins.acme!);
    wrongPassword.password = 'not-the-password';
    const refused = await store.query(wrongPassword.toString(), 'acme/contacts').catch((e: Error) => e);
    expect(refused).toBeInstanceOf(CrmAccessError);
    expect((refused as Error).message).not.toContain(wrongPassword.password);
  });

  describe('end to end: MCP client → protected CRM → Bulkhead → PostgreSQL', () => {
    let h: Harness;
    let crm: CrmServer;
    const clients: McpConnection[] = [];

    beforeAll(async () => {
      h = await startHarness();
      // The operator's step: store each tenant's database login as its `crm` credential in Bulkhead.
      const secrets = createLocalSecretStore({ dataDir: h.dataDir, masterKey: await loadOrCreateMasterKey(h.dataDir) });
      for (const ns of ['acme', 'globex']) await secrets.set(ns, 'crm', logins[ns]!);
      crm = await startCrmServer({ entry: 'v1', brokerUrl: h.url, serverId: 'crm-mcp', serverKey: h.serverKeys['crm-mcp']!, store: createPostgresCrmStore(), port: 0, logger: { info: () => undefined, warn: () => undefined } });
    });

    afterAll(async () => {
      await Promise.all(clients.map((c) => c.close()));
      await crm?.close();
      await h?.close();
    });

    it("gives each tenant its own rows from PostgreSQL, and never the database login", async () => {
      for (const tenant of ['acme', 'globex']) {
        const client = await connectMcp(crm.url, await h.token(`${tenant}-agent`, 'crm-mcp'));
        clients.push(client);
        const result = await client.call('query_crm', { path: `${tenant}/contacts/2` });
        expect(result.isError).toBeFalsy();
        expect(JSON.parse(textOf(result)).rows).toEqual([{ id: 2, name: `${tenant[0]!.toUpperCase()}${tenant.slice(1)} Contact 2`, email: `contact2@${tenant}.example`, company: expect.any(String) }]);
        expect(JSON.stringify(result)).not.toContain(new URL(logins[tenant]!).password);

        const theirs = await client.call('query_crm', { path: `${tenant === 'acme' ? 'globex' : 'acme'}/contacts` });
        expect(denyOf(theirs)?.reason).toBe('resource_out_of_scope');
      }
    });
  });
});
