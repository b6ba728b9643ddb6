import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { createMcpHandler, McpServer as McpServerV2 } from '@modelcontextprotocol/server';
import { z } from 'zod';
import { bulkheadCall, createBulkheadMcp } from '../../src/mcp';
import { createBulkheadMcp as createBulkheadMcpV2 } from '../../src/mcp/v2';
import { BENCH_TOOL } from '../fixtures';
import { serveTarget } from '../target-process';

/**
 * The MCP servers the wrapper benchmark compares, in a process of their own (as an MCP server runs
 * beside its broker, not inside it): the same tool handler behind the SDK's own Streamable HTTP stack,
 * plain and wrapped by bulkhead/mcp, for SDK 1.x (protocol 2025-11-25) and SDK 2.x (2026-07-28).
 */
export interface McpServersConfig {
  brokerUrl: string;
  serverId: string;
  serverKey: string;
}

export interface McpServersInfo {
  plain: string;
  wrapped: string;
  plainV2: string;
  wrappedV2: string;
}

const inputSchema = { path: z.string(), limit: z.number().optional(), region: z.string().optional() };

/** The tool every server runs: look rows up with the credential, like the example CRM does. */
function handlerBody(credential: string, path: string): CallToolResult {
  return { content: [{ type: 'text', text: JSON.stringify({ path, account: credential.length, rows: [{ id: 1, name: 'Contact 1' }, { id: 2, name: 'Contact 2' }] }) }] };
}

/** The plain SDK 1.x server: the SDK's own Streamable HTTP pattern, one McpServer per session, no auth. */
function plainApp(): express.Express {
  const app = express();
  app.use(express.json());
  const transports = new Map<string, StreamableHTTPServerTransport>();
  app.all('/mcp', async (req, res) => {
    const id = req.headers['mcp-session-id'];
    const existing = typeof id === 'string' ? transports.get(id) : undefined;
    if (existing) return existing.handleRequest(req, res, req.body);
    if (req.method !== 'POST' || !isInitializeRequest(req.body)) return void res.status(400).json({ error: 'no session' });
    const server = new McpServer({ name: 'plain', version: '1.0.0' });
    server.registerTool(BENCH_TOOL, { inputSchema }, async ({ path }) => handlerBody('plain-credential', path));
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({ sessionIdGenerator: randomUUID, onsessioninitialized: (sid) => void transports.set(sid, transport) });
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  });
  return app;
}

/** The plain SDK 2.x server: a fresh McpServer per request from a factory, no auth. */
function plainAppV2(): express.Express {
  const app = express();
  app.use(express.json());
  const node = toNodeHandler(
    createMcpHandler(() => {
      const server = new McpServerV2({ name: 'plain-v2', version: '1.0.0' });
      server.registerTool(BENCH_TOOL, { inputSchema }, async ({ path }) => handlerBody('plain-credential', path));
      return server;
    }, { legacy: 'reject' }),
  );
  app.all('/mcp', (req, res) => void node(req, res, req.body));
  return app;
}

async function listen(app: express.Express): Promise<{ server: Server; url: string }> {
  const server = createServer(app);
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp` };
}

const quiet = { info: () => undefined, warn: () => undefined };

serveTarget(async (config: McpServersConfig) => {
  const plain = await listen(plainApp());
  const plainV2 = await listen(plainAppV2());

  const wrappedApp = express();
  const wrapped = await listen(wrappedApp);
  const v1 = createBulkheadMcp({ brokerUrl: config.brokerUrl, serverId: config.serverId, serverKey: config.serverKey, resourceUrl: wrapped.url, logger: quiet });
  wrappedApp.use(
    v1.router({
      info: { name: 'wrapped', version: '1.0.0' },
      setup: (server) => void server.registerTool(BENCH_TOOL, { inputSchema }, async ({ path }, extra) => handlerBody(bulkheadCall(extra).credential.value, path)),
    }),
  );

  const wrappedV2App = express();
  const wrappedV2 = await listen(wrappedV2App);
  const v2 = createBulkheadMcpV2({ brokerUrl: config.brokerUrl, serverId: config.serverId, serverKey: config.serverKey, resourceUrl: wrappedV2.url, logger: quiet });
  wrappedV2App.use(
    v2.router({
      info: { name: 'wrapped-v2', version: '1.0.0' },
      setup: (server) => void server.registerTool(BENCH_TOOL, { inputSchema }, async ({ path }, ctx) => handlerBody(bulkheadCall(ctx).credential.value, path)),
    }),
  );

  const info: McpServersInfo = { plain: plain.url, wrapped: wrapped.url, plainV2: plainV2.url, wrappedV2: wrappedV2.url };
  return {
    info,
    async close() {
      await v1.close();
      await v2.close();
      for (const { server } of [plain, wrapped, plainV2, wrappedV2]) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    },
  };
});
