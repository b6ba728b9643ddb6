/**
 * `bulkhead/mcp`: protect an MCP server (built on @modelcontextprotocol/sdk) with Bulkhead.
 * See docs/mcp.md.
 */
export { createBulkheadMcp, type BulkheadMcp, type BulkheadMcpOptions, type ProtectedServerSetup } from './bulkhead-mcp';
export { bulkheadCall, type BulkheadCall } from './call-grant';
export { BulkheadHandleError, createHandleCodec, type CallHandles, type HandleCodec, type HandleScope, type MintOptions } from './handles';
export { protect, isProtected } from './protect';
export { createToolGuard, type ToolGuard, type ToolGuardOptions, type ApprovalWait, type PendingApproval, type GuardLogger } from './tool-guard';
export { createBrokerClient, type BrokerClient, type BrokerClientOptions, type Allow, type Deny, type Manifest, type McpDenyReason, type ResolvedCredential } from './broker-client';
export { createBulkheadTokenVerifier, identityOf, type BulkheadTokenVerifier, type BulkheadTokenVerifierOptions, type BulkheadIdentity } from './token-verifier';
export { createSessionRouter, type SessionRouter, type SessionRouterOptions } from './session-router';
export { protectedResourceMetadata, resourceMetadataRouter, resourceMetadataUrl } from './resource-metadata';
export { denyResult, redactSecret, DENY_META_KEY, type DenyMeta } from './tool-results';
