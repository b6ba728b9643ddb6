import { connectMcp } from './mcp-client';
import { connectMcpV2 } from './mcp-client-v2';

export type ToolResult = { content: Array<{ type: string; text?: string }>; isError?: boolean; _meta?: Record<string, unknown> };

/** One tool caller, whichever entry it talks to. */
export interface McpCaller {
  call(name: string, args: Record<string, unknown>): Promise<ToolResult>;
  close(): Promise<void>;
}

/** The SDK's own client for the entry under test: v2 (2026-07-28) for the v2 entry, v1 for the v1 entry. */
export async function connectCaller(entry: 'v1' | 'v2', url: string, bearer: string): Promise<McpCaller> {
  if (entry === 'v2') {
    const v2 = await connectMcpV2(url, bearer);
    return { call: async (name, args) => (await v2.client.callTool({ name, arguments: args })) as ToolResult, close: v2.close };
  }
  const v1 = await connectMcp(url, bearer);
  return { call: async (name, args) => (await v1.call(name, args)) as ToolResult, close: v1.close };
}
