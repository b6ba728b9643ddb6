import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2 } from '@modelcontextprotocol/client';
import { createBrokerClient } from '../src/mcp/broker-client';
import { BENCH_SERVER, BENCH_TOOL, type FixtureOptions } from './fixtures';
import { interleave, type Step, type Summary } from './interleave';
import type { LoadResult } from './load';
import { describeMachine } from './machine';
import type { ScenarioResult } from './results';
import { budgetUs, CORES, medianCoresBusy, perRound } from './cpu-budget';
import { brokerExecArgv, log, pairedRatio, runIfMain, settingsFromEnv } from './scenario';
import { percentile, round } from './stats';
import { startBroker, type BrokerTarget } from './steps';
import { startTarget, type Target } from './target-process';
import type { McpServersInfo } from './targets/mcp-servers';

/**
 * What bulkhead/mcp adds to a tool call, measured the way it is deployed: the broker in its own process
 * (logging at its deployed level, durable audit on disk), the MCP servers in another, the SDK clients
 * here. The same tool handler runs behind the SDK's Streamable HTTP stack plain and wrapped, for both
 * entries (SDK 1.x on 2025-11-25, SDK 2.x on 2026-07-28). "Wrapped" adds bearer verification (cached),
 * /v1/authorize (token, revocation, quotas, call-time credential from the embedded store, durable
 * audit record) and /v1/complete, as a real MCP server does it.
 *
 *   npm run bench:mcp-wrapper        (BENCH_CALLS=1000 sequential calls per side; BENCH_* as in scenario.ts)
 *
 * Two measurements, each interleaved so drift hits every side alike:
 *   - one caller: calls in turn, side after side — the latency a single agent sees (target: the wrapper
 *     adds at most 2 ms at p50);
 *   - BENCH_CONNECTIONS callers (default 10), each calling in a loop — calls/s (target: wrapped keeps at
 *     least 0.6× the plain server's calls/s).
 */
const FIXTURE: FixtureOptions = {
  tenants: 1,
  toolsPerTenant: 1,
  activeTenants: 1,
  credential: { source: 'local' },
  quotas: { calls_per_minute: 100_000_000, concurrency: 1_000 },
};

type Side = 'plain' | 'wrapped' | 'plainV2' | 'wrappedV2';
const SIDES: Side[] = ['plain', 'wrapped', 'plainV2', 'wrappedV2'];
const LABELS: Record<Side, string> = {
  plain: 'SDK 1.x server, unprotected',
  wrapped: 'SDK 1.x server, bulkhead/mcp',
  plainV2: 'SDK 2.x server, unprotected',
  wrappedV2: 'SDK 2.x server, bulkhead/mcp/v2',
};

interface Caller {
  call(): Promise<void>;
  close(): Promise<void>;
}

