import { Router, type RequestHandler } from 'express';
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { Server, ServerOptions } from '@modelcontextprotocol/sdk/server/index.js';
import type { Implementation } from '@modelcontextprotocol/sdk/types.js';
import type { Clock } from '../clock';
import { COMPLETION_DRAIN_MS } from './background-completions';
import type { BrokerClient } from './broker-client';
import { protect } from './protect';
import { resourceMetadataRouter } from './resource-metadata';
import { createSessionRouter, type SessionRouter } from './session-router';
import type { BulkheadTokenVerifier } from './token-verifier';
import { createToolGuard, type ApprovalWait, type GuardLogger, type ToolGuard } from './tool-guard';
import { createWrapperParts } from './wrapper-parts';

/**
 * Everything an MCP server author needs, wired once:
 *
 *   const bulkhead = createBulkheadMcp({ brokerUrl, serverId: 'crm-mcp', serverKey, resourceUrl: 'https://crm.example.com/mcp' });
 *   const app = express();
 *   app.use(bulkhead.router({ info: { name: 'crm', version: '1.0.0' }, setup: (server) => registerTools(server) }));
 *   app.listen(3000);
 *
 * and in a tool handler, `const { credential, arguments: args } = bulkheadCall(extra)`.
 * Authors who run their own transport use `bulkhead.protect(new McpServer(...))` before registering
 * tools, plus `bulkhead.bearerAuth()` and `bulkhead.metadataRouter()` on their HTTP app.
 */

export interface BulkheadMcpOptions {
  /**
   * Where this MCP server reaches Bulkhead: `http://127.0.0.1:8700`, or for a sidecar broker its unix
   * socket, `unix:/run/bulkhead/broker.sock` (also spelled `http+unix://%2Frun%2Fbulkhead%2Fbroker.sock`).
   */
  brokerUrl: string | URL;
  /** This server's id in the policy (`servers.<id>`): the audience its tokens must carry. */
  serverId: string;
  /** This server's key for /v1/authorize, /v1/complete and /v1/manifest. */
  serverKey: string;
  /** The public URL of the MCP endpoint (RFC 9728 `resource`); its path is where the router serves MCP. */
  resourceUrl: string | URL;
  /** Bulkhead's `iss`; discovered from the broker when absent. */
  issuer?: string;
  /** Per broker request; default 5000 ms. */
  timeoutMs?: number;
  /** Least time between two JWKS refetches for tokens with an unknown kid; default 30 s. */
  jwksCooldownMs?: number;
  /** Verified tokens remembered until their expiry (saves the EdDSA verify per request); default 10000, 0 disables. */
  tokenCacheEntries?: number;
  /** Key of the handles tools mint (≥ 32 bytes, the same on every replica); default derived from serverKey. */
  handleKey?: Uint8Array | string;
  /** The longest a minted handle resolves; default 3600 s. */
  handleTtlSeconds?: number;
  /** v1: a call that needs approval waits in-request, default 30 s. v2: default 0, the MRTR round replaces the wait. */
  approval?: ApprovalWait;
  /** Defaults to JSON logs on stderr (stdout may be an MCP stdio channel). */
  logger?: GuardLogger;
  resourceName?: string;
  clock?: Clock;
}

export interface ProtectedServerSetup {
  info: Implementation;
  serverOptions?: ServerOptions;
  /** Registers the tools on a fresh, already protected server; called once per MCP session. */
  setup: (server: McpServer) => void | Promise<void>;
  sessionIdleMs?: number;
  maxSessions?: number;
  maxSessionsPerTenant?: number;
}

export interface BulkheadMcp {
  broker: BrokerClient;
  verifier: BulkheadTokenVerifier;
  guard: ToolGuard;
  /** Guards tools/list and tools/call of a server; call it before registering tools. */
  protect<S extends McpServer | Server>(server: S): S;
  /** A new McpServer, protected, with the tools `setup` registers. */
  createProtectedServer(setup: Pick<ProtectedServerSetup, 'info' | 'serverOptions' | 'setup'>): Promise<McpServer>;
  /** The SDK's requireBearerAuth with the Bulkhead verifier and the RFC 9728 pointer. */
  bearerAuth(): RequestHandler;
  /** Serves the RFC 9728 protected resource metadata. */
  metadataRouter(): Router;
  /** Metadata + bearer auth + Streamable HTTP sessions bound to their token's identity, at resourceUrl's path. */
  router(setup: ProtectedServerSetup): Router;
  close(): Promise<void>;
}

export function createBulkheadMcp(options: BulkheadMcpOptions): BulkheadMcp {
  const { resourceUrl, metadataUrl, logger, broker, verifier, handles, onTokenRefused } = createWrapperParts(options);
  const guard = createToolGuard({ broker, handles, approval: options.approval, logger, clock: options.clock, onTokenRefused });
  const sessionRouters: SessionRouter[] = [];

  async function createProtectedServer(setup: Pick<ProtectedServerSetup, 'info' | 'serverOptions' | 'setup'>): Promise<McpServer> {
    const server = protect(new McpServer(setup.info, setup.serverOptions), guard);
    await setup.setup(server);
    return server;
  }

  const metadataRouter = () => resourceMetadataRouter({ resourceUrl, issuer: () => verifier.issuer(), resourceName: options.resourceName });

  return {
    broker,
    verifier,
    guard,
    protect: (server) => protect(server, guard),
    createProtectedServer,
    bearerAuth: () => requireBearerAuth({ verifier, resourceMetadataUrl: metadataUrl }),
    metadataRouter,
    router(setup) {
      const sessions = createSessionRouter({
        path: resourceUrl.pathname,
        verifier,
        resourceMetadataUrl: metadataUrl,
        createServer: () => createProtectedServer(setup),
        sessionIdleMs: setup.sessionIdleMs,
        maxSessions: setup.maxSessions,
        maxSessionsPerTenant: setup.maxSessionsPerTenant,
        logger,
        clock: options.clock,
      });
      sessionRouters.push(sessions);
      const router = Router();
      router.use(metadataRouter());
      router.use(sessions.router);
      return router;
    },
    async close() {
      await Promise.all(sessionRouters.map((s) => s.close()));
      // Completions still on their way are recorded before the broker connection goes.
      await guard.drain(COMPLETION_DRAIN_MS);
      broker.close();
    },
  };
}
