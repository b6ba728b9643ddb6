import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FixtureOptions } from './fixtures';
import { interleave } from './interleave';
import { describeMachine } from './machine';
import type { Row, ScenarioResult } from './results';
import { log, pairedRatio, runIfMain, settingsFromEnv } from './scenario';
import { authorizeStep, mb, probeAuthorize, startBroker, type BrokerTarget } from './steps';

/**
 * Scenario 5: does the broker's cost depend on how big the deployment is? The same authorize load
 * (tokens of 10 tenants, round robin) against a broker with 10 tenants and against one with 10,000
 * tenants and 100,000 live sessions, every tenant with 100 tools. Reported: the authorize p50 ratio
 * (large / small), the time to load (read, parse, validate, freeze) each policy file, and RSS.
 *
 * A third side runs the large deployment with V8's old space capped (--max-old-space-size, default
 * 256 MB, BENCH_SCALE_HEAP_MB): without a cap V8 lets the heap grow to several times the live data
 * before collecting, so RSS mostly measures that headroom, not what the broker keeps.
 *
 * BENCH_BASELINE_DIST=/path/to/other/dist starts the large deployment once more from that build
 * (started right after this build's, never under load) and reports its policy load, RSS and live heap
 * beside this build's: before/after measured in the same run.
 */
const TOOLS = 100;
const kb = (bytes: number) => Math.round(bytes / 1024).toLocaleString('en-US');
const ACTIVE = 10;

function fixture(tenants: number): FixtureOptions {
  // 10 tenants share the load, so each stays far below its per-minute quota for a whole run.
  return { tenants, toolsPerTenant: TOOLS, activeTenants: ACTIVE, credential: { source: 'local' }, quotas: { calls_per_minute: 200_000, concurrency: 1_000_000 } };
}

