import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { getMethodLiteral } from '@modelcontextprotocol/sdk/server/zod-json-schema-compat.js';
import type { ToolGuard } from './tool-guard';

/**
 * Puts a ToolGuard in front of a server's tools/list and tools/call, using only the SDK's public
 * surface: McpServer installs its tool handlers through `server.setRequestHandler` when the first tool
 * is registered, so protect() wraps that method and guards the two handlers as they are installed.
 * Every tool registered later — by name, through any McpServer API — goes through the same two
 * handlers, so none can be registered around the guard.
 *
 * The order matters: called after a tool was registered, the handlers are already in place and cannot
 * be reached without SDK internals, so protect() refuses rather than leave tools unguarded.
 */

const PROTECTED = Symbol.for('bulkhead.mcp.protected');
type Guardable = Server & { [PROTECTED]?: true };
type AnyHandler = (request: never, extra: never) => unknown;

export function protect<S extends McpServer | Server>(server: S, guard: ToolGuard): S {
  const low = ('server' in server ? server.server : server) as Guardable;
  if (low[PROTECTED]) throw new Error('bulkhead: this server is already protected');
  for (const method of ['tools/list', 'tools/call']) {
    try {
      low.assertCanSetRequestHandler(method);
    } catch {
      throw new Error(`bulkhead: protect() must be called before any tool is registered (${method} already has a handler)`);
    }
  }

  const install = low.setRequestHandler.bind(low) as (schema: unknown, handler: AnyHandler) => void;
  const guarded = (schema: Parameters<typeof getMethodLiteral>[0], handler: AnyHandler): void => {
    // By method name, not schema identity: an ESM copy of the SDK has its own schema objects.
    const method = getMethodLiteral(schema);
    if (method === 'tools/list') return install(schema, guard.listTools(handler as never) as AnyHandler);
    if (method === 'tools/call') return install(schema, guard.callTool(handler as never) as AnyHandler);
    return install(schema, handler);
  };
  low.setRequestHandler = guarded as unknown as Server['setRequestHandler'];
  low[PROTECTED] = true;
  return server;
}

export function isProtected(server: McpServer | Server): boolean {
  const low = ('server' in server ? server.server : server) as Guardable;
  return low[PROTECTED] === true;
}
