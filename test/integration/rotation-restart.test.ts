import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { manualClock } from '../../src/clock';
import { loadOrCreateMasterKey } from '../../src/crypto/master-key';
import { createKeyRing } from '../../src/tokens/key-ring';
import { createFileKeyStore, KEYS_FILE } from '../../src/tokens/key-store';
import { issueClientCertificate } from '../../rotation/client-certificates';
import { CA_FILE, TLS_DIR } from '../../rotation/internal-ca';
import { httpsClient, startTlsBroker, type TlsBroker } from './rotation-tls-kit';

/**
 * A broker that dies in the middle of a rotation must come back serving, with nothing to repair by hand.
 * The broker's clock is a manual one that starts at the real time, so keys rotate only when the test
 * moves it, while certificates (checked by TLS against the real time) stay valid.
 */

const kidOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()).kid as string;

describe('restart in the middle of a rotation', () => {
  let b: TlsBroker;
  let clock: ReturnType<typeof manualClock>;
  beforeEach(async () => {
    clock = manualClock(Date.now());
    b = await startTlsBroker({ overrides: (p) => (p.broker.rotation = { signing_key: '2s', certificate: '1h' }), brokerOptions: { clock } });
  });
  afterEach(() => b.close());

  const tokenAndAuthorize = async (token?: string) => {
    const client = httpsClient(b.url, { ca: await b.caPem(), keepAlive: false });
    token ??= (
      await client.request('POST', '/v1/token', {
        form: { grant_type: 'client_credentials', client_id: 'globex-agent', client_secret: b.clientSecrets['globex-agent']!, audience: 'crm-mcp' },
      })
    ).body.access_token as string;
    const answer = await client.request('POST', '/v1/authorize', { json: { token, tool: 'query_crm', arguments: { path: 'globex/r' } }, bearer: b.serverKeys['crm-mcp'] });
    if (answer.body.call_id) await client.request('POST', '/v1/complete', { json: { call_id: answer.body.call_id, status: 'success' }, bearer: b.serverKeys['crm-mcp'] });
    return { token, answer };
  };
  const kid = (state: string) => b.broker.keyRing.status().find((k) => k.state === state)?.kid;

  it('comes back from a crash during a write with an overdue ring: steps once, old tokens verify, same CA, new server certificate', async () => {
    const before = { current: kid('current'), next: kid('next'), ca: await b.caPem(), serial: b.broker.rotation.tls!.serverCertificate.status()!.serial };
    const { token } = await tokenAndAuthorize();
    const client = await issueClientCertificate(b.broker.rotation.tls!.ca, { role: 'server', id: 'crm-mcp' }, 3_600_000);

    await b.restart(async () => {
      // What a crash half-way through writing the key ring and the CA leaves behind, after the key was due.
      clock.advance(3000);
      await writeFile(join(b.dataDir, `.${KEYS_FILE}.4242.${randomBytes(6).toString('hex')}.tmp`), '{"version":1,"keys":[{"kid":');
      await writeFile(join(b.dataDir, TLS_DIR, `.${CA_FILE}.4242.${randomBytes(6).toString('hex')}.tmp`), '{"version":1,"cert_pem":"-----BEGIN');
    });

    expect(kid('current')).toBe(before.next); // exactly one step, taken at start
    expect(kid('previous')).toBe(before.current);
    expect(b.broker.rotation.keys.nextRotationAt()).toBe(clock.now() + 2000);
    expect((await tokenAndAuthorize(token)).answer.body).toMatchObject({ decision: 'allow', tenant: 'globex' });
    const fresh = await tokenAndAuthorize();
    expect(kidOf(fresh.token)).toBe(before.next);
    expect(fresh.answer.body).toMatchObject({ decision: 'allow' });
    expect(await b.caPem()).toBe(before.ca);
    expect(b.broker.rotation.tls!.serverCertificate.status()!.serial).not.toBe(before.serial);
    const viaCert = await httpsClient(b.url, { ca: before.ca, cert: client.certPem, key: client.keyPem, keepAlive: false }).request('POST', '/v1/authorize', {
      json: { token, tool: 'query_crm', arguments: { path: 'globex/r' } },
    });
    expect(viaCert.body).toMatchObject({ decision: 'allow' });
  });

  it('a rotation saved just before the crash is kept as it is: no second step, tokens from both keys verify', async () => {
    const { token } = await tokenAndAuthorize();
    let saved: string | undefined;
    await b.restart(async () => {
      // The step was persisted, then the process died before it switched to the new ring.
      clock.advance(2500);
      const ring = createKeyRing({ store: createFileKeyStore(b.dataDir, await loadOrCreateMasterKey(b.dataDir)), clock, maxTokenTtlMs: b.policy.broker.max_token_ttl, clockSkewMs: b.policy.broker.clock_skew });
      await ring.init();
      await ring.rotate();
      saved = ring.signingKey().kid;
    });
    expect(kid('current')).toBe(saved);
    expect(b.broker.keyRing.status().filter((k) => k.state === 'retired')).toHaveLength(0);
    expect((await tokenAndAuthorize(token)).answer.body).toMatchObject({ decision: 'allow' });
    expect((await tokenAndAuthorize()).answer.body).toMatchObject({ decision: 'allow' });
    expect(JSON.parse(await readFile(join(b.dataDir, KEYS_FILE), 'utf8')).keys).toHaveLength(3);
  });
});
