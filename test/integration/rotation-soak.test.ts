import { readFile } from 'node:fs/promises';
import { loadOrCreateMasterKey } from '../../src/crypto/master-key';
import { createFileKeyStore } from '../../src/tokens/key-store';
import { issueClientCertificate } from '../../rotation/client-certificates';
import { httpsClient, startTlsBroker, type HttpsClient, type TlsAnswer, type TlsBroker } from './rotation-tls-kit';

/**
 * The rotation promise, end to end: a steady stream of token issuance and authorize calls over real
 * HTTPS (bearer-key and mTLS servers, kept-alive and fresh connections) while the signing key rotates
 * every second and the server certificate renews every two — nothing may fail.
 */

const kidOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()).kid as string;

describe('rotation under load over HTTPS', () => {
  let b: TlsBroker;
  beforeAll(async () => {
    b = await startTlsBroker({ overrides: (p) => (p.broker.rotation = { signing_key: '1s', certificate: '3s' }) });
  });
  afterAll(() => b.close());

  it('rotates the signing key 3+ times and the server certificate 2+ times with zero failed calls and zero verification errors', async () => {
    const ca = await b.caPem();
    const mtls = await issueClientCertificate(b.broker.rotation.tls!.ca, { role: 'server', id: 'crm-mcp' }, 3_600_000);
    const clients = {
      keptAlive: httpsClient(b.url, { ca, keepAlive: true }),
      fresh: httpsClient(b.url, { ca, keepAlive: false }),
      mtls: httpsClient(b.url, { ca, cert: mtls.certPem, key: mtls.keyPem, keepAlive: false }),
    };
    const failures: string[] = [];
    const seenKids = new Set<string>();
    const freshSerials = new Set<string>();
    let keptAliveOnOldCertificate = 0;
    let calls = 0;

    const check = (what: string, answer: TlsAnswer, status = 200) => {
      calls += 1;
      if (answer.status !== status) failures.push(`${what}: ${answer.status} ${answer.body?.reason ?? answer.body?.error ?? ''}`);
    };
    const tokenFor = async (client: HttpsClient, principal: string) => {
      const answer = await client.request('POST', '/v1/token', { form: { grant_type: 'client_credentials', client_id: principal, client_secret: b.clientSecrets[principal]!, audience: 'crm-mcp' } });
      check(`token ${principal}`, answer);
      return answer.body.access_token as string;
    };
    const authorize = async (client: HttpsClient, token: string, tenant: string, bearer?: string) => {
      const answer = await client.request('POST', '/v1/authorize', { json: { token, tool: 'query_crm', arguments: { path: `${tenant}/x` } }, bearer });
      check(`authorize via ${bearer ? 'server key' : 'client certificate'}`, answer);
      if (answer.body?.decision === 'allow' && answer.body.tenant !== tenant) failures.push(`authorize answered for ${answer.body.tenant}, not ${tenant}`);
      // Frees the concurrency slot, as a wrapped MCP server does after the tool ran.
      if (answer.body?.call_id) check('complete', await client.request('POST', '/v1/complete', { json: { call_id: answer.body.call_id, status: 'success' }, bearer }));
      return answer;
    };

    // Signed by the very first key: it must keep verifying after that key has been retired.
    const firstToken = await tokenFor(clients.fresh, 'acme-agent');
    const key = b.serverKeys['crm-mcp']!;
    const done = () => seenKids.size >= 4 && (b.broker.rotation.tls!.serverCertificate.status()?.renewals ?? 0) >= 2 && freshSerials.size >= 3;
    const deadline = Date.now() + 60_000; // a bound on the loop, not a timing assertion

    const worker = async (tenant: string) => {
      while (!done() && Date.now() < deadline && failures.length === 0) {
        try {
          const token = await tokenFor(clients.fresh, `${tenant}-agent`);
          seenKids.add(kidOf(token));
          freshSerials.add((await authorize(clients.fresh, token, tenant, key)).serverSerial);
          await authorize(clients.mtls, token, tenant);
          const kept = await authorize(clients.keptAlive, firstToken, 'acme', key);
          if (kept.serverSerial !== b.broker.rotation.tls!.serverCertificate.status()!.serial) keptAliveOnOldCertificate += 1;
        } catch (err) {
          failures.push(`transport: ${(err as Error).message}`);
        }
      }
    };
    await Promise.all(['acme', 'globex', 'initech'].map(worker));
    Object.values(clients).forEach((c) => c.close());

    expect(failures).toEqual([]);
    expect(seenKids.size).toBeGreaterThanOrEqual(4); // 3+ rotations, each key seen signing
    expect(b.broker.rotation.tls!.serverCertificate.status()!.renewals).toBeGreaterThanOrEqual(2);
    expect(freshSerials.size).toBeGreaterThanOrEqual(3); // new handshakes got each new certificate
    expect(keptAliveOnOldCertificate).toBeGreaterThan(0); // an open connection outlived its certificate's replacement
    // The first key is retired (out of the JWKS) and its token still authorizes until it expires.
    const jwks = await httpsClient(b.url, { ca, keepAlive: false }).request('GET', '/.well-known/jwks.json');
    expect(jwks.body.keys.map((k: { kid: string }) => k.kid)).not.toContain(kidOf(firstToken));
    const last = await httpsClient(b.url, { ca, keepAlive: false }).request('POST', '/v1/authorize', { json: { token: firstToken, tool: 'query_crm', arguments: { path: 'acme/x' } }, bearer: key });
    expect(last.body).toMatchObject({ decision: 'allow', tenant: 'acme' });
    expect(calls).toBeGreaterThan(20);
  }, 90_000);

  it('exposes key and certificate ages and next rotation times on /metrics, with no tenant labels', async () => {
    const answer = await httpsClient(b.url, { ca: await b.caPem(), keepAlive: false }).request('GET', '/metrics');
    const text = String(answer.body);
    const lines = text.split('\n').filter((l) => /^bulkhead_(signing_key_age|next_rotation|certificate_age)_seconds\{/.test(l));
    const names = lines.map((l) => l.split(' ')[0]);
    expect(names).toEqual(
      expect.arrayContaining([
        'bulkhead_signing_key_age_seconds{state="current"}',
        'bulkhead_signing_key_age_seconds{state="next"}',
        'bulkhead_next_rotation_seconds{kind="signing_key"}',
        'bulkhead_next_rotation_seconds{kind="server_certificate"}',
        'bulkhead_certificate_age_seconds{kind="server"}',
        'bulkhead_certificate_age_seconds{kind="ca"}',
      ]),
    );
    for (const line of lines) expect(Number(line.split(' ')[1])).toBeGreaterThanOrEqual(0);
    expect(text).not.toMatch(/tenant=|acme|globex|initech/);
  });

  it('never puts a private key (signing key or TLS key) in a log line or an API answer', async () => {
    const client = httpsClient(b.url, { ca: await b.caPem(), keepAlive: false });
    const rotated = await client.request('POST', '/v1/keys/rotate', { json: {}, bearer: b.operatorToken });
    expect(Object.keys(rotated.body).sort()).toEqual(['current_kid', 'rotated']);
    const answers = JSON.stringify([rotated.body, (await client.request('GET', '/.well-known/jwks.json')).body]);
    const log = await readFile(b.logFile, 'utf8');
    expect(log).toContain('signing key rotated'); // the log did record the rotations
    const ring = await createFileKeyStore(b.dataDir, await loadOrCreateMasterKey(b.dataDir)).load();
    const tlsKey = String(b.broker.rotation.tls!.serverCertificate.secureContextOptions().key).split('\n')[1]!;
    for (const secret of [...ring!.keys.map((k) => k.private_jwk.d), tlsKey]) {
      expect(log).not.toContain(secret);
      expect(answers).not.toContain(secret);
    }
    expect(log).not.toMatch(/PRIVATE KEY/);
  });
});
