import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2 } from '@modelcontextprotocol/client';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { createMcpHandler, McpServer as McpServerV2 } from '@modelcontextprotocol/server';
import { createLocalSecretStore } from '../adapters/local';
import { createBroker } from '../src/app';
import { sha256Hex } from '../src/crypto/hash';
import { loadOrCreateMasterKey } from '../src/crypto/master-key';
import { bulkheadCall, createBulkheadMcp } from '../src/mcp';
import { createBulkheadMcp as createBulkheadMcpV2 } from '../src/mcp/v2';
import { createLogger } from '../src/observability/logger';
import { parsePolicy } from '../src/policy/load';

/**
 * What bulkhead/mcp adds to one tool call, measured side by side in one run: the same tool handler
 * behind the same Streamable HTTP stack, once plain and once wrapped (bearer verification, /v1/authorize
 * with call-time credential resolution and a durable audit record, /v1/complete), against a real
 * in-process broker on loopback. Calls alternate between the two servers so drift hits both alike.
 *
 *   npm run build && node dist/bench/mcp-wrapper.js [--calls 2000] [--warmup 200] [--state-dir /dev/shm]
 *
 * --state-dir puts the broker's data dir (audit files, fdatasync'd before every allow) under another
 * directory: on tmpfs it separates the disk's sync latency from the wrapper's own cost.
 *
 * Writes bench/results/mcp-wrapper.json and bench/results/mcp-wrapper.md.
 */

const args = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const CALLS = option('calls', 2000);
const WARMUP = option('warmup', 200);
const STATE_ROOT = args.includes('--state-dir') ? args[args.indexOf('--state-dir') + 1]! : tmpdir();
const random = () => randomBytes(24).toString('base64url');

interface Stats {
  n: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  min: number;
}

function stats(samples: number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { n: sorted.length, mean: round(sorted.reduce((a, b) => a + b, 0) / sorted.length), p50: round(at(0.5)), p90: round(at(0.9)), p99: round(at(0.99)), min: round(sorted[0]!) };
}

