import { createPrivateKey, X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import type { Clock } from '../src/clock';
import { open, seal } from '../src/crypto/envelope';
import { createFileOnce, readOptional, replaceFile } from '../src/storage/atomic-file';
import { NOT_BEFORE_BACKDATE_MS, type CertificateAuthority, type IssuedCertificate } from './certificate-authority';
import { createCaCertificate, createLeafCertificate, generateKeyPair, privateKeyFromPem, privateKeyToPem, type Signer } from './x509-builder';

/**
 * `broker.tls.mode: internal-ca`: a CA kept under --data-dir/tls. Its private key is sealed with the
 * master key (AES-256-GCM, associated data bound to the CA certificate's serial, so a key blob moved
 * beside another certificate fails to open); only the public `ca.pem` is written in the clear, for
 * clients to trust. The CA is created once — concurrent first starts (a broker and a `bulkhead certs`
 * run) agree on one — and is never replaced automatically: a new CA would orphan every client
 * certificate already handed out.
 */

export const TLS_DIR = 'tls';
export const CA_FILE = 'ca.json';
export const CA_PEM_FILE = 'ca.pem';
const DEFAULT_CA_LIFETIME_MS = 10 * 365 * 86_400_000;

interface StoredCa {
  version: 1;
  cert_pem: string;
  key_sealed: string;
}

export interface InternalCaOptions {
  dataDir: string;
  masterKey: Buffer;
  clock: Clock;
  /** Lifetime of a newly created CA certificate (default 10 years). */
  caLifetimeMs?: number;
}

const associatedData = (serial: string) => `tls-ca-key:${serial}`;

export function createInternalCa(options: InternalCaOptions): CertificateAuthority & { caExpiresAt(): number; caIssuedAt(): number } {
  const dir = join(options.dataDir, TLS_DIR);
  const file = join(dir, CA_FILE);
  let signer: (Signer & { notBefore: number; notAfter: number }) | undefined;
  let loading: Promise<void> | undefined;

  async function create(): Promise<void> {
    const now = options.clock.now();
    const keys = await generateKeyPair();
    const certPem = await createCaCertificate({
      commonName: `Bulkhead internal CA ${new Date(now).toISOString().slice(0, 10)}`,
      keys,
      notBefore: new Date(now - NOT_BEFORE_BACKDATE_MS),
      notAfter: new Date(now + (options.caLifetimeMs ?? DEFAULT_CA_LIFETIME_MS)),
    });
    const serial = new X509Certificate(certPem).serialNumber;
    const stored: StoredCa = { version: 1, cert_pem: certPem, key_sealed: seal(options.masterKey, Buffer.from(await privateKeyToPem(keys.privateKey)), associatedData(serial)) };
    // If another process created the CA first, theirs stands and is read below.
    await createFileOnce(file, JSON.stringify(stored, null, 2) + '\n');
  }

  async function load(): Promise<void> {
    let text = await readOptional(file);
    if (text === null) {
      await create();
      text = await readOptional(file);
      if (text === null) throw new Error(`${file}: internal CA could not be created`);
    }
    let stored: StoredCa;
    try {
      stored = JSON.parse(text) as StoredCa;
      if (stored.version !== 1 || typeof stored.cert_pem !== 'string' || typeof stored.key_sealed !== 'string') throw new Error('shape');
    } catch {
      throw new Error(`${file}: not a Bulkhead CA file (refusing to replace it: every client certificate depends on it)`);
    }
    const cert = new X509Certificate(stored.cert_pem);
    let keyPem: string;
    try {
      keyPem = open(options.masterKey, stored.key_sealed, associatedData(cert.serialNumber)).toString('utf8');
    } catch {
      throw new Error(`${file}: CA key cannot be opened: wrong master key or a tampered file`);
    }
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) throw new Error(`${file}: CA key does not match the CA certificate`);
    const notAfter = Date.parse(cert.validTo);
    if (notAfter <= options.clock.now()) throw new Error(`${file}: internal CA expired at ${cert.validTo}; move it away to create a new one and re-issue every client certificate`);
    signer = { certPem: stored.cert_pem, privateKey: await privateKeyFromPem(keyPem), notBefore: Date.parse(cert.validFrom), notAfter };
    const pemPath = join(dir, CA_PEM_FILE);
    if ((await readOptional(pemPath)) !== stored.cert_pem) await replaceFile(pemPath, stored.cert_pem, 0o644);
  }

  async function ready(): Promise<NonNullable<typeof signer>> {
    if (!signer) {
      loading ??= load().finally(() => {
        loading = undefined;
      });
      await loading;
    }
    return signer!;
  }

  return {
    kind: 'internal-ca',
    init: async () => {
      await ready();
    },
    caBundle: async () => (await ready()).certPem,
    // notBefore was backdated at creation; the CA's age counts from when it was made.
    caIssuedAt: () => (signer ? signer.notBefore + NOT_BEFORE_BACKDATE_MS : 0),
    caExpiresAt: () => signer?.notAfter ?? 0,
    async issue(request): Promise<IssuedCertificate> {
      const ca = await ready();
      const now = options.clock.now();
      // A leaf never outlives its CA: peers would refuse it from that moment anyway.
      const expiresAt = Math.min(now + request.ttlMs, ca.notAfter);
      const keys = await generateKeyPair();
      const certPem = await createLeafCertificate(ca, keys.publicKey, {
        commonName: request.commonName,
        dnsNames: request.dnsNames,
        ipAddresses: request.ipAddresses,
        uris: request.uris,
        usage: request.usage,
        notBefore: new Date(now - NOT_BEFORE_BACKDATE_MS),
        notAfter: new Date(expiresAt),
      });
      const issued = new X509Certificate(certPem);
      return {
        certPem,
        keyPem: await privateKeyToPem(keys.privateKey),
        caPem: ca.certPem,
        serial: issued.serialNumber,
        issuedAt: now,
        // X.509 times have whole seconds: report what the certificate says.
        expiresAt: Date.parse(issued.validTo),
      };
    },
  };
}
