import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { budgetUs, CORES, medianCoresBusy, perRound } from './cpu-budget';
import type { FixtureOptions } from './fixtures';
import { interleave, type Summary } from './interleave';
import { describeMachine } from './machine';
import type { Row, ScenarioResult } from './results';
import { log, pairedRatio, runIfMain, settingsFromEnv } from './scenario';
import { round } from './stats';
import { authorizeStep, floorStep, mb, probeAuthorize, startBroker, startFloor, tenantStatus, type BrokerTarget } from './steps';

/**
 * Scenarios 1 and 2: the HTTP floor (bare express 5 and bare node:http JSON endpoints, same request and
 * answer sizes) against POST /v1/authorize with a cached token, a local credential, durable audit
 * (group commit, one O_DSYNC write per batch) and quotas on, interleaved round by round.
 *
 * Quotas are on but set high enough never to deny (the deny count is reported and must be 0). Every
 * allowed call is completed (POST /v1/complete) before the connection's next call, as an MCP server
 * does, so slots and open calls do not pile up; the slots still held at the end (calls a run cut off
 * between their authorize and their complete, at most one per connection per run) are reported.
 * A call is two broker requests: the target compares the broker's requests/s (authorize and complete)
 * with the floor's, and calls/s and CPU per call are shown next to it.
 *
 * BENCH_BASELINE_DIST=/path/to/other/dist adds a side: the same broker target run from another build
 * (e.g. the tree before an optimisation), so before and after are measured in the same rounds. Several
 * builds, comma-separated, add one side each (to tell which of several changes moved a number).
 */
export const AUTHORIZE_FIXTURE: FixtureOptions = {
  tenants: 3,
  toolsPerTenant: 3,
  activeTenants: 1,
  credential: { source: 'local' },
  quotas: { calls_per_minute: 1_000_000, concurrency: 1_000_000 },
};

