import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startCluster, TOOL, type Cluster, type Replica } from './cluster';
import { describeMachine } from './machine';
import { RESULTS_DIR, type ScenarioResult } from './results';
import { log, runIfMain } from './scenario';
import { percentile, ratio, round } from './stats';

/**
 * Kill-switch propagation across replicas: three `bulkhead serve` processes share Redis and PostgreSQL.
 * For each of BENCH_REVOKES revocations (default 200), a fresh session is allowed on every replica,
 * then one replica (each in turn) revokes it, and from the moment its /v1/revoke answer arrives, each
 * of the other two replicas is called until it denies. Reported:
 *
 * - propagation: time from the revoke answer to the first denied answer on another replica, p50/p99;
 * - allows after the revoke answered (the invariant: must be 0), and calls needed to see the deny;
 * - side by side, the same first-call time on the revoking replica itself, which applied the change
 *   locally before answering: the ratio shows what propagation adds to an ordinary denied call;
 * - how long /v1/revoke takes (commit in PostgreSQL, publish, acknowledgements from every replica).
 *
 * Needs the upstreams: `eval "$(bash scripts/upstreams.sh env)"` (REDIS_URL, DATABASE_URL).
 * Run: npm run build && node dist/bench/kill-switch.js
 */
const SESSION_ARGS = { path: 'acme/accounts/1' };

interface Sample {
  revoker: number;
  revokeMs: number;
  /** Per other replica: ms from the revoke answer to its first deny, and calls it took. */
  others: Array<{ replica: number; firstDenyMs: number; calls: number; allowsAfter: number; reason: string }>;
  local: { firstDenyMs: number; reason: string };
}

export async function run(): Promise<ScenarioResult> {
  const revokes = Math.max(1, Math.floor(Number(process.env.BENCH_REVOKES ?? 200)));
  const redisUrl = process.env.REDIS_URL;
  const adminDatabaseUrl = process.env.DATABASE_URL;
  if (!redisUrl || !adminDatabaseUrl) throw new Error('set REDIS_URL and DATABASE_URL: eval "$(bash scripts/upstreams.sh env)"');
  const machine = describeMachine();

  log(`kill-switch: starting 3 replicas, ${revokes} revocations`);
  const cluster = await startCluster({ replicas: 3, redisUrl, adminDatabaseUrl, label: 'bench_killswitch', env: { BULKHEAD_LOG_LEVEL: 'warn' } });
  const samples: Sample[] = [];
  try {
    const replicas = cluster.replicas;
    for (let i = 0; i < revokes; i++) {
      samples.push(await once(cluster, replicas, i % replicas.length));
      if ((i + 1) % 50 === 0) log(`  ${i + 1}/${revokes}`);
    }
  } finally {
    await cluster.close();
  }

  const propagation = samples.flatMap((s) => s.others.map((o) => o.firstDenyMs));
  const local = samples.map((s) => s.local.firstDenyMs);
  const revokeMs = samples.map((s) => s.revokeMs);
  const allowsAfter = samples.reduce((n, s) => n + s.others.reduce((m, o) => m + o.allowsAfter, 0), 0);
  const wrongReasons = samples.reduce((n, s) => n + s.others.filter((o) => o.reason !== 'session_revoked').length + (s.local.reason === 'session_revoked' ? 0 : 1), 0);
  const maxCalls = Math.max(...samples.flatMap((s) => s.others.map((o) => o.calls)));
  const p = (values: number[], q: number) => round(percentile(values, q), 2);

  const result: ScenarioResult = {
    scenario: 'kill-switch',
    title: `Kill-switch propagation across 3 replicas (${revokes} revocations, ${propagation.length} cross-replica samples)`,
    machine,
    settings: { replicas: 3, revocations: revokes, heartbeatMs: 500, staleAfterMs: 2000, ackTimeoutMs: 2500 },
    rows: [
      { metric: 'propagation: revoke answered → first deny on another replica, p50', value: p(propagation, 50), unit: 'ms' },
      { metric: 'propagation: revoke answered → first deny on another replica, p99', value: p(propagation, 99), unit: 'ms' },
      { metric: 'propagation max', value: round(Math.max(...propagation), 2), unit: 'ms' },
      { metric: 'allows on any replica after the revoke answered (must be 0)', value: allowsAfter, target: '0', met: allowsAfter === 0 },
      { metric: 'denies with a reason other than session_revoked (must be 0)', value: wrongReasons, target: '0', met: wrongReasons === 0 },
      { metric: 'calls needed to see the deny on another replica, max', value: maxCalls },
      { metric: 'same first denied call on the revoking replica itself, p50 / p99', value: `${p(local, 50)} / ${p(local, 99)}`, unit: 'ms' },
      { metric: 'propagation p50 / local first-deny p50', value: ratio(percentile(propagation, 50), percentile(local, 50)) },
      { metric: '/v1/revoke latency (commit, publish, every replica acknowledged), p50 / p99', value: `${p(revokeMs, 50)} / ${p(revokeMs, 99)}`, unit: 'ms' },
    ],
    runs: samples,
    notes: [
      'propagation is measured from the revoke answer arriving to the first denied answer arriving; the revoke answers only after every subscribed replica acknowledged the change, so the figure is one denied authorize round trip.',
    ],
  };
  writeFileSync(join(RESULTS_DIR, 'kill-switch.md'), markdown(result));
  return result;
}

