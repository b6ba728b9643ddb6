import type { SecureContextOptions, Server as TlsServer } from 'node:tls';
import type { Logger } from 'pino';
import type { Clock } from '../src/clock';
import type { CertificateAuthority, IssuedCertificate } from './certificate-authority';
import { createRenewal, renewalTime, type Timer } from './scheduler';

/**
 * The broker's own HTTPS certificate: short-lived, renewed at two thirds of its lifetime and hot-swapped
 * into every listening server with `setSecureContext`.
 *
 * Why this order: the new certificate is issued first and the swap happens only once it is in hand, so
 * a failed issuance (CA or OpenBao unavailable) changes nothing and is retried while the old one still
 * has a third of its life left. A swap only affects new handshakes: connections already open keep the
 * session they negotiated. The certificate is kept in memory only — each replica has its own, and after a
 * crash the next start simply issues a fresh one, so there is no half-done renewal to repair.
 * The CA bundle is refetched on every renewal, so client certificates are checked against the CA as it is now.
 */

export interface ServerNames {
  commonName: string;
  dnsNames: readonly string[];
  ipAddresses: readonly string[];
}

export interface ServerCertificateOptions {
  ca: CertificateAuthority;
  clock: Clock;
  timer?: Timer;
  /** `broker.rotation.certificate`. */
  lifetimeMs: number;
  names: ServerNames;
  logger?: Pick<Logger, 'info' | 'warn'>;
}

export interface ServerCertificateStatus {
  serial: string;
  issuedAt: number;
  expiresAt: number;
  renewAt: number;
  /** How many times it has been renewed since start. */
  renewals: number;
}

export interface ServerCertificate {
  /** Issues the first certificate; nothing can be served before this resolves. */
  init(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Issues and swaps in a new certificate now. */
  renewNow(): Promise<void>;
  /** Key, certificate and client-CA bundle, for `https.createServer`. */
  secureContextOptions(): SecureContextOptions;
  /** Keeps this server's certificate current until it closes. */
  attach(server: TlsServer): void;
  status(): ServerCertificateStatus | undefined;
}

export function createServerCertificate(options: ServerCertificateOptions): ServerCertificate {
  const servers = new Set<TlsServer>();
  let current: { issued: IssuedCertificate; clientCa: string } | undefined;
  let renewals = 0;

  const contextOf = (held: NonNullable<typeof current>): SecureContextOptions => ({
    key: held.issued.keyPem,
    cert: held.issued.certPem,
    // Client certificates must chain to this; `authorized` on the socket says whether they did.
    ca: held.clientCa,
    minVersion: 'TLSv1.2',
  });

  async function issue(): Promise<{ issued: IssuedCertificate; clientCa: string }> {
    const { names } = options;
    const issued = await options.ca.issue({ usage: 'server', commonName: names.commonName, dnsNames: names.dnsNames, ipAddresses: names.ipAddresses, ttlMs: options.lifetimeMs });
    return { issued, clientCa: await options.ca.caBundle() };
  }

  async function renew() {
    const next = await issue();
    const context = contextOf(next);
    for (const server of servers) server.setSecureContext(context);
    current = next;
    renewals += 1;
    options.logger?.info({ serial: next.issued.serial, expiresAt: new Date(next.issued.expiresAt).toISOString() }, 'server certificate renewed');
    return { issuedAt: next.issued.issuedAt, expiresAt: next.issued.expiresAt };
  }

  let renewal: ReturnType<typeof createRenewal> | undefined;

  return {
    async init() {
      current ??= await issue();
    },
    async start() {
      if (!current) throw new Error('server certificate: call init() before start()');
      renewal ??= createRenewal({
        name: 'server certificate renewal',
        clock: options.clock,
        timer: options.timer,
        current: { issuedAt: current.issued.issuedAt, expiresAt: current.issued.expiresAt },
        renew,
        onError: (err, attempt) => options.logger?.warn({ err, attempt }, 'server certificate renewal failed; retrying'),
      });
      await renewal.start();
    },
    async stop() {
      await renewal?.stop();
      renewal = undefined;
    },
    async renewNow() {
      if (renewal) await renewal.renewNow();
      else await renew();
    },
    secureContextOptions() {
      if (!current) throw new Error('server certificate: call init() first');
      return contextOf(current);
    },
    attach(server) {
      servers.add(server);
      server.once('close', () => servers.delete(server));
      // It may have renewed between secureContextOptions() and now.
      if (current) server.setSecureContext(contextOf(current));
    },
    status() {
      if (!current) return undefined;
      const lifetime = { issuedAt: current.issued.issuedAt, expiresAt: current.issued.expiresAt };
      return { serial: current.issued.serial, ...lifetime, renewAt: renewalTime(lifetime), renewals };
    },
  };
}