export async function run(): Promise<ScenarioResult> {
  const settings = settingsFromEnv();
  const machine = describeMachine();
  const logDir = await mkdtemp(join(tmpdir(), 'bulkhead-bench-logs-'));
  const large = { tenants: Number(process.env.BENCH_SCALE_TENANTS ?? 10_000), sessions: Number(process.env.BENCH_SCALE_SESSIONS ?? 100_000) };
  log(`scale: 10 vs ${large.tenants} tenants × ${TOOLS} tools, ${large.sessions} live sessions; ${settings.rounds} rounds × ${settings.durationSec}s`);
  const heapMb = Number(process.env.BENCH_SCALE_HEAP_MB ?? 256);
  let small: BrokerTarget | undefined;
  let big: BrokerTarget | undefined;
  let capped: BrokerTarget | undefined;
  let baseline: BrokerTarget | undefined;
  const baselineDist = process.env.BENCH_BASELINE_DIST;
  try {
    // --expose-gc only lets the scenario ask for a full collection at the very end, to tell live data
    // from heap the process has grown; nothing calls it while the load runs.
    small = await startBroker(fixture(10), settings, logDir, 'scale-small', { execArgv: ['--expose-gc'] });
    big = await startBroker(fixture(large.tenants), settings, logDir, 'scale-large', { sessions: large.sessions, execArgv: ['--expose-gc'] });
    if (baselineDist) baseline = await startBroker(fixture(large.tenants), settings, logDir, 'scale-large-baseline', { sessions: large.sessions, execArgv: ['--expose-gc'], benchDir: join(baselineDist, 'bench') });
    // The targets are without heap flags; the capped side is context, and may not even start (a heap
    // too small for the policy load is reported, not a failed scenario).
    let cappedFailure: string | undefined;
    try {
      capped = await startBroker(fixture(large.tenants), settings, logDir, 'scale-capped', { sessions: large.sessions, execArgv: ['--expose-gc', `--max-old-space-size=${heapMb}`] });
    } catch (err) {
      cappedFailure = err instanceof Error ? err.message : String(err);
      log(`  capped broker did not start: ${cappedFailure}`);
    }
    await probeAuthorize(small);
    await probeAuthorize(big);
    if (capped) await probeAuthorize(capped);
    const smallLabel = `10 tenants`;
    const bigLabel = `${large.tenants.toLocaleString('en-US')} tenants, ${large.sessions.toLocaleString('en-US')} sessions`;
    const cappedLabel = `the same, old space capped at ${heapMb} MB`;
    const s = await interleave([authorizeStep(smallLabel, small, settings), authorizeStep(bigLabel, big, settings), ...(capped ? [authorizeStep(cappedLabel, capped, settings)] : [])], { ...settings, log });
    const a = s[smallLabel]!;
    const b = s[bigLabel]!;
    const c = s[cappedLabel];
    const [rssSmall, rssBig, rssCapped] = [(await small.usage()).rssBytes, (await big.usage()).rssBytes, capped ? (await capped.usage()).rssBytes : Number.NaN];
    const [liveSmall, liveBig] = [await small.usage(true), await big.usage(true)];
    const p50Ratio = pairedRatio(b, a, (r) => r.p50Ms);
    const p50RatioCapped = c ? pairedRatio(c, a, (r) => r.p50Ms) : Number.NaN;
    const bad = [a, b, ...(c ? [c] : [])].reduce((n, s) => n + s.non2xx + s.errors + s.failedFollowUps, 0);
    const loadMs = Math.round(big.info.policyLoadMs);
    const cappedRows: Row[] = capped && c
      ? [
          { metric: `large, --max-old-space-size=${heapMb}: RSS once started`, value: mb(capped.info.rssAfterStartBytes), unit: 'MB' },
          { metric: `large, --max-old-space-size=${heapMb}: RSS after the runs`, value: mb(rssCapped), unit: 'MB' },
          { metric: `large, --max-old-space-size=${heapMb}: authorize p50 ratio to small`, value: p50RatioCapped },
          { metric: `large, --max-old-space-size=${heapMb}: authorize rps`, value: c.rps, unit: 'req/s' },
        ]
      : [{ metric: `large, --max-old-space-size=${heapMb}`, value: `did not start (${(cappedFailure ?? '').slice(0, 80)})` }];
    const liveBaseline = baseline && (await baseline.usage(true));
    const baselineRows: Row[] = baseline && liveBaseline
      ? [
          { metric: `baseline build (${baselineDist}): policy load, large`, value: Math.round(baseline.info.policyLoadMs), unit: 'ms' },
          { metric: 'baseline build: RSS once started, large', value: mb(baseline.info.rssAfterStartBytes), unit: 'MB' },
          { metric: 'baseline build: live JS heap after a full GC, large', value: mb(liveBaseline.heapUsedBytes), unit: 'MB' },
          { metric: 'this build / baseline build: policy load, large', value: big.info.policyLoadMs / baseline.info.policyLoadMs },
          { metric: 'this build / baseline build: RSS once started, large', value: big.info.rssAfterStartBytes / baseline.info.rssAfterStartBytes },
          { metric: 'this build / baseline build: live JS heap, large', value: liveBig.heapUsedBytes / liveBaseline.heapUsedBytes },
        ]
      : [];
    return {
      scenario: 'scale',
      title: `Authorize at 10 vs ${large.tenants} tenants (${TOOLS} tools each) and ${large.sessions} live sessions`,
      machine,
      settings: { ...settings, tools: TOOLS, activeTenants: ACTIVE, largeTenants: large.tenants, liveSessions: large.sessions, cappedOldSpaceMb: heapMb },
      rows: [
        { metric: 'authorize p50 / p99, 10 tenants', value: `${a.p50Ms} / ${a.p99Ms}`, unit: 'ms' },
        { metric: `authorize p50 / p99, ${bigLabel}`, value: `${b.p50Ms} / ${b.p99Ms}`, unit: 'ms' },
        { metric: 'authorize rps, small / large', value: `${a.rps} / ${b.rps}`, unit: 'req/s' },
        { metric: 'authorize p50 ratio, large / small', value: p50Ratio, target: '≤ 1.1', met: p50Ratio <= 1.1 },
        { metric: 'policy file size, small / large', value: `${kb(small.info.policyBytes)} / ${kb(big.info.policyBytes)}`, unit: 'kB' },
        { metric: 'policy load (read, parse, validate, freeze), small', value: Math.round(small.info.policyLoadMs), unit: 'ms' },
        { metric: 'policy load (read, parse, validate, freeze), large', value: loadMs, unit: 'ms', target: '≤ 1000', met: loadMs <= 1000 },
        { metric: 'RSS once started (policy loaded, sessions created), small / large', value: `${mb(small.info.rssAfterStartBytes)} / ${mb(big.info.rssAfterStartBytes)}`, unit: 'MB' },
        { metric: 'RSS after the runs, small', value: mb(rssSmall), unit: 'MB' },
        { metric: 'RSS once started, large (no heap flags)', value: mb(big.info.rssAfterStartBytes), unit: 'MB', target: '≤ 256', met: big.info.rssAfterStartBytes <= 256 * 2 ** 20 },
        { metric: 'RSS after the runs, large (no heap flags)', value: mb(rssBig), unit: 'MB', target: '≤ 256', met: rssBig <= 256 * 2 ** 20 },
        { metric: 'live JS heap after a full GC, small / large', value: `${mb(liveSmall.heapUsedBytes)} / ${mb(liveBig.heapUsedBytes)}`, unit: 'MB' },
        ...cappedRows,
        ...baselineRows,
        { metric: 'denies and errors (must be 0)', value: bad, target: '0', met: bad === 0 },
      ],
      runs: { small: a.runs, large: b.runs, capped: c?.runs ?? cappedFailure, startMs: { small: small.info.startMs, large: big.info.startMs }, rssAfterStart: { small: small.info.rssAfterStartBytes, large: big.info.rssAfterStartBytes } },
    };
  } finally {
    await small?.stop();
    await big?.stop();
    await capped?.stop();
    await baseline?.stop();
    await rm(logDir, { recursive: true, force: true });
  }
}

runIfMain(module, run);
