import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AUTHORIZE_FIXTURE } from './authorize';
import { interleave, type Step, type Summary } from './interleave';
import { runLoad } from './load';
import { describeMachine } from './machine';
import { baoFromEnv, setUpOpenBao } from './openbao-setup';
import type { ScenarioResult } from './results';
import { log, pairedRatio, runIfMain, settingsFromEnv, type Settings } from './scenario';
import { authorizeStep, probeAuthorize, startBroker } from './steps';

/**
 * Scenario 3: Bulkhead next to the real OpenBao (scripts/upstreams.sh). Three sides, interleaved:
 *   - a direct authenticated KV v2 read from OpenBao (a tenant's AppRole token, the same policy the
 *     broker's identity for that tenant has);
 *   - authorize with a local credential (scenario 2's setup);
 *   - authorize + OpenBao KV resolve: the same call with the credential in OpenBao, so every allow
 *     includes one KV read as the tenant.
 * Measured at the usual connection count (throughput) and at 1 connection (latency of one call on an
 * otherwise idle path), because a p50 under saturation mostly measures queueing.
 *
 * BENCH_BASELINE_DIST=/path/to/other/dist adds a side: authorize + OpenBao KV resolve from another
 * build, in the same rounds (before/after free of machine drift).
 */
export async function run(): Promise<ScenarioResult> {
  const settings = settingsFromEnv();
  const machine = describeMachine();
  const bao = baoFromEnv();
  if (!bao) throw new Error('VAULT_ADDR and VAULT_TOKEN are not set: start OpenBao with `eval "$(bash scripts/upstreams.sh up bao)"`');
  const dir = await mkdtemp(join(tmpdir(), 'bulkhead-bench-bao-'));
  log(`openbao: ${settings.rounds} rounds × ${settings.durationSec}s at ${settings.connections} and at 1 connection(s)`);
  const setup = await setUpOpenBao({ ...bao, tenants: ['t00000'], dir });
  const local = await startBroker(AUTHORIZE_FIXTURE, settings, dir, 'broker-local');
  const vaultFixture = { ...AUTHORIZE_FIXTURE, credential: { source: 'vault' as const, address: setup.address, tenants: setup.tenants } };
  const vault = await startBroker(vaultFixture, settings, dir, 'broker-vault');
  const baselineDist = process.env.BENCH_BASELINE_DIST;
  const baseline = baselineDist ? await startBroker(vaultFixture, settings, dir, 'broker-vault-baseline', { benchDir: join(baselineDist, 'bench') }) : undefined;
  try {
    await probeAuthorize(local);
    await probeAuthorize(vault);
    if (baseline) await probeAuthorize(baseline);
    const direct = await fetch(setup.address + setup.directPath, { headers: { 'X-Vault-Token': setup.directToken } });
    if (direct.status !== 200) throw new Error(`direct OpenBao read answered ${direct.status}`);
    await direct.arrayBuffer();

    const sides = (s: Settings): Step[] => [
      {
        label: 'OpenBao KV v2 read (direct)',
        run: (durationSec) => runLoad({ url: setup.address, path: setup.directPath, headers: { 'X-Vault-Token': setup.directToken }, connections: s.connections, durationSec }),
      },
      authorizeStep('authorize (local credential)', local, s),
      authorizeStep('authorize + OpenBao KV resolve', vault, s),
      ...(baseline ? [authorizeStep(BASELINE, baseline, s)] : []),
    ];
    const loaded = await interleave(sides(settings), { ...settings, log });
    log('  … and at 1 connection');
    const single = await interleave(sides({ ...settings, connections: 1 }), { ...settings, warmupSec: 0, log });

    const read = loaded['OpenBao KV v2 read (direct)']!;
    const authz = loaded['authorize (local credential)']!;
    const resolve = loaded['authorize + OpenBao KV resolve']!;
    const read1 = single['OpenBao KV v2 read (direct)']!;
    const resolve1 = single['authorize + OpenBao KV resolve']!;
    const rpsRatio = pairedRatio(authz, read, (r) => r.rps);
    const p50Ratio = pairedRatio(resolve, read, (r) => r.p50Ms);
    const p50Ratio1 = pairedRatio(resolve1, read1, (r) => r.p50Ms);
    // The broker's own round trip with nothing to read, against the read: the resolve is one after the other.
    const local1 = single['authorize (local credential)']!;
    const bad = [authz, resolve, resolve1].reduce((n, s) => n + s.non2xx + s.errors + s.failedFollowUps, 0);
    const c = settings.connections;
    return {
      scenario: 'openbao',
      title: 'Bulkhead next to a direct OpenBao KV v2 read',
      machine,
      settings: { ...settings, openbao: setup.address },
      rows: [
        { metric: `OpenBao direct KV v2 read (${c} conn)`, value: read.rps, unit: 'req/s' },
        { metric: `OpenBao direct read p50 / p99 (${c} conn)`, value: `${read.p50Ms} / ${read.p99Ms}`, unit: 'ms' },
        { metric: `authorize, local credential (${c} conn)`, value: authz.rps, unit: 'req/s' },
        { metric: `authorize + OpenBao resolve (${c} conn)`, value: resolve.rps, unit: 'req/s' },
        { metric: `authorize + OpenBao resolve p50 / p99 (${c} conn)`, value: `${resolve.p50Ms} / ${resolve.p99Ms}`, unit: 'ms' },
        { metric: 'authorized calls/s (local credential) / OpenBao read rps', value: rpsRatio, target: '≥ 2', met: rpsRatio >= 2 },
        { metric: `(authorize + resolve) p50 / direct read p50 (${c} conn)`, value: p50Ratio, target: '≤ 1.3', met: p50Ratio <= 1.3 },
        { metric: 'direct read p50 / authorize + resolve p50 (1 conn)', value: `${read1.p50Ms} / ${resolve1.p50Ms}`, unit: 'ms' },
        { metric: '(authorize + resolve) p50 / direct read p50 (1 conn)', value: p50Ratio1, target: '≤ 1.3', met: p50Ratio1 <= 1.3 },
        { metric: 'authorize with a local credential (no upstream read) p50 / direct read p50 (1 conn)', value: `${local1.p50Ms} / ${read1.p50Ms} ms = ${pairedRatio(local1, read1, (r) => r.p50Ms)}` },
        { metric: 'authorize denies, errors and failed completes (must be 0)', value: bad, target: '0', met: bad === 0 },
        ...(baseline ? baselineRows(loaded, single, c, baselineDist!) : []),
      ],
      runs: { loaded, single },
    };
  } finally {
    await local.stop();
    await vault.stop();
    // Stopped too, or its IPC channel keeps this process alive after the results are written.
    await baseline?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

const BASELINE = 'authorize + OpenBao KV resolve (baseline build)';

runIfMain(module, run);

/** The baseline build's side next to this build's, as paired ratios (this build / baseline). */
function baselineRows(loaded: Record<string, Summary>, single: Record<string, Summary>, c: number, dist: string): ScenarioResult['rows'] {
  const now = (runs: Record<string, Summary>) => runs['authorize + OpenBao KV resolve']!;
  const before = (runs: Record<string, Summary>) => runs[BASELINE]!;
  return [
    { metric: `baseline build (${dist}): authorize + resolve p50 (${c} conn / 1 conn)`, value: `${before(loaded).p50Ms} / ${before(single).p50Ms}`, unit: 'ms' },
    { metric: `authorize + resolve p50, this build / baseline (${c} conn)`, value: pairedRatio(now(loaded), before(loaded), (r) => r.p50Ms) },
    { metric: 'authorize + resolve p50, this build / baseline (1 conn)', value: pairedRatio(now(single), before(single), (r) => r.p50Ms) },
    { metric: `authorize + resolve calls/s, this build / baseline (${c} conn)`, value: pairedRatio(now(loaded), before(loaded), (r) => r.rps) },
  ];
}
