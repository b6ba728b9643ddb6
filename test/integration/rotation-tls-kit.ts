import { randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { Agent, request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { createLocalSecretStore } from '../../adapters/local';
import { createBroker, type Broker, type BrokerOptions } from '../../src/app';
import { loadOrCreateMasterKey } from '../../src/crypto/master-key';
import { sha256Hex } from '../../src/crypto/hash';
import { createLogger } from '../../src/observability/logger';
import type { Policy } from '../../src/policy/schema';
import { CA_PEM_FILE, TLS_DIR } from '../../rotation/internal-ca';
import { isolationPolicy, TENANTS } from '../support/broker-harness';

/**
 * For the rotation suites: a real broker serving HTTPS (internal CA or OpenBao PKI) on a real port, and
 * an HTTPS client that can present a client certificate and reports which server certificate each answer
 * came over. Secrets are random per run, as in test/support/broker-harness.ts.
 */

export interface TlsBroker {
  broker: Broker;
  url: string;
  dataDir: string;
  logFile: string;
  policy: Policy;
  serverKeys: Record<string, string>;
  operatorToken: string;
  clientSecrets: Record<string, string>;
  /** The CA bundle clients trust the broker with (and client certificates chain to). */
  caPem(): Promise<string>;
  /** Stops the broker, runs `whileDown` (to leave what a crash would), and starts it again on the same data dir. */
  restart(whileDown?: () => Promise<void>): Promise<void>;
  close(): Promise<void>;
}

const random = () => randomBytes(24).toString('base64url');

export async function startTlsBroker(options: { overrides?: (p: any) => void; brokerOptions?: Partial<BrokerOptions>; dataDir?: string } = {}): Promise<TlsBroker> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'bulkhead-rotation-')));
  const logFile = join(dataDir, 'broker.log');
  const serverKeys = { 'crm-mcp': random(), 'mail-mcp': random() };
  const operatorToken = random();
  const clientSecrets: Record<string, string> = {};
  for (const t of TENANTS) for (const p of ['agent', 'reader']) clientSecrets[`${t}-${p}`] = random();
  const policy = isolationPolicy(
    {
      servers: Object.fromEntries(Object.entries(serverKeys).map(([k, v]) => [k, sha256Hex(v)])),
      operator: sha256Hex(operatorToken),
      clients: Object.fromEntries(Object.entries(clientSecrets).map(([k, v]) => [k, sha256Hex(v)])),
    },
    (p) => {
      p.broker.issuer = 'https://localhost:8700';
      p.broker.tls = { mode: 'internal-ca' };
      options.overrides?.(p);
    },
  );
  const store = createLocalSecretStore({ dataDir, masterKey: await loadOrCreateMasterKey(dataDir) });
  for (const t of TENANTS) await store.set(t, 'crm', `${t}-upstream-${random()}`);

  let log: WriteStream = createWriteStream(logFile, { flags: 'a' });
  const start = async () => {
    const broker = await createBroker({ policy, dataDir, logger: createLogger({ destination: log, level: 'debug' }), ...options.brokerOptions });
    return { broker, url: (await broker.listen()).url };
  };
  let running = await start();
  return {
    get broker() {
      return running.broker;
    },
    get url() {
      return running.url;
    },
    dataDir,
    logFile,
    policy,
    serverKeys,
    operatorToken,
    clientSecrets,
    caPem: async () => (policy.broker.tls.mode === 'internal-ca' ? readFile(join(dataDir, TLS_DIR, CA_PEM_FILE), 'utf8') : running.broker.rotation.tls!.ca.caBundle()),
    async restart(whileDown) {
      await running.broker.close();
      await new Promise<void>((resolve) => log.end(resolve));
      await whileDown?.();
      log = createWriteStream(logFile, { flags: 'a' });
      running = await start();
    },
    async close() {
      await running.broker.close();
      await new Promise<void>((resolve) => log.end(resolve));
      if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface TlsAnswer {
  status: number;
  body: any;
  /** Serial of the server certificate on the connection that carried this answer. */
  serverSerial: string;
}

export interface HttpsClient {
  request(method: string, path: string, options?: { json?: unknown; form?: Record<string, string>; bearer?: string }): Promise<TlsAnswer>;
  close(): void;
}

/** keepAlive: reuse one connection (an existing connection across renewals); else a new handshake per call. */
export function httpsClient(baseUrl: string, tls: { ca: string; cert?: string; key?: string; keepAlive: boolean }): HttpsClient {
  const agent = new Agent({ ca: tls.ca, cert: tls.cert, key: tls.key, keepAlive: tls.keepAlive, maxSockets: tls.keepAlive ? 1 : Infinity, maxCachedSessions: 0 });
  return {
    request(method, path, options = {}) {
      const headers: Record<string, string> = {};
      let payload: string | undefined;
      if (options.bearer) headers.authorization = `Bearer ${options.bearer}`;
      if (options.form) {
        headers['content-type'] = 'application/x-www-form-urlencoded';
        payload = new URLSearchParams(options.form).toString();
      } else if (options.json !== undefined) {
        headers['content-type'] = 'application/json';
        payload = JSON.stringify(options.json);
      }
      return new Promise<TlsAnswer>((resolve, reject) => {
        const req = httpsRequest(new URL(path, baseUrl), { method, headers, agent, timeout: 10_000 }, (res) => {
          const serverSerial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let body: unknown = text;
            try {
              body = JSON.parse(text);
            } catch {
              // Left as text.
            }
            resolve({ status: res.statusCode ?? 0, body, serverSerial });
          });
          res.on('error', reject);
        });
        req.on('timeout', () => req.destroy(new Error('request timed out')));
        req.on('error', reject);
        req.end(payload);
      });
    },
    close: () => agent.destroy(),
  };
}
