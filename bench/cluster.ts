import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { createLocalSecretStore } from '../adapters/local';
import { sha256Hex } from '../src/crypto/hash';
import { createScratchDatabase, deleteRedisPrefix, scratchPrefix } from './scratch-state';

/**
 * A scale-out deployment on loopback: N real broker processes (`bulkhead serve`, the built CLI) sharing
 * one Redis (under a private key prefix) and one PostgreSQL database (created for the run, dropped after),
 * and one master key through BULKHEAD_MASTER_KEY, as operators run them behind a load balancer. Used by
 * the multi-process tests and by the kill-switch benchmark.
 *
 * Tenants acme, globex and initech, each with principal "<tenant>-agent" on MCP server crm-mcp, tool query_crm
 * (local credential "crm", resource prefix "<tenant>/"). Every secret is random per cluster.
 */
const run = promisify(execFile);
// Run from bench/ (ts-jest) or from dist/bench/ (the compiled benchmark).
export const ROOT = resolve(__dirname, existsSync(join(__dirname, '..', 'package.json')) ? '..' : '../..');
export const CLI = join(ROOT, 'dist/src/cli/main.js');
export const TENANTS = ['acme', 'globex', 'initech'] as const;
export type Tenant = (typeof TENANTS)[number];
export interface Quotas {
  calls_per_minute: number;
  concurrency: number;
}
export const SERVER = 'crm-mcp';
export const TOOL = 'query_crm';

export interface ClusterOptions {
  replicas: number;
  redisUrl: string;
  /** A database the cluster may CREATE DATABASE in (superuser); the run's own database is dropped after. */
  adminDatabaseUrl: string;
  label: string;
  /** Per-tenant quotas (default: high enough never to deny). */
  quotas?: Partial<Record<Tenant, Quotas>>;
  /** `max_records` of the tool (default: none), for the anomaly rule. */
  maxRecords?: number;
  /** `broker.rotation.signing_key` (default 24h). */
  signingKeyRotation?: string;
  /** Extra environment for the replicas. */
  env?: Record<string, string>;
  /** Edits the policy document before it is written (e.g. to add canary tenants). */
  extendPolicy?: (policy: any) => void;
  /** Extra local secrets stored in every replica's data dir. */
  secrets?: Array<{ tenant: string; name: string; value: string }>;
}

export interface Replica {
  index: number;
  url: string;
  port: number;
  readonly pid: number;
  dataDir: string;
  logFile: string;
  /** True once the process has exited. */
  exited(): boolean;
  /** SIGKILL: the replica dies without shutting anything down (no lease release, no flush). */
  kill(): Promise<void>;
  /** SIGTERM and wait for a clean exit. */
  stop(): Promise<void>;
}

export interface HttpAnswer {
  status: number;
  body: any;
}

export interface Cluster {
  replicas: Replica[];
  policyFile: string;
  databaseUrl: string;
  prefix: string;
  masterKey: Buffer;
  serverKey: string;
  operatorToken: string;
  clientSecrets: Record<string, string>;
  upstream: Record<string, string>;
  /** Every secret of the run, to search logs and bodies for. */
  secrets(): string[];
  token(replica: Replica, principal: string): Promise<string>;
  authorize(replica: Replica, body: Record<string, unknown>): Promise<HttpAnswer>;
  complete(replica: Replica, body: Record<string, unknown>): Promise<HttpAnswer>;
  operator(replica: Replica, method: 'GET' | 'POST', path: string, body?: unknown): Promise<HttpAnswer>;
  close(): Promise<void>;
}

const random = () => randomBytes(24).toString('base64url');

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolvePort(port));
    });
  });
}

