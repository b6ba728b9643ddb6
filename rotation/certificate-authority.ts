import { X509Certificate } from 'node:crypto';
import { renewalTime, type Lifetime } from './scheduler';

/**
 * What the broker needs from a certificate authority, whichever one it is: the internal CA under
 * --data-dir (internal-ca.ts) or OpenBao's PKI engine (vault-pki.ts). Everything else — the server
 * certificate and its hot swap, client certificates for MCP servers and operators — is written against
 * this interface only.
 */

export interface CertificateRequest {
  usage: 'server' | 'client';
  commonName: string;
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  /** SAN URIs; client identities are `spiffe://bulkhead/<role>/<id>` (tls-identity.ts). */
  uris?: readonly string[];
  ttlMs: number;
}

export interface IssuedCertificate {
  certPem: string;
  /** PKCS#8 PEM. Never logged, never in an error or an API answer. */
  keyPem: string;
  /** The CA bundle that verifies certPem (and that peers should trust). */
  caPem: string;
  serial: string;
  /** Epoch ms: when it was issued (notBefore minus the backdate) and when it expires. */
  issuedAt: number;
  expiresAt: number;
}

export interface CertificateAuthority {
  readonly kind: 'internal-ca' | 'vault-pki';
  /** Creates or checks what the CA needs (idempotent). */
  init(): Promise<void>;
  /** PEM bundle of the CA certificate(s) client certificates must chain to. */
  caBundle(): Promise<string>;
  issue(request: CertificateRequest): Promise<IssuedCertificate>;
}

/**
 * notBefore is set this far in the past so a peer whose clock runs a little behind still accepts a
 * certificate issued a moment ago. OpenBao's PKI backdates by the same 30s by default.
 */
export const NOT_BEFORE_BACKDATE_MS = 30_000;

/** A certificate's lifetime as issued, from its PEM (undoing the notBefore backdate). */
export function lifetimeOf(certPem: string): Lifetime & { serial: string } {
  const cert = new X509Certificate(certPem);
  const notBefore = Date.parse(cert.validFrom);
  const expiresAt = Date.parse(cert.validTo);
  return { issuedAt: Math.min(notBefore + NOT_BEFORE_BACKDATE_MS, expiresAt), expiresAt, serial: cert.serialNumber };
}

/** Certificates renew at two thirds of their lifetime, leaving a third for retries. */
export function renewalDue(lifetime: Lifetime, now: number): boolean {
  return now >= renewalTime(lifetime);
}
