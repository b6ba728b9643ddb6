import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMemoryCrmStore, demoDataset } from '../../examples/crm-mcp/crm-store';
import { startCrmServer, type CrmServer } from '../../examples/crm-mcp/server';
import { startBearerProxy, type BearerProxy } from '../support/bearer-proxy';
import { startHarness, TENANTS, type Harness } from '../support/broker-harness';

/**
 * The official MCP conformance suite (`@modelcontextprotocol/conformance`, server mode) against the
 * example CRM wrapped by Bulkhead, on loopback. Its 0.1.x server scenarios speak 2025-11-25 only, so
 * they run against the v1 entry; the v2 entry refuses 2025 clients by design (docs/mcp.md lists both).
 * The suite sends no Authorization header of its own: a loopback proxy adds a real Bulkhead token.
 *
 * Scenarios the CRM cannot pass because it does not have the feature (no prompts, resources, logging,
 * completions, and none of the suite's fixture tools) are listed, each with its reason, in
 * test/e2e/conformance-baseline.yml; the suite exits non-zero for any other failure *and* for a listed
 * scenario that starts passing, so the baseline cannot go stale.
 */

const CLI = require.resolve('@modelcontextprotocol/conformance/dist/index.js');
const BASELINE = join(__dirname, 'conformance-baseline.yml');

function run(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

describe('the MCP conformance suite against the wrapped example CRM (v1 entry, 2025-11-25)', () => {
  let h: Harness;
  let crm: CrmServer;
  let proxy: BearerProxy;
  let outDir: string;
  let token = '';

  beforeAll(async () => {
    h = await startHarness();
    crm = await startCrmServer({ entry: 'v1', brokerUrl: h.url, serverId: 'crm-mcp', serverKey: h.serverKeys['crm-mcp']!, store: createMemoryCrmStore(TENANTS.map((t) => demoDataset(t, [h.upstream[t]!]))), port: 0, logger: { info: () => undefined, warn: () => undefined }, approval: { waitMs: 0 } });
    token = await h.token('acme-agent', 'crm-mcp');
    proxy = await startBearerProxy(crm.url, () => token);
    outDir = await mkdtemp(join(tmpdir(), 'bulkhead-conformance-'));
  });

  afterAll(async () => {
    await proxy?.close();
    await crm?.close();
    await h?.close();
    if (outDir) await rm(outDir, { recursive: true, force: true });
  });

  it('passes every scenario the CRM has the feature for, and fails exactly the baseline', async () => {
    const { code, output } = await run(['server', '--url', proxy.url, '--expected-failures', BASELINE, '-o', outDir]);
    const results: Record<string, string[]> = {};
    for (const dir of await readdir(outDir)) {
      const checks = JSON.parse(await readFile(join(outDir, dir, 'checks.json'), 'utf8')) as Array<{ id: string; status: string }>;
      results[dir] = checks.filter((c) => c.status === 'FAILURE').map((c) => c.id);
    }
    if (code !== 0 || process.env.CONFORMANCE_REPORT) process.stdout.write(`${output}\n${JSON.stringify(results, null, 2)}\n`);
    expect(Object.keys(results).length).toBeGreaterThan(10);
    expect(code).toBe(0);
  }, 180_000);
});
