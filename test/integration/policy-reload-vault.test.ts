import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPolicyFile } from '../../src/policy/load';
import { startHarness, type Harness } from '../support/broker-harness';
import { callId } from '../support/isolation-assertions';
import { describeWithUpstream, upstreamEnv } from '../support/upstreams';
import { bootstrapBao, type BaoFixture } from './support/bao-bootstrap';
import { withUpstreams } from './support/upstream-policy';

/**
 * A policy reload that moves a tenant onto Vault with its own AppRole: the identity is logged in for
 * the new policy (no restart), reads only that tenant's path (Vault itself refuses another's), and a
 * reload that changes the AppRole files replaces the identity rather than keeping the old login.
 */
jest.setTimeout(60_000);

describeWithUpstream(['bao'], 'policy reload with real OpenBao identities', () => {
  const env = upstreamEnv();
  let dir: string;
  let bao: BaoFixture;
  let h: Harness;
  let initial: any;
  const policyFile = () => join(h.dataDir, 'policy.json');

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bulkhead-reload-vault-'));
    bao = await bootstrapBao({ address: env.VAULT_ADDR, rootToken: env.VAULT_TOKEN, tenants: ['acme', 'globex', 'initech'], dir });
    const upstreams = withUpstreams({ vaultAddr: env.VAULT_ADDR, bao });
    h = await startHarness({
      overrides: (raw) => {
        upstreams(raw);
        // initech starts on the embedded store, with no Vault identity at all.
        delete raw.tenants.initech.vault;
        raw.tenants.initech.credentials.crm = { source: 'local', name: 'crm' };
        initial = structuredClone(raw);
      },
      brokerOptions: { loadPolicy: () => loadPolicyFile(policyFile()) },
    });
  });
  afterAll(async () => {
    await h?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const query = async (tenant: string) => h.authorize('crm-mcp', { token: await h.token(`${tenant}-agent`, 'crm-mcp'), tool: 'query_crm', arguments: { path: `${tenant}/accounts` }, call_id: callId('vault-reload') });
  async function reloadWith(edit: (doc: any) => void) {
    const doc = structuredClone(initial);
    edit(doc);
    writeFileSync(policyFile(), JSON.stringify(doc));
    return h.post('/v1/policy/reload', {}, h.operatorToken);
  }

  test('a tenant moved onto Vault by a reload reads its own KV path with its own AppRole', async () => {
    const before = await query('initech');
    expect([before.status, before.body.credential?.source, before.body.credential?.value]).toEqual([200, 'local', h.upstream.initech]);

    const answer = await reloadWith((doc) => {
      doc.tenants.initech.vault = { approle: { role_id_file: bao.tenants.initech!.roleIdFile, secret_id_file: bao.tenants.initech!.secretIdFile } };
      doc.tenants.initech.credentials.crm = { source: 'vault', path: bao.tenants.initech!.kvPath, field: 'api_key' };
    });
    expect(answer.status).toBe(200);
    expect(answer.body.diff.tenants.details.initech).toMatchObject({ credentials: { changed: ['crm'] }, settings: ['vault'] });

    const after = await query('initech');
    expect([after.status, after.body.credential?.source, after.body.credential?.value]).toEqual([200, 'vault', bao.tenants.initech!.kvSecret.api_key]);
    // The neighbours kept their identities and still read their own secrets.
    expect((await query('acme')).body.credential?.value).toBe(bao.tenants.acme!.kvSecret.api_key);
  });

  test("a reload that gives a tenant another tenant's AppRole replaces the login, and Vault refuses the path", async () => {
    const answer = await reloadWith((doc) => {
      doc.tenants.initech.vault = { approle: { role_id_file: bao.tenants.globex!.roleIdFile, secret_id_file: bao.tenants.globex!.secretIdFile } };
      doc.tenants.initech.credentials.crm = { source: 'vault', path: bao.tenants.initech!.kvPath, field: 'api_key' };
    });
    expect(answer.status).toBe(200);
    const refused = await query('initech');
    expect([refused.status, refused.body.reason]).toEqual([503, 'upstream_unavailable']);
    expect(JSON.stringify(refused.body)).not.toContain(bao.tenants.initech!.kvSecret.api_key);
    expect(JSON.stringify(refused.body)).not.toContain(bao.tenants.globex!.kvSecret.api_key);

    // Back to its own AppRole: served again without a restart.
    await reloadWith((doc) => {
      doc.tenants.initech.vault = { approle: { role_id_file: bao.tenants.initech!.roleIdFile, secret_id_file: bao.tenants.initech!.secretIdFile } };
      doc.tenants.initech.credentials.crm = { source: 'vault', path: bao.tenants.initech!.kvPath, field: 'api_key' };
    });
    expect((await query('initech')).body.credential?.value).toBe(bao.tenants.initech!.kvSecret.api_key);
  });
});
