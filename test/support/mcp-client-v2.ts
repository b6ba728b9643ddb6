import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

/**
 * The MCP SDK 2.x client over Streamable HTTP at protocol 2026-07-28 (pinned: no fallback to a
 * 2025 handshake), carrying a Bulkhead bearer token. `onElicit` answers the form elicitations an
 * input_required round embeds (Bulkhead's approval round), as a client application would.
 */

export type ElicitAnswer = { action: 'accept'; content?: Record<string, string | number | boolean | string[]> } | { action: 'decline' | 'cancel' };

export interface McpV2Connection {
  client: Client;
  token: string;
  close(): Promise<void>;
}

export const REVISION = '2026-07-28';

export async function connectMcpV2(url: string, token: string, options: { onElicit?: (message: string) => Promise<ElicitAnswer>; autoFulfill?: boolean; headers?: Record<string, string> } = {}): Promise<McpV2Connection> {
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${token}`, ...(options.headers ?? {}) } } });
  const client = new Client(
    { name: 'bulkhead-e2e-v2', version: '1.0.0' },
    {
      capabilities: options.onElicit ? { elicitation: { form: {} } } : {},
      versionNegotiation: { mode: { pin: REVISION } },
      ...(options.autoFulfill === false ? { inputRequired: { autoFulfill: false } } : {}),
    },
  );
  if (options.onElicit) {
    const onElicit = options.onElicit;
    client.setRequestHandler('elicitation/create', async (request) => onElicit(String((request.params as { message?: unknown }).message ?? '')));
  }
  await client.connect(transport);
  return { client, token, close: () => client.close().catch(() => undefined) };
}
