import { X509Certificate } from 'node:crypto';
import type { Clock } from '../src/clock';
import { withDeadline } from '../src/deadline';
import type { CertificateAuthority, IssuedCertificate } from './certificate-authority';

/**
 * `broker.tls.mode: vault-pki`: certificates come from OpenBao's (or Vault's) PKI engine over its HTTP
 * API, with plain fetch and a timeout on every call. Two roles on the mount, one per purpose, so a
 * certificate issued to an MCP server can never serve as the broker's and the other way round:
 * `<role>-server` (serverAuth) and `<role>-client` (clientAuth, SAN URIs under spiffe://bulkhead/).
 * `bootstrapVaultPki` (vault-pki-setup.ts) creates them; the broker itself only issues and reads the CA.
 * The token is asked for on each call, so whoever renews it (adapters/vault.ts) is the one owner.
 * Issued private keys pass through memory only; they are never logged or put in an error.
 */

export interface VaultConnection {
  address: string;
  /** The Vault token to use now (called for every request). */
  token: () => string | Promise<string>;
  namespace?: string;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export interface VaultPkiOptions extends VaultConnection {
  clock: Clock;
  /** Mount path of the PKI engine (default "pki"). */
  mount?: string;
  /** Role name prefix (default "bulkhead"): roles `<role>-server` and `<role>-client`. */
  role?: string;
}

/** One call to the Vault HTTP API; null for 204/404. Errors name the path and Vault's messages, never the token. */
export async function vaultRequest(connection: VaultConnection, method: string, path: string, body?: unknown): Promise<Record<string, any> | null> {
  const doFetch = connection.fetch ?? fetch;
  const headers: Record<string, string> = { 'X-Vault-Token': await connection.token() };
  if (connection.namespace) headers['X-Vault-Namespace'] = connection.namespace;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let answer: { status: number; ok: boolean; text: string };
  try {
    // One deadline over the request and its body: a server that stalls mid-answer is bounded too.
    answer = await withDeadline(connection.timeoutMs ?? 5000, 'vault client timeout', undefined, async (signal) => {
      const response = await doFetch(`${connection.address.replace(/\/+$/, '')}/v1/${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
      if (response.status === 204 || response.status === 404) {
        await response.body?.cancel();
        return { status: response.status, ok: response.ok, text: '' };
      }
      return { status: response.status, ok: response.ok, text: await response.text() };
    });
  } catch (err) {
    throw new Error(`vault: ${method} ${path} failed: ${(err as Error).name === 'TimeoutError' ? 'timed out' : 'unreachable'}`, { cause: err });
  }
  if (answer.status === 204 || answer.status === 404) return null;
  let parsed: Record<string, any>;
  try {
    parsed = JSON.parse(answer.text) as Record<string, any>;
  } catch {
    throw new Error(`vault: ${method} ${path} answered ${answer.status} with a non-JSON body`);
  }
  if (!answer.ok) {
    const errors = Array.isArray(parsed.errors) ? parsed.errors.filter((e: unknown) => typeof e === 'string').join('; ') : '';
    throw new Error(`vault: ${method} ${path} answered ${answer.status}${errors ? `: ${errors}` : ''}`);
  }
  return parsed;
}

export function createVaultPki(options: VaultPkiOptions): CertificateAuthority {
  const mount = (options.mount ?? 'pki').replace(/^\/+|\/+$/g, '');
  const role = options.role ?? 'bulkhead';

  async function caBundle(): Promise<string> {
    const answer = await vaultRequest(options, 'GET', `${mount}/cert/ca_chain`);
    const chain = answer?.data?.ca_chain ?? answer?.data?.certificate;
    if (typeof chain !== 'string' || !chain.includes('BEGIN CERTIFICATE')) {
      throw new Error(`vault pki: no CA on mount "${mount}" (run bootstrapVaultPki or configure the PKI engine)`);
    }
    return chain.trim() + '\n';
  }

  return {
    kind: 'vault-pki',
    async init() {
      await caBundle();
    },
    caBundle,
    async issue(request): Promise<IssuedCertificate> {
      const issuedAt = options.clock.now();
      const answer = await vaultRequest(options, 'POST', `${mount}/issue/${role}-${request.usage}`, {
        common_name: request.commonName,
        alt_names: (request.dnsNames ?? []).join(','),
        ip_sans: (request.ipAddresses ?? []).join(','),
        uri_sans: (request.uris ?? []).join(','),
        ttl: `${Math.max(1, Math.ceil(request.ttlMs / 1000))}s`,
        format: 'pem',
        private_key_format: 'pkcs8',
        // A client identity lives in its SAN URI; the CN must not add a DNS name to it.
        exclude_cn_from_sans: request.usage === 'client',
      });
      const data = answer?.data;
      if (typeof data?.certificate !== 'string' || typeof data?.private_key !== 'string') {
        throw new Error(`vault pki: ${mount}/issue/${role}-${request.usage} returned no certificate`);
      }
      const chain: unknown[] = Array.isArray(data.ca_chain) && data.ca_chain.length > 0 ? data.ca_chain : [data.issuing_ca];
      const cert = new X509Certificate(data.certificate);
      return {
        certPem: String(data.certificate).trim() + '\n',
        keyPem: String(data.private_key).trim() + '\n',
        caPem: chain.map((pem) => String(pem).trim()).join('\n') + '\n',
        serial: cert.serialNumber,
        issuedAt,
        expiresAt: Date.parse(cert.validTo),
      };
    },
  };
}
