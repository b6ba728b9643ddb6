import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

/**
 * Building X.509 certificates. Node's crypto can verify certificates but not create them, so this wraps
 * @peculiar/x509 (pure JS over WebCrypto). Keys are ECDSA P-256: every TLS stack Node talks to accepts
 * them, and they are cheap to generate on every renewal.
 */

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { ...EC, hash: 'SHA-256' } as const;
// Passed explicitly rather than set globally (x509.cryptoProvider), so no other module is affected.
const crypto = webcrypto;

export type Usage = 'server' | 'client';

export interface LeafSpec {
  commonName: string;
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  uris?: readonly string[];
  usage: Usage;
  notBefore: Date;
  notAfter: Date;
}

export interface Signer {
  certPem: string;
  privateKey: CryptoKey;
}

export function generateKeyPair(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
}

export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }).toString();
}

export async function privateKeyFromPem(pem: string): Promise<CryptoKey> {
  const der = createPrivateKey(pem).export({ format: 'der', type: 'pkcs8' });
  return webcrypto.subtle.importKey('pkcs8', der, EC, false, ['sign']);
}

/** A positive 128-bit serial: unpredictable, so certificates cannot be guessed or collided. */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  return bytes.toString('hex');
}

/** Escapes a value for an RDN string (the id alphabet never needs it, but a hostname might). */
function cn(value: string): string {
  return `CN=${value.replace(/([,+"\\<>;=])/g, '\\$1')}`;
}

export async function createCaCertificate(options: { commonName: string; keys: CryptoKeyPair; notBefore: Date; notAfter: Date }): Promise<string> {
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serialNumber(),
      name: cn(options.commonName),
      notBefore: options.notBefore,
      notAfter: options.notAfter,
      signingAlgorithm: SIGNING,
      keys: options.keys,
      extensions: [
        // pathLength 0: this CA signs leaves only, never another CA.
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(options.keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  return cert.toString('pem');
}

export async function createLeafCertificate(signer: Signer, publicKey: CryptoKey, spec: LeafSpec): Promise<string> {
  const ca = new x509.X509Certificate(signer.certPem);
  const names: x509.JsonGeneralName[] = [
    ...(spec.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(spec.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
    ...(spec.uris ?? []).map((value) => ({ type: 'url' as const, value })),
  ];
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serialNumber(),
      subject: cn(spec.commonName),
      issuer: ca.subject,
      notBefore: spec.notBefore,
      notAfter: spec.notAfter,
      signingAlgorithm: SIGNING,
      publicKey: publicKey,
      signingKey: signer.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        // One purpose per certificate: OpenSSL refuses a server certificate offered as a client one.
        new x509.ExtendedKeyUsageExtension([spec.usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth], false),
        ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names, false)] : []),
        await x509.AuthorityKeyIdentifierExtension.create(ca, false, crypto),
        await x509.SubjectKeyIdentifierExtension.create(publicKey, false, crypto),
      ],
    },
    crypto,
  );
  return cert.toString('pem');
}
