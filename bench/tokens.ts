import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../src/clock';
import { loadOrCreateMasterKey } from '../src/crypto/master-key';
import { createTokenIssuer } from '../src/tokens/issuer';
import { createKeyRing } from '../src/tokens/key-ring';
import { createFileKeyStore } from '../src/tokens/key-store';
import { createTokenVerifier, type TokenVerifier } from '../src/tokens/verifier';
import { AUTHORIZE_FIXTURE } from './authorize';
import { BENCH_SERVER, toolNames } from './fixtures';
import { interleave } from './interleave';
import { describeMachine } from './machine';
import type { ScenarioResult } from './results';
import { log, pairedRatio, runIfMain, settingsFromEnv } from './scenario';
import { median, round } from './stats';
import { measured, startBroker, startFloor, type BrokerTarget } from './steps';

/**
 * Scenario 4: token issuance over HTTP (client_credentials, JSON body) next to the express floor, and
 * the cost of verifying a Bulkhead JWT in process, with the verified-token cache (what every authorize
 * after the first one with a token pays) and without it (signature check, claims, every time).
 */

async function tokenAnswerBytes(broker: BrokerTarget, body: string): Promise<number> {
  const response = await fetch(`${broker.info.url}/v1/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`probe token request answered ${response.status}: ${text.slice(0, 200)}`);
  return Buffer.byteLength(text);
}

/** Verifications per second of one token, measured for `ms` of wall time. */
async function verifyRate(verifier: TokenVerifier, token: string, ms: number): Promise<{ perSec: number; usPerOp: number }> {
  let n = 0;
  const started = process.hrtime.bigint();
  const until = started + BigInt(ms) * 1_000_000n;
  while (process.hrtime.bigint() < until) {
    for (let i = 0; i < 100; i++) await verifier.verify(token, BENCH_SERVER);
    n += 100;
  }
  const elapsedUs = Number(process.hrtime.bigint() - started) / 1000;
  return { perSec: Math.round((n / elapsedUs) * 1e6), usPerOp: round(elapsedUs / n, 2) };
}

async function verifyBench(rounds: number): Promise<{ cached: number[]; uncached: number[]; cachedUs: number[]; uncachedUs: number[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'bulkhead-bench-jwt-'));
  try {
    const keyRing = createKeyRing({ store: createFileKeyStore(dir, await loadOrCreateMasterKey(dir)), clock: systemClock, maxTokenTtlMs: 3_600_000, clockSkewMs: 30_000 });
    await keyRing.init();
    const issuer = 'http://bulkhead.bench';
    const { token } = await createTokenIssuer({ keyRing, clock: systemClock, issuer }).issue({ tenant: 't00000', principal: 'agent', audience: BENCH_SERVER, scope: toolNames(3), ttlMs: 900_000 });
    const withCache = createTokenVerifier({ keyRing, clock: systemClock, issuer, clockSkewMs: 30_000 });
    const withoutCache = createTokenVerifier({ keyRing, clock: systemClock, issuer, clockSkewMs: 30_000, cacheSize: 0 });
    await verifyRate(withCache, token, 300);
    await verifyRate(withoutCache, token, 300);
    const out = { cached: [] as number[], uncached: [] as number[], cachedUs: [] as number[], uncachedUs: [] as number[] };
    for (let i = 0; i < rounds; i++) {
      const c = await verifyRate(withCache, token, 1000);
      const u = await verifyRate(withoutCache, token, 1000);
      out.cached.push(c.perSec);
      out.cachedUs.push(c.usPerOp);
      out.uncached.push(u.perSec);
      out.uncachedUs.push(u.usPerOp);
      log(`  round ${i + 1}/${rounds} JWT verify: cached ${c.perSec}/s (${c.usPerOp} µs), uncached ${u.perSec}/s (${u.usPerOp} µs)`);
    }
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<ScenarioResult> {
  const settings = settingsFromEnv();
  const machine = describeMachine();
  const logDir = await mkdtemp(join(tmpdir(), 'bulkhead-bench-logs-'));
  log(`tokens: ${settings.rounds} rounds × ${settings.durationSec}s, ${settings.connections} connections`);
  const broker = await startBroker(AUTHORIZE_FIXTURE, settings, logDir, 'tokens');
  try {
    const client = broker.info.clients[0]!;
    const body = JSON.stringify({ grant_type: 'client_credentials', client_id: client.clientId, client_secret: client.secret, audience: BENCH_SERVER });
    const floor = await startFloor({ kind: 'express', responseBytes: await tokenAnswerBytes(broker, body) });
    try {
      const headers = { 'content-type': 'application/json' };
      const s = await interleave(
        [
          { label: 'floor: express 5', run: (durationSec) => measured(floor, { url: floor.info.url, path: floor.info.path, method: 'POST', headers, bodies: [body], connections: settings.connections, durationSec }) },
          { label: 'token (client_credentials)', run: (durationSec) => measured(broker, { url: broker.info.url, path: '/v1/token', method: 'POST', headers, bodies: [body], connections: settings.connections, durationSec }) },
        ],
        { ...settings, log },
      );
      const floorS = s['floor: express 5']!;
      const token = s['token (client_credentials)']!;
      const verify = await verifyBench(settings.rounds);
      const cachedUs = median(verify.cachedUs);
      const uncachedUs = median(verify.uncachedUs);
      const bad = token.non2xx + token.errors;
      return {
        scenario: 'tokens',
        title: 'Token issuance and JWT verification',
        machine,
        settings: { ...settings },
        rows: [
          { metric: 'token issuance, client_credentials over HTTP', value: token.rps, unit: 'req/s' },
          { metric: 'token issuance p50 / p99', value: `${token.p50Ms} / ${token.p99Ms}`, unit: 'ms' },
          { metric: 'token issuance rps / express floor rps', value: pairedRatio(token, floorS, (r) => r.rps) },
          { metric: 'broker CPU per token issued', value: token.serverCpuUs, unit: 'µs' },
          { metric: 'token errors (must be 0)', value: bad, target: '0', met: bad === 0 },
          { metric: 'JWT verify with the verified-token cache', value: median(verify.cached), unit: 'verifications/s' },
          { metric: 'JWT verify without the cache (EdDSA signature every time)', value: median(verify.uncached), unit: 'verifications/s' },
          { metric: 'JWT verify cost with / without cache', value: `${cachedUs} / ${uncachedUs}`, unit: 'µs' },
          { metric: 'speed-up from the cache', value: round(uncachedUs / cachedUs, 1), unit: '×' },
        ],
        runs: { floor: floorS.runs, token: token.runs, verify },
      };
    } finally {
      await floor.stop();
    }
  } finally {
    await broker.stop();
    await rm(logDir, { recursive: true, force: true });
  }
}

runIfMain(module, run);
