import { randomUUID } from 'node:crypto';
import express, { Router, type Request, type Response } from 'express';
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js';
import type { OAuthTokenVerifier } from '@modelcontextprotocol/sdk/server/auth/provider.js';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { systemClock, type Clock } from '../clock';
import { isProtected } from './protect';
import { identityOf, type BulkheadIdentity } from './token-verifier';
import type { GuardLogger } from './tool-guard';

/**
 * Streamable HTTP for a protected MCP server, one McpServer + transport per MCP session (as the SDK
 * requires), every request behind the SDK's `requireBearerAuth`.
 *
 * A session belongs to the identity whose token opened it (tenant + principal). A request that names a
 * session with any other identity's token — another tenant, another principal, a stolen session id — is
 * answered exactly like an unknown session id (404), so session ids cannot be probed across tenants,
 * and it never reaches the transport.
 */

export interface SessionRouterOptions {
  /** The MCP endpoint path; default `/mcp`. */
  path?: string;
  verifier: OAuthTokenVerifier;
  /** Put in the `WWW-Authenticate` header of 401s (RFC 9728). */
  resourceMetadataUrl?: string;
  /** A new, protected McpServer for one session. */
  createServer: () => McpServer | Promise<McpServer>;
  /** Sessions with no request for this long are closed; default 30 min. */
  sessionIdleMs?: number;
  /** Most open sessions; new ones beyond it are refused with 503. Default 1000. */
  maxSessions?: number;
  /** Most open sessions of one tenant, so one tenant cannot use up the server's sessions. Default 100. */
  maxSessionsPerTenant?: number;
  /** JSON body limit; default 1mb. */
  bodyLimit?: string;
  logger?: GuardLogger;
  clock?: Clock;
}

interface Session {
  transport: StreamableHTTPServerTransport;
  server: McpServer;
  owner: BulkheadIdentity;
  lastSeen: number;
}

export interface SessionRouter {
  router: Router;
  /** Open sessions (for tests and metrics). */
  size(): number;
  close(): Promise<void>;
}

const SESSION_HEADER = 'mcp-session-id';

export function createSessionRouter(options: SessionRouterOptions): SessionRouter {
  const path = options.path ?? '/mcp';
  const idleMs = options.sessionIdleMs ?? 30 * 60_000;
  const maxSessions = options.maxSessions ?? 1000;
  const maxPerTenant = options.maxSessionsPerTenant ?? 100;
  const clock = options.clock ?? systemClock;
  const sessions = new Map<string, Session>();
  const auth = requireBearerAuth({ verifier: options.verifier, resourceMetadataUrl: options.resourceMetadataUrl });

  async function drop(id: string): Promise<void> {
    const session = sessions.get(id);
    if (!session) return;
    sessions.delete(id);
    await session.server.close().catch(() => undefined);
  }

  const sweep = setInterval(() => {
    const now = clock.now();
    for (const [id, session] of sessions) if (now - session.lastSeen > idleMs) void drop(id);
  }, Math.min(60_000, Math.max(1000, Math.floor(idleMs / 2))));
  sweep.unref();

  /** The caller's own session, or null: unknown and someone else's look the same from outside. */
  function ownSession(req: Request): Session | null {
    const id = req.headers[SESSION_HEADER];
    const caller = identityOf(req.auth);
    const session = typeof id === 'string' ? sessions.get(id) : undefined;
    if (!session || !caller || session.owner.tenant !== caller.tenant || session.owner.principal !== caller.principal) return null;
    session.lastSeen = clock.now();
    return session;
  }

  async function open(req: Request, res: Response): Promise<void> {
    const owner = identityOf(req.auth);
    if (!owner) return jsonRpcError(res, 401, -32001, 'Unauthorized: not a Bulkhead token');
    if (sessions.size >= maxSessions) return jsonRpcError(res, 503, -32000, 'Too many open sessions; try again later');
    let ofTenant = 0;
    for (const s of sessions.values()) if (s.owner.tenant === owner.tenant) ofTenant++;
    if (ofTenant >= maxPerTenant) return jsonRpcError(res, 503, -32000, 'Too many open sessions for this tenant; close one or try again later');
    const server = await options.createServer();
    // Fail closed: a server whose tools are not guarded is never connected.
    if (!isProtected(server)) throw new Error('bulkhead: createServer() returned a server that is not protected');
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        sessions.set(id, { transport, server, owner: { ...owner }, lastSeen: clock.now() });
        options.logger?.info({ tenant: owner.tenant, principal: owner.principal }, 'mcp session opened');
      },
      onsessionclosed: (id) => drop(id),
    });
    transport.onclose = () => {
      if (transport.sessionId !== undefined) void drop(transport.sessionId);
    };
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  }

  async function handle(req: Request, res: Response): Promise<void> {
    try {
      if (req.headers[SESSION_HEADER] !== undefined) {
        const session = ownSession(req);
        if (!session) return jsonRpcError(res, 404, -32001, 'Session not found');
        return await session.transport.handleRequest(req, res, req.body);
      }
      if (req.method === 'POST' && isInitializeRequest(req.body)) return await open(req, res);
      return jsonRpcError(res, 400, -32000, 'Bad Request: no valid session id provided');
    } catch (err) {
      options.logger?.warn({ err: err instanceof Error ? err.message : 'error', method: req.method }, 'mcp request failed');
      if (!res.headersSent) jsonRpcError(res, 500, -32603, 'Internal server error');
    }
  }

  const router = Router();
  router.post(path, auth, express.json({ limit: options.bodyLimit ?? '1mb' }), handle);
  router.get(path, auth, handle);
  router.delete(path, auth, handle);

  return {
    router,
    size: () => sessions.size,
    async close() {
      clearInterval(sweep);
      await Promise.all([...sessions.keys()].map(drop));
    },
  };
}

function jsonRpcError(res: Response, status: number, code: number, message: string): void {
  res.status(status).json({ jsonrpc: '2.0', error: { code, message }, id: null });
}