async function listen(app: express.Express): Promise<{ server: Server; url: string }> {
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp` };
}

/** The tool both servers run: look rows up by the credential, like the example CRM does. */
function handlerBody(rows: Map<string, unknown[]>, credential: string, path: string): CallToolResult {
  return { content: [{ type: 'text', text: JSON.stringify({ path, rows: rows.get(credential) ?? [] }) }] };
}

/** The plain server: the SDK's own Streamable HTTP pattern, one McpServer per session, no auth. */
function plainApp(rows: Map<string, unknown[]>, credential: string): express.Express {
  const app = express();
  app.use(express.json());
  const transports = new Map<string, StreamableHTTPServerTransport>();
  app.all('/mcp', async (req, res) => {
    const id = req.headers['mcp-session-id'];
    const existing = typeof id === 'string' ? transports.get(id) : undefined;
    if (existing) return existing.handleRequest(req, res, req.body);
    if (req.method !== 'POST' || !isInitializeRequest(req.body)) return void res.status(400).json({ error: 'no session' });
    const server = new McpServer({ name: 'plain', version: '1.0.0' });
    server.registerTool('query_crm', { inputSchema: { path: z.string(), region: z.string().optional() } }, async ({ path }) => handlerBody(rows, credential, path));
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({ sessionIdGenerator: randomUUID, onsessioninitialized: (sid) => void transports.set(sid, transport) });
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  });
  return app;
}

/** The plain SDK 2.x server (protocol 2026-07-28): a fresh McpServer per request from a factory, no auth. */
function plainAppV2(rows: Map<string, unknown[]>, credential: string): express.Express {
  const app = express();
  app.use(express.json());
  const node = toNodeHandler(
    createMcpHandler(() => {
      const server = new McpServerV2({ name: 'plain-v2', version: '1.0.0' });
      server.registerTool('query_crm', { inputSchema: { path: z.string(), region: z.string().optional() } }, async ({ path }) => handlerBody(rows, credential, path));
      return server;
    }, { legacy: 'reject' }),
  );
  app.all('/mcp', (req, res) => void node(req, res, req.body));
  return app;
}

async function connectV2(url: string, token?: string): Promise<ClientV2> {
  const client = new ClientV2({ name: 'bench', version: '1.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
  await client.connect(new TransportV2(new URL(url), { requestInit: token ? { headers: { Authorization: `Bearer ${token}` } } : {} }));
  return client;
}

async function connect(url: string, token?: string): Promise<Client> {
  const client = new Client({ name: 'bench', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: token ? { headers: { Authorization: `Bearer ${token}` } } : {} }));
  return client;
}

async function timed(run: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await run();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

async function main(): Promise<void> {
  const dataDir = await mkdtemp(join(STATE_ROOT, 'bulkhead-bench-mcp-'));
  const serverKey = random();
  const clientSecret = random();
  const credential = `acme-upstream-${random()}`;
  const policy = parsePolicy(
    {
      broker: { issuer: 'http://bulkhead.bench' },
      operators: { ops: { token_sha256: sha256Hex(random()) } },
      servers: { 'crm-mcp': { key_sha256: sha256Hex(serverKey), tools: ['query_crm'] } },
      tenants: {
        acme: {
          principals: { 'acme-agent': { secret_sha256: sha256Hex(clientSecret), tools: ['query_crm'] } },
          tools: { query_crm: { credential: 'crm', resource: { arg: 'path', prefix: 'acme/' }, inject: { region: 'eu-west-1' } } },
          credentials: { crm: { source: 'local', name: 'crm' } },
          quotas: { calls_per_minute: 10_000_000, concurrency: 64 },
        },
      },
    },
    'bench policy',
  );
  await createLocalSecretStore({ dataDir, masterKey: await loadOrCreateMasterKey(dataDir) }).set('acme', 'crm', credential);
  const broker = await createBroker({ policy, dataDir, logger: createLogger({ level: 'error' }) });
  const brokerUrl = (await broker.listen()).url;

  const rows = new Map<string, unknown[]>([[credential, [{ id: 1, name: 'Acme Contact 1' }, { id: 2, name: 'Acme Contact 2' }]]]);
  const plain = await listen(plainApp(rows, credential));

  const wrappedExpress = express();
  const wrapped = await listen(wrappedExpress);
  const bulkhead = createBulkheadMcp({ brokerUrl, serverId: 'crm-mcp', serverKey, resourceUrl: wrapped.url, logger: { info: () => undefined, warn: () => undefined } });
  wrappedExpress.use(
    bulkhead.router({
      info: { name: 'wrapped', version: '1.0.0' },
      setup: (server) =>
        void server.registerTool('query_crm', { inputSchema: { path: z.string(), region: z.string().optional() } }, async ({ path }, extra) => handlerBody(rows, bulkheadCall(extra).credential.value, path)),
    }),
  );

  const plainV2 = await listen(plainAppV2(rows, credential));
  const wrappedV2Express = express();
  const wrappedV2 = await listen(wrappedV2Express);
  const bulkheadV2 = createBulkheadMcpV2({ brokerUrl, serverId: 'crm-mcp', serverKey, resourceUrl: wrappedV2.url, logger: { info: () => undefined, warn: () => undefined } });
  wrappedV2Express.use(
    bulkheadV2.router({
      info: { name: 'wrapped-v2', version: '1.0.0' },
      setup: (server) =>
        void server.registerTool('query_crm', { inputSchema: { path: z.string(), region: z.string().optional() } }, async ({ path }, ctx) => handlerBody(rows, bulkheadCall(ctx).credential.value, path)),
    }),
  );

  const tokenAnswer = await fetch(`${brokerUrl}/v1/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'acme-agent', client_secret: clientSecret, audience: 'crm-mcp' }),
  });
  const token = ((await tokenAnswer.json()) as { access_token: string }).access_token;

  const plainClient = await connect(plain.url);
  const wrappedClient = await connect(wrapped.url, token);
  const plainV2Client = await connectV2(plainV2.url);
  const wrappedV2Client = await connectV2(wrappedV2.url, token);
  const call = (client: Pick<Client, 'callTool'> | ClientV2) => async () => {
    const result = (await client.callTool({ name: 'query_crm', arguments: { path: 'acme/contacts' } })) as CallToolResult;
    if (result.isError) throw new Error(`call failed: ${JSON.stringify(result.content)}`);
  };
  // The broker's part alone, as the wrapper does it: authorize, then complete.
  const brokerOnly = async () => {
    const allow = await bulkhead.broker.authorize({ token, tool: 'query_crm', arguments: { path: 'acme/contacts' } });
    if (allow.decision !== 'allow') throw new Error(`denied: ${allow.reason}`);
    await bulkhead.broker.complete({ call_id: allow.call_id, status: 'success' });
  };

  for (let i = 0; i < WARMUP; i++) {
    await call(plainClient)();
    await call(wrappedClient)();
    await brokerOnly();
    await call(plainV2Client)();
    await call(wrappedV2Client)();
  }
  const samples = { plain: [] as number[], wrapped: [] as number[], broker: [] as number[], plainV2: [] as number[], wrappedV2: [] as number[] };
  for (let i = 0; i < CALLS; i++) {
    // Rotate the order each round so neither side always runs first.
    const order = [
      ['plain', call(plainClient)],
      ['wrapped', call(wrappedClient)],
      ['broker', brokerOnly],
      ['plainV2', call(plainV2Client)],
      ['wrappedV2', call(wrappedV2Client)],
    ] as const;
    for (let k = 0; k < order.length; k++) {
      const [name, run] = order[(i + k) % order.length]!;
      samples[name].push(await timed(run));
    }
  }

  const plainStats = stats(samples.plain);
  const wrappedStats = stats(samples.wrapped);
  const brokerStats = stats(samples.broker);
  const plainV2Stats = stats(samples.plainV2);
  const wrappedV2Stats = stats(samples.wrappedV2);
  const addedV2 = { p50: round(wrappedV2Stats.p50 - plainV2Stats.p50), mean: round(wrappedV2Stats.mean - plainV2Stats.mean), p99: round(wrappedV2Stats.p99 - plainV2Stats.p99) };
  const added = { p50: round(wrappedStats.p50 - plainStats.p50), mean: round(wrappedStats.mean - plainStats.mean), p99: round(wrappedStats.p99 - plainStats.p99) };
  const result = {
    benchmark: 'mcp-wrapper',
    date: new Date().toISOString(),
    node: process.version,
    cpus: `${cpus().length} x ${cpus()[0]?.model ?? 'unknown'}`,
    calls_per_side: CALLS,
    warmup_per_side: WARMUP,
    unit: 'ms per tool call, measured at the MCP client (SDK Client over Streamable HTTP, loopback)',
    unwrapped: plainStats,
    wrapped: wrappedStats,
    broker_round_trips_only: brokerStats,
    added_by_wrapper: added,
    ratio_p50: round(wrappedStats.p50 / plainStats.p50),
    v2: { unwrapped: plainV2Stats, wrapped: wrappedV2Stats, added_by_wrapper: addedV2, ratio_p50: round(wrappedV2Stats.p50 / plainV2Stats.p50) },
    // Percentiles do not subtract exactly: an estimate of what the wrapper itself adds beyond the broker.
    wrapper_local_estimate_p50: round(added.p50 - brokerStats.p50),
    broker_state_dir: STATE_ROOT,
    load_average_1m: round(loadavg()[0]!),
    broker_share_of_added_p50: round(brokerStats.p50 / Math.max(added.p50, 1e-9)),
  };

  const md = `# bulkhead/mcp wrapper overhead

${result.date} · Node ${result.node} · ${result.cpus} (load average ${result.load_average_1m}) · ${CALLS} calls per side (after ${WARMUP} warm-up), interleaved in one run · broker state under ${STATE_ROOT}.

Same tool handler, same SDK Streamable HTTP stack, measured at the SDK client. "Wrapped" adds: bearer
token verification (local, cached JWKS), \`/v1/authorize\` (token, revocation, quotas, credential resolved
from the embedded store, durable audit record) and \`/v1/complete\`, against an in-process broker on loopback.

| ms per call | p50 | p90 | p99 | mean |
|---|---:|---:|---:|---:|
| unwrapped | ${plainStats.p50} | ${plainStats.p90} | ${plainStats.p99} | ${plainStats.mean} |
| wrapped | ${wrappedStats.p50} | ${wrappedStats.p90} | ${wrappedStats.p99} | ${wrappedStats.mean} |
| broker round trips alone (authorize + complete) | ${brokerStats.p50} | ${brokerStats.p90} | ${brokerStats.p99} | ${brokerStats.mean} |
| v2 entry (SDK 2.x, 2026-07-28): unwrapped | ${plainV2Stats.p50} | ${plainV2Stats.p90} | ${plainV2Stats.p99} | ${plainV2Stats.mean} |
| v2 entry (SDK 2.x, 2026-07-28): wrapped | ${wrappedV2Stats.p50} | ${wrappedV2Stats.p90} | ${wrappedV2Stats.p99} | ${wrappedV2Stats.mean} |

**Added by the wrapper: ${added.p50} ms at p50** (${added.mean} ms mean, ${added.p99} ms at p99); wrapped/unwrapped p50 ratio ${result.ratio_p50}.
The broker's two round trips account for about ${Math.round(result.broker_share_of_added_p50 * 100)}% of the added p50; the wrapper's own
work (bearer verification, session binding, grant, redaction) is roughly the remaining ${result.wrapper_local_estimate_p50} ms.

**v2 entry: added ${addedV2.p50} ms at p50** (${addedV2.mean} ms mean, ${addedV2.p99} ms at p99) against the plain SDK 2.x server in the same run; ratio ${result.v2.ratio_p50}.
`;

  const out = join(__dirname, '..', '..', 'bench', 'results');
  await mkdir(out, { recursive: true });
  await writeFile(join(out, 'mcp-wrapper.json'), JSON.stringify(result, null, 2) + '\n');
  await writeFile(join(out, 'mcp-wrapper.md'), md);
  process.stdout.write(md);

  await plainClient.close();
  await wrappedClient.close();
  await plainV2Client.close();
  await wrappedV2Client.close();
  await bulkhead.close();
  await bulkheadV2.close();
  for (const s of [plain.server, wrapped.server, plainV2.server, wrappedV2.server]) {
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
  await broker.close();
  await rm(dataDir, { recursive: true, force: true });
}

function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/mcp-wrapper: ${(err as Error).message}\n`);
  process.exit(1);
});
