import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildFixture, type FixtureOptions } from './fixtures';
import { describeMachine } from './machine';
import type { ScenarioResult } from './results';
import { log, runIfMain, settingsFromEnv } from './scenario';
import { median, round } from './stats';

/**
 * Scenario 6: how long `bulkhead serve` takes from exec to GET /readyz answering 200, measured from
 * outside as an orchestrator would (poll every 5 ms). The floor is a bare node:http server started the
 * same way, which is the part of the wait that is Node itself. Cases: the demo policy on a fresh data
 * dir (master key, signing keys and demo secrets are created), the same data dir again (a restart), and
 * policy files of 10 and of 10,000 tenants with 100 tools each.
 */
const MAIN = join(__dirname, '..', 'src', 'cli', 'main.js');
const FLOOR = `require('node:http').createServer((q, s) => s.end('ok')).listen(Number(process.argv[1]), '127.0.0.1')`;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Spawns `args`, polls `path` until 200, returns the milliseconds it took, and stops the process. */
async function timeToReady(args: string[], port: number, path: string, timeoutMs: number): Promise<number> {
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, BULKHEAD_LOG_LEVEL: 'warn' } });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let ms = Number.NaN;
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode} before it was ready: ${stderr.trim().split('\n').pop()}`);
      if (Number(process.hrtime.bigint() - started) / 1e6 > timeoutMs) throw new Error(`not ready after ${timeoutMs} ms`);
      const ok = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(1000) }).then(
        async (r) => {
          await r.arrayBuffer();
          return r.status === 200;
        },
        () => false,
      );
      if (ok) {
        ms = Number(process.hrtime.bigint() - started) / 1e6;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  } finally {
    child.kill('SIGTERM');
    const stop = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(stop);
  }
  return ms;
}

interface Case {
  label: string;
  args(port: number): string[];
  path: string;
  /** Runs before each start (a fresh data dir for the cold case). */
  before?: () => Promise<void>;
  timeoutMs: number;
}

export async function run(): Promise<ScenarioResult> {
  const settings = settingsFromEnv();
  const machine = describeMachine();
  const repeats = Math.max(3, settings.rounds);
  const dir = await mkdtemp(join(tmpdir(), 'bulkhead-bench-cold-'));
  try {
    const policyOf = async (name: string, options: FixtureOptions) => {
      const file = join(dir, `${name}.json`);
      await writeFile(file, JSON.stringify(buildFixture(options).raw), { mode: 0o600 });
      return file;
    };
    const base = { toolsPerTenant: 100, activeTenants: 0, credential: { source: 'local' as const }, quotas: { calls_per_minute: 600, concurrency: 8 } };
    const small = await policyOf('small', { ...base, tenants: 10 });
    const large = await policyOf('large', { ...base, tenants: Number(process.env.BENCH_SCALE_TENANTS ?? 10_000) });
    const fresh = join(dir, 'fresh');
    const warm = join(dir, 'warm');
    const serve = (dataDir: string, port: number, config?: string) => [MAIN, 'serve', '--data-dir', dataDir, '--host', '127.0.0.1', '--port', String(port), ...(config ? ['--config', config] : [])];
    const cases: Case[] = [
      { label: 'floor: bare node:http server', args: (port) => ['-e', FLOOR, String(port)], path: '/', timeoutMs: 30_000 },
      { label: 'demo policy, fresh data dir', args: (port) => serve(fresh, port), path: '/readyz', before: () => rm(fresh, { recursive: true, force: true }), timeoutMs: 60_000 },
      { label: 'demo policy, existing data dir (restart)', args: (port) => serve(warm, port), path: '/readyz', timeoutMs: 60_000 },
      { label: '10 tenants × 100 tools policy file', args: (port) => serve(warm, port, small), path: '/readyz', timeoutMs: 60_000 },
      { label: `${Number(process.env.BENCH_SCALE_TENANTS ?? 10_000).toLocaleString('en-US')} tenants × 100 tools policy file`, args: (port) => serve(warm, port, large), path: '/readyz', timeoutMs: 180_000 },
    ];
    log(`cold start: ${repeats} starts per case, interleaved`);
    // One start of the warm data dir first, so "restart" really is one.
    const warmPort = await freePort();
    await timeToReady(serve(warm, warmPort), warmPort, '/readyz', 60_000);
    const times = new Map<string, number[]>(cases.map((c) => [c.label, []]));
    for (let i = 1; i <= repeats; i++) {
      for (const c of cases) {
        await c.before?.();
        const port = await freePort();
        const ms = await timeToReady(c.args(port), port, c.path, c.timeoutMs);
        times.get(c.label)!.push(round(ms, 1));
        log(`  round ${i}/${repeats} ${c.label.padEnd(44)} ${ms.toFixed(0).padStart(6)} ms`);
      }
    }
    const floor = median(times.get(cases[0]!.label)!);
    return {
      scenario: 'cold-start',
      title: '`bulkhead serve` from exec to /readyz = 200',
      machine,
      settings: { repeats, pollMs: 5 },
      rows: cases.map((c) => {
        const m = median(times.get(c.label)!);
        return { metric: c === cases[0] ? `${c.label} (to first 200)` : `${c.label} (${round(m / floor, 1)}× the floor)`, value: Math.round(m), unit: 'ms' };
      }),
      runs: Object.fromEntries(times),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

runIfMain(module, run);
