import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMemoryCrmStore, demoDataset, type MemoryCrmStore } from '../../examples/crm-mcp/crm-store';
import { startCrmServer, type CrmServer } from '../../examples/crm-mcp/server';
import { startHarness, TENANTS, type Harness } from '../support/broker-harness';

/**
 * The MCP Inspector's CLI (`@modelcontextprotocol/inspector --cli`), as a developer would run it against
 * the example CRM with a Bulkhead token in `--header`: the v2 entry with `--protocol-era modern`
 * (2026-07-28), the v1 entry with its default (2025-11-25). It lists the caller's tools and calls one;
 * another tenant's path is refused by Bulkhead and the handler never runs. Loopback only.
 */

const CLI = require.resolve('@modelcontextprotocol/inspector/clients/launcher/build/index.js');
// Each check starts the Inspector (a Node process) once or twice; on a loaded machine that takes a while.
const SLOW = 120_000;

describe.each(['v2', 'v1'] as const)('the MCP Inspector CLI against the example CRM on the %s entry', (entry) => {
  let h: Harness;
  let crm: CrmServer;
  let store: MemoryCrmStore;
  let home: string;

  beforeAll(async () => {
    h = await startHarness({ overrides: (p) => void (p.tenants.globex.principals['globex-agent'].tools = ['query_crm', 'export_report']) });
    store = createMemoryCrmStore(TENANTS.map((t) => demoDataset(t, [h.upstream[t]!])));
    crm = await startCrmServer({ entry, brokerUrl: h.url, serverId: 'crm-mcp', serverKey: h.serverKeys['crm-mcp']!, store, port: 0, logger: { info: () => undefined, warn: () => undefined } });
    // The Inspector keeps a catalog under $HOME: give it a throwaway one.
    home = await mkdtemp(join(tmpdir(), 'bulkhead-inspector-'));
  });

  afterAll(async () => {
    await crm?.close();
    await h?.close();
    if (home) await rm(home, { recursive: true, force: true });
  });

  async function inspector(principal: string, args: string[]): Promise<{ code: number | null; json: any }> {
    const token = await h.token(principal, 'crm-mcp');
    const era = entry === 'v2' ? ['--protocol-era', 'modern'] : [];
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, '--cli', crm.url, '--transport', 'http', ...era, '--header', `Authorization: Bearer ${token}`, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, HOME: home, MCP_CATALOG_PATH: join(home, 'mcp.json') },
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (chunk) => (out += chunk));
      child.stderr.on('data', (chunk) => (err += chunk));
      child.on('error', reject);
      child.on('close', (code) => {
        try {
          resolve({ code, json: JSON.parse(out) });
        } catch {
          reject(new Error(`inspector printed no JSON (exit ${code}): ${out}${err}`));
        }
      });
    });
  }

  it("lists each tenant's own tools", async () => {
    const acme = await inspector('acme-agent', ['--method', 'tools/list']);
    expect(acme.code).toBe(0);
    expect(acme.json.tools.map((t: { name: string }) => t.name).sort()).toEqual(['export_report', 'query_crm', 'send_email']);
    const globex = await inspector('globex-agent', ['--method', 'tools/list']);
    expect(globex.json.tools.map((t: { name: string }) => t.name).sort()).toEqual(['export_report', 'query_crm']);
  }, SLOW);

  it("calls a tool with the caller's credential: acme's rows, region forced by policy", async () => {
    const result = await inspector('acme-agent', ['--method', 'tools/call', '--tool-name', 'query_crm', '--tool-arg', 'path=acme/contacts']);
    expect(result.code).toBe(0);
    const answer = JSON.parse(result.json.content[0].text);
    expect(answer.region).toBe('eu-west-1');
    expect(answer.rows.length).toBeGreaterThan(0);
    expect(JSON.stringify(result.json)).not.toContain(h.upstream.acme);
  }, SLOW);

  it("refuses globex's call on acme's path: resource_out_of_scope, acme's data never opened", async () => {
    const before = store.opened('acme');
    const result = await inspector('globex-agent', ['--method', 'tools/call', '--tool-name', 'query_crm', '--tool-arg', 'path=acme/contacts']);
    expect(result.code).not.toBe(0);
    expect(result.json.isError).toBe(true);
    expect(result.json._meta['bulkhead/deny'].reason).toBe('resource_out_of_scope');
    expect(store.opened('acme')).toBe(before);
  }, SLOW);
});
