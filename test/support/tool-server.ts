import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { createBulkheadMcp as createV1 } from '../../src/mcp';
import { createBulkheadMcp as createV2 } from '../../src/mcp/v2';

/**
 * A wrapped MCP server with tools a test defines, on either entry (v1: SDK 1.x, v2: SDK 2.x), on a free
 * loopback port. `register` gets the protected McpServer of that entry; both take raw zod shapes and
 * call handlers with (args, extra/ctx), which is all `bulkheadCall()` needs.
 */

export interface ToolServer {
  url: string;
  close(): Promise<void>;
}

export type Register = (server: { registerTool: (...args: any[]) => unknown }) => void;

export async function startToolServer(options: { entry: 'v1' | 'v2'; brokerUrl: string; serverKey: string; serverId?: string; register: Register }): Promise<ToolServer> {
  const app = express();
  const http = createServer(app);
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', () => resolve()));
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`;
  const config = { brokerUrl: options.brokerUrl, serverId: options.serverId ?? 'crm-mcp', serverKey: options.serverKey, resourceUrl: url, logger: { info: () => undefined, warn: () => undefined }, approval: { waitMs: 0 } };
  const bulkhead = options.entry === 'v2' ? createV2(config) : createV1(config);
  app.use(bulkhead.router({ info: { name: 'test-tools', version: '0.0.1' }, setup: (server: object) => options.register(server as never) }));
  return {
    url,
    async close() {
      await bulkhead.close();
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      });
    },
  };
}