export async function run(): Promise<ScenarioResult> {
  const settings = settingsFromEnv();
  const machine = describeMachine();
  const logDir = await mkdtemp(join(tmpdir(), 'bulkhead-bench-logs-'));
  log(`authorize vs floor: ${settings.rounds} rounds × ${settings.durationSec}s, ${settings.connections} connections`);
  const broker = await startBroker(AUTHORIZE_FIXTURE, settings, logDir, 'authorize');
  const baselineDists = (process.env.BENCH_BASELINE_DIST ?? '').split(',').filter(Boolean);
  const baselines: Array<{ dist: string; label: string; broker: BrokerTarget }> = [];
  for (const [i, dist] of baselineDists.entries()) {
    const label = baselineDists.length === 1 ? 'authorize (baseline build)' : `authorize (baseline build ${i + 1})`;
    baselines.push({ dist, label, broker: await startBroker(AUTHORIZE_FIXTURE, settings, logDir, `baseline-${i + 1}`, { benchDir: join(dist, 'bench') }) });
  }
  try {
    const probe = await probeAuthorize(broker);
    for (const b of baselines) await probeAuthorize(b.broker);
    const express = await startFloor({ kind: 'express', responseBytes: probe.responseBytes });
    const http = await startFloor({ kind: 'http', responseBytes: probe.responseBytes });
    try {
      const s = await interleave(
        [
          floorStep('floor: express 5', express, broker, settings),
          floorStep('floor: node:http', http, broker, settings),
          authorizeStep('authorize', broker, settings),
          ...baselines.map((b) => authorizeStep(b.label, b.broker, settings)),
        ],
        { ...settings, log },
      );
      const floorExpress = s['floor: express 5']!;
      const floorHttp = s['floor: node:http']!;
      const authorize = s['authorize']!;
      const status = (await tenantStatus(broker, broker.info.tokens[0]!.tenant)) as { quota?: { in_flight?: number } };
      const rss = await broker.rssBytes();
      // Requests the broker answered per second: every call is an authorize and a complete.
      const brokerRps = (r: Summary['runs'][number]) => (r.ok > 0 ? (r.rps * (r.ok + (r.followUps?.ok ?? 0))) / r.ok : 0);
      const rpsVsExpress = pairedRatio(authorize, floorExpress, brokerRps, 2, (r) => r.rps);
      const callsVsExpress = pairedRatio(authorize, floorExpress, (r) => r.rps);
      // Per broker request: a call is two, so half the load generator's CPU per call is the side's share. cpu-budget.ts says why this is a budget.
      const brokerBudget = perRound(floorExpress, authorize, (f, a) => budgetUs(f.rps, 0.8, (a.loadCpuUs ?? Number.NaN) / 2));
      const denies = authorize.non2xx + authorize.errors + authorize.failedFollowUps;
      const held = status.quota?.in_flight ?? Number.NaN;
      const cutOff = settings.connections * (authorize.runs.length + 1);
      return {
        scenario: 'authorize',
        title: 'Authorize (cached token, local credential, durable audit, quotas on) vs the HTTP floor',
        machine,
        settings: { ...settings, requestBytes: probe.requestBytes, responseBytes: probe.responseBytes, fixture: AUTHORIZE_FIXTURE },
        rows: [
          { metric: 'floor: express 5 JSON endpoint', value: floorExpress.rps, unit: 'req/s' },
          { metric: 'floor: express 5 p50 / p99', value: `${floorExpress.p50Ms} / ${floorExpress.p99Ms}`, unit: 'ms' },
          { metric: 'floor: node:http JSON endpoint', value: floorHttp.rps, unit: 'req/s' },
          { metric: 'floor: node:http p50 / p99', value: `${floorHttp.p50Ms} / ${floorHttp.p99Ms}`, unit: 'ms' },
          { metric: 'authorized calls (authorize + complete)', value: authorize.rps, unit: 'calls/s' },
          { metric: 'authorize p50 / p99', value: `${authorize.p50Ms} / ${authorize.p99Ms}`, unit: 'ms' },
          { metric: 'broker requests/s (authorize + complete) / express floor requests/s', value: rpsVsExpress, target: '≥ 0.8', met: rpsVsExpress >= 0.8 },
          { metric: 'authorized calls/s / express floor requests/s', value: callsVsExpress },
          { metric: 'authorized calls/s / node:http floor requests/s', value: pairedRatio(authorize, floorHttp, (r) => r.rps) },
          { metric: 'authorize p50 / express floor p50', value: pairedRatio(authorize, floorExpress, (r) => r.p50Ms) },
          { metric: 'server CPU: per express floor request / per node:http floor request / per call (authorize + complete)', value: `${floorExpress.serverCpuUs} / ${floorHttp.serverCpuUs} / ${authorize.serverCpuUs}`, unit: 'µs' },
          { metric: '2 × express floor CPU per request / CPU per call', value: pairedRatio(floorExpress, authorize, (r) => 2 * (r.serverCpuUs ?? Number.NaN), 2, (r) => r.serverCpuUs ?? Number.NaN) },
          { metric: 'load generator CPU: per express floor request / per node:http floor request / per call', value: `${floorExpress.loadCpuUs} / ${floorHttp.loadCpuUs} / ${authorize.loadCpuUs}`, unit: 'µs' },
          { metric: `cores kept busy (server + load generator, of ${CORES}): express floor / node:http floor / authorize`, value: `${medianCoresBusy(floorExpress)} / ${medianCoresBusy(floorHttp)} / ${medianCoresBusy(authorize)}` },
          { metric: 'broker CPU per request: what ≥ 0.8× the express floor leaves on these cores / measured', value: `${brokerBudget} / ${round(authorize.serverCpuUs / 2, 1)}`, unit: 'µs' },
          { metric: 'authorize denies, errors and failed completes (must be 0)', value: denies, target: '0', met: denies === 0 },
          // A run stops mid-call: at most one call per connection per run is answered but never completed.
          { metric: 'concurrency slots still held after the runs (calls cut off when a run stopped)', value: Number.isNaN(held) ? 'n/a' : held, target: `≤ ${cutOff}`, met: held <= cutOff },
          { metric: 'broker RSS after the runs', value: mb(rss), unit: 'MB' },
          ...baselines.flatMap((b) => baselineRows(b.label, s[b.label]!, authorize, floorExpress, b.dist)),
        ],
        runs: { floorExpress: floorExpress.runs, floorHttp: floorHttp.runs, authorize: authorize.runs, ...Object.fromEntries(baselines.map((b) => [b.label, { dist: b.dist, runs: s[b.label]!.runs }])) },
      };
    } finally {
      await express.stop();
      await http.stop();
    }
  } finally {
    await broker.stop();
    for (const b of baselines) await b.broker.stop();
    await rm(logDir, { recursive: true, force: true });
  }
}

function baselineRows(label: string, baseline: Summary, authorize: Summary, floor: Summary, dist: string): Row[] {
  const name = label.replace(/^authorize \((.*)\)$/, '$1');
  return [
    { metric: `${name} (${dist}): authorized calls`, value: baseline.rps, unit: 'calls/s' },
    { metric: `${name}: authorize p50 / p99`, value: `${baseline.p50Ms} / ${baseline.p99Ms}`, unit: 'ms' },
    { metric: `${name}: authorized calls/s / express floor requests/s`, value: pairedRatio(baseline, floor, (r) => r.rps) },
    { metric: `${name}: server CPU per call (authorize + complete)`, value: baseline.serverCpuUs, unit: 'µs' },
    { metric: `this build / ${name}: calls/s`, value: pairedRatio(authorize, baseline, (r) => r.rps) },
    { metric: `this build / ${name}: CPU per call`, value: pairedRatio(authorize, baseline, (r) => r.serverCpuUs ?? Number.NaN) },
    { metric: `this build / ${name}: authorize p50`, value: pairedRatio(authorize, baseline, (r) => r.p50Ms) },
  ];
}

runIfMain(module, run);
