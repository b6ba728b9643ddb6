import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';

/**
 * The MCP SDK's real client over Streamable HTTP, carrying a Bulkhead bearer token — what an agent
 * runtime does. Every result a client receives is kept, so a test can search them all for secrets.
 */

export interface McpConnection {
  client: Client;
  transport: StreamableHTTPClientTransport;
  token: string;
  sessionId: string | undefined;
  call(name: string, args: Record<string, unknown>, options?: Parameters<Client['callTool']>[2]): Promise<CallToolResult>;
  toolNames(): Promise<string[]>;
  close(): Promise<void>;
}

/** Everything any client received, as JSON text. */
export const received: string[] = [];

export async function connectMcp(url: string, token: string, options: { sessionId?: string } = {}): Promise<McpConnection> {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
    sessionId: options.sessionId,
  });
  const client = new Client({ name: 'bulkhead-e2e', version: '1.0.0' });
  // With a session id already on the transport, Client.connect skips initialize (the SDK's reconnect path):
  // that is how a client replays a session id it did not open.
  await client.connect(transport);
  return {
    client,
    transport,
    token,
    get sessionId() {
      return transport.sessionId;
    },
    async call(name, args, callOptions) {
      const result = (await client.callTool({ name, arguments: args }, undefined, callOptions)) as CallToolResult;
      received.push(JSON.stringify(result));
      return result;
    },
    async toolNames() {
      const listed = await client.listTools();
      received.push(JSON.stringify(listed));
      return listed.tools.map((t) => t.name).sort();
    },
    async close() {
      await client.close().catch(() => undefined);
    },
  };
}

export function textOf(result: CallToolResult): string {
  return result.content.map((c) => (c.type === 'text' ? c.text : '')).join('');
}

export function denyOf(result: CallToolResult): { reason: string; message: string; approval_id?: string } | undefined {
  return (result._meta as Record<string, any> | undefined)?.['bulkhead/deny'];
}

/** The claims of a JWT, unverified (tests read their own tokens' sid). */
export function claimsOf(token: string): Record<string, any> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8'));
}
