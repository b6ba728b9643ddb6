import { randomBytes, X509Certificate } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { manualClock } from '../../../src/clock';
import { CERT_FILES, issueClientCertificate, renewCertificateFiles, writeCertificateFiles } from '../../../rotation/client-certificates';
import { createInternalCa } from '../../../rotation/internal-ca';
import { tempDir } from '../tokens/fixtures';

const HOUR = 3_600_000;
const T0 = Date.UTC(2030, 0, 1);

describe('client certificate files', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let clock: ReturnType<typeof manualClock>;
  let ca: ReturnType<typeof createInternalCa>;
  const out = () => join(dir, 'crm-mcp');
  const serial = async () => new X509Certificate(await readFile(join(out(), CERT_FILES.cert))).serialNumber;

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    clock = manualClock(T0);
    ca = createInternalCa({ dataDir: dir, masterKey: randomBytes(32), clock });
    await writeCertificateFiles(out(), await issueClientCertificate(ca, { role: 'server', id: 'crm-mcp' }, 24 * HOUR));
  });
  afterEach(() => cleanup());

  it('writes a matching key and certificate and the CA bundle, the key readable by its owner only', async () => {
    expect((await stat(join(out(), CERT_FILES.key))).mode & 0o777).toBe(0o600);
    const cert = new X509Certificate(await readFile(join(out(), CERT_FILES.cert)));
    expect(cert.subjectAltName).toBe('URI:spiffe://bulkhead/server/crm-mcp');
    expect(cert.checkIssued(new X509Certificate(await readFile(join(out(), CERT_FILES.ca))))).toBe(true);
  });

  it('renews only once two thirds of the lifetime have passed, keeping the identity', async () => {
    const first = await serial();
    clock.set(T0 + 15 * HOUR);
    expect(await renewCertificateFiles({ ca, dir: out(), clock, ttlMs: 24 * HOUR })).toMatchObject({ renewed: false });
    expect(await serial()).toBe(first);
    clock.set(T0 + 16 * HOUR);
    const result = await renewCertificateFiles({ ca, dir: out(), clock, ttlMs: 24 * HOUR });
    expect(result).toMatchObject({ renewed: true, reason: 'due', identity: { role: 'server', id: 'crm-mcp' } });
    expect(await serial()).not.toBe(first);
    expect(result.expiresAt).toBe(Math.floor((T0 + 40 * HOUR) / 1000) * 1000);
  });

  it('repairs a crash between writing the key and the certificate by issuing a fresh pair', async () => {
    // What a crash leaves: the new key beside the old certificate.
    const orphan = await issueClientCertificate(ca, { role: 'server', id: 'crm-mcp' }, 24 * HOUR);
    await writeFile(join(out(), CERT_FILES.key), orphan.keyPem);
    const result = await renewCertificateFiles({ ca, dir: out(), clock, ttlMs: 24 * HOUR });
    expect(result).toMatchObject({ renewed: true, reason: 'key_mismatch' });
    const cert = new X509Certificate(await readFile(join(out(), CERT_FILES.cert)));
    expect(cert.checkPrivateKey((await import('node:crypto')).createPrivateKey(await readFile(join(out(), CERT_FILES.key))))).toBe(true);
  });

  it('re-issues a certificate that another CA signed, and renews on --force', async () => {
    const otherDir = await tempDir();
    try {
      const other = createInternalCa({ dataDir: otherDir.dir, masterKey: randomBytes(32), clock });
      expect(await renewCertificateFiles({ ca: other, dir: out(), clock, ttlMs: HOUR })).toMatchObject({ renewed: true, reason: 'ca_changed' });
      expect(await renewCertificateFiles({ ca: other, dir: out(), clock, ttlMs: HOUR })).toMatchObject({ renewed: false });
      expect(await renewCertificateFiles({ ca: other, dir: out(), clock, ttlMs: HOUR, force: true })).toMatchObject({ renewed: true, reason: 'forced' });
    } finally {
      await otherDir.cleanup();
    }
  });

  it('refuses to renew a directory without a Bulkhead client certificate', async () => {
    await expect(renewCertificateFiles({ ca, dir: join(dir, 'nothing'), clock, ttlMs: HOUR })).rejects.toThrow(/certs issue first/);
    const server = await ca.issue({ usage: 'server', commonName: 'localhost', dnsNames: ['localhost'], ttlMs: HOUR });
    await writeFile(join(out(), CERT_FILES.cert), server.certPem);
    await expect(renewCertificateFiles({ ca, dir: out(), clock, ttlMs: HOUR })).rejects.toThrow(/not a Bulkhead client certificate/);
  });
});