async function connect(side: Side, url: string, token: string | undefined, args: Record<string, unknown>): Promise<Caller> {
  const requestInit = token ? { headers: { Authorization: `Bearer ${token}` } } : {};
  let client: Pick<Client, 'callTool' | 'close'>;
  if (side === 'plain' || side === 'wrapped') {
    const v1 = new Client({ name: 'bench', version: '1.0.0' });
    await v1.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit }));
    client = v1;
  } else {
    const v2 = new ClientV2({ name: 'bench', version: '1.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
    await v2.connect(new TransportV2(new URL(url), { requestInit }));
    client = v2 as unknown as Pick<Client, 'callTool' | 'close'>;
  }
  return {
    async call() {
      const result = (await client.callTool({ name: BENCH_TOOL, arguments: args })) as CallToolResult;
      if (result.isError) throw new Error(`${side}: the call failed: ${JSON.stringify(result.content).slice(0, 300)}`);
    },
    close: () => client.close(),
  };
}

function timed(run: () => Promise<void>): Promise<number> {
  const started = process.hrtime.bigint();
  return run().then(() => Number(process.hrtime.bigint() - started) / 1e6);
}

/** `callers` clients calling in a loop for `durationSec`; CPU per call of the processes that served them. */
function loadStep(side: Side, callers: Caller[], serving: Array<Target<unknown>>): Step {
  return {
    label: LABELS[side],
    async run(durationSec) {
      const cpuBefore = await Promise.all(serving.map((t) => t.usage()));
      const clientsBefore = process.cpuUsage();
      const samples: number[] = [];
      let errors = 0;
      const until = Date.now() + durationSec * 1000;
      await Promise.all(
        callers.map(async (caller) => {
          while (Date.now() < until) {
            try {
              samples.push(await timed(() => caller.call()));
            } catch {
              errors++;
            }
          }
        }),
      );
      const clients = process.cpuUsage(clientsBefore);
      const cpuAfter = await Promise.all(serving.map((t) => t.usage()));
      const perCall = cpuAfter.map((u, i) => round((u.cpuMicros - cpuBefore[i]!.cpuMicros) / Math.max(samples.length, 1), 1));
      const cpu = perCall.reduce((sum, us) => sum + us, 0);
      if (perCall.length > 1) log(`    ${LABELS[side]}: CPU per call, MCP server ${perCall[0]} µs + broker ${perCall[1]} µs`);
      const result: LoadResult = {
        rps: round(samples.length / durationSec, 0),
        p50Ms: round(percentile(samples, 50), 3),
        p99Ms: round(percentile(samples, 99), 3),
        ok: samples.length,
        non2xx: 0,
        errors,
        statusCodes: {},
        connections: callers.length,
        durationSec,
        serverCpuUs: round(cpu, 1),
        loadCpuUs: round((clients.user + clients.system) / Math.max(samples.length, 1), 1),
      };
      return result;
    },
  };
}

export async function run(): Promise<ScenarioResult> {
  const settings = settingsFromEnv();
  const machine = describeMachine();
  const calls = Math.floor(Number(process.env.BENCH_CALLS ?? 1000));
  const warmupCalls = Math.max(50, Math.floor(calls / 5));
  const dir = await mkdtemp(join(tmpdir(), 'bulkhead-bench-mcp-'));
  log(`mcp-wrapper: ${calls} calls per side at 1 caller, then ${settings.rounds} rounds × ${settings.durationSec}s at ${settings.connections} callers`);
  const broker: BrokerTarget = await startBroker(FIXTURE, settings, dir, 'broker');
  const { tenant, token } = broker.info.tokens[0]!;
  const servers = await startTarget<McpServersInfo>('mcp-servers', { brokerUrl: broker.info.url, serverId: BENCH_SERVER, serverKey: broker.info.serverKey }, { execArgv: brokerExecArgv(settings) });
  const args = { path: `${tenant}/accounts/42`, limit: 10 };
  const brokerClient = createBrokerClient({ brokerUrl: broker.info.url, serverKey: broker.info.serverKey });
  const opened: Caller[] = [];
  const open = async (side: Side) => {
    const caller = await connect(side, servers.info[side], side.startsWith('wrapped') ? token : undefined, args);
    opened.push(caller);
    return caller;
  };
  try {
    // One caller per side, calls in turn; plus the broker's two round trips alone, as the wrapper makes them.
    const single = Object.fromEntries(await Promise.all(SIDES.map(async (side) => [side, await open(side)] as const))) as Record<Side, Caller>;
    const brokerOnly = async () => {
      const allow = await brokerClient.authorize({ token, tool: BENCH_TOOL, arguments: args });
      if (allow.decision !== 'allow') throw new Error(`the broker denied the bench call: ${allow.reason}`);
      await brokerClient.complete({ call_id: allow.call_id, status: 'success' });
    };
    const order: Array<[Side | 'broker', () => Promise<void>]> = [...SIDES.map((side) => [side, () => single[side].call()] as [Side, () => Promise<void>]), ['broker', brokerOnly]];
    const samples = new Map<Side | 'broker', number[]>(order.map(([name]) => [name, []]));
    for (let i = 0; i < warmupCalls + calls; i++) {
      // Rotate the order each round so no side always runs first.
      for (let k = 0; k < order.length; k++) {
        const [name, call] = order[(i + k) % order.length]!;
        const ms = await timed(call);
        if (i >= warmupCalls) samples.get(name)!.push(ms);
      }
    }
    const p50 = (name: Side | 'broker') => round(percentile(samples.get(name)!, 50), 3);
    const p99 = (name: Side | 'broker') => round(percentile(samples.get(name)!, 99), 3);
    const addedV1 = round(p50('wrapped') - p50('plain'), 3);
    const addedV2 = round(p50('wrappedV2') - p50('plainV2'), 3);

    // BENCH_CONNECTIONS callers per side, each in a loop.
    const n = settings.connections;
    const steps: Step[] = [];
    for (const side of SIDES) {
      const callers = await Promise.all(Array.from({ length: n }, () => open(side)));
      steps.push(loadStep(side, callers, side.startsWith('wrapped') ? [servers as Target<unknown>, broker as Target<unknown>] : [servers as Target<unknown>]));
    }
    const loaded = await interleave(steps, { ...settings, log });
    const by = (side: Side): Summary => loaded[LABELS[side]]!;
    const rpsV1 = pairedRatio(by('wrapped'), by('plain'), (r) => r.rps);
    const rpsV2 = pairedRatio(by('wrappedV2'), by('plainV2'), (r) => r.rps);
    const errors = SIDES.reduce((sum, side) => sum + by(side).errors, 0);
    // What bulkhead/mcp and the broker may spend per call for the wrapped side to keep 0.6× the plain
    // side's calls/s when clients, MCP server and broker share these cores (cpu-budget.ts), against what they spend.
    const budget = (plain: Side, wrapped: Side) => perRound(by(plain), by(wrapped), (p, w) => budgetUs(p.rps, 0.6, (w.loadCpuUs ?? Number.NaN) + (p.serverCpuUs ?? Number.NaN)), 0);
    const spent = (plain: Side, wrapped: Side) => perRound(by(plain), by(wrapped), (p, w) => (w.serverCpuUs ?? Number.NaN) - (p.serverCpuUs ?? Number.NaN), 0);

    return {
      scenario: 'mcp-wrapper',
      title: 'bulkhead/mcp: what the wrapper adds to a tool call (broker, MCP servers and clients in three processes)',
      machine,
      settings: { ...settings, callsPerSide: calls, warmupCallsPerSide: warmupCalls, brokerLog: 'default level (info), to a file' },
      rows: [
        { metric: 'SDK 1.x tool call p50 / p99, unprotected (1 caller)', value: `${p50('plain')} / ${p99('plain')}`, unit: 'ms' },
        { metric: 'SDK 1.x tool call p50 / p99, bulkhead/mcp (1 caller)', value: `${p50('wrapped')} / ${p99('wrapped')}`, unit: 'ms' },
        { metric: 'added by bulkhead/mcp at p50 (1 caller)', value: addedV1, unit: 'ms', target: '≤ 2 ms', met: addedV1 <= 2 },
        { metric: 'SDK 2.x tool call p50 / p99, unprotected (1 caller)', value: `${p50('plainV2')} / ${p99('plainV2')}`, unit: 'ms' },
        { metric: 'SDK 2.x tool call p50 / p99, bulkhead/mcp/v2 (1 caller)', value: `${p50('wrappedV2')} / ${p99('wrappedV2')}`, unit: 'ms' },
        { metric: 'added by bulkhead/mcp/v2 at p50 (1 caller)', value: addedV2, unit: 'ms', target: '≤ 2 ms', met: addedV2 <= 2 },
        { metric: 'broker round trips alone (authorize + complete) p50 / p99', value: `${p50('broker')} / ${p99('broker')}`, unit: 'ms' },
        { metric: `SDK 1.x calls/s, unprotected / bulkhead/mcp (${n} callers)`, value: `${by('plain').rps} / ${by('wrapped').rps}`, unit: 'calls/s' },
        { metric: `bulkhead/mcp calls/s / unprotected calls/s (${n} callers)`, value: rpsV1, target: '≥ 0.6', met: rpsV1 >= 0.6 },
        { metric: `SDK 2.x calls/s, unprotected / bulkhead/mcp/v2 (${n} callers)`, value: `${by('plainV2').rps} / ${by('wrappedV2').rps}`, unit: 'calls/s' },
        { metric: `bulkhead/mcp/v2 calls/s / unprotected calls/s (${n} callers)`, value: rpsV2, target: '≥ 0.6', met: rpsV2 >= 0.6 },
        {
          metric: `CPU per call, MCP server (+ broker when wrapped): v1 plain / wrapped, v2 plain / wrapped (${n} callers)`,
          value: `${by('plain').serverCpuUs} / ${by('wrapped').serverCpuUs}, ${by('plainV2').serverCpuUs} / ${by('wrappedV2').serverCpuUs}`,
          unit: 'µs',
        },
        { metric: `CPU per call, the SDK clients (${n} callers): v1 plain / wrapped, v2 plain / wrapped`, value: `${by('plain').loadCpuUs} / ${by('wrapped').loadCpuUs}, ${by('plainV2').loadCpuUs} / ${by('wrappedV2').loadCpuUs}`, unit: 'µs' },
        { metric: `cores kept busy (clients + servers, of ${CORES}): v1 plain / wrapped, v2 plain / wrapped`, value: SIDES.map((side) => medianCoresBusy(by(side))).join(' / ') },
        { metric: 'bulkhead/mcp + broker CPU per call: what ≥ 0.6× leaves on these cores / measured, v1; v2', value: `${budget('plain', 'wrapped')} / ${spent('plain', 'wrapped')}; ${budget('plainV2', 'wrappedV2')} / ${spent('plainV2', 'wrappedV2')}`, unit: 'µs' },
        { metric: 'failed calls (must be 0)', value: errors, target: '0', met: errors === 0 },
      ],
      runs: { single: Object.fromEntries([...samples].map(([name, list]) => [name, { p50: p50(name), p99: p99(name), n: list.length }])), loaded },
    };
  } finally {
    for (const caller of opened) await caller.close().catch(() => undefined);
    brokerClient.close();
    await servers.stop();
    await broker.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

runIfMain(module, run);
