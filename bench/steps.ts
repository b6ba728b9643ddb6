import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { authorizeBody, buildFixture, type FixtureOptions } from './fixtures';
import type { Step } from './interleave';
import { runLoad, type LoadOptions, type LoadResult } from './load';
import { brokerExecArgv, type Settings } from './scenario';
import { startTarget, type Target } from './target-process';
import type { BrokerTargetConfig, BrokerTargetInfo } from './targets/broker';
import type { FloorConfig } from './targets/floor';

/**
 * The servers scenarios compare, and one load step for each. Every step uses the same autocannon
 * settings (connections, duration), so a ratio between two steps is a ratio between two servers.
 */

export type BrokerTarget = Target<BrokerTargetInfo>;
export type FloorTarget = Target<{ url: string; path: string }>;

/**
 * Writes the fixture's policy file into `dir` (so the broker starts from a file, as `bulkhead serve
 * --config` does, without the fixture builder's garbage in its heap) and starts a broker on it; its
 * logs go to `dir/<name>.log`.
 */
export async function startBroker(
  fixture: FixtureOptions,
  settings: Settings,
  dir: string,
  name: string,
  options: { sessions?: number; execArgv?: string[]; benchDir?: string } = {},
): Promise<BrokerTarget> {
  const { raw, ...rest } = buildFixture(fixture);
  const policyFile = join(dir, `${name}-policy.json`);
  await writeFile(policyFile, JSON.stringify(raw), { mode: 0o600 });
  const config: BrokerTargetConfig = { policyFile, fixture: { ...rest, options: fixture }, ...(options.sessions === undefined ? {} : { sessions: options.sessions }) };
  return startTarget<BrokerTargetInfo>('broker', config, {
    execArgv: [...brokerExecArgv(settings), ...(options.execArgv ?? [])],
    stdoutFile: join(dir, `${name}.log`),
    readyTimeoutMs: 300_000,
    ...(options.benchDir ? { benchDir: options.benchDir } : {}),
  });
}

export function startFloor(config: FloorConfig): Promise<FloorTarget> {
  return startTarget('floor', config);
}

/** Authorize requests for the broker's tokens (no call_id: the broker makes one per call). */
export function authorizeRequests(broker: BrokerTarget): { headers: Record<string, string>; bodies: string[] } {
  return {
    headers: { 'content-type': 'application/json', authorization: `Bearer ${broker.info.serverKey}` },
    bodies: broker.info.tokens.map((t) => authorizeBody(t.token, t.tenant)),
  };
}

/** One authorize call, to check the setup answers allow and to size the floor's answer like it. */
export async function probeAuthorize(broker: BrokerTarget): Promise<{ responseBytes: number; requestBytes: number }> {
  const { headers, bodies } = authorizeRequests(broker);
  const response = await fetch(`${broker.info.url}/v1/authorize`, { method: 'POST', headers, body: bodies[0] });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`probe authorize answered ${response.status}: ${text.slice(0, 300)}`);
  const completed = await fetch(`${broker.info.url}/v1/complete`, { method: 'POST', headers, body: completeBody(text) });
  if (completed.status !== 200) throw new Error(`probe complete answered ${completed.status}: ${(await completed.text()).slice(0, 300)}`);
  await completed.arrayBuffer().catch(() => undefined);
  return { responseBytes: Buffer.byteLength(text), requestBytes: Buffer.byteLength(bodies[0]!) };
}

/**
 * A load run that also reads the server's CPU time before and after: CPU per answer is steadier than
 * requests per second on a busy machine, because time the server spends waiting for a core is not in it.
 * The load generator's own CPU (this process) is read too: both share the machine's cores, which is what
 * cpu-budget.ts needs to tell a CPU-bound run from one that waits.
 */
export async function measured(server: Target<unknown>, options: LoadOptions): Promise<LoadResult> {
  const before = await server.usage();
  const loadBefore = process.cpuUsage();
  const result = await runLoad(options);
  const load = process.cpuUsage(loadBefore);
  const after = await server.usage();
  const perAnswer = (micros: number) => (result.ok > 0 ? Math.round((micros / result.ok) * 10) / 10 : Number.NaN);
  return { ...result, serverCpuUs: perAnswer(after.cpuMicros - before.cpuMicros), loadCpuUs: perAnswer(load.user + load.system) };
}

/**
 * Each allowed call is completed (POST /v1/complete with its call_id) before the connection's next
 * authorize, as an MCP server does after running the tool: the call's concurrency slot is freed and its
 * open-call record removed, so nothing piles up over a run. Latency and rps count the authorize answers;
 * server CPU per call covers both requests.
 */
export function authorizeStep(label: string, broker: BrokerTarget, settings: Settings): Step {
  const { headers, bodies } = authorizeRequests(broker);
  return {
    label,
    run: (durationSec) =>
      measured(broker, { url: broker.info.url, path: '/v1/authorize', method: 'POST', headers, bodies, connections: settings.connections, durationSec, followUp: { path: '/v1/complete', body: completeBody } }),
  };
}

/** The /v1/complete body for an authorize answer: its call_id, status success. */
export function completeBody(authorizeAnswer: string): string {
  let callId: unknown;
  try {
    callId = (JSON.parse(authorizeAnswer) as { call_id?: unknown }).call_id;
  } catch {
    callId = undefined;
  }
  return JSON.stringify({ call_id: typeof callId === 'string' ? callId : 'no-call-id', status: 'success' });
}

/** The floor gets the same request body the broker gets (first token), so both parse the same bytes. */
export function floorStep(label: string, floor: FloorTarget, broker: BrokerTarget, settings: Settings): Step {
  const { bodies } = authorizeRequests(broker);
  return {
    label,
    run: (durationSec) =>
      measured(floor, {
        url: floor.info.url,
        path: floor.info.path,
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${broker.info.serverKey}` },
        bodies: [bodies[0]!],
        connections: settings.connections,
        durationSec,
      }),
  };
}

/** What the operator API says about a tenant after the runs: quota use and calls still holding a slot. */
export async function tenantStatus(broker: BrokerTarget, tenant: string): Promise<unknown> {
  const response = await fetch(`${broker.info.url}/v1/tenants/${tenant}`, { headers: { authorization: `Bearer ${broker.info.operatorToken}` } });
  return response.ok ? response.json() : { status: response.status };
}

export const mb = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;
