import { createLogger } from '../observability/logger';
import type { BulkheadMcpOptions } from './bulkhead-mcp';
import { createBrokerClient, type BrokerClient } from './broker-client';
import type { GuardLogger } from './call-pipeline';
import { createHandleCodec, type HandleCodec } from './handles';
import { resourceMetadataUrl } from './resource-metadata';
import { createBulkheadTokenVerifier, type BulkheadTokenVerifier } from './token-verifier';

/** What both entries (v1 and v2) build from the same options: one broker client, one verifier, one logger. */
export interface WrapperParts {
  resourceUrl: URL;
  metadataUrl: string;
  logger: GuardLogger;
  broker: BrokerClient;
  verifier: BulkheadTokenVerifier;
  /** Seals the handles tools mint to the caller's tenant and principal (the same key on every replica). */
  handles: HandleCodec;
  /** The broker said a token is refused: the verifier stops remembering it. */
  onTokenRefused: (token: string) => void;
}

export function createWrapperParts(options: BulkheadMcpOptions): WrapperParts {
  const resourceUrl = new URL(options.resourceUrl);
  const verifier = createBulkheadTokenVerifier({ brokerUrl: options.brokerUrl, serverId: options.serverId, issuer: options.issuer, timeoutMs: options.timeoutMs, jwksCooldownMs: options.jwksCooldownMs, cacheEntries: options.tokenCacheEntries, clock: options.clock });
  return {
    resourceUrl,
    metadataUrl: resourceMetadataUrl(resourceUrl),
    // JSON on stderr by default: stdout may be an MCP stdio channel.
    logger: options.logger ?? createLogger({ destination: process.stderr }),
    broker: createBrokerClient({ brokerUrl: options.brokerUrl, serverKey: options.serverKey, timeoutMs: options.timeoutMs }),
    verifier,
    handles: createHandleCodec({ serverKey: options.serverKey, key: options.handleKey, ttlSeconds: options.handleTtlSeconds, clock: options.clock }),
    onTokenRefused: (token) => verifier.forget(token),
  };
}
