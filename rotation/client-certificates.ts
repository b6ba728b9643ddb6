import { createPrivateKey, X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import type { Clock } from '../src/clock';
import { readOptional, replaceFile } from '../src/storage/atomic-file';
import { lifetimeOf, renewalDue, type CertificateAuthority, type IssuedCertificate } from './certificate-authority';
import { renewalTime } from './scheduler';
import { identityFromSan, identityUri, type CertificateRole } from './tls-identity';

/**
 * Client certificates for MCP servers and operators, as files in a directory: key.pem (0600), cert.pem,
 * ca.pem (the bundle that verifies the broker). `bulkhead certs issue` writes them; `bulkhead certs renew`
 * renews them in place, and the MCP wrapper reloads them when cert.pem changes.
 *
 * Why the order: each file is replaced atomically, ca.pem first, then key.pem, then cert.pem last — a
 * reader that reloads on cert.pem sees a complete pair. A crash between the key and the certificate
 * leaves a new key beside the old certificate; `renew` detects that the two do not match and issues a
 * fresh pair, so the next run repairs it whether or not the old one was due.
 */

export const CERT_FILES = { key: 'key.pem', cert: 'cert.pem', ca: 'ca.pem' } as const;

export interface ClientIdentity {
  role: CertificateRole;
  id: string;
}

export function issueClientCertificate(ca: CertificateAuthority, identity: ClientIdentity, ttlMs: number): Promise<IssuedCertificate> {
  return ca.issue({ usage: 'client', commonName: identity.id, uris: [identityUri(identity.role, identity.id)], ttlMs });
}

export async function writeCertificateFiles(dir: string, issued: IssuedCertificate): Promise<void> {
  await replaceFile(join(dir, CERT_FILES.ca), issued.caPem, 0o644);
  await replaceFile(join(dir, CERT_FILES.key), issued.keyPem, 0o600);
  await replaceFile(join(dir, CERT_FILES.cert), issued.certPem, 0o644);
}

export type RenewalReason = 'due' | 'forced' | 'key_mismatch' | 'ca_changed';

export interface RenewalResult {
  renewed: boolean;
  /** Why it was renewed; absent when it was not due. */
  reason?: RenewalReason;
  identity: ClientIdentity;
  serial: string;
  expiresAt: number;
  renewAt: number;
}

/** Renews the certificate in `dir` if due (two thirds of its lifetime), forced, broken, or from another CA. */
export async function renewCertificateFiles(options: { ca: CertificateAuthority; dir: string; clock: Clock; ttlMs: number; force?: boolean }): Promise<RenewalResult> {
  const { ca, dir, clock } = options;
  const certPem = await readOptional(join(dir, CERT_FILES.cert));
  if (certPem === null) throw new Error(`${join(dir, CERT_FILES.cert)}: no certificate to renew (use bulkhead certs issue first)`);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    throw new Error(`${join(dir, CERT_FILES.cert)}: not a PEM certificate`);
  }
  const identity = identityFromSan(cert.subjectAltName);
  if (!identity) throw new Error(`${join(dir, CERT_FILES.cert)}: not a Bulkhead client certificate (no spiffe://bulkhead/ SAN)`);

  const reason = options.force ? 'forced' : !(await keyMatches(dir, cert)) ? 'key_mismatch' : !issuedBy(cert, await ca.caBundle()) ? 'ca_changed' : renewalDue(lifetimeOf(certPem), clock.now()) ? 'due' : undefined;
  if (!reason) {
    const lifetime = lifetimeOf(certPem);
    return { renewed: false, identity, serial: cert.serialNumber, expiresAt: lifetime.expiresAt, renewAt: renewalTime(lifetime) };
  }
  const issued = await issueClientCertificate(ca, identity, options.ttlMs);
  await writeCertificateFiles(dir, issued);
  return { renewed: true, reason, identity, serial: issued.serial, expiresAt: issued.expiresAt, renewAt: renewalTime(issued) };
}

async function keyMatches(dir: string, cert: X509Certificate): Promise<boolean> {
  const keyPem = await readOptional(join(dir, CERT_FILES.key));
  if (keyPem === null) return false;
  try {
    return cert.checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

/** True if one of the CA certificates in the bundle signed `cert`. */
function issuedBy(cert: X509Certificate, bundle: string): boolean {
  const pems = bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return pems.some((pem) => {
    const ca = new X509Certificate(pem);
    return cert.checkIssued(ca) && cert.verify(ca.publicKey);
  });
}
