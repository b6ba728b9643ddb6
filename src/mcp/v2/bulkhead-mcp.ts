import express, { Router } from 'express';
import { requireBearerAuth } from '@modelcontextprotocol/express';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { createMcpHandler, McpServer, OAuthError, OAuthErrorCode, type Implementation, type McpHttpHandler, type OAuthTokenVerifier, type ServerOptions } from '@modelcontextprotocol/server';
import type { BulkheadMcpOptions } from '../bulkhead-mcp';
import { COMPLETION_DRAIN_MS } from '../background-completions';
import type { BrokerClient } from '../broker-client';
import { resourceMetadataRouter } from '../resource-metadata';
import type { BulkheadTokenVerifier } from '../token-verifier';
import { createWrapperParts } from '../wrapper-parts';
import { createApprovalStateCodec } from './approval-state';
import { protectV2 } from './protect';
import { createToolGuardV2, type ToolGuardV2 } from './tool-guard';

/**
 * `bulkhead/mcp/v2`: Bulkhead in front of an MCP server on SDK 2.x (`@modelcontextprotocol/server`),
 * speaking protocol revision 2026-07-28: no protocol sessions and no initialize, so every HTTP request
 * is authorized on its own. The SDK builds a fresh McpServer per request from a factory; Bulkhead's
 * factory protects it before the author's `setup` registers tools, so the caller's token (verified in
 * front of the handler) decides what that one request may list and call.
 *
 *   const bulkhead = createBulkheadMcp({ brokerUrl, serverId: 'crm-mcp', serverKey, resourceUrl: 'https://crm.example.com/mcp' });
 *   app.use(bulkhead.router({ info: { name: 'crm', version: '1.0.0' }, setup: (server) => registerTools(server) }));
 *
 * Bulkhead's `sid` claim is the agent run's id, carried in the token; it is not a transport session.
 * 2025-11-25 clients are refused here (`legacy: 'reject'`): serve them with the v1 entry (`bulkhead/mcp`).
 */

/** The v1 entry's options (broker, server id and key, resource URL, approval, logger…), plus the requestState seal's. */
export interface BulkheadMcpV2Options extends BulkheadMcpOptions {
  /** Key of the approval requestState seal (≥ 32 bytes, the same on every replica); default derived from serverKey. */
  requestStateKey?: Uint8Array | string;
  /** How long an approval round's requestState stays valid; default 900 s (the broker's approval TTL). */
  requestStateTtlSeconds?: number;
}

export interface ProtectedServerSetupV2 {
  info: Implementation;
  serverOptions?: ServerOptions;
  /** Registers the tools on a fresh, already protected server; called once per HTTP request. */
  setup: (server: McpServer) => void | Promise<void>;
  /** JSON body limit; default 1mb. */
  bodyLimit?: string;
}

export interface BulkheadMcpV2 {
  broker: BrokerClient;
  verifier: BulkheadTokenVerifier;
  guard: ToolGuardV2;
  /** A new McpServer, protected, with the tools `setup` registers (what the factory builds per request). */
  createProtectedServer(setup: Pick<ProtectedServerSetupV2, 'info' | 'serverOptions' | 'setup'>): Promise<McpServer>;
  /** The SDK's web-standard handler over that factory; put your own bearer check in front of it. */
  handler(setup: ProtectedServerSetupV2): McpHttpHandler;
  /** RFC 9728 metadata + bearer auth + the handler, at resourceUrl's path. */
  router(setup: ProtectedServerSetupV2): Router;
  close(): Promise<void>;
}

export function createBulkheadMcp(options: BulkheadMcpV2Options): BulkheadMcpV2 {
  const { resourceUrl, metadataUrl, logger, broker, verifier, handles, onTokenRefused } = createWrapperParts(options);
  const approvals = createApprovalStateCodec({ serverKey: options.serverKey, key: options.requestStateKey, ttlSeconds: options.requestStateTtlSeconds });
  const guard = createToolGuardV2({ broker, handles, approvals, approval: options.approval, logger, clock: options.clock, onTokenRefused });
  const handlers: McpHttpHandler[] = [];

  async function createProtectedServer(setup: Pick<ProtectedServerSetupV2, 'info' | 'serverOptions' | 'setup'>): Promise<McpServer> {
    // The seal is checked by the SDK before any handler runs; an author's own verify hook is not kept.
    const server = protectV2(new McpServer(setup.info, { ...setup.serverOptions, requestState: { verify: approvals.codec.verify } }), guard);
    await setup.setup(server);
    return server;
  }

  function handler(setup: ProtectedServerSetupV2): McpHttpHandler {
    const created = createMcpHandler(() => createProtectedServer(setup), {
      legacy: 'reject',
      onerror: (err) => logger.warn({ err: err.message }, 'mcp request refused or failed'),
    });
    handlers.push(created);
    return created;
  }

  return {
    broker,
    verifier,
    guard,
    createProtectedServer,
    handler,
    router(setup) {
      const node = toNodeHandler(handler(setup));
      const auth = requireBearerAuth({ verifier: oauthVerifier(verifier), resourceMetadataUrl: metadataUrl });
      const router = Router();
      router.use(resourceMetadataRouter({ resourceUrl, issuer: () => verifier.issuer(), resourceName: options.resourceName }));
      router.all(resourceUrl.pathname, auth, express.json({ limit: setup.bodyLimit ?? '1mb' }), (req, res) => void node(req, res, req.body));
      return router;
    },
    async close() {
      await Promise.all(handlers.map((h) => h.close()));
      // Completions still on their way are recorded before the broker connection goes.
      await guard.drain(COMPLETION_DRAIN_MS);
      broker.close();
    },
  };
}

/** The Bulkhead verifier with SDK 2.x's error type: 401 invalid_token for a bad token, 500 when the broker's keys are unreachable. */
function oauthVerifier(verifier: BulkheadTokenVerifier): OAuthTokenVerifier {
  return {
    async verifyAccessToken(token) {
      try {
        return await verifier.verifyAccessToken(token);
      } catch (err) {
        const code = (err as { errorCode?: unknown }).errorCode === 'invalid_token' ? OAuthErrorCode.InvalidToken : OAuthErrorCode.ServerError;
        throw new OAuthError(code, err instanceof Error ? err.message : 'token could not be verified');
      }
    },
  };
}