async function once(cluster: Cluster, replicas: Replica[], revokerIndex: number): Promise<Sample> {
  const revoker = replicas[revokerIndex]!;
  const others = replicas.filter((_, i) => i !== revokerIndex);
  const token = await cluster.token(replicas[(revokerIndex + 1) % replicas.length]!, 'acme-agent');
  const session = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).sid as string;
  const authorize = (replica: Replica) => cluster.authorize(replica, { token, tool: TOOL, arguments: SESSION_ARGS });
  // Alive everywhere first, so a deny below can only be the revocation.
  for (const replica of replicas) {
    const answer = await authorize(replica);
    if (answer.status !== 200) throw new Error(`session not allowed on replica ${replica.index} before the revoke: ${answer.status} ${JSON.stringify(answer.body)}`);
  }

  const sent = performance.now();
  const revoked = await cluster.operator(revoker, 'POST', '/v1/revoke', { session });
  const answered = performance.now();
  if (revoked.status !== 200) throw new Error(`revoke failed: ${revoked.status} ${JSON.stringify(revoked.body)}`);

  const firstDeny = async (replica: Replica) => {
    let calls = 0;
    let allowsAfter = 0;
    for (;;) {
      const answer = await authorize(replica);
      calls++;
      if (answer.status === 200) {
        allowsAfter++;
        if (calls > 1000) throw new Error(`replica ${replica.index} still allows 1000 calls after the revoke`);
        continue;
      }
      return { replica: replica.index, firstDenyMs: performance.now() - answered, calls, allowsAfter, reason: String(answer.body.reason) };
    }
  };
  const remote = await Promise.all(others.map(firstDeny));
  // The baseline: the same first call on the replica that revoked (it applied the change itself).
  const localStart = performance.now();
  const local = await authorize(revoker);
  return {
    revoker: revoker.index,
    revokeMs: answered - sent,
    others: remote,
    local: { firstDenyMs: performance.now() - localStart, reason: String(local.body.reason) },
  };
}

function markdown(result: ScenarioResult): string {
  const m = result.machine;
  return [
    `# ${result.title}`,
    '',
    `Measured ${m.date} on ${m.cpus} × ${m.cpuModel}, Node ${m.node}, ${m.platform}, load average ${m.loadAverage} at start.`,
    `Settings: ${Object.entries(result.settings)
      .map(([k, v]) => `${k}=${String(v)}`)
      .join(', ')}.`,
    '',
    '| Metric | Value | Target | Met |',
    '|---|---|---|---|',
    ...result.rows.map((r) => `| ${r.metric} | ${r.value}${r.unit ? ` ${r.unit}` : ''} | ${r.target ?? ''} | ${r.met === undefined ? '' : r.met ? 'yes' : '**no**'} |`),
    '',
    ...(result.notes ?? []).map((n) => `- ${n}`),
    '',
    'Reproduce: `eval "$(bash scripts/upstreams.sh env)" && npm run build && node dist/bench/kill-switch.js` (BENCH_REVOKES=N for more).',
    '',
  ].join('\n');
}

runIfMain(module, run);
