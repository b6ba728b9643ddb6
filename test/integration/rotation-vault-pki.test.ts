import { randomBytes, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { manualClock } from '../../src/clock';
import { loadOrCreateMasterKey } from '../../src/crypto/master-key';
import { issueClientCertificate } from '../../rotation/client-certificates';
import { createInternalCa } from '../../rotation/internal-ca';
import { vaultRequest } from '../../rotation/vault-pki';
import { bootstrapVaultPki } from '../../rotation/vault-pki-setup';
import { describeWithUpstream, requireUpstream } from '../support/upstreams';
import { tempDir } from '../unit/tokens/fixtures';
import { httpsClient, startTlsBroker, type TlsBroker } from './rotation-tls-kit';

/**
 * `broker.tls.mode: vault-pki` against the real OpenBao from scripts/upstreams.sh: the broker's HTTPS
 * certificate and the MCP servers' client certificates come from its PKI engine, on a mount of this run's
 * own, and renewal survives OpenBao refusing for a while.
 */

const until = async (what: string, condition: () => boolean | Promise<boolean>) => {
  const deadline = Date.now() + 30_000; // a bound on waiting, not a timing assertion
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
};

describeWithUpstream(['bao'], 'certificates from OpenBao PKI', () => {
  const mount = `pki-bulkhead-${randomBytes(4).toString('hex')}`;
  let env: { VAULT_ADDR: string; VAULT_TOKEN: string };
  let brokerEnv: NodeJS.ProcessEnv;
  let b: TlsBroker;
  const connection = () => ({ address: env.VAULT_ADDR, token: () => env.VAULT_TOKEN });

  beforeAll(async () => {
    env = requireUpstream('bao');
    expect(await bootstrapVaultPki({ ...connection(), mount })).toEqual({ mounted: true, rootGenerated: true });
    brokerEnv = { VAULT_TOKEN: env.VAULT_TOKEN };
    b = await startTlsBroker({
      overrides: (p) => {
        p.broker.tls = { mode: 'vault-pki', vault_pki_mount: mount, vault_pki_role: 'bulkhead' };
        p.broker.upstreams = { vault: { address: env.VAULT_ADDR, timeout: '3s' } };
        p.broker.rotation = { signing_key: '1h', certificate: '6s' };
      },
      brokerOptions: { env: brokerEnv },
    });
  }, 60_000);
  afterAll(async () => {
    await b?.close();
    await vaultRequest(connection(), 'DELETE', `sys/mounts/${mount}`).catch(() => undefined);
  });

  it('bootstrap is idempotent: a second run mounts and generates nothing', async () => {
    expect(await bootstrapVaultPki({ ...connection(), mount })).toEqual({ mounted: false, rootGenerated: false });
  });

  it('serves HTTPS with a certificate from the PKI, and accepts an MCP server certificate from it instead of the key', async () => {
    const ca = await b.caPem();
    const serverCert = new X509Certificate(String(b.broker.rotation.tls!.serverCertificate.secureContextOptions().cert));
    expect(serverCert.checkIssued(new X509Certificate(ca))).toBe(true);
    expect(serverCert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    const client = await issueClientCertificate(b.broker.rotation.tls!.ca, { role: 'server', id: 'crm-mcp' }, 3_600_000);
    expect(new X509Certificate(client.certPem).subjectAltName).toBe('URI:spiffe://bulkhead/server/crm-mcp');
    const tls = httpsClient(b.url, { ca, cert: client.certPem, key: client.keyPem, keepAlive: false });
    const token = await tls.request('POST', '/v1/token', { form: { grant_type: 'client_credentials', client_id: 'acme-agent', client_secret: b.clientSecrets['acme-agent']!, audience: 'crm-mcp' } });
    const answer = await tls.request('POST', '/v1/authorize', { json: { token: token.body.access_token, tool: 'query_crm', arguments: { path: 'acme/1' } } });
    expect(answer.body).toMatchObject({ decision: 'allow', tenant: 'acme' });
    await tls.request('POST', '/v1/complete', { json: { call_id: answer.body.call_id, status: 'success' } });

    // The same identity from another CA is no identity at all.
    const other = await tempDir();
    try {
      const foreign = createInternalCa({ dataDir: other.dir, masterKey: await loadOrCreateMasterKey(other.dir), clock: manualClock() });
      const stranger = await issueClientCertificate(foreign, { role: 'server', id: 'crm-mcp' }, 3_600_000);
      const refused = await httpsClient(b.url, { ca, cert: stranger.certPem, key: stranger.keyPem, keepAlive: false }).request('POST', '/v1/authorize', {
        json: { token: token.body.access_token, tool: 'query_crm', arguments: { path: 'acme/1' } },
      });
      expect(refused.status).toBe(401);
    } finally {
      await other.cleanup();
    }
  });

  it('keeps serving the old certificate while OpenBao refuses to renew, then swaps in a new one when it is back', async () => {
    const ca = await b.caPem();
    const status = () => b.broker.rotation.tls!.serverCertificate.status()!;
    const start = status();
    brokerEnv.VAULT_TOKEN = 'not-a-valid-token';
    try {
      await until('a refused renewal', async () => (await readFile(b.logFile, 'utf8')).includes('server certificate renewal failed'));
      const during = await httpsClient(b.url, { ca, keepAlive: false }).request('GET', '/healthz');
      expect(during.status).toBe(200);
      expect(during.serverSerial).toBe(start.serial);
    } finally {
      brokerEnv.VAULT_TOKEN = env.VAULT_TOKEN;
    }
    await until('a renewal', () => status().renewals > start.renewals);
    const after = await httpsClient(b.url, { ca, keepAlive: false }).request('GET', '/healthz');
    expect(after.status).toBe(200);
    expect(after.serverSerial).toBe(status().serial);
    expect(after.serverSerial).not.toBe(start.serial);
    // The token never reaches a log line, even in the failure messages.
    expect(await readFile(b.logFile, 'utf8')).not.toContain(env.VAULT_TOKEN);
  }, 60_000);
});
