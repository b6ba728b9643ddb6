import { randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalSecretStore } from '../../adapters/local';
import { createBroker, type Broker, type BrokerOptions } from '../../src/app';
import { loadOrCreateMasterKey } from '../../src/crypto/master-key';
import { sha256Hex } from '../../src/crypto/hash';
import { createLogger } from '../../src/observability/logger';
import { parsePolicy } from '../../src/policy/load';
import type { Policy } from '../../src/policy/schema';

/**
 * A real broker on a real port with a throwaway data dir, for tests that go over HTTP. Every secret it
 * knows is random per run and listed in `secrets`, so a test can search every log line, audit file and
 * response body for each of them.
 */
export const TENANTS = ['acme', 'globex', 'initech'] as const;
export type TenantId = (typeof TENANTS)[number];

export interface Harness {
  broker: Broker;
  url: string;
  dataDir: string;
  logFile: string;
  policy: Policy;
  serverKeys: Record<string, string>;
  operatorToken: string;
  clientSecrets: Record<string, string>;
  /** Upstream credential values per tenant (what /v1/authorize resolves). */
  upstream: Record<string, string>;
  /** Every secret value of the run: client secrets, server keys, operator token, upstream values. */
  secrets(): string[];
  /** Every response body the helpers below received, to search for leaks. */
  bodies: string[];
  /** The same bodies with the request that produced them, so a leak scan can tell an allow from a deny. */
  exchanges: Exchange[];
  /** Every access token a /v1/token answer handed out through these helpers (to search for leaks). */
  issuedTokens: string[];
  /** Resolves once every log line written so far is in `logFile`. */
  flushLogs(): Promise<void>;
  token(principal: string, audience: string, extra?: Record<string, string>): Promise<string>;
  post(path: string, body: unknown, bearer?: string): Promise<{ status: number; body: any; headers: Headers }>;
  /** POST /v1/token as a client would: JSON or a form, with any headers (HTTP Basic, a stray Bearer…). */
  tokenRequest(body: Record<string, unknown>, options?: { form?: boolean; headers?: Record<string, string> }): Promise<{ status: number; body: any; headers: Headers }>;
  get(path: string, bearer?: string): Promise<{ status: number; body: any; headers: Headers }>;
  authorize(serverId: string, body: unknown): Promise<{ status: number; body: any; headers: Headers }>;
  /** The exact bytes and Content-Type given, for tests of how bodies are read. */
  postRaw(path: string, body: string | Uint8Array, options: { contentType: string; bearer?: string }): Promise<{ status: number; body: any; headers: Headers }>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

export interface Exchange {
  method: string;
  path: string;
  status: number;
  text: string;
}

const random = () => randomBytes(24).toString('base64url');

export function isolationPolicy(hashes: { servers: Record<string, string>; operator: string; clients: Record<string, string> }, overrides: (p: any) => void = () => undefined): Policy {
  const tenants: Record<string, unknown> = {};
  for (const t of TENANTS) {
    tenants[t] = {
      principals: {
        [`${t}-agent`]: { secret_sha256: hashes.clients[`${t}-agent`], tools: ['query_crm', 'export_report', 'send_email'] },
        [`${t}-reader`]: { secret_sha256: hashes.clients[`${t}-reader`], tools: ['query_crm'] },
      },
      tools: {
        query_crm: { credential: 'crm', resource: { arg: 'path', prefix: `${t}/` }, inject: { region: 'eu-west-1' } },
        export_report: { credential: 'crm', max_records: 1000 },
        send_email: { credential: 'crm', approval: true },
      },
      credentials: { crm: { source: 'local', name: 'crm' } },
      quotas: { calls_per_minute: 100_000, concurrency: 64 },
    };
  }
  const raw = {
    broker: { issuer: 'http://bulkhead.test' },
    operators: { ops: { token_sha256: hashes.operator } },
    servers: {
      'crm-mcp': { key_sha256: hashes.servers['crm-mcp'], tools: ['query_crm', 'export_report', 'send_email'] },
      'mail-mcp': { key_sha256: hashes.servers['mail-mcp'], tools: ['send_email'] },
    },
    tenants,
  };
  overrides(raw);
  return parsePolicy(raw, 'test policy');
}

export interface HarnessOptions {
  overrides?: (p: any) => void;
  brokerOptions?: Partial<BrokerOptions>;
  /**
   * Another replica of `replicaOf`'s deployment: the same policy and secrets, its own data dir and port.
   * Scaled out (policy with broker.state), both share Redis and PostgreSQL; pass the same
   * BULKHEAD_MASTER_KEY to both through `brokerOptions.env`.
   */
  replicaOf?: Harness;
  /** An empty directory to use as the data dir (e.g. a tmpfs of the test's); the caller removes it. The log then goes elsewhere. */
  dataDir?: string;
  /** A fixed port (the issuer URL names it); default any free one. */
  port?: number;
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'bulkhead-test-')));
  const logDir = options.dataDir === undefined ? dataDir : await mkdtemp(join(tmpdir(), 'bulkhead-test-log-'));
  const logFile = join(logDir, 'broker.log');
  const peer = options.replicaOf;
  const serverKeys: Record<string, string> = peer?.serverKeys ?? { 'crm-mcp': random(), 'mail-mcp': random() };
  const operatorToken = peer?.operatorToken ?? random();
  const clientSecrets: Record<string, string> = peer?.clientSecrets ?? {};
  if (!peer) for (const t of TENANTS) for (const p of ['agent', 'reader']) clientSecrets[`${t}-${p}`] = random();
  const upstream: Record<string, string> = peer?.upstream ?? Object.fromEntries(TENANTS.map((t) => [t, `${t}-upstream-${random()}`]));
  const policy =
    peer?.policy ??
    isolationPolicy(
      {
        servers: Object.fromEntries(Object.entries(serverKeys).map(([k, v]) => [k, sha256Hex(v)])),
        operator: sha256Hex(operatorToken),
        clients: Object.fromEntries(Object.entries(clientSecrets).map(([k, v]) => [k, sha256Hex(v)])),
      },
      options.overrides,
    );
  const masterKey = await loadOrCreateMasterKey(dataDir, options.brokerOptions?.env);
  const store = createLocalSecretStore({ dataDir, masterKey });
  for (const t of TENANTS) await store.set(t, 'crm', upstream[t]!);

  let logStream: WriteStream = createWriteStream(logFile, { flags: 'a' });
  let broker = await createBroker({ policy, dataDir, logger: createLogger({ destination: logStream, level: 'debug' }), ...options.brokerOptions });
  let url = (await broker.listen(options.port)).url;
  const bodies: string[] = [];
  const exchanges: Exchange[] = [];
  const issuedTokens: string[] = [];

  async function request(method: string, path: string, body: unknown, bearer?: string, form = false, contentType?: string, extraHeaders: Record<string, string> = {}) {
    const headers: Record<string, string> = { ...extraHeaders };
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    let payload: string | Uint8Array | undefined;
    if (body !== undefined) {
      headers['content-type'] = contentType ?? (form ? 'application/x-www-form-urlencoded' : 'application/json');
      payload = form ? formBody(body as Record<string, unknown>) : typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body);
    }
    const response = await fetch(url + path, { method, headers, body: payload });
    const text = await response.text();
    bodies.push(text);
    exchanges.push({ method, path, status: response.status, text });
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // Left as text: the test will see it is not JSON.
    }
    const issued = (parsed as { access_token?: unknown } | null)?.access_token;
    if (path === '/v1/token' && typeof issued === 'string') issuedTokens.push(issued);
    return { status: response.status, body: parsed as any, headers: response.headers };
  }

  const harness: Harness = {
    get broker() {
      return broker;
    },
    get url() {
      return url;
    },
    dataDir,
    logFile,
    policy,
    serverKeys,
    operatorToken,
    clientSecrets,
    upstream,
    bodies,
    exchanges,
    issuedTokens,
    flushLogs: () => new Promise<void>((resolve, reject) => logStream.write('', (err) => (err ? reject(err) : resolve()))),
    secrets: () => [...Object.values(clientSecrets), ...Object.values(serverKeys), operatorToken, ...Object.values(upstream)],
    async token(principal, audience, extra = {}) {
      const res = await request('POST', '/v1/token', { grant_type: 'client_credentials', client_id: principal, client_secret: clientSecrets[principal]!, audience, ...extra }, undefined, true);
      if (res.status !== 200) throw new Error(`token for ${principal} failed: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body.access_token as string;
    },
    post: (path, body, bearer) => request('POST', path, body, bearer),
    tokenRequest: (body, options = {}) => request('POST', '/v1/token', body, undefined, options.form ?? false, undefined, options.headers),
    get: (path, bearer) => request('GET', path, undefined, bearer),
    authorize: (serverId, body) => request('POST', '/v1/authorize', body, serverKeys[serverId]),
    postRaw: (path, body, options) => request('POST', path, body, options.bearer, false, options.contentType),
    async restart() {
      await broker.close();
      await new Promise<void>((resolve) => logStream.end(resolve));
      logStream = createWriteStream(logFile, { flags: 'a' });
      broker = await createBroker({ policy, dataDir, logger: createLogger({ destination: logStream, level: 'debug' }), ...options.brokerOptions });
      url = (await broker.listen(options.port)).url;
    },
    async close() {
      await broker.close();
      await new Promise<void>((resolve) => logStream.end(resolve));
      await rm(logDir, { recursive: true, force: true });
      if (options.dataDir === undefined) await rm(dataDir, { recursive: true, force: true });
    },
  };
  return harness;
}

/** A form body; an array value repeats its parameter (`audience=a&audience=b`). */
function formBody(fields: Record<string, unknown>): string {
  const form = new URLSearchParams();
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) form.append(key, String(one));
  }
  return form.toString();
}

/** An RFC 6749 §2.3.1 HTTP Basic header: id and secret form-urlencoded, then base64. */
export function basicAuth(id: string, secret: string): Record<string, string> {
  const encode = (value: string) => encodeURIComponent(value).replace(/%20/g, '+');
  return { authorization: `Basic ${Buffer.from(`${encode(id)}:${encode(secret)}`).toString('base64')}` };
}
