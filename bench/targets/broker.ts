import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalSecretStore } from '../../adapters/local';
import { createBroker } from '../../src/app';
import { loadOrCreateMasterKey } from '../../src/crypto/master-key';
import { loadPolicyFile } from '../../src/policy/load';
import { BENCH_SERVER, tenantId, type Fixture, type FixtureOptions } from '../fixtures';
import { serveTarget } from '../target-process';

/**
 * A real broker, built the way `bulkhead serve` builds one (policy file, embedded state under a data
 * dir on disk, durable audit, logs to stdout), plus what a scenario needs to drive it: the server key
 * and one access token per active tenant, issued through the token service.
 */
export interface BrokerTargetConfig {
  /** Written by the parent (steps.ts startBroker), so the broker starts from a file as `bulkhead serve` does. */
  policyFile: string;
  fixture: Omit<Fixture, 'raw'> & { options: FixtureOptions };
  /** Live sessions to create before measuring, spread over all tenants. */
  sessions?: number;
}

export interface BrokerTargetInfo {
  url: string;
  serverKey: string;
  operatorToken: string;
  tokens: Array<{ tenant: string; token: string }>;
  clients: Array<{ tenant: string; clientId: string; secret: string }>;
  policyBytes: number;
  /** Reading, parsing, validating and freezing the policy file. */
  policyLoadMs: number;
  startMs: number;
  rssAfterStartBytes: number;
}

serveTarget(async (config: BrokerTargetConfig) => {
  const started = process.hrtime.bigint();
  const dataDir = await mkdtemp(join(tmpdir(), 'bulkhead-bench-'));
  const { fixture, policyFile } = config;

  const loadStart = process.hrtime.bigint();
  const policy = loadPolicyFile(policyFile);
  const policyLoadMs = Number(process.hrtime.bigint() - loadStart) / 1e6;

  if (fixture.options.credential.source === 'local') {
    const store = createLocalSecretStore({ dataDir, masterKey: await loadOrCreateMasterKey(dataDir) });
    for (const client of fixture.clients) await store.set(client.tenant, 'crm', `${client.tenant}-crm-${randomBytes(16).toString('base64url')}`);
  }

  // As `bulkhead serve` does: the heap the load grew is given back once started.
  const broker = await createBroker({ policy, dataDir, releaseHeap: true });
  const { url } = await broker.listen(0, '127.0.0.1');

  const tokens: BrokerTargetInfo['tokens'] = [];
  for (const client of fixture.clients) {
    const answer = await broker.tokens.grant({ grant_type: 'client_credentials', client_id: client.clientId, client_secret: client.secret, audience: BENCH_SERVER });
    tokens.push({ tenant: client.tenant, token: answer.access_token });
  }

  const sessions = config.sessions ?? 0;
  const expiresAt = Date.now() + 60 * 60_000;
  for (let i = 0; i < sessions; i++) await broker.state.sessions.touch(tenantId(i % fixture.options.tenants), `bench-session-${i}`, expiresAt);

  const info: BrokerTargetInfo = {
    url,
    serverKey: fixture.serverKey,
    operatorToken: fixture.operatorToken,
    tokens,
    clients: fixture.clients,
    policyBytes: (await stat(policyFile)).size,
    policyLoadMs,
    startMs: Number(process.hrtime.bigint() - started) / 1e6,
    rssAfterStartBytes: process.memoryUsage().rss,
  };
  return {
    info,
    async close() {
      await broker.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
});
