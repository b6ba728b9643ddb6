import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { localhostHostValidation } from '@modelcontextprotocol/express';
// In your own project: import { createBulkheadMcp } from 'bulkhead/mcp/v2' (SDK 2.x, protocol 2026-07-28)…
import { createBulkheadMcp as createBulkheadMcpV2 } from '../../src/mcp/v2';
// …or from 'bulkhead/mcp' (SDK 1.x, 2025-11-25 clients).
import { createBulkheadMcp, type ApprovalWait, type GuardLogger } from '../../src/mcp';
import type { CrmStore } from './crm-store';
import { registerCrmTools } from './tools';

/**
 * A multi-tenant CRM MCP server protected by Bulkhead. Everything Bulkhead-specific is the two marked
 * lines; the rest is an ordinary Express app and ordinary MCP tools (tools.ts).
 */

export interface CrmServerOptions {
  brokerUrl: string;
  serverId: string;
  serverKey: string;
  store: CrmStore;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Bulkhead's issuer, when it is not discoverable from brokerUrl. */
  issuer?: string;
  approval?: ApprovalWait;
  logger?: GuardLogger;
  brokerTimeoutMs?: number;
  /** `v2` (default): SDK 2.x and protocol 2026-07-28 (`bulkhead/mcp/v2`); `v1`: SDK 1.x and 2025-11-25 clients (`bulkhead/mcp`). */
  entry?: 'v1' | 'v2';
}

export interface CrmServer {
  url: string;
  server: Server;
  bulkhead: { close(): Promise<void> };
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

export async function startCrmServer(options: CrmServerOptions): Promise<CrmServer> {
  const host = options.host ?? '127.0.0.1';
  const app = express();
  app.disable('x-powered-by');
  // DNS rebinding: a server on loopback answers only requests addressed to a loopback name, so a web page
  // whose name was rebound to 127.0.0.1 cannot reach it (the bearer token is a second wall, not the only one).
  if (LOOPBACK.has(host)) app.use(localhostHostValidation());
  const server = createServer(app);
  // Listen first: the MCP URL (with its port) is the RFC 9728 resource identifier.
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8800, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${host}:${port}/mcp`;

  // --- Bulkhead: the whole integration ---
  const config = { brokerUrl: options.brokerUrl, serverId: options.serverId, serverKey: options.serverKey, resourceUrl: url, issuer: options.issuer, approval: options.approval, logger: options.logger, timeoutMs: options.brokerTimeoutMs, resourceName: 'Example CRM' };
  const bulkhead = options.entry === 'v1' ? createBulkheadMcp(config) : createBulkheadMcpV2(config);
  app.use(bulkhead.router({ info: { name: 'crm-mcp-example', version: '1.0.0' }, setup: (mcp: object) => void registerCrmTools(mcp, options.store) }));
  // --- end ---

  return {
    url,
    server,
    bulkhead,
    async close() {
      await bulkhead.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await options.store.close();
    },
  };
}
