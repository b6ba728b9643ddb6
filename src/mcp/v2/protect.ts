import type { McpServer, ScopeChallengeHandler } from '@modelcontextprotocol/server';
import type { ToolGuardV2 } from './tool-guard';

/**
 * Puts the v2 ToolGuard in front of an SDK 2.x McpServer's tools, through its public surface, as the
 * v1 protect() does: McpServer installs tools/list and tools/call through `server.server.setRequestHandler`
 * (by method name) when the first tool is registered, so that method is wrapped and the two handlers
 * are guarded as they are installed; every tool registered later goes through them.
 *
 * `registerTool` is wrapped too, to give every tool the guard's `scopeChallenge` (after the author's
 * own, if it has one): the SDK consults it before dispatch, which is where a 403 step-up challenge has
 * to come from. Called after a tool was registered, protect() refuses rather than leave tools unguarded.
 */

const PROTECTED = Symbol.for('bulkhead.mcp.v2.protected');
type Guardable = McpServer & { [PROTECTED]?: true };
type AnyFn = (...args: never[]) => unknown;

export function protectV2(server: McpServer, guard: ToolGuardV2): McpServer {
  const guardable = server as Guardable;
  if (guardable[PROTECTED]) throw new Error('bulkhead: this server is already protected');
  const low = server.server;
  for (const method of ['tools/list', 'tools/call']) {
    try {
      low.assertCanSetRequestHandler(method);
    } catch {
      throw new Error(`bulkhead: protect() must be called before any tool is registered (${method} already has a handler)`);
    }
  }

  const install = low.setRequestHandler.bind(low) as (...args: unknown[]) => unknown;
  low.setRequestHandler = ((method: unknown, ...rest: unknown[]) => {
    // The handler is the last argument (custom methods pass schemas before it).
    const handler = rest[rest.length - 1] as AnyFn;
    if (method === 'tools/list') return install(method, ...rest.slice(0, -1), guard.listTools(handler as never));
    if (method === 'tools/call') return install(method, ...rest.slice(0, -1), guard.callTool(handler as never));
    return install(method, ...rest);
  }) as typeof low.setRequestHandler;

  const register = server.registerTool.bind(server) as (name: string, config: { scopeChallenge?: ScopeChallengeHandler }, cb: unknown) => unknown;
  server.registerTool = ((name: string, config: { scopeChallenge?: ScopeChallengeHandler }, cb: unknown) => {
    const own = config.scopeChallenge;
    const scopeChallenge: ScopeChallengeHandler = own ? async (context) => (await own(context)) ?? guard.scopeChallenge(context) : guard.scopeChallenge;
    return register(name, { ...config, scopeChallenge }, cb);
  }) as typeof server.registerTool;

  guardable[PROTECTED] = true;
  return server;
}

export function isProtectedV2(server: McpServer): boolean {
  return (server as Guardable)[PROTECTED] === true;
}
