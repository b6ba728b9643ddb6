import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import type { ServerOptions } from 'node:https';
import type { Server as TlsServer } from 'node:tls';
import type { Logger } from 'pino';
import type { Clock } from '../src/clock';
import type { Policy } from '../src/policy/schema';
import type { CertificateAuthority } from './certificate-authority';
import { createServerCertificate, type ServerCertificate, type ServerNames } from './certificates';
import type { Timer } from './scheduler';
import { certificateIdentity, type CertificateRole } from './tls-identity';
import { createVaultPki } from './vault-pki';

/**
 * HTTPS and mTLS for the broker, as `broker.tls.mode` asks: which CA, the broker's own certificate and
 * its renewal, and the `fromCertificate` hook that turns a verified client certificate into an MCP
 * server or operator id. src/app.ts wires this in; the CLI uses `certificateAuthorityFor` alone.
 */

export interface BrokerTlsOptions {
  policy: Policy;
  dataDir: string;
  masterKey: Buffer;
  clock: Clock;
  timer?: Timer;
  logger?: Pick<Logger, 'info' | 'warn'>;
  env?: NodeJS.ProcessEnv;
  /** The Vault token for vault-pki; defaults to upstreams.vault.auth.token_file, then $VAULT_TOKEN. */
  vaultToken?: () => Promise<string>;
}

export interface BrokerTls {
  ca: CertificateAuthority;
  serverCertificate: ServerCertificate;
  /** For `Identities.fromCertificate` (src/http/authenticate.ts). */
  fromCertificate: (req: { socket: unknown }, role: CertificateRole) => string | null;
  /** For `https.createServer`: the current certificate, and client certificates requested but optional. */
  serverOptions(): ServerOptions;
  /** Hot-swaps this server's certificate on every renewal; returns it. */
  attach<S extends TlsServer>(server: S): S;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** When the CA certificate was issued (internal CA), for metrics. */
  caIssuedAt(): number | undefined;
}

/** The CA `broker.tls.mode` names, or null when TLS is off. Errors name the policy field at fault. */
export function certificateAuthorityFor(options: BrokerTlsOptions): CertificateAuthority | null {
  const { policy, env = process.env } = options;
  const tls = policy.broker.tls;
  if (tls.mode === 'off') return null;
  // Required here, not imported: the X.509 library loads only when a TLS mode needs it (cold start).
  if (tls.mode === 'internal-ca') return (require('./internal-ca') as typeof import('./internal-ca')).createInternalCa({ dataDir: options.dataDir, masterKey: options.masterKey, clock: options.clock });
  const vault = policy.broker.upstreams.vault;
  if (!vault) throw new Error('broker.tls.mode: vault-pki needs broker.upstreams.vault (address and a token)');
  const tokenFile = vault.auth?.token_file;
  const token =
    options.vaultToken ??
    (tokenFile
      ? async () => (await readFile(tokenFile, 'utf8')).trim()
      : async () => {
          if (!env.VAULT_TOKEN) throw new Error('broker.tls.mode: vault-pki needs broker.upstreams.vault.auth.token_file or VAULT_TOKEN');
          return env.VAULT_TOKEN;
        });
  return createVaultPki({ address: vault.address, namespace: vault.namespace, timeoutMs: vault.timeout, token, clock: options.clock, mount: tls.vault_pki_mount, role: tls.vault_pki_role });
}

/** Names the broker's certificate covers: the issuer URL's host, plus localhost and loopback. */
export function serverNames(issuer: string): ServerNames {
  const host = new URL(issuer).hostname.replace(/^\[|\]$/g, '');
  const dns = new Set(['localhost']);
  const ips = new Set(['127.0.0.1', '::1']);
  if (isIP(host)) ips.add(host);
  else dns.add(host);
  return { commonName: host, dnsNames: [...dns], ipAddresses: [...ips] };
}

export async function createBrokerTls(options: BrokerTlsOptions & { currentPolicy?: () => Policy }): Promise<BrokerTls | null> {
  const ca = certificateAuthorityFor(options);
  if (!ca) return null;
  await ca.init();
  const serverCertificate = createServerCertificate({
    ca,
    clock: options.clock,
    timer: options.timer,
    lifetimeMs: options.policy.broker.rotation.certificate,
    names: serverNames(options.policy.broker.issuer),
    logger: options.logger,
  });
  await serverCertificate.init();
  const internal = ca as Partial<ReturnType<typeof import('./internal-ca').createInternalCa>>;
  return {
    ca,
    serverCertificate,
    fromCertificate: certificateIdentity(options.currentPolicy ?? (() => options.policy)),
    // requestCert without rejectUnauthorized: bearer-key clients still connect; only a verified
    // certificate (socket.authorized) is ever read as an identity.
    serverOptions: () => ({ ...serverCertificate.secureContextOptions(), requestCert: true, rejectUnauthorized: false }),
    attach(server) {
      serverCertificate.attach(server);
      return server;
    },
    start: () => serverCertificate.start(),
    stop: () => serverCertificate.stop(),
    caIssuedAt: () => internal.caIssuedAt?.(),
  };
}
