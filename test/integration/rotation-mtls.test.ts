import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { manualClock } from '../../src/clock';
import { loadOrCreateMasterKey } from '../../src/crypto/master-key';
import { issueClientCertificate } from '../../rotation/client-certificates';
import { createInternalCa } from '../../rotation/internal-ca';
import { ensureBuiltCli, runCli } from '../support/built-cli';
import { tempDir } from '../unit/tokens/fixtures';
import { httpsClient, startTlsBroker, type TlsBroker } from './rotation-tls-kit';

/**
 * mTLS as the threat model sees it: only a certificate from the broker's CA, still valid, naming a
 * registered id in the right role, stands in for a server key or an operator token. Anything else is
 * treated as no certificate at all (the bearer key is then required).
 */

const HOUR = 3_600_000;

describe('mTLS client certificates (internal CA)', () => {
  let b: TlsBroker;
  let raw: any;
  let ca: string;
  let token: string;
  beforeAll(async () => {
    b = await startTlsBroker({ overrides: (p) => (raw = structuredClone(p)) });
    ca = await b.caPem();
    const answer = await httpsClient(b.url, { ca, keepAlive: false }).request('POST', '/v1/token', {
      form: { grant_type: 'client_credentials', client_id: 'acme-agent', client_secret: b.clientSecrets['acme-agent']!, audience: 'crm-mcp' },
    });
    token = answer.body.access_token;
  });
  afterAll(() => b.close());

  const withCert = (cert: { certPem: string; keyPem: string }) => httpsClient(b.url, { ca, cert: cert.certPem, key: cert.keyPem, keepAlive: false });
  const authorizeWith = (cert: { certPem: string; keyPem: string }) => withCert(cert).request('POST', '/v1/authorize', { json: { token, tool: 'query_crm', arguments: { path: 'acme/a' } } });
  const rotateWith = (cert: { certPem: string; keyPem: string }) => withCert(cert).request('POST', '/v1/keys/rotate', { json: {} });

  it("accepts an MCP server's certificate from the broker's CA instead of its key", async () => {
    const cert = await issueClientCertificate(b.broker.rotation.tls!.ca, { role: 'server', id: 'crm-mcp' }, HOUR);
    const answer = await authorizeWith(cert);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ decision: 'allow', tenant: 'acme' });
    await withCert(cert).request('POST', '/v1/complete', { json: { call_id: answer.body.call_id, status: 'success' } });
  });

  it('still serves bearer-key servers that present no certificate', async () => {
    const answer = await httpsClient(b.url, { ca, keepAlive: false }).request('POST', '/v1/authorize', { json: { token, tool: 'query_crm', arguments: { path: 'acme/a' } }, bearer: b.serverKeys['crm-mcp'] });
    expect(answer.body).toMatchObject({ decision: 'allow' });
    await httpsClient(b.url, { ca, keepAlive: false }).request('POST', '/v1/complete', { json: { call_id: answer.body.call_id, status: 'success' }, bearer: b.serverKeys['crm-mcp'] });
  });

  it('refuses a certificate for the same server id from another CA', async () => {
    const other = await tempDir();
    try {
      const foreign = createInternalCa({ dataDir: other.dir, masterKey: await loadOrCreateMasterKey(other.dir), clock: manualClock() });
      const answer = await authorizeWith(await issueClientCertificate(foreign, { role: 'server', id: 'crm-mcp' }, HOUR));
      expect(answer.status).toBe(401);
      expect(answer.body.reason).toBe('server_unauthenticated');
    } finally {
      await other.cleanup();
    }
  });

  it("refuses an expired certificate from the broker's own CA", async () => {
    const past = createInternalCa({ dataDir: b.dataDir, masterKey: await loadOrCreateMasterKey(b.dataDir), clock: manualClock(Date.now() - 2 * HOUR) });
    const expired = await issueClientCertificate(past, { role: 'server', id: 'crm-mcp' }, HOUR);
    expect(expired.expiresAt).toBeLessThan(Date.now());
    const answer = await authorizeWith(expired);
    expect(answer.status).toBe(401);
    expect(answer.body.reason).toBe('server_unauthenticated');
  });

  it('refuses a certificate naming a server that is not in the policy', async () => {
    const answer = await authorizeWith(await issueClientCertificate(b.broker.rotation.tls!.ca, { role: 'server', id: 'ghost-mcp' }, HOUR));
    expect(answer.status).toBe(401);
  });

  it('keeps roles apart: a server certificate never opens the operator API, an operator certificate never authorizes', async () => {
    const server = await issueClientCertificate(b.broker.rotation.tls!.ca, { role: 'server', id: 'crm-mcp' }, HOUR);
    const operator = await issueClientCertificate(b.broker.rotation.tls!.ca, { role: 'operator', id: 'ops' }, HOUR);
    const before = b.broker.keyRing.signingKey().kid;
    const refused = await rotateWith(server);
    expect(refused.status).toBe(401);
    expect(refused.body.error).toBe('operator_unauthenticated');
    expect(b.broker.keyRing.signingKey().kid).toBe(before);
    expect((await authorizeWith(operator)).status).toBe(401);
    const rotated = await rotateWith(operator);
    expect(rotated.status).toBe(200);
    expect(rotated.body.current_kid).not.toBe(before);
  });

  it("refuses the broker's own server certificate offered as a client certificate", async () => {
    const own = b.broker.rotation.tls!.serverCertificate.secureContextOptions();
    const answer = await authorizeWith({ certPem: String(own.cert), keyPem: String(own.key) });
    expect(answer.status).toBe(401);
  });

  describe('bulkhead certs (the built CLI)', () => {
    let configFile: string;
    beforeAll(async () => {
      await ensureBuiltCli();
      configFile = join(b.dataDir, 'policy.json');
      await writeFile(configFile, JSON.stringify(raw));
    }, 120_000);

    it('issue writes a working key, certificate and CA bundle; renew renews only when due or forced', async () => {
      const out = join(b.dataDir, 'crm-mcp-certs');
      const issued = await runCli(['certs', 'issue', '--server', 'crm-mcp', '--out', out, '--config', configFile, '--data-dir', b.dataDir]);
      expect(issued.code).toBe(0);
      expect(JSON.parse(issued.stdout).identity).toBe('spiffe://bulkhead/server/crm-mcp');
      const files = { certPem: await readFile(join(out, 'cert.pem'), 'utf8'), keyPem: await readFile(join(out, 'key.pem'), 'utf8') };
      expect(await readFile(join(out, 'ca.pem'), 'utf8')).toBe(ca);
      expect(issued.stdout + issued.stderr).not.toContain(files.keyPem.split('\n')[1]);
      const allowed = await authorizeWith(files);
      expect(allowed.body).toMatchObject({ decision: 'allow' });
      await withCert(files).request('POST', '/v1/complete', { json: { call_id: allowed.body.call_id, status: 'success' } });

      const notDue = await runCli(['certs', 'renew', '--out', out, '--config', configFile, '--data-dir', b.dataDir]);
      expect(JSON.parse(notDue.stdout)).toMatchObject({ renewed: false });
      const forced = await runCli(['certs', 'renew', '--out', out, '--force', '--config', configFile, '--data-dir', b.dataDir]);
      expect(JSON.parse(forced.stdout)).toMatchObject({ renewed: true, reason: 'forced', identity: 'spiffe://bulkhead/server/crm-mcp' });
      const renewed = { certPem: await readFile(join(out, 'cert.pem'), 'utf8'), keyPem: await readFile(join(out, 'key.pem'), 'utf8') };
      expect(renewed.certPem).not.toBe(files.certPem);
      const again = await authorizeWith(renewed);
      expect(again.body).toMatchObject({ decision: 'allow' });
      await withCert(renewed).request('POST', '/v1/complete', { json: { call_id: again.body.call_id, status: 'success' } });
    });

    it('exits 2 naming the field for an unknown id, a missing CA, or TLS off; --help exits 0', async () => {
      const unknown = await runCli(['certs', 'issue', '--operator', 'nobody', '--out', join(b.dataDir, 'x'), '--config', configFile, '--data-dir', b.dataDir]);
      expect(unknown.code).toBe(2);
      expect(unknown.stderr).toContain('operators.nobody');
      const noCa = await runCli(['certs', 'issue', '--server', 'crm-mcp', '--out', join(b.dataDir, 'y'), '--config', configFile, '--data-dir', join(b.dataDir, 'elsewhere')]);
      expect(noCa.code).toBe(2);
      expect(noCa.stderr).toContain('no internal CA here');
      const offFile = join(b.dataDir, 'policy-off.json');
      await writeFile(offFile, JSON.stringify({ ...raw, broker: { ...raw.broker, tls: { mode: 'off' } } }));
      const off = await runCli(['certs', 'issue', '--server', 'crm-mcp', '--out', join(b.dataDir, 'z'), '--config', offFile, '--data-dir', b.dataDir]);
      expect(off.code).toBe(2);
      expect(off.stderr).toContain('broker.tls.mode');
      const help = await runCli(['certs', '--help']);
      expect(help.code).toBe(0);
      expect(help.stdout).toContain('bulkhead certs issue');
    });
  });
});
