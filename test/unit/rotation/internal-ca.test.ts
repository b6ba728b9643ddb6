import { randomBytes, X509Certificate } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { manualClock, systemClock } from '../../../src/clock';
import { CA_FILE, CA_PEM_FILE, createInternalCa, TLS_DIR } from '../../../rotation/internal-ca';
import { identityUri } from '../../../rotation/tls-identity';
import { tempDir } from '../tokens/fixtures';

describe('internal CA', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  const masterKey = randomBytes(32);
  beforeEach(async () => ({ dir, cleanup } = await tempDir()));
  afterEach(() => cleanup());

  it('is created once and the same CA is loaded on the next start', async () => {
    const first = createInternalCa({ dataDir: dir, masterKey, clock: systemClock });
    await first.init();
    const second = createInternalCa({ dataDir: dir, masterKey, clock: systemClock });
    expect(await second.caBundle()).toBe(await first.caBundle());
    expect(await readFile(join(dir, TLS_DIR, CA_PEM_FILE), 'utf8')).toBe(await first.caBundle());
  });

  it('keeps its private key sealed at rest: no PEM key in ca.json, mode 0600', async () => {
    const ca = createInternalCa({ dataDir: dir, masterKey, clock: systemClock });
    await ca.init();
    const text = await readFile(join(dir, TLS_DIR, CA_FILE), 'utf8');
    expect(text).not.toMatch(/PRIVATE KEY/);
    expect(JSON.parse(text).key_sealed).toMatch(/^v1\./);
    expect((await stat(join(dir, TLS_DIR, CA_FILE))).mode & 0o777).toBe(0o600);
  });

  it('refuses to open the CA with another master key, and never replaces it', async () => {
    await createInternalCa({ dataDir: dir, masterKey, clock: systemClock }).init();
    const before = await readFile(join(dir, TLS_DIR, CA_FILE), 'utf8');
    await expect(createInternalCa({ dataDir: dir, masterKey: randomBytes(32), clock: systemClock }).init()).rejects.toThrow(/cannot be opened/);
    await writeFile(join(dir, TLS_DIR, CA_FILE), '{"torn');
    await expect(createInternalCa({ dataDir: dir, masterKey, clock: systemClock }).init()).rejects.toThrow(/not a Bulkhead CA file/);
    await writeFile(join(dir, TLS_DIR, CA_FILE), before);
  });

  it('agrees on one CA when two processes start at the same time', async () => {
    const a = createInternalCa({ dataDir: dir, masterKey, clock: systemClock });
    const b = createInternalCa({ dataDir: dir, masterKey, clock: systemClock });
    const [pa, pb] = await Promise.all([a.caBundle(), b.caBundle()]);
    expect(pa).toBe(pb);
  });

  it('issues leaf certificates that chain to it, carry one purpose, the identity URI and the requested lifetime', async () => {
    const clock = manualClock();
    const ca = createInternalCa({ dataDir: dir, masterKey, clock });
    const issued = await ca.issue({ usage: 'client', commonName: 'crm-mcp', uris: [identityUri('server', 'crm-mcp')], ttlMs: 3_600_000 });
    const cert = new X509Certificate(issued.certPem);
    const caCert = new X509Certificate(await ca.caBundle());
    expect(cert.checkIssued(caCert)).toBe(true);
    expect(cert.verify(caCert.publicKey)).toBe(true);
    expect(cert.subjectAltName).toBe('URI:spiffe://bulkhead/server/crm-mcp');
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
    expect(cert.ca).toBe(false);
    expect(cert.checkPrivateKey((await import('node:crypto')).createPrivateKey(issued.keyPem))).toBe(true);
    expect(Math.abs(issued.expiresAt - (clock.now() + 3_600_000))).toBeLessThan(1000);
    // The CA itself may only sign leaves.
    expect(caCert.ca).toBe(true);
    const server = await ca.issue({ usage: 'server', commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], ttlMs: 60_000 });
    expect(new X509Certificate(server.certPem).keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(new X509Certificate(server.certPem).subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1');
  });
});
