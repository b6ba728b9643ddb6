#!/usr/bin/env node
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2 } from '@modelcontextprotocol/client';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { DEMO_FILE, DEMO_SERVER, type DemoCredentials } from '../../src/policy/demo';

/**
 * A tiny agent for the demo: gets a Bulkhead token for a demo principal, connects to the CRM with the
 * MCP SDK client, lists its tools and optionally calls one. Also approves or denies a pending call.
 *
 *   node dist/examples/crm-mcp/client.js acme-agent
 *   node dist/examples/crm-mcp/client.js acme-agent query_crm '{"path":"acme/contacts"}'
 *   node dist/examples/crm-mcp/client.js approve <approval-id>
 *
 * Environment: BULKHEAD_ADDR (or the older BULKHEAD_URL; default http://127.0.0.1:8700), CRM_MCP_URL (default http://127.0.0.1:8800/mcp),
 * BULKHEAD_DATA_DIR (default ./.bulkhead) for the demo credentials, CRM_MCP_ENTRY (`v2`, the default: the
 * SDK 2.x client at protocol 2026-07-28; `v1`: the SDK 1.x client, for a CRM started with `--entry v1`).
 */

interface DemoClient {
  listTools(): Promise<{ tools: Array<{ name: string }> }>;
  callTool(name: string, args: Record<string, unknown>): Promise<{ content: Array<{ type: string; text?: string }>; isError?: boolean }>;
  close(): Promise<void>;
}

/** Long enough for an operator to decide an approval while the call waits (the server sends progress). */
const CALL_OPTIONS = { timeout: 120_000, resetTimeoutOnProgress: true };

async function connect(token: string): Promise<DemoClient> {
  const headers = { Authorization: `Bearer ${token}` };
  if (process.env.CRM_MCP_ENTRY === 'v1') {
    const client = new Client({ name: 'crm-demo-agent', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl), { requestInit: { headers } }));
    return { listTools: () => client.listTools(), callTool: async (name, args) => (await client.callTool({ name, arguments: args }, undefined, CALL_OPTIONS)) as never, close: () => client.close() };
  }
  const client = new ClientV2({ name: 'crm-demo-agent', version: '1.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
  await client.connect(new TransportV2(new URL(mcpUrl), { requestInit: { headers } }));
  return { listTools: () => client.listTools(), callTool: async (name, args) => (await client.callTool({ name, arguments: args }, CALL_OPTIONS)) as never, close: () => client.close() };
}

const brokerUrl = process.env.BULKHEAD_ADDR ?? process.env.BULKHEAD_URL ?? 'http://127.0.0.1:8700';
const mcpUrl = process.env.CRM_MCP_URL ?? 'http://127.0.0.1:8800/mcp';

async function demo(): Promise<DemoCredentials> {
  const path = join(resolve(process.env.BULKHEAD_DATA_DIR ?? '.bulkhead'), DEMO_FILE);
  return JSON.parse(await readFile(path, 'utf8')) as DemoCredentials;
}

async function main([first, second, third]: string[]): Promise<number> {
  if (!first || first === '--help' || first === '-h') {
    process.stdout.write('Usage: client.js <client-id> [tool [json-arguments]] | approve <approval-id> | deny <approval-id>\n');
    return first ? 0 : 2;
  }
  const creds = await demo();
  if (first === 'approve' || first === 'deny') {
    const response = await fetch(`${brokerUrl}/v1/approvals/${encodeURIComponent(second ?? '')}/${first}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${creds.operator.token}` },
      signal: AbortSignal.timeout(10_000),
    });
    process.stdout.write(`${response.status} ${await response.text()}\n`);
    return response.ok ? 0 : 1;
  }

  const secret = creds.clients[first]?.secret;
  if (!secret) throw new Error(`no demo client "${first}" (try acme-agent or globex-agent)`);
  const tokenResponse = await fetch(`${brokerUrl}/v1/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: first, client_secret: secret, audience: DEMO_SERVER }),
    signal: AbortSignal.timeout(10_000),
  });
  const token = ((await tokenResponse.json()) as { access_token?: string }).access_token;
  if (!token) throw new Error(`the broker refused a token for ${first} (${tokenResponse.status})`);

  const client = await connect(token);
  try {
    const { tools } = await client.listTools();
    process.stdout.write(`${first} sees: ${tools.map((t) => t.name).join(', ')}\n`);
    if (second) {
      const result = await client.callTool(second, third ? (JSON.parse(third) as Record<string, unknown>) : {});
      for (const item of result.content) if (item.type === 'text') process.stdout.write(`${result.isError ? 'error: ' : ''}${item.text}\n`);
    }
  } finally {
    await client.close();
  }
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`client: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}