export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const root = await mkdtemp(join(tmpdir(), `bulkhead-cluster-${options.label}-`));
  const db = await createScratchDatabase(options.adminDatabaseUrl, options.label);
  const prefix = scratchPrefix(options.label);
  const masterKey = randomBytes(32);
  const serverKey = random();
  const operatorToken = random();
  const clientSecrets: Record<string, string> = Object.fromEntries(TENANTS.map((t) => [`${t}-agent`, random()]));
  const upstream: Record<string, string> = Object.fromEntries(TENANTS.map((t) => [t, `${t}-upstream-${random()}`]));
  const unlimited: Quotas = { calls_per_minute: 1_000_000, concurrency: 100_000 };

  const policy: Record<string, any> = {
    broker: {
      issuer: 'http://bulkhead.cluster.test',
      rotation: { signing_key: options.signingKeyRotation ?? '24h' },
      state: { redis_url: options.redisUrl, postgres_url: db.url, redis_prefix: prefix },
    },
    operators: { ops: { token_sha256: sha256Hex(operatorToken) } },
    servers: { [SERVER]: { key_sha256: sha256Hex(serverKey), tools: [TOOL] } },
    tenants: Object.fromEntries(
      TENANTS.map((t) => [
        t,
        {
          principals: { [`${t}-agent`]: { secret_sha256: sha256Hex(clientSecrets[`${t}-agent`]!), tools: [TOOL] } },
          tools: { [TOOL]: { credential: 'crm', resource: { arg: 'path', prefix: `${t}/` }, ...(options.maxRecords === undefined ? {} : { max_records: options.maxRecords }) } },
          credentials: { crm: { source: 'local', name: 'crm' } },
          quotas: options.quotas?.[t] ?? unlimited,
        },
      ]),
    ),
  };
  options.extendPolicy?.(policy);
  const policyFile = join(root, 'policy.json');
  writeFileSync(policyFile, JSON.stringify(policy, null, 2), { mode: 0o600 });
  const env = { ...process.env, BULKHEAD_MASTER_KEY: masterKey.toString('base64'), BULKHEAD_LOG_LEVEL: 'info', ...options.env };

  const replicas: Replica[] = [];
  const cleanup = async () => {
    await Promise.all(replicas.map((r) => r.stop().catch(() => undefined)));
    await db.drop().catch(() => undefined);
    await deleteRedisPrefix(options.redisUrl, prefix);
    await rm(root, { recursive: true, force: true });
  };

  try {
    // The schema is the operator's step, done once with the CLI, before any replica starts.
    await run(process.execPath, [CLI, 'state', 'init', '--config', policyFile], { env, cwd: ROOT, timeout: 30_000 });

    async function launch(index: number): Promise<Replica> {
      const dataDir = join(root, `replica-${index}`);
      // Each replica has its own data dir (embedded secret store, logs) but the shared master key.
      const store = createLocalSecretStore({ dataDir, masterKey });
      for (const t of TENANTS) await store.set(t, 'crm', upstream[t]!);
      for (const s of options.secrets ?? []) await store.set(s.tenant, s.name, s.value);
      return spawnReplica({ index, dataDir, policyFile, env });
    }
    // Started together, as a deployment rolls out: they race for the first key ring on purpose.
    const started = await Promise.allSettled(Array.from({ length: options.replicas }, (_, i) => launch(i + 1)));
    for (const s of started) if (s.status === 'fulfilled') replicas.push(s.value);
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;

    const call = async (replica: Replica, method: string, path: string, body: unknown, bearer?: string, form = false): Promise<HttpAnswer> => {
      const headers: Record<string, string> = {};
      if (bearer) headers.authorization = `Bearer ${bearer}`;
      let payload: string | undefined;
      if (body !== undefined) {
        headers['content-type'] = form ? 'application/x-www-form-urlencoded' : 'application/json';
        payload = form ? new URLSearchParams(body as Record<string, string>).toString() : JSON.stringify(body);
      }
      const response = await fetch(replica.url + path, { method, headers, body: payload, signal: AbortSignal.timeout(30_000) });
      const text = await response.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // Left as text.
      }
      return { status: response.status, body: parsed };
    };

    return {
      replicas,
      policyFile,
      databaseUrl: db.url,
      prefix,
      masterKey,
      serverKey,
      operatorToken,
      clientSecrets,
      upstream,
      secrets: () => [serverKey, operatorToken, ...Object.values(clientSecrets), ...Object.values(upstream), masterKey.toString('base64')],
      async token(replica, principal) {
        const answer = await call(replica, 'POST', '/v1/token', { grant_type: 'client_credentials', client_id: principal, client_secret: clientSecrets[principal]!, audience: SERVER }, undefined, true);
        if (answer.status !== 200) throw new Error(`token for ${principal} on replica ${replica.index}: ${answer.status} ${JSON.stringify(answer.body)}`);
        return answer.body.access_token as string;
      },
      authorize: (replica, body) => call(replica, 'POST', '/v1/authorize', body, serverKey),
      complete: (replica, body) => call(replica, 'POST', '/v1/complete', body, serverKey),
      operator: (replica, method, path, body) => call(replica, method, path, body, operatorToken),
      close: cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

async function spawnReplica(options: { index: number; dataDir: string; policyFile: string; env: NodeJS.ProcessEnv }): Promise<Replica> {
  const logFile = join(options.dataDir, 'broker.log');
  await mkdir(options.dataDir, { recursive: true });
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const fd = openSync(logFile, 'a');
    const child: ChildProcess = spawn(process.execPath, [CLI, 'serve', '--config', options.policyFile, '--data-dir', options.dataDir, '--port', String(port)], {
      env: options.env,
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    let exited = false;
    const exit = new Promise<void>((resolveExit) => child.once('exit', () => ((exited = true), resolveExit())));
    const url = `http://127.0.0.1:${port}`;
    const ready = await waitReady(url, () => exited, 30_000);
    if (ready) {
      return {
        index: options.index,
        url,
        port,
        get pid() {
          return child.pid!;
        },
        dataDir: options.dataDir,
        logFile,
        exited: () => exited,
        async kill() {
          if (!exited) child.kill('SIGKILL');
          await exit;
        },
        async stop() {
          if (!exited) child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
          await exit;
          clearTimeout(timer);
        },
      };
    }
    if (!exited) child.kill('SIGKILL');
    await exit;
    // Someone took the port between picking and listening: try another once or twice.
    if (attempt >= 3) {
      throw new Error(`replica ${options.index} did not become ready; log tail:\n${readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n')}`);
    }
  }
}

async function waitReady(url: string, exited: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !exited()) {
    try {
      const response = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) });
      await response.text();
      if (response.status === 200) return true;
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}
